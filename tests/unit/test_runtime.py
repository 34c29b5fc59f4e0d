"""What every process does the same way: telling when it turns idle, giving memory back."""

from __future__ import annotations

from kairoi.runtime import BUSY_CPU_SECONDS, IdleWatch, release_free_memory


class FakeCpu:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def test_a_process_turns_idle_once_after_being_busy() -> None:
    cpu = FakeCpu()
    watch = IdleWatch(cpu)
    assert not watch.turned_idle(), "idle from the start is not turning idle"
    cpu.seconds += 1.0
    assert not watch.turned_idle(), "busy"
    cpu.seconds += BUSY_CPU_SECONDS / 2
    assert watch.turned_idle()
    assert not watch.turned_idle(), "once per busy spell"
    cpu.seconds += 0.5
    assert not watch.turned_idle()
    assert watch.turned_idle()


def test_giving_memory_back_is_harmless_at_any_time() -> None:
    kept = [bytes(1 << 20) for _ in range(8)]
    del kept
    release_free_memory()
    release_free_memory()
