"""The adapter for /bin/sh: run ``sh -- <script> <job id>`` as the reference server does.

Nothing a rule holds can become an option of ``sh``: the script is the real path the
allow-list admits right before the run (absolute, so never ``-…``), after ``--``, and the job
id is ``$1``, data whatever it holds. A script the allow-list refuses does not start; its run
fails with the reason.

Each script runs in a process group of its own, so a timeout, a stop or the runner's own
shutdown kills the script and everything it started. Every process carries the runner's key
(a digest of this server's storage endpoint and the runner's name: ``runner_key``) and
instance in its environment, so a runner restarted after ``kill -9`` can find and kill what
its predecessor left running (``kill_leftovers``) instead of running it twice at once, and
never touches the scripts of another server's runner of the same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from kairoi.errors import KairoiError
from kairoi.scripts import ScriptPolicy

RUNNER_ENV = "KAIROI_RUNNER"
INSTANCE_ENV = "KAIROI_RUNNER_INSTANCE"
KEY_ENV = "KAIROI_RUNNER_KEY"
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
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.reason


class ShellScripts:
    """Must be created inside the running event loop that will run the scripts."""

    def __init__(
        self,
        identity: tuple[str, str, str],
        scripts: ScriptPolicy,
        timeout: float,
        output_bytes: int,
    ) -> None:
        """``identity``: the runner's name, key (``runner_key``) and instance."""
        name, key, instance = identity
        self._env = {**os.environ, RUNNER_ENV: name, KEY_ENV: key, INSTANCE_ENV: instance}
        self._scripts = scripts
        self._timeout = timeout or None
        self._output_bytes = output_bytes
        self._groups: dict[int, tuple[str, int]] = {}  # process group -> (job id, run)
        self._devnull = os.open(os.devnull, os.O_RDONLY)
        # Looked up in PATH once, as the reference looks it up, rather than by every spawn.
        self._sh = shutil.which("sh", path=self._env.get("PATH")) or "sh"

    def close(self) -> None:
        os.close(self._devnull)

    async def run(self, script: str, job_id: str, run: int) -> ScriptResult:
        try:
            path = self._scripts.runnable(script)  # checked again: the rule may be old
        except KairoiError as exc:
            return ScriptResult(None, f"not run: {exc.reason}", b"")
        if "\0" in job_id:  # no argument or environment variable can hold one
            return ScriptResult(None, "not run: a job id holding a NUL byte cannot reach sh", b"")
        env = {**self._env, "KAIROI_JOB_ID": job_id, "KAIROI_RUN": str(run)}
        argv = ["sh", "--", path, job_id]
        read_end, write_end = os.pipe()
        try:
            child = _Child.spawn(self._sh, argv, env, self._devnull, write_end)
        except OSError as exc:
            os.close(read_end)
            return ScriptResult(None, f"cannot start sh: {exc.strerror or exc}", b"")
        finally:
            os.close(write_end)
        self._groups[child.pid] = (job_id, run)
        output = _Output(read_end, self._output_bytes)
        try:
            reason = await self._wait(child)
        finally:
            del self._groups[child.pid]
            await output.close(_OUTPUT_GRACE_SECONDS)
        if reason:
            return ScriptResult(None, reason, output.tail, timed_out=True)
        return ScriptResult(child.exit_code, _status(child.exit_code), output.tail)

    async def _wait(self, child: _Child) -> str:
        """Wait for the script; a reason when it had to be killed."""
        try:
            await asyncio.wait_for(asyncio.shield(child.exited), self._timeout)
        except TimeoutError:
            _kill_group(child.pid)
            await child.exited
            return f"timed out after {self._timeout:g}s; its process group was killed"
        return ""

    def kill_all(self) -> None:
        """Kill every running script and whatever it started."""
        for group in list(self._groups):
            _kill_group(group)

    def kill(self, job_id: str, run: int) -> bool:
        """Kill the script of run ``run`` of ``job_id`` and whatever it started, if it runs."""
        groups = [group for group, key in self._groups.items() if key == (job_id, run)]
        for group in groups:
            _kill_group(group)
        return bool(groups)


class _Child:
    """A process started with posix_spawn (vfork-fast, in its own process group), whose exit
    the event loop learns of through a pidfd: no thread, no asyncio transport per script."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exit_code: int | None = None
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = loop.create_future()
        self._pidfd = os.pidfd_open(pid)
        loop.add_reader(self._pidfd, self._reap)

    @classmethod
    def spawn(
        cls, path: str, argv: list[str], env: dict[str, str], stdin: int, output: int
    ) -> _Child:
        spawn = os.posix_spawn if os.path.isabs(path) else os.posix_spawnp
        pid = spawn(
            path,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, stdin, 0),
                (os.POSIX_SPAWN_DUP2, output, 1),
                (os.POSIX_SPAWN_DUP2, output, 2),
            ],
            setpgroup=0,
        )
        return cls(pid)

    def _reap(self) -> None:
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.exited.set_result(None)


def _status(code: int | None) -> str:
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


def runner_key(storage_endpoint: str, name: str) -> str:
    """What marks the scripts of runner ``name`` of one server: a digest of the storage
    endpoint it reports to (an ``ipc://`` path resolved to its real path) and its name. No two
    servers on a host share a storage endpoint, and a runner on another host knows it too."""
    scheme, separator, address = storage_endpoint.partition("://")
    if scheme == "ipc" and separator:
        address = os.path.realpath(address)
    digest = hashlib.sha256(f"{scheme}://{address}\0{name}".encode())
    return digest.hexdigest()[:32]


def kill_leftovers(key: str, instance: str) -> int:
    """Kill processes started by earlier instances of the runner of ``key`` (Linux); how
    many."""
    wanted = f"{KEY_ENV}={key}".encode()
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
