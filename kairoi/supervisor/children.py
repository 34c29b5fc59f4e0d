"""What ``kairoi serve`` decides about its children: start order, stop order, restart delays.

Pure bookkeeping; the actor does the processes and signals.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass
class Child:
    name: str
    pid: int = 0
    started_at: float = 0.0
    restart_at: float | None = None
    failures: int = 0

    def exited(self, now: float) -> float:
        """Record an unexpected exit; the delay before the restart."""
        if now - self.started_at >= STABLE_AFTER:
            self.failures = 0
        delay = min(FIRST_DELAY * (1 << min(self.failures, 16)), MAX_DELAY)
        self.failures += 1
        self.pid = 0
        self.restart_at = now + delay
        return delay
