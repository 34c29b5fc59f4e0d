"""What every process does the same way: telling when it turns idle, giving memory back,
keeping its directories private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kairoi.runtime import BUSY_CPU_SECONDS, IdleWatch, private_directory, release_free_memory


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


def test_a_private_directory_is_made_or_tightened_whatever_the_umask(tmp_path: Path) -> None:
    made, loose = tmp_path / "made" / "run", tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    previous = os.umask(0)
    try:
        private_directory(str(made))
        private_directory(str(loose))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_directory_of_another_user_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(PermissionError, match="belongs to another user"):
        private_directory(str(theirs))
    assert stat.S_IMODE(theirs.stat().st_mode) == 0o755
