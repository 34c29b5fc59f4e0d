"""Install each peer into a virtual environment of its own and run its driver on a workload."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRATCH = Path(__file__).parent.parent / "scratch" / "peers"
ROOT = Path(__file__).parent.parent.parent  # the drivers import benchmarks.peers.drivers.*


@dataclass(frozen=True)
class Peer:
    name: str
    """As shown in the table."""
    environment: str
    requirements: tuple[str, ...]
    driver: str
    settings: tuple[tuple[str, Any], ...] = ()
    durable: bool = True
    server: tuple[str, int] | None = None
    """A server it needs running (host, port), if any."""

    def unreachable(self) -> str | None:
        """Why the server it needs cannot be reached; None when it can (or it needs none)."""
        return None if self.server is None else unreachable(self.name, *self.server)


def unreachable(who: str, host: str, port: int) -> str | None:
    """Why nothing answers at host:port for ``who``; None when something does."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        return f"{who} needs a server at {host}:{port}: {exc}"
    return None


PEERS = (
    Peer("APScheduler (SQLite)", "apscheduler", ("apscheduler>=3.10,<4", "sqlalchemy>=2"),
         "apscheduler_driver", (("store", "sqlite"),)),
    Peer("APScheduler (memory)", "apscheduler", ("apscheduler>=3.10,<4", "sqlalchemy>=2"),
         "apscheduler_driver", (("store", "memory"),), durable=False),
    Peer("Huey (SqliteHuey)", "huey", ("huey>=2.5",), "huey_driver"),
    Peer("Celery (Redis)", "celery", ("celery[redis]>=5.3",), "celery_driver", durable=False,
         server=("127.0.0.1", 6379)),
)  # fmt: skip


def python_of(peer: Peer) -> Path:
    """The peer's own interpreter, its environment made (once) from PyPI."""
    home = SCRATCH / peer.environment
    python = home / "bin" / "python"
    stamp = home / "requirements.txt"
    wanted = "\n".join(peer.requirements) + "\n"
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             *peer.requirements],
            check=True,
        )  # fmt: skip
        stamp.write_text(wanted)
    return python


def run(peer: Peer, workload: str, jobs: int, spread: float = 10.0) -> dict[str, Any]:
    """The driver's figures for ``workload`` (w1, w2 or w3) with ``jobs`` jobs."""
    python = python_of(peer)
    with tempfile.TemporaryDirectory(prefix="kairoi-peer-") as scratch:
        options = {**dict(peer.settings), "workload": workload, "jobs": jobs, "spread": spread,
                   "dir": scratch}  # fmt: skip
        finished = subprocess.run(
            [python, "-m", f"benchmarks.peers.drivers.{peer.driver}", json.dumps(options)],
            cwd=ROOT, check=False, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    lines = finished.stdout.strip().splitlines()
    if finished.returncode != 0 or not lines:
        raise RuntimeError(f"{peer.name} {workload} failed: {finished.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


if __name__ == "__main__":
    print(run(PEERS[int(sys.argv[1])], sys.argv[2], int(sys.argv[3])))
