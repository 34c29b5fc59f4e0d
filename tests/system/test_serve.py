"""`kairoi serve` and the single processes: CLI, supervision, signals, crashes."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kairoi import __version__
from kairoi.client.kcp import KcpClient
from kairoi.client.server import ServerProcess
from tests.conftest import Running, start_server
from tests.support import eventually, read_jobs

WHEN = b'"2030-01-01 00:00:00"'


def kairoi(
    *arguments: str, cwd: Path | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kairoi", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (ProcessLookupError, FileNotFoundError):  # gone, or reaped between the two looks
        return False


def stored_jobs(data_dir: Path, job_ids: list[str]) -> list[str]:
    """The ids among ``job_ids`` found in the database, read offline."""
    jobs = read_jobs(data_dir, job_ids)
    return [job_id for job_id in job_ids if jobs[job_id] is not None]


def test_version_and_help() -> None:
    assert kairoi("-V").stdout == f"kairoi {__version__}\n"
    usage = kairoi("-h").stdout
    for command in ("serve", "frontend", "storage"):
        assert command in usage


def test_unknown_flag_is_a_usage_error() -> None:
    assert kairoi("--nope").returncode == 2


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    """Fault 18: the reference silently ran on its defaults."""
    result = kairoi("serve", "-c", str(tmp_path / "missing.toml"))
    assert result.returncode == 78
    assert "missing.toml: no such configuration file" in result.stderr


def test_bad_config_exits_non_zero_naming_the_key(tmp_path: Path) -> None:
    """Fault 17: the reference logged the error and exited 0 without serving."""
    config = tmp_path / "bad.toml"
    config.write_text("[controller]\nlisen = '127.0.0.1:1'\n")
    for command in ("serve", "frontend", "storage"):
        result = kairoi(command, "-c", str(config))
        assert result.returncode == 78
        assert "unknown key 'controller.lisen'" in result.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


def test_bind_failure_is_a_clear_error(tmp_path: Path, busy_port: int) -> None:
    """Fault 19: the reference panicked in cascade and exited 101."""
    extra = {"controller": {"listen": f"127.0.0.1:{busy_port}"}}
    frontend = ServerProcess(tmp_path, extra, command="frontend").start()
    assert frontend.process is not None and frontend.process.wait(20) == 1
    (failure,) = frontend.events("service.failed")
    assert f"cannot listen on 127.0.0.1:{busy_port}" in failure["reason"]
    assert "in use" in failure["reason"]
    frontend.stop()


def test_a_child_failing_at_start_is_restarted_and_serve_stays_up(tmp_path: Path) -> None:
    """Issue 13: a child failing in the first seconds after `kairoi serve` started stopped the
    whole server. Here the frontend's port is taken: it fails at every start, is restarted with
    a growing delay while the others run on, and serves as soon as the port is free."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    serve = ServerProcess(tmp_path, {"controller": {"listen": f"127.0.0.1:{port}"}}).start()
    try:
        serve.wait_event("service.ready", "storage")
        serve.wait_event("process.restarting", after=2)  # the third failed start
        restarts = [e for e in serve.events("process.restarting") if e["name"] == "frontend"]
        assert [(e["code"], e["failures"]) for e in restarts[:3]] == [(1, 1), (1, 2), (1, 3)]
        assert [e["delay"] for e in restarts[:3]] == [0.1, 0.2, 0.4]
        assert len(serve.events("service.failed", "frontend")) >= 3
        others = {name: serve.child_pid(name) for name in ("storage", "runner-0", "dispatcher")}
        holder.close()
        assert serve.wait_ready() == port
        with KcpClient("127.0.0.1", port) as client:
            assert client.call("SET", "after.failed.starts", "2030-01-01 00:00:00") == ["OK"]
            assert client.call("GET", "after.failed.starts")[:2] == ["OK", "planned"]
        assert serve.process is not None and serve.process.poll() is None
        assert {name: serve.child_pid(name) for name in others} == others
        assert all(alive(pid) for pid in others.values())
        assert not serve.events("serve.failed")
    finally:
        holder.close()
        assert serve.stop() == 0


def test_a_child_with_a_configuration_error_stops_everything(tmp_path: Path) -> None:
    """Exit 78 is not mended by restarting: the configuration changed under a running serve
    (here to a key that does not exist), and the dispatcher, killed, cannot start again."""
    running = start_server(tmp_path)
    serve = running.server
    children = {name: serve.child_pid(name) for name in CHILDREN}
    serve.config_path.write_text(serve.config_path.read_text() + "\n[dispatcher]\nlookahed = 1\n")
    os.kill(children["dispatcher"], signal.SIGKILL)
    assert serve.process is not None and serve.process.wait(20) == 1
    (failed,) = serve.events("serve.failed")
    assert "dispatcher exited 78: a configuration error" in failed["reason"]
    assert not [name for name, pid in children.items() if alive(pid)], "everything stopped"
    serve.stop()


CHILDREN = ("storage", "runner-0", "dispatcher", "frontend")


def test_processes_are_named_in_ps(server: Running) -> None:
    for name in CHILDREN:
        path = Path(f"/proc/{server.server.child_pid(name)}/cmdline")
        command = f"runner --name {name}" if name.startswith("runner") else name
        expected = f"kairoi {command} -c ".encode()
        # A process names itself once its modules are loaded: wait for that, not for a guess.
        eventually(lambda: path.read_bytes().replace(b"\0", b" ").startswith(expected))  # noqa: B023
        assert path.read_bytes().replace(b"\0", b" ").startswith(expected)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_everything_gracefully(server: Running, signum: int) -> None:
    """Fault 23: the reference died at once on SIGTERM, owed replies and all."""
    children = [server.server.child_pid(name) for name in CHILDREN]
    count = 3000
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"".join(b"%d SET stop.%d %s\n" % (i, i, WHEN) for i in range(count)))
        time.sleep(0.05)
        assert server.server.process is not None
        server.server.process.send_signal(signum)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    lines = received.splitlines()
    assert len(lines) == count, "every request read before the signal is answered"
    assert set(lines) == {b"%d OK" % i for i in range(count)}
    started = time.monotonic()
    assert server.server.process.wait(10) == 0
    assert time.monotonic() - started < 10
    assert not [pid for pid in children if alive(pid)], "no process is left behind"
    assert server.server.events("service.stopped", "storage")
    assert not server.server.events("process.killed"), "every process stopped by itself"


def test_children_die_with_a_killed_supervisor(server: Running) -> None:
    children = {name: server.server.child_pid(name) for name in CHILDREN}
    assert server.server.process is not None
    server.server.process.kill()
    server.server.process.wait()
    deadline = time.monotonic() + 10
    while (
        left := [n for n, pid in children.items() if alive(pid)]
    ) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, (
        f"still running 10 s after kairoi serve was killed: {left}\n{server.server.log()}"
    )


def test_storage_stops_on_sigterm_whichever_of_its_threads_takes_it(server: Running) -> None:
    """The kernel delivers a process's signal to any of its threads; storage's main thread
    waits in poll while RocksDB's and ZeroMQ's threads run, and must wake up all the same,
    even when no request comes to wake it (the others are frozen here)."""
    storage = server.server.child_pid("storage")
    others = [server.server.child_pid(name) for name in CHILDREN if name != "storage"]
    threads = [int(t.name) for t in Path(f"/proc/{storage}/task").iterdir()]
    libc = ctypes.CDLL(None, use_errno=True)
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(0.2)  # what they had sent is served; from now on storage hears nothing
        for tid in threads:  # to the first thread that takes it (ZeroMQ's block signals)
            if tid != storage and libc.tgkill(storage, tid, signal.SIGTERM) == 0:
                break
        eventually(lambda: not alive(storage), timeout=3)
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)
    assert server.server.events("service.stopped", "storage")


def test_killed_frontend_is_restarted(server: Running) -> None:
    os.kill(server.server.child_pid("frontend"), signal.SIGKILL)
    port = server.server.wait_ready(after=1)
    assert server.server.events("process.restarting")[0]["name"] == "frontend"
    with KcpClient("127.0.0.1", port) as client:
        assert client.call("SET", "after.restart", "2030-01-01 00:00:00") == ["OK"]


def test_storage_killed_during_a_pipeline_loses_no_acknowledged_set(tmp_path: Path) -> None:
    """Every SET that got OK is on disk; the others got ERROR, never OK without data."""
    running = start_server(tmp_path, {"controller": {"request_timeout": 2.0}})
    count = 10_000
    replies: list[bytes] = []
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
            data = b"".join(b"%d SET kill.%d %s\n" % (i, i, WHEN) for i in range(count))
            threading.Thread(target=sock.sendall, args=(data,), daemon=True).start()
            received = b""
            killed = False
            while received.count(b"\n") < count:
                chunk = sock.recv(65536)
                assert chunk, "the frontend closed the connection"
                received += chunk
                if not killed and received.count(b"\n") > 1000:
                    os.kill(running.server.child_pid("storage"), signal.SIGKILL)
                    killed = True
            replies = received.splitlines()
        running.server.wait_event("service.ready", "storage", after=1)
        with running.client() as client:
            assert client.call("SET", "after.storage.restart", "2030-01-01 00:00:00") == ["OK"]
    finally:
        running.server.stop()
    acknowledged = [f"kill.{i}" for i, line in enumerate(replies) if line == b"%d OK" % i]
    refused = [line for line in replies if not line.endswith(b" OK")]
    assert len(acknowledged) + len(refused) == count
    assert all(b' ERROR unavailable "' in line for line in refused)
    assert len(acknowledged) >= 1000
    assert stored_jobs(running.server.data_dir, acknowledged) == acknowledged


def test_storage_and_frontend_run_alone_over_tcp(tmp_path: Path) -> None:
    """The Procfile way: each process on its own, here with storage on a tcp:// endpoint."""
    runtime_dir = str(tmp_path / "run")
    storage = ServerProcess(
        tmp_path, {"storage": {"endpoint": "tcp://127.0.0.1:*"}}, "storage", runtime_dir
    ).start()
    frontend: ServerProcess | None = None
    try:
        endpoint = storage.wait_event("service.ready", "storage")["endpoint"]
        assert endpoint.startswith("tcp://127.0.0.1:")
        frontend = ServerProcess(
            tmp_path, {"storage": {"endpoint": endpoint}}, "frontend", runtime_dir
        ).start()
        port = int(frontend.wait_event("service.ready", "frontend")["listen"].rpartition(":")[2])
        with KcpClient("127.0.0.1", port) as client:
            assert client.call("SET", "alone", "2030-01-01 00:00:00") == ["OK"]
    finally:
        if frontend is not None:
            assert frontend.stop() == 0
        assert storage.stop() == 0
    assert stored_jobs(storage.data_dir, ["alone"]) == ["alone"]


def test_storage_outage_is_answered_unavailable_and_recovers(tmp_path: Path) -> None:
    """Fault 21: losing an internal channel brought the whole reference process down."""
    runtime_dir = str(tmp_path / "run")
    frontend = ServerProcess(
        tmp_path, {"controller": {"request_timeout": 0.5}}, "frontend", runtime_dir
    ).start()
    storage: ServerProcess | None = None
    try:
        port = int(frontend.wait_event("service.ready", "frontend")["listen"].rpartition(":")[2])
        with KcpClient("127.0.0.1", port) as client:
            reply = client.call("SET", "no.storage", "2030-01-01 00:00:00")
            assert reply[:2] == ["ERROR", "unavailable"]
            storage = ServerProcess(tmp_path, None, "storage", runtime_dir).start()
            storage.wait_event("service.ready", "storage")
            assert eventually(
                lambda: client.call("SET", "with.storage", "2030-01-01 00:00:00") == ["OK"]
            )
    finally:
        frontend.stop()
        if storage is not None:
            storage.stop()
