"""A time-ordered index (due times, lease ends) walked from the front, from a floor.

Deleted entries stay in RocksDB as tombstones until compaction, and a walk from the start of
an index would step over every one of them: so a walk starts at a floor, an instant no live
entry is earlier than, kept as entries are taken and added, and no walk is made while the
floor is later than the instant asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from kairoi.storage import keys
from kairoi.storage.writes import PendingWrites

T = TypeVar("T")
_EMPTY = 1 << 62
"""A floor above every instant: the index holds nothing."""


class TimedIndex(Generic[T]):
    def __init__(
        self, writes: PendingWrites, prefix: bytes, parse: Callable[[bytes], tuple[int, T]]
    ) -> None:
        self._writes = writes
        self._prefix = prefix
        self._parse = parse  # a key's instant, and what the entry names
        self._floor: int | None = None  # None: not known yet

    def added(self, instant_us: int) -> None:
        """An entry at ``instant_us`` was added: the floor may come down."""
        if self._floor is not None and instant_us < self._floor:
            self._floor = instant_us

    def forget_floor(self) -> None:
        """After a failed write: walk from the index's start again."""
        self._floor = None

    def due_by(self, until_us: int, limit: int) -> tuple[list[T], int | None]:
        """Up to ``limit`` entries at or before ``until_us``, in time order, and the instant
        of the first entry left, or an earlier one if entries were deleted since the last
        walk (None: the index holds no other). Reads only what it takes, and one entry more.
        The caller moves every entry taken out of this part of the index (claiming does), so
        the next walk starts at the first entry left."""
        if self._floor is not None and self._floor > until_us:
            # Nothing is due, and a walk would step over the deleted entries before the
            # first live one (ended leases sit at the front of their index): skip it. A
            # floor left low by deletions only makes a later walk, which corrects it.
            return [], None if self._floor == _EMPTY else self._floor
        start = self._prefix if self._floor is None else keys.timed_bound(self._prefix, self._floor)
        taken: list[T] = []
        next_instant = None
        for key, _ in self._writes.walk(start, keys.prefix_end(self._prefix)):
            instant, named = self._parse(key)
            if len(taken) == limit or instant > until_us:
                next_instant = instant
                break
            taken.append(named)
        self._floor = _EMPTY if next_instant is None else next_instant
        return taken, next_instant

    def every(self) -> list[T]:
        """Every entry, in time order."""
        return [self._parse(key)[1] for key, _ in self._writes.under(self._prefix)]
