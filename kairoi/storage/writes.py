"""The batch being built: puts and deletes over the committed store, read through.

Reads see the batch first, so later requests of a group commit see earlier ones; ``scan``
merges the batch's keys into the store's, in order, looking only at the batch's keys in its
range (an ordered index of them by kind, ``_KindKeys``: a request that deletes thousands of
jobs, each with a walk of its children, stays linear). ``mark`` starts a request's changes and
``undo`` takes them back out of the batch (a request that failed half-way leaves nothing).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from kairoi.storage import keys
from kairoi.storage.kv import KeyValueStore

EVERY = 1 << 62
"""A scan limit above any count of keys."""
_ABSENT = b"\xff absent"
"""In the undo journal: the key was not in the batch before (a value no record has)."""


class PendingWrites:
    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv
        self.changes: dict[bytes, bytes | None] = {}
        self._keys_by_kind: defaultdict[int, _KindKeys] = defaultdict(_KindKeys)
        """The batch's keys by their first byte: a walk of one range looks at that range's
        changes only, not at the whole batch (a batch of thousands of outcomes walks the due
        and children indexes many times)."""
        self._undo: list[tuple[bytes, Any]] = []
        """What the batch held of each key before each change since the outermost ``mark``
        (a value, None: deleted, or _ABSENT); b"" and a list: put_all's keys, all absent."""

    def mark(self, outermost: bool = False) -> int:
        """A request (``outermost``) or a part of one starts: ``undo`` of the position
        returned takes back what is changed from here on."""
        if outermost:
            self._undo.clear()
        return len(self._undo)

    def undo(self, position: int) -> int:
        """Take the changes made since ``mark`` gave ``position`` out of the batch, latest
        first; how many there were. (The keys stay in ``_keys_by_kind``: a walk skips those
        no longer changed.)"""
        changes = self.changes
        undone = len(self._undo) - position  # entries: put_all's count as one
        for key, before in reversed(self._undo[position:]):
            if before is _ABSENT:
                changes.pop(key, None)
            elif not key:  # put_all's keys
                for absent in before:
                    changes.pop(absent, None)
            else:
                changes[key] = before
        del self._undo[position:]
        return undone

    def get(self, key: bytes) -> bytes | None:
        if key in self.changes:
            return self.changes[key]
        return self.kv.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._undo.append((key, self.changes.get(key, _ABSENT)))
        self.changes[key] = value
        self._keys_by_kind[key[0]].recent.append(key)

    def put_all(self, kind: bytes, kind_keys: list[bytes], values: Iterable[bytes]) -> None:
        """``put`` of each key (all starting with ``kind``, none of them in the batch yet: the
        caller knows) and value, in C-level passes."""
        self._undo.append((b"", kind_keys))  # all of them were absent: one entry for all
        self.changes.update(zip(kind_keys, values, strict=True))
        self._keys_by_kind[kind[0]].recent.extend(kind_keys)

    def delete(self, key: bytes) -> None:
        self._undo.append((key, self.changes.get(key, _ABSENT)))
        self.changes[key] = None
        self._keys_by_kind[key[0]].recent.append(key)

    def take(self) -> dict[bytes, bytes | None]:
        """The batch to write; the next one starts empty."""
        changes, self.changes = self.changes, {}
        self._keys_by_kind.clear()
        self._undo.clear()
        return changes

    def scan(self, start: bytes, end: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` live keys in ``[start, end)`` with their values, in byte order.

        A list, not an iterator: callers change the batch while walking the result.
        """
        return list(itertools.islice(self.walk(start, end), limit))

    def under(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Every live key that starts with ``prefix``, with its value, in byte order."""
        return self.scan(prefix, keys.prefix_end(prefix), EVERY)

    def walk(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Live keys in ``[start, end)`` with their values, in byte order, read as walked.
        The batch must not change before the walk ends."""
        changes = self.changes
        changed = self._batch_keys(start, end)
        if not changed:  # the commonest walk: the batch has not touched the range
            return self.kv.scan(start, end)
        pending = [(key, value) for key in changed if (value := changes.get(key)) is not None]
        committed = ((key, value) for key, value in self.kv.scan(start, end) if key not in changes)
        return heapq.merge(committed, pending)

    def _batch_keys(self, start: bytes, end: bytes) -> list[bytes]:
        """The batch's keys in ``[start, end)``, in byte order, each once (some of them
        possibly no longer changed: taken back)."""
        found: list[bytes] = []
        for kind in range(start[0] if start else 0, end[0] + 1):
            if (kind_keys := self._keys_by_kind.get(kind)) is not None:
                found += kind_keys.between(start, end)
        return found


class _KindKeys:
    """The batch's keys of one kind, in order: most of them in a sorted list, the latest in a
    short list as they came (a put is an append, ``put_all`` an extend: no Python work per
    key), merged into the sorted one when it passes about the square root of its size. A
    walk bisects the sorted list and looks through the short one."""

    __slots__ = ("ordered", "recent")

    def __init__(self) -> None:
        self.ordered: list[bytes] = []
        self.recent: list[bytes] = []

    def between(self, start: bytes, end: bytes) -> list[bytes]:
        """The keys in ``[start, end)``, in byte order, each once."""
        ordered = self.ordered
        if len(self.recent) > 32 + math.isqrt(len(ordered)):
            ordered = self.ordered = list(dict.fromkeys(sorted(ordered + self.recent)))
            self.recent = []
        found = ordered[bisect.bisect_left(ordered, start) : bisect.bisect_left(ordered, end)]
        recent = [
            key for key in {key for key in self.recent if start <= key < end}
            if not _holds(ordered, key)
        ]  # fmt: skip
        return sorted(found + recent) if recent else found


def _holds(ordered: list[bytes], key: bytes) -> bool:
    """Whether the sorted list ``ordered`` holds ``key``."""
    at = bisect.bisect_left(ordered, key)
    return at < len(ordered) and ordered[at] == key
