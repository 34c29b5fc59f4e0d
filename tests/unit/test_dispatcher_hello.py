"""A runner's hello and freed slots are held to their bounds (attack report, finding 6): one
hello cannot claim every run, nor a SlotsFreed make more slots free than a runner has."""

from __future__ import annotations

import pytest

from kairoi import limits, messages
from kairoi.dispatcher.actor import Dispatcher, RunnerSlots, _hello_problem

MOST = limits.MAX_RUNNER_SLOTS


def hello(capacity: tuple[int, ...], free: tuple[int, ...]) -> messages.RunnerHello:
    return messages.RunnerHello(name="r", instance="i", capacity=capacity, free=free)


@pytest.mark.parametrize(
    ("capacity", "free"),
    [
        ((16, 1024), (16, 1024)),
        ((16, 1024), (0, 3)),
        ((MOST, MOST), (MOST, 0)),
        ((), ()),
        ((1,), ()),
    ],
)
def test_a_hello_within_the_bounds_is_taken(
    capacity: tuple[int, ...], free: tuple[int, ...]
) -> None:
    assert _hello_problem(hello(capacity, free)) is None


@pytest.mark.parametrize(
    ("capacity", "free"),
    [
        ((10**9, 10**9), (10**9, 10**9)),
        ((MOST + 1, 0), (0, 0)),
        ((4, 4), (5, 0)),
        ((4, 4), (-1, 0)),
        ((-1, 4), (-1, 0)),
        ((), (1,)),
    ],
)
def test_a_hello_past_the_bounds_is_refused(
    capacity: tuple[int, ...], free: tuple[int, ...]
) -> None:
    assert "must be within 0 and" in (_hello_problem(hello(capacity, free)) or "")


def test_freed_slots_never_pass_the_runners_capacity() -> None:
    runner = RunnerSlots(b"p", "r", capacity=[4, 8], free=[1, 8], last_seen=0.0)
    Dispatcher._freed(runner, (10**9, -(10**9), 7))
    assert runner.free == [4, 8]
