"""The key-value contract storage needs, and its in-memory twin for unit tests.

Writes are all-or-nothing batches; a value of None in a batch deletes the key.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from typing import Protocol

from kairoi.errors import StoreError


class KeyValueStore(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The value of each key (None where there is none), in one call."""
        ...

    def write(self, batch: Mapping[bytes, bytes | None], sync: bool) -> None:
        """Apply every put and delete of ``batch`` atomically; raises StoreError."""
        ...

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Keys in ``[start, end)``, in byte order, with their values."""
        ...

    def release_memory(self) -> None:
        """Between bursts of writes: free what the store holds to absorb them (it stays
        correct and durable either way)."""
        ...

    def reopen(self) -> bool:
        """Close and open the store again (after a failed write); False when it did not try
        (it stays as it is), StoreError when it could not open it (it is closed)."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._ordered: list[bytes] | None = []
        """The keys of ``data`` in order (None: written since; a scan bisects them, so a
        walk of a few keys does not look at them all). A test that puts a key into ``data``
        itself changes its size: that is seen too."""
        self.fail_writes = False
        """Make the next writes raise StoreError, as a full disk would."""

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.data.get(key) for key in keys]

    def write(self, batch: Mapping[bytes, bytes | None], sync: bool) -> None:
        if self.fail_writes:
            raise StoreError("write refused (fail_writes is set)")
        self._ordered = None
        for key, value in batch.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        ordered = self._ordered
        if ordered is None or len(ordered) != len(self.data):
            ordered = self._ordered = sorted(self.data)
        found = ordered[bisect.bisect_left(ordered, start) : bisect.bisect_left(ordered, end)]
        for key in found:
            if (value := self.data.get(key)) is not None:
                yield key, value

    def release_memory(self) -> None:
        pass

    def reopen(self) -> bool:
        return True

    def close(self) -> None:
        pass
