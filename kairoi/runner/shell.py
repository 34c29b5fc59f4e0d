"""The adapter for /bin/sh: run ``sh <script> <job id>`` as the reference server does.

Each script runs in a process group of its own, so a timeout, a stop or the runner's own
shutdown kills the script and everything it started. Every process carries the runner's name
and instance in its environment, so a runner restarted after ``kill -9`` can find and kill
what its predecessor left running (``kill_leftovers``) instead of running it twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

RUNNER_ENV = "KAIROI_RUNNER"
INSTANCE_ENV = "KAIROI_RUNNER_INSTANCE"
_OUTPUT_GRACE_SECONDS = 0.1
"""After the script exits, how long to wait for output still in the pipe (a background child
may hold it open for ever)."""


@dataclass(frozen=True, slots=True)
class ScriptResult:
    exit_code: int | None
    """None when the script never ran or was killed."""
    reason: str
    """Empty on success; otherwise what went wrong, for the run's record."""
    output: bytes | bytearray
    """The tail of stdout and stderr."""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.reason


class ShellScripts:
    def __init__(self, name: str, instance: str, timeout: float, output_bytes: int) -> None:
        self._env = {**os.environ, RUNNER_ENV: name, INSTANCE_ENV: instance}
        self._timeout = timeout or None
        self._output_bytes = output_bytes
        self._groups: set[int] = set()

    async def run(self, script: str, job_id: str, run: int) -> ScriptResult:
        env = {**self._env, "KAIROI_JOB_ID": job_id, "KAIROI_RUN": str(run)}
        # A pipe of our own, not asyncio's: its Process.wait() also waits for every pipe to
        # close, which a background child of the script can hold open for ever.
        read_end, write_end = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                "sh", script, job_id,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_end,
                stderr=write_end,
                env=env,
                process_group=0,
            )  # fmt: skip
        except OSError as exc:
            os.close(read_end)
            return ScriptResult(None, f"cannot start sh: {exc.strerror or exc}", b"")
        finally:
            os.close(write_end)
        self._groups.add(process.pid)
        output = _Output(read_end, self._output_bytes)
        try:
            reason = await self._wait(process)
        finally:
            self._groups.discard(process.pid)
            await output.close(_OUTPUT_GRACE_SECONDS)
        if reason:
            return ScriptResult(None, reason, output.tail)
        return ScriptResult(process.returncode, _status(process), output.tail)

    async def _wait(self, process: asyncio.subprocess.Process) -> str:
        """Wait for the script; a reason when it had to be killed."""
        try:
            await asyncio.wait_for(process.wait(), self._timeout)
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            return f"timed out after {self._timeout:g}s; its process group was killed"
        return ""

    def kill_all(self) -> None:
        """Kill every running script and whatever it started."""
        for group in list(self._groups):
            _kill_group(group)


def _status(process: asyncio.subprocess.Process) -> str:
    code = process.returncode
    if code is None or code == 0:
        return ""
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


class _Output:
    """Reads a pipe as data comes, keeping its last ``keep`` bytes."""

    def __init__(self, fd: int, keep: int) -> None:
        self.tail = bytearray()
        self._fd = fd
        self._keep = keep
        self._ended = asyncio.Event()
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self._ended.set()
            asyncio.get_running_loop().remove_reader(self._fd)
            return
        self.tail += chunk
        del self.tail[: max(0, len(self.tail) - self._keep)]

    async def close(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the end of the output, then stop reading."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), grace)
        asyncio.get_running_loop().remove_reader(self._fd)
        os.close(self._fd)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def kill_leftovers(name: str, instance: str) -> int:
    """Kill processes started by earlier instances of runner ``name`` (Linux); how many."""
    wanted = f"{RUNNER_ENV}={name}".encode()
    mine = f"{INSTANCE_ENV}={instance}".encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            environ = (entry / "environ").read_bytes().split(b"\0")
            if wanted in environ and mine not in environ:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed
