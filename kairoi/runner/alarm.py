"""Wake-ups at exact wall-clock instants, for starting runs at their due time.

Event-loop timers are millisecond-precise and run on a monotonic clock; due times are
wall-clock microseconds. A Linux timerfd on CLOCK_REALTIME, armed for an absolute instant,
wakes the loop's selector within tens of microseconds of it, never before, and without
spinning. (``os.timerfd_create`` arrives with Python 3.13; until then, libc through ctypes.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import os
from collections.abc import Callable
from typing import Generic, TypeVar

from kairoi.clock import SystemClock

_CLOCK_REALTIME = 0
_TFD_CLOEXEC = 0o2000000
_TFD_NONBLOCK = 0o4000
_TFD_TIMER_ABSTIME = 1
_libc = ctypes.CDLL(None, use_errno=True)
_CLOCK = SystemClock()  # a timerfd on CLOCK_REALTIME rings by the system clock alone

T = TypeVar("T")


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class Alarm(Generic[T]):
    """Holds items each with an instant (µs since the epoch); hands to ``ring``, in one list,
    every item whose instant has come, as soon as it has come."""

    def __init__(self, ring: Callable[[list[T]], None]) -> None:
        self._ring = ring
        self._items: list[tuple[int, int, T]] = []  # a heap of (instant, sequence, item)
        self._sequence = 0
        self._armed_for: int | None = None
        self._fd = _libc.timerfd_create(_CLOCK_REALTIME, _TFD_CLOEXEC | _TFD_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._expired)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, instant_us: int, item: T) -> None:
        self._sequence += 1
        heapq.heappush(self._items, (instant_us, self._sequence, item))
        if self._armed_for is None or instant_us < self._armed_for:
            self._arm(instant_us)

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)

    def _expired(self) -> None:
        with contextlib.suppress(BlockingIOError):  # re-armed since it fired: nothing to read
            os.read(self._fd, 8)  # the expiry count; reading it clears the readiness
        now_us = _CLOCK.now_us()
        due = []
        while self._items and self._items[0][0] <= now_us:
            due.append(heapq.heappop(self._items)[2])
        self._armed_for = None
        if self._items:
            self._arm(self._items[0][0])
        if due:
            self._ring(due)

    def _arm(self, instant_us: int) -> None:
        self._armed_for = instant_us
        instant_us = max(instant_us, 1)  # an all-zero time would disarm the timer
        seconds, micros = divmod(instant_us, 1_000_000)
        when = _Itimerspec(_Timespec(0, 0), _Timespec(seconds, micros * 1000))
        if _libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(when), None) < 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
