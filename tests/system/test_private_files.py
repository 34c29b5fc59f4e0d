"""Kairoi keeps its sockets and its data private to its user, whatever the umask it is
started under (issue 13, item 5): a run under umask 000, into directories left loose."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from kairoi.client.server import ServerProcess
from tests.conftest import start_server


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sockets_and_data_are_private_under_umask_000(tmp_path: Path) -> None:
    loose_data = tmp_path / "data"
    loose_data.mkdir()
    loose_data.chmod(0o777)  # an existing directory left loose: tightened
    previous = os.umask(0)  # inherited by `kairoi serve` and every process it starts
    try:
        running = start_server(tmp_path)
    finally:
        os.umask(previous)
    try:
        with running.client() as client:
            assert client.call("PING") == ["OK", "PONG"]
        run_dir = Path(running.server.runtime_dir)
        sockets = sorted(path.name for path in run_dir.iterdir() if path.is_socket())
        assert sockets == ["control.sock", "dispatcher.sock", "storage.sock"]
        assert {name: _mode(run_dir / name) for name in sockets} == dict.fromkeys(sockets, 0o600)
        assert _mode(run_dir) == 0o700
        assert _mode(running.server.data_dir) == 0o700
        tightened = running.server.events("runtime.directory_tightened")
        assert [event["path"] for event in tightened] == [str(loose_data)]
    finally:
        running.server.stop()


def test_a_run_directory_created_under_umask_000_is_private(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="kairoi-", dir="/tmp") as short:
        run_dir = Path(short) / "run"  # not there yet: storage creates it
        previous = os.umask(0)
        try:
            server = ServerProcess(tmp_path, runtime_dir=str(run_dir)).start()
        finally:
            os.umask(previous)
        try:
            server.wait_ready()
            assert _mode(run_dir) == 0o700
            assert all(_mode(path) == 0o600 for path in run_dir.iterdir() if path.is_socket())
        finally:
            server.stop()
