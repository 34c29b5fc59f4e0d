"""Run a Kairoi server as a child process: for system tests, benchmarks and embedding.

It listens on port 0 and keeps its sockets in a short directory under /tmp (an ``ipc://``
path must fit in 107 bytes); the port is read from the frontend's ``service.ready`` event.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

Settings = dict[str, dict[str, Any]]


class ServerProcess:
    def __init__(
        self,
        workdir: Path,
        settings: Settings | None = None,
        command: str = "serve",
        runtime_dir: str | None = None,
    ) -> None:
        """``settings``: configuration tables over the launcher's own (JSON logs at debug,
        data under ``workdir``, a short runtime directory, KCP on port 0)."""
        self.workdir = workdir
        self._owns_runtime_dir = runtime_dir is None
        self.runtime_dir = runtime_dir or tempfile.mkdtemp(prefix="kairoi-", dir="/tmp")
        self.data_dir = workdir / "data"
        self.log_path = workdir / f"{command}.log"
        self.config_path = workdir / f"{command}.toml"
        tables: Settings = {
            "log": {"level": "debug", "format": "json"},
            "controller": {"listen": "127.0.0.1:0"},
            "database": {"path": str(self.data_dir)},
            "runtime": {"dir": self.runtime_dir},
        }
        for table, values in (settings or {}).items():
            tables[table] = {**tables.get(table, {}), **values}
        self.config_path.write_text(to_toml(tables))
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kairoi", self.command, "-c", str(self.config_path)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def events(self, event: str | None = None, process: str | None = None) -> list[dict[str, Any]]:
        """The structured log lines written so far, optionally only one event or process."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if (
                    isinstance(record, dict)
                    and (event is None or record.get("event") == event)
                    and (process is None or record.get("process") == process)
                ):
                    found.append(record)
        return found

    def wait_ready(self, timeout: float = 20.0, after: int = 0) -> int:
        """Wait until the frontend and storage are ready (counting from the ``after``-th
        frontend start); the KCP port."""
        self.wait_event("service.ready", "storage", timeout=timeout)
        ready = self.wait_event("service.ready", "frontend", after=after, timeout=timeout)
        return int(ready["listen"].rpartition(":")[2])

    def wait_event(
        self, event: str, process: str | None = None, after: int = 0, timeout: float = 20.0
    ) -> dict[str, Any]:
        """The ``after``-th (from 0) ``event`` logged by ``process``, once it is logged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(event, process)
            if len(found) > after:
                return found[after]
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.02)
        raise TimeoutError(f"no {event} from {process} after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def child_pid(self, name: str) -> int:
        """The pid of the latest ``name`` process started by ``kairoi serve``."""
        started = [e for e in self.events("process.started") if e.get("name") == name]
        return int(started[-1]["pid"])

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        code = 0
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        elif self.process is not None:
            code = self.process.returncode
        if self._owns_runtime_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        return code


def to_toml(tables: Settings) -> str:
    """Tables of strings, numbers, booleans and lists as TOML (a JSON string is a valid TOML
    basic string)."""
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"
