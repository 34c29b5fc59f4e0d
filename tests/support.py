"""Helpers shared by the test tiers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from kairoi import messages
from kairoi.domain import Job
from kairoi.storage.engine import Engine
from kairoi.storage.rocks import RocksStore

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Call ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {check}")
        time.sleep(interval)


def do(engine: Engine, request: messages.Message) -> messages.Reply:
    """Apply ``request`` and commit it at once, as a batch of one."""
    reply = engine.apply(request)
    engine.commit()
    return reply


def pipeline(port: int, lines: list[str], timeout: float = 60) -> list[bytes]:
    """Send every line at once over one KCP connection (numbered from 0), return the reply
    lines in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall("".join(f"{i} {line}\n" for i, line in enumerate(lines)).encode())
        received = b""
        while received.count(b"\n") < len(lines):
            chunk = sock.recv(65536)
            assert chunk, "the frontend closed the connection"
            received += chunk
    return received.splitlines()


def read_jobs(data_dir: Path, job_ids: list[str]) -> dict[str, Job | None]:
    """The jobs of a stopped server, read from its database."""
    store = RocksStore(str(data_dir))
    try:
        engine = Engine(store, fsync=False)
        return {job_id: engine.job(job_id) for job_id in job_ids}
    finally:
        store.close()
