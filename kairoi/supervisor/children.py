"""What ``kairoi serve`` decides about its children: start order, stop order, restart delays.

Pure bookkeeping; the actor does the processes and signals.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stopped in this order, started in the reverse one: storage, the single writer, goes last,
# so every other process can still have its requests answered while it drains.
STOP_STAGES: tuple[tuple[str, ...], ...] = (("frontend",), ("storage",))
START_ORDER: tuple[str, ...] = tuple(name for stage in reversed(STOP_STAGES) for name in stage)

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
