"""Issue 13: nothing a rule or a job id holds becomes an option or a command of ``sh``, and
the runner checks the allow-list again right before a run. Real scripts, real ``/bin/sh``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from kairoi.runner.shell import ScriptResult, ShellScripts
from kairoi.scripts import ScriptPolicy

OPTION_NAMES = ["-c", "-x", "--", "-", "-s", "-e", "-i", "--help", "-cx"]
RECORDER = 'printf "%s|%s|" "$0" "$#" >> "{out}"\nprintf "%s" "$1" >> "{out}"\n'
"""Writes what it was called as: $0, the argument count and $1, exactly."""


def hostile_ids(marker: Path) -> list[str]:
    """Job ids that would run ``touch marker`` if the shell took any of them as code."""
    touch = f"touch {marker}"
    return [
        touch,
        f"-c {touch}",
        "-c",
        "-",
        "--",
        "-s",
        f"$({touch})",
        f"`{touch}`",
        f"x; {touch}",
        f"with space 'single' \"double\" \\ back | {touch}",
        f"line\n{touch}\nfeed",
        f"--rcfile={marker}",
    ]


def run_all(scripts: ShellScripts, calls: list[tuple[str, str]]) -> list[ScriptResult]:
    async def go() -> list[ScriptResult]:
        try:
            return [await scripts.run(script, job_id, 1) for script, job_id in calls]
        finally:
            scripts.close()

    return asyncio.run(go())


def shell_in(cwd: Path, allow: str = "**") -> ShellScripts:
    return ShellScripts(("t", "k", "i"), ScriptPolicy((allow,), str(cwd)), 0.0, 4096)


@pytest.mark.parametrize("name", OPTION_NAMES)
def test_a_script_named_like_an_option_runs_as_a_script(tmp_path: Path, name: str) -> None:
    """The reference (and Kairoi before) ran ``sh -c <job id>``: the job id was the command."""
    marker, out = tmp_path / "marker", tmp_path / "out"
    (tmp_path / name).write_text(RECORDER.format(out=out))
    for job_id in hostile_ids(marker):
        out.unlink(missing_ok=True)
        [result] = run_all(shell_in(tmp_path), [(name, job_id)])
        assert result.succeeded, (name, job_id, result)
        assert out.read_text() == f"{tmp_path}/{name}|1|{job_id}", "$1 is the job id, as data"
        assert not marker.exists(), f"{job_id!r} ran as code under script {name!r}"


def test_hostile_job_ids_arrive_as_data(tmp_path: Path) -> None:
    marker, out = tmp_path / "marker", tmp_path / "out"
    script = tmp_path / "plain.sh"
    script.write_text(RECORDER.format(out=out))
    for job_id in hostile_ids(marker):
        out.unlink(missing_ok=True)
        [result] = run_all(shell_in(tmp_path), [(str(script), job_id)])
        assert result.succeeded and out.read_text() == f"{script}|1|{job_id}"
    assert not marker.exists()


def test_a_script_outside_the_allow_list_does_not_run(tmp_path: Path) -> None:
    """A rule stored before ``runners.shell.allow`` was narrowed fails with the reason."""
    marker = tmp_path / "marker"
    (tmp_path / "old").mkdir()
    script = tmp_path / "old" / "x.sh"
    script.write_text(f"touch {marker}\n")
    [result] = run_all(shell_in(tmp_path, "scripts/**"), [(str(script), "job")])
    assert result == ScriptResult(
        None, f"not run: script {str(script)!r} is not allowed by runners.shell.allow", b""
    )
    assert not result.succeeded and not marker.exists()


def test_a_script_turned_into_a_symlink_after_it_was_set_does_not_run(tmp_path: Path) -> None:
    marker, scripts_dir = tmp_path / "marker", tmp_path / "scripts"
    scripts_dir.mkdir()
    other = scripts_dir / "other.sh"
    other.write_text(f"touch {marker}\n")
    stored = scripts_dir / "x.sh"  # as stored when its rule was set: its real path
    os.symlink(other, stored)  # since then, a symlink to another allowed script
    [result] = run_all(shell_in(tmp_path, "scripts/**"), [(str(stored), "job")])
    assert result.exit_code is None and "is not its own real path any more" in result.reason
    assert not marker.exists()


def test_a_symlink_out_of_the_allowed_directory_does_not_run(tmp_path: Path) -> None:
    marker, scripts_dir = tmp_path / "marker", tmp_path / "scripts"
    scripts_dir.mkdir()
    outside = tmp_path / "outside.sh"
    outside.write_text(f"touch {marker}\n")
    os.symlink(outside, scripts_dir / "link.sh")
    [result] = run_all(shell_in(tmp_path, "scripts/**"), [("scripts/link.sh", "job")])
    assert "is not allowed by runners.shell.allow" in result.reason
    assert str(tmp_path) not in result.reason.replace(str(scripts_dir / "link.sh"), "")
    assert not marker.exists()


def test_a_relative_script_stored_by_an_earlier_version_runs_by_its_real_path(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "s.sh").write_text(RECORDER.format(out=out))
    [result] = run_all(shell_in(tmp_path, "scripts/*.sh"), [("scripts/s.sh", "j")])
    assert result.succeeded and out.read_text() == f"{tmp_path}/scripts/s.sh|1|j"


def test_a_job_id_holding_a_nul_fails_its_run_and_the_runner_goes_on(tmp_path: Path) -> None:
    """No argv or environment entry can hold a NUL: posix_spawn raised ValueError."""
    out = tmp_path / "out"
    (tmp_path / "s.sh").write_text(RECORDER.format(out=out))
    refused, after = run_all(shell_in(tmp_path), [("s.sh", "a\0b"), ("s.sh", "next")])
    assert refused == ScriptResult(
        None, "not run: a job id holding a NUL byte cannot reach sh", b""
    )
    assert after.succeeded and out.read_text() == f"{tmp_path}/s.sh|1|next"
