from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kairoi.client.kcp import KcpClient
from kairoi.client.server import ServerProcess, Settings

EXAMPLE_SCRIPT = '#!/bin/sh\necho "job $1"\n'
CHILDREN = ("storage", "frontend", "dispatcher", "runner-0")
"""The processes `kairoi serve` runs on its defaults."""


@dataclass
class Running:
    server: ServerProcess
    port: int

    def client(self) -> KcpClient:
        return KcpClient("127.0.0.1", self.port)

    def pids(self) -> dict[str, int]:
        """Each child's pid: the same before and after shows that none was restarted."""
        return {name: self.server.child_pid(name) for name in CHILDREN}


def start_server(workdir: Path, settings: Settings | None = None) -> Running:
    (workdir / "scripts").mkdir(exist_ok=True)
    (workdir / "scripts" / "example.sh").write_text(EXAMPLE_SCRIPT)
    server = ServerProcess(workdir, settings).start()
    try:
        return Running(server, server.wait_ready())
    except BaseException:
        server.stop()
        raise


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One `kairoi serve` for a whole module of protocol tests (small line limit)."""
    running = start_server(
        tmp_path_factory.mktemp("serve"),
        {"controller": {"max_line_bytes": 4096, "max_pending": 1000}},
    )
    yield running
    running.server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    """A `kairoi serve` of this test's own, for tests that kill or stop processes."""
    running = start_server(tmp_path)
    yield running
    running.server.stop()


RABBITMQ_DSN = "amqp://guest:guest@127.0.0.1:5672/"


def require_server(what: str, host: str, port: int) -> None:
    """Skip (fail under CI=true) when nothing listens at host:port."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        reason = f"{what} is not reachable at {host}:{port} ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the tests that need it")
        pytest.skip(f"{reason}; start it to run these tests")


@pytest.fixture(scope="session")
def rabbitmq() -> str:
    """The local RabbitMQ's DSN; skips (fails under CI=true) when it is not running."""
    require_server("RabbitMQ", "127.0.0.1", 5672)
    return RABBITMQ_DSN
