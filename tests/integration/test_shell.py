"""The /bin/sh adapter, with real scripts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

from kairoi.runner.shell import (
    INSTANCE_ENV,
    KEY_ENV,
    ScriptResult,
    ShellScripts,
    kill_leftovers,
    runner_key,
)
from kairoi.scripts import ScriptPolicy

ANYWHERE = ScriptPolicy(("/**",))


def shell(timeout: float = 0.0, output_bytes: int = 4096, **policy: str) -> ShellScripts:
    """Scripts of runner ``test-runner``; ``policy``: ``allow`` and ``cwd`` of its allow-list."""
    scripts = ScriptPolicy((policy["allow"],), policy["cwd"]) if policy else ANYWHERE
    return ShellScripts(("test-runner", "k1", "i1"), scripts, timeout, output_bytes)


def run(script: Path, timeout: float = 0.0, output_bytes: int = 4096) -> tuple[ScriptResult, float]:
    async def go() -> tuple[ScriptResult, float]:
        scripts = shell(timeout, output_bytes)
        started = time.monotonic()
        try:
            return await scripts.run(str(script), "job.1", 7), time.monotonic() - started
        finally:
            scripts.close()

    return asyncio.run(go())


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.sh"
    path.write_text(body)
    return path


def test_arguments_and_environment(tmp_path: Path) -> None:
    result, _ = run(script(tmp_path, 'echo "$0|$1|$#|$KAIROI_JOB_ID|$KAIROI_RUN|$KAIROI_RUNNER"\n'))
    assert result == ScriptResult(
        0, "", bytearray(f"{tmp_path}/s.sh|job.1|1|job.1|7|test-runner\n".encode())
    )
    assert result.succeeded


def test_non_zero_exit_is_a_failure(tmp_path: Path) -> None:
    result, _ = run(script(tmp_path, "echo oops >&2\nexit 3\n"))
    assert (result.exit_code, result.reason, bytes(result.output)) == (
        3,
        "exit status 3",
        b"oops\n",
    )
    assert not result.succeeded


def test_missing_script_is_a_failure(tmp_path: Path) -> None:
    result, _ = run(tmp_path / "absent.sh")
    assert result.exit_code == 2 and not result.succeeded
    assert b"absent.sh" in result.output


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    result, took = run(script(tmp_path, "sleep 51.5 &\nsleep 51.5\n"), timeout=0.5)
    assert result.exit_code is None and result.reason.startswith("timed out after 0.5s")
    assert took < 2
    time.sleep(0.1)
    assert (
        b"sleep 51.5"
        not in subprocess.run(["ps", "-eo", "args"], capture_output=True, check=True).stdout
    )


def test_a_background_child_does_not_hold_the_run(tmp_path: Path) -> None:
    result, took = run(script(tmp_path, "sleep 3 &\necho done\n"))
    assert result.succeeded and result.output == b"done\n"
    assert took < 1


def test_output_keeps_only_its_tail(tmp_path: Path) -> None:
    result, _ = run(script(tmp_path, "seq 1 100000\necho end\n"), output_bytes=16)
    assert len(result.output) == 16 and result.output.endswith(b"end\n")


def test_a_script_killed_by_a_signal(tmp_path: Path) -> None:
    result, _ = run(script(tmp_path, "kill -TERM $$\n"))
    assert result.reason == "killed by SIGTERM" and not result.succeeded


def test_leftovers_of_an_earlier_instance_are_killed() -> None:
    env = {**os.environ, KEY_ENV: "leftover-test", INSTANCE_ENV: "old"}
    old = subprocess.Popen(["sleep", "30"], env=env)
    other = subprocess.Popen(["sleep", "30"], env={**env, KEY_ENV: "someone-else"})
    try:
        assert kill_leftovers("leftover-test", "new") == 1
        assert old.wait(5) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_many_scripts_at_once(tmp_path: Path) -> None:
    path = script(tmp_path, "exit 0\n")

    async def go() -> list[ScriptResult]:
        scripts = shell(0, 64)
        try:
            return await asyncio.gather(*(scripts.run(str(path), f"j{i}", 1) for i in range(50)))
        finally:
            scripts.close()

    assert all(result.succeeded for result in asyncio.run(go()))


def test_the_runner_key_is_the_server_s_and_the_name_s(tmp_path: Path) -> None:
    """Issue 13: leftovers were found by the runner name alone, so two servers on one host
    killed each other's scripts. The key tells servers apart by their storage endpoint."""
    os.symlink(tmp_path, tmp_path / "link")
    socket = f"ipc://{tmp_path}/storage.sock"
    through_link = f"ipc://{tmp_path}/link/storage.sock"
    assert runner_key(socket, "runner-0") == runner_key(through_link, "runner-0")
    keys = {
        runner_key(socket, "runner-0"),
        runner_key(socket, "runner-1"),
        runner_key(f"ipc://{tmp_path}/other/storage.sock", "runner-0"),
        runner_key("tcp://10.0.0.1:7000", "runner-0"),
        runner_key("tcp://10.0.0.2:7000", "runner-0"),
    }
    assert len(keys) == 5


def test_scripts_carry_the_key_name_and_instance(tmp_path: Path) -> None:
    result, _ = run(script(tmp_path, 'echo "$KAIROI_RUNNER_KEY $KAIROI_RUNNER_INSTANCE"\n'))
    assert result.output == b"k1 i1\n"
