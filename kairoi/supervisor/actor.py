"""``kairoi serve``: start every process, restart any that dies, stop them all gracefully.

Children are started as ``kairoi <name> [-c FILE]`` in their own process group, so a Ctrl-C
at the terminal reaches only the supervisor, which then stops them in order; each child also
asks the kernel for SIGTERM should the supervisor die (see runtime.die_with_supervisor). A
child that exits is restarted with a back-off, even one that never got started; only a
configuration error stops them all (see children.Child.exited).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import assert_never

from kairoi import log
from kairoi.runtime import SUPERVISED_ENV, ShutdownFlag
from kairoi.supervisor.children import (
    Child,
    Restart,
    StopAll,
    command,
    start_order,
    stop_stages,
)

_log = log.get("kairoi.supervisor")
STOP_TIMEOUT = 4.0


class Supervisor:
    def __init__(self, config_path: str | None, runners: int, shutdown: ShutdownFlag) -> None:
        self._config_args = ["-c", os.path.abspath(config_path)] if config_path else []
        self._shutdown = shutdown
        self._stages = stop_stages(runners)
        self._children = {name: Child(name) for name in start_order(runners)}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._failed: str | None = None

    def run(self) -> int:
        for child in self._children.values():
            self._start(child)
        while not self._shutdown.requested and self._failed is None:
            self._shutdown.wait(self._seconds_to_next_restart())
            self._reap()
            self._restart_due()
            self._pass_on_hangup()
        self._stop_all()
        if self._failed is not None:
            _log.error("serve.failed", reason=self._failed)
            return 1
        _log.info("serve.stopped", signal=self._shutdown.signal_name)
        return 0

    def _start(self, child: Child) -> None:
        argv = [sys.executable, "-m", "kairoi", *command(child.name), *self._config_args]
        env = {**os.environ, SUPERVISED_ENV: str(os.getpid())}
        process = subprocess.Popen(argv, env=env, process_group=0)
        self._processes[child.name] = process
        child.pid, child.started_at, child.restart_at = process.pid, time.monotonic(), None
        _log.info("process.started", name=child.name, pid=process.pid)

    def _pass_on_hangup(self) -> None:
        """SIGHUP reloads the job files, which the frontend reads."""
        if self._shutdown.hangup:
            self._shutdown.hangup = False
            if (frontend := self._processes.get("frontend")) is not None:
                frontend.send_signal(signal.SIGHUP)
                _log.info("serve.reload", name="frontend", pid=frontend.pid)

    def _reap(self) -> None:
        now = time.monotonic()
        for name, process in list(self._processes.items()):
            code = process.poll()
            if code is None:
                continue
            del self._processes[name]
            _log.warning("process.exited", name=name, pid=process.pid, code=code)
            match self._children[name].exited(now, code):
                case Restart(delay, failures) as restart:
                    # Crash-looping is worth an operator's eye: Kairoi is not fully serving.
                    report = _log.error if restart.looping else _log.info
                    report(
                        "process.restarting",
                        name=name,
                        code=code,
                        delay=round(delay, 3),
                        failures=failures,
                    )
                case StopAll(reason):
                    self._failed = reason
                    return
                case never:
                    assert_never(never)

    def _restart_due(self) -> None:
        now = time.monotonic()
        for child in self._children.values():
            if child.restart_at is not None and child.restart_at <= now:
                self._start(child)

    def _seconds_to_next_restart(self) -> float | None:
        pending = [c.restart_at for c in self._children.values() if c.restart_at is not None]
        return max(0.0, min(pending) - time.monotonic()) if pending else None

    def _stop_all(self) -> None:
        for stage in self._stages:
            running = [self._processes[name] for name in stage if name in self._processes]
            for process in running:
                process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            for process in running:
                try:
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _log.warning("process.killed", pid=process.pid, after=STOP_TIMEOUT)
                    process.kill()
                    process.wait()
