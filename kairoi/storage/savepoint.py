"""Taking back what one request, or one job of a claim, changed when it fails half-way: its
writes to the pending batch and the state kept beside them in memory."""

from __future__ import annotations

from typing import Any

from kairoi.domain import Rule
from kairoi.storage.indexes import TimedIndex
from kairoi.storage.rules import RuleBook
from kairoi.storage.stats import Stats
from kairoi.storage.writes import PendingWrites

Mark = tuple[int, dict[str, int], dict[str, Rule | None]]
"""Where the batch's undo journal was, the counts, the rule changes (a tuple: one is taken
for each job a claim takes)."""


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
        return self._writes.mark(outermost), self._stats.saved(), self._rules.saved()

    def roll_back(self, mark: Mark) -> None:
        """Everything as it was at ``mark``."""
        position, counts, rules = mark
        if self._writes.undo(position):
            for index in self._indexes:  # a walk may have raised its floor over what came back
                index.forget_floor()
        self._stats.restore(counts)
        self._rules.restore(rules)
