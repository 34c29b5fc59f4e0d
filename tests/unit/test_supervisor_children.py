from __future__ import annotations

import signal

import pytest

from kairoi.runtime import EXIT_CONFIG
from kairoi.supervisor.children import (
    FIRST_DELAY,
    MAX_DELAY,
    Child,
    Restart,
    StopAll,
    command,
    start_order,
    stop_stages,
)


def test_storage_starts_first_and_stops_last() -> None:
    assert start_order(2) == ["storage", "runner-0", "runner-1", "dispatcher", "frontend"]
    assert stop_stages(0)[-1] == ["storage"]
    assert stop_stages(0)[0] == ["frontend"]


def test_each_child_has_its_command() -> None:
    assert command("runner-3") == ["runner", "--name", "runner-3"]
    assert command("storage") == ["storage"]


def restart(child: Child, now: float, code: int = 1) -> Restart:
    decision = child.exited(now, code)
    assert isinstance(decision, Restart)
    return decision


def test_restart_delay_backs_off_and_is_capped() -> None:
    child = Child("frontend", started_at=0.0)
    decisions = [restart(child, now=1.0) for _ in range(10)]
    assert [d.delay for d in decisions[:3]] == [0.1, 0.2, 0.4]
    assert max(d.delay for d in decisions) == MAX_DELAY
    assert [d.failures for d in decisions] == list(range(1, 11))
    assert [d.looping for d in decisions] == [False] * 4 + [True] * 6
    assert child.restart_at == 1.0 + MAX_DELAY


def test_restart_delay_resets_after_a_stable_run() -> None:
    child = Child("frontend", started_at=0.0)
    restart(child, now=1.0)
    restart(child, now=1.0)
    child.started_at = 100.0
    assert restart(child, now=200.0) == Restart(FIRST_DELAY, 1)


@pytest.mark.parametrize("code", [1, 2, 0, 70, 255, -signal.SIGKILL, -signal.SIGSEGV])
def test_a_child_failing_at_start_is_restarted_whatever_its_status(code: int) -> None:
    """Issue 13: a child failing in the first seconds after serve started stopped them all."""
    child = Child("storage", started_at=10.0)
    assert restart(child, now=10.01, code=code) == Restart(FIRST_DELAY, 1)


def test_a_child_failing_at_every_start_is_restarted_forever_at_the_capped_delay() -> None:
    child, now = Child("runner-0", started_at=0.0), 0.0
    for _ in range(1000):
        decision = restart(child, now=now + 0.05)
        assert child.restart_at is not None
        now = child.started_at = child.restart_at
    assert decision == Restart(MAX_DELAY, 1000)


def test_a_configuration_error_stops_everything() -> None:
    child = Child("frontend", started_at=0.0, pid=42)
    decision = child.exited(now=3600.0, code=EXIT_CONFIG)
    assert isinstance(decision, StopAll)
    assert "frontend exited 78: a configuration error" in decision.reason
    assert (child.pid, child.restart_at) == (0, None)
