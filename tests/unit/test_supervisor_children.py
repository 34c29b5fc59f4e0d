from __future__ import annotations

from kairoi.supervisor.children import MAX_DELAY, START_ORDER, STOP_STAGES, Child


def test_storage_starts_first_and_stops_last() -> None:
    assert START_ORDER[0] == "storage"
    assert STOP_STAGES[-1] == ("storage",)


def test_restart_delay_backs_off_and_is_capped() -> None:
    child = Child("frontend", started_at=0.0)
    delays = [child.exited(now=1.0) for _ in range(10)]
    assert delays[:3] == [0.1, 0.2, 0.4]
    assert max(delays) == MAX_DELAY


def test_restart_delay_resets_after_a_stable_run() -> None:
    child = Child("frontend", started_at=0.0)
    child.exited(now=1.0)
    child.exited(now=1.0)
    child.started_at = 100.0
    assert child.exited(now=200.0) == 0.1
