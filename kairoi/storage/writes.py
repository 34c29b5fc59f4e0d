"""The batch being built: puts and deletes over the committed store, read through.

Reads see the batch first, so later requests of a group commit see earlier ones; ``scan``
merges the batch's keys into the store's, in order.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator

from kairoi.storage.kv import KeyValueStore


class PendingWrites:
    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv
        self.changes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.changes:
            return self.changes[key]
        return self.kv.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.changes[key] = value

    def delete(self, key: bytes) -> None:
        self.changes[key] = None

    def take(self) -> dict[bytes, bytes | None]:
        """The batch to write; the next one starts empty."""
        changes, self.changes = self.changes, {}
        return changes

    def scan(self, start: bytes, end: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` live keys in ``[start, end)`` with their values, in byte order.

        A list, not an iterator: callers change the batch while walking the result.
        """
        return list(itertools.islice(self.walk(start, end), limit))

    def walk(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Live keys in ``[start, end)`` with their values, in byte order, read as walked.
        The batch must not change before the walk ends."""
        pending = sorted(
            (key, value)
            for key, value in self.changes.items()
            if start <= key < end and value is not None
        )
        committed = (
            (key, value) for key, value in self.kv.scan(start, end) if key not in self.changes
        )
        return heapq.merge(committed, pending)
