"""What ``kairoi serve`` decides about its children: start order, stop order, restarts.

Pure bookkeeping; the actor does the processes and signals. A child that exits is restarted
with a back-off, however soon after start it failed and however often: a port in use, a
database locked by another process or a disk that is full can all be mended while serve keeps
the other children running. Only a configuration error (exit 78) stops everything at once:
the same configuration would fail again.
"""

from __future__ import annotations

from dataclasses import dataclass

from kairoi.runtime import EXIT_CONFIG


def stop_stages(runners: int) -> list[list[str]]:
    """Process names in the order they stop (they start in the reverse order).

    The frontend stops taking requests first; storage, the single writer, goes last, so every
    other process can still have its requests answered while it drains.
    """
    return [["frontend"], ["dispatcher"], [f"runner-{i}" for i in range(runners)], ["storage"]]


def start_order(runners: int) -> list[str]:
    return [name for stage in reversed(stop_stages(runners)) for name in stage]


def command(name: str) -> list[str]:
    """The ``kairoi`` arguments that start the process called ``name``."""
    if name.startswith("runner-"):
        return ["runner", "--name", name]
    return [name]


FIRST_DELAY = 0.1
MAX_DELAY = 5.0
STABLE_AFTER = 10.0
"""A child that ran this long before dying is restarted at once again: it was not crash-looping."""


LOOPING_AFTER = 5
"""Failures running after which a child is said to be crash-looping (logged as an error)."""


@dataclass(frozen=True)
class Restart:
    """Start the child again after ``delay`` seconds; it failed ``failures`` times running."""

    delay: float
    failures: int

    @property
    def looping(self) -> bool:
        return self.failures >= LOOPING_AFTER


@dataclass(frozen=True)
class StopAll:
    """Restarting cannot mend this exit: stop every child and exit with an error."""

    reason: str


@dataclass
class Child:
    name: str
    pid: int = 0
    started_at: float = 0.0
    restart_at: float | None = None
    failures: int = 0

    def exited(self, now: float, code: int) -> Restart | StopAll:
        """Record an exit with status ``code`` (negative: killed by that signal)."""
        self.pid = 0
        if code == EXIT_CONFIG:
            return StopAll(f"{self.name} exited {code}: a configuration error; its log says why")
        if now - self.started_at >= STABLE_AFTER:
            self.failures = 0
        delay = min(FIRST_DELAY * (1 << min(self.failures, 16)), MAX_DELAY)
        self.failures += 1
        self.restart_at = now + delay
        return Restart(delay, self.failures)
