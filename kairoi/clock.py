"""Time, injected: the system clock for processes, a fake one for tests.

All instants are integers: microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import time
from typing import Protocol

MICROS_PER_SECOND = 1_000_000


class Clock(Protocol):
    def now_us(self) -> int:
        """The current UTC time in microseconds since the epoch."""
        ...


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1_000


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now_us: int = 0) -> None:
        self._now_us = now_us

    def now_us(self) -> int:
        return self._now_us

    def set(self, micros: int) -> None:
        """Jump to ``micros`` (forwards or back, as a wall clock can)."""
        self._now_us = micros

    def advance(self, micros: int) -> None:
        self._now_us += micros
