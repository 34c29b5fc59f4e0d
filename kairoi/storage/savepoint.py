"""Taking back what one request, or one job of a claim, changed when it fails half-way: its
writes to the pending batch and the state kept beside them in memory."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from kairoi.domain import Rule
from kairoi.storage.indexes import TimedIndex
from kairoi.storage.rules import RuleBook
from kairoi.storage.stats import Stats
from kairoi.storage.writes import PendingWrites


@dataclass(frozen=True)
class Mark:
    position: int
    counts: Counter[str]
    rules: dict[str, Rule | None]


class Savepoints:
    def __init__(
        self,
        writes: PendingWrites,
        stats: Stats,
        rules: RuleBook,
        indexes: tuple[TimedIndex[Any], ...],
    ) -> None:
        self._writes = writes
        self._stats = stats
        self._rules = rules
        self._indexes = indexes

    def mark(self, outermost: bool = False) -> Mark:
        """Where a request (``outermost``) or a part of one starts."""
        return Mark(self._writes.mark(outermost), self._stats.saved(), self._rules.saved())

    def roll_back(self, mark: Mark) -> None:
        """Everything as it was at ``mark``."""
        if self._writes.undo(mark.position):
            for index in self._indexes:  # a walk may have raised its floor over what came back
                index.forget_floor()
        self._stats.restore(mark.counts)
        self._rules.restore(mark.rules)
