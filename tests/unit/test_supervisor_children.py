from __future__ import annotations

from kairoi.supervisor.children import MAX_DELAY, Child, command, start_order, stop_stages


def test_storage_starts_first_and_stops_last() -> None:
    assert start_order(2) == ["storage", "runner-0", "runner-1", "dispatcher", "frontend"]
    assert stop_stages(0)[-1] == ["storage"]
    assert stop_stages(0)[0] == ["frontend"]


def test_each_child_has_its_command() -> None:
    assert command("runner-3") == ["runner", "--name", "runner-3"]
    assert command("storage") == ["storage"]


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
