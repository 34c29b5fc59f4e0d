"""Reading, changing and stopping jobs through `kairoi serve`: over KCP, over the control bus
and with `kairoi ctl`, with real scripts, processes and RocksDB."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq

from kairoi.client.kcp import KcpClient
from kairoi.storage import keys
from kairoi.storage.rocks import RocksStore
from tests.conftest import Running, start_server
from tests.support import eventually

SPAWNER = """echo "started $1"
sleep 60 &
echo $! > "$1.children"
sh -c 'sleep 60' &
echo $! >> "$1.children"
sleep 60
"""
"""A script that starts two children (one of them another shell), then waits."""


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    running = start_server(tmp_path, {"runners": {"lease": 1.5}})
    scripts = running.server.workdir / "scripts"
    (scripts / "spawner.sh").write_text(SPAWNER)
    (scripts / "quick.sh").write_text('echo "ran $1"\n')
    with running.client() as client:
        assert client.call("RULE", "SET", "s", "slow.", "shell", "scripts/spawner.sh") == ["OK"]
        assert client.call("RULE", "SET", "q", "", "shell", "scripts/quick.sh") == ["OK"]
    yield running
    running.server.stop()


def get(client: KcpClient, job_id: str) -> list[str]:
    return client.call("GET", job_id)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not); it may be reaped while we look."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children_of(running: Running, job_id: str) -> list[int]:
    path = running.server.workdir / f"{job_id}.children"
    lines = path.read_text().split() if path.exists() else []
    return [int(pid) for pid in lines] if len(lines) == 2 else []


def test_get_list_and_runs_answer_with_quoted_ids_and_framed_lists(running: Running) -> None:
    with running.client() as client:
        for job_id in ["app b", 'app "q"', "app.c"]:
            assert client.call("SET", job_id, "2030-01-01 00:00:00") == ["OK"]
        assert get(client, "app b") == [
            "OK", "planned", "2030-01-01T00:00:00Z", "0", "-", "-", "-",
        ]  # fmt: skip
        items, last = client.call_list("LIST", "app", "LIMIT", "2")
        assert [item[:2] for item in items] == [["JOB", 'app "q"'], ["JOB", "app b"]]
        assert last == ["OK", "2"]
        items, last = client.call_list("LIST", "app", "AFTER", "app b")
        assert [item[1] for item in items] == ["app.c"] and last == ["OK", "1"]
        assert client.call_list("LIST", "zzz") == ([], ["OK", "0"])
        assert client.call("GET", "nope") == ["ERROR", "not_found", "no job 'nope'"]
        assert client.call("LIST", "a", "LIMIT", "0")[:2] == ["ERROR", "invalid"]
        assert client.call("RUNS", "app b") == ["OK", "0"]
        assert client.call("OUTPUT", "app b")[:2] == ["ERROR", "not_found"]
    # The same bytes a client sees on the wire: quoted ids, one line per item, then OK.
    with running.client() as client:
        client.send(b"x LIST app LIMIT 1\n")
        assert client.sock.recv(4096) == (
            b'x JOB "app \\"q\\"" planned 2030-01-01T00:00:00Z 0 - - -\nx OK 1\n'
        )


def test_rules_can_be_read_listed_and_deleted(running: Running, rabbitmq: str) -> None:
    dsn = rabbitmq.replace("guest:guest", "guest:s3cret")
    with running.client() as client:
        assert client.call("RULE", "SET", "a", "amqp.", "amqp", dsn, "x", "k") == ["OK"]
        shown = client.call("RULE", "GET", "a")
        assert shown == ["OK", "amqp.", "amqp", "amqp://guest:***@127.0.0.1:5672/", "x", "k"]
        items, last = client.call_list("RULE", "LIST")
        assert [item[1] for item in items] == ["a", "q", "s"] and last == ["OK", "3"]
        assert all("s3cret" not in word for item in items for word in item)
        assert client.call("RULE", "UNSET", "a") == ["OK"]
        assert client.call("RULE", "GET", "a") == ["ERROR", "not_found", "no rule 'a'"]
        assert client.call("RULE", "UNSET", "a")[:2] == ["ERROR", "not_found"]


def test_ping_version_and_stats(running: Running) -> None:
    with running.client() as client:
        assert client.call("PING") == ["OK", "PONG"]
        assert client.call("VERSION")[0] == "OK"
        client.call("SET", "later.1", "2030-01-01 00:00:00")
        client.call("SET", "later.2", "2030-01-01 00:00:00")
        client.call("DISABLE", "later.2")
        stats = dict(word.split("=") for word in client.call("STATS")[1:])
        assert (stats["planned"], stats["disabled"], stats["rules"]) == ("1", "1", "2")
        assert client.call("STATS", "x")[:2] == ["ERROR", "invalid"]


def test_stop_kills_the_script_and_everything_it_started(running: Running) -> None:
    with running.client() as client:
        assert client.call("SET", "slow.1", "2020-01-01 00:00:00") == ["OK"]
        pids = eventually(lambda: children_of(running, "slow.1"))
        assert all(alive(pid) for pid in pids)
        assert get(client, "slow.1")[1] == "triggered"
        assert client.call("STOP", "slow.1") == ["OK"]
        eventually(lambda: not any(alive(pid) for pid in pids), timeout=5)
        assert get(client, "slow.1")[1:5] == ["failed", "-", "1", "stopped"]
        (run,), _ = client.call_list("RUNS", "slow.1")
        assert run[1] == "1" and run[5] == "stopped"
        # The killed script's report completes the run: when it started, its output.
        eventually(lambda: client.call_list("RUNS", "slow.1")[0][0][3] != "-")
        assert client.call("OUTPUT", "slow.1") == ["OK", "1", "started slow.1\n"]
        assert client.call("STOP", "slow.1")[:2] == ["ERROR", "conflict"]


def test_unset_stops_a_running_job_and_forgets_it(running: Running) -> None:
    with running.client() as client:
        client.call("SET", "slow.2", "2020-01-01 00:00:00")
        pids = eventually(lambda: children_of(running, "slow.2"))
        assert client.call("UNSET", "slow.2") == ["OK"]
        eventually(lambda: not any(alive(pid) for pid in pids), timeout=5)
        assert get(client, "slow.2") == ["ERROR", "not_found", "no job 'slow.2'"]
        time.sleep(0.5)  # the killed script's report arrives, and changes nothing
        assert get(client, "slow.2")[:2] == ["ERROR", "not_found"]


def test_a_disabled_job_does_not_fire_and_fires_once_enabled(running: Running) -> None:
    ran = running.server.workdir / "ran.txt"
    (running.server.workdir / "scripts" / "quick.sh").write_text('echo "$1" >> ran.txt\n')
    due = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 2))
    with running.client() as client:
        assert client.call("SET", "later.x", due) == ["OK"]
        assert client.call("DISABLE", "later.x") == ["OK"]
        assert get(client, "later.x")[1:3] == ["disabled", "-"]
        time.sleep(3)
        assert not ran.exists(), "a disabled job never fires"
        assert client.call("ENABLE", "later.x") == ["OK"]
        eventually(lambda: get(client, "later.x")[1] == "executed")
        time.sleep(0.5)
        assert ran.read_text() == "later.x\n", "once"


def test_trigger_runs_a_job_now_and_keeps_its_schedule(running: Running) -> None:
    with running.client() as client:
        client.call("SET", "later.t", "2030-01-01 00:00:00")
        assert client.call("TRIGGER", "later.t") == ["OK"]
        eventually(lambda: get(client, "later.t")[3:5] == ["1", "executed"])
        assert get(client, "later.t")[1:3] == ["planned", "2030-01-01T00:00:00Z"]
        (run,), _ = client.call_list("RUNS", "later.t")
        assert run[5:8] == ["executed", "0", "manual"]
        assert client.call("TRIGGER", "nope")[:2] == ["ERROR", "not_found"]


def test_history_keeps_100_runs_and_unset_leaves_no_key(running: Running) -> None:
    with running.client() as client:
        client.call("SET", "many", "2030-01-01 00:00:00")
        for run in range(1, 151):
            assert client.call("TRIGGER", "many") == ["OK"]
            ended = ["planned", "2030-01-01T00:00:00Z", str(run), "executed"]
            eventually(lambda ended=ended: get(client, "many")[1:5] == ended)  # type: ignore[misc]
        runs, last = client.call_list("RUNS", "many", "LIMIT", "1000")
        assert last == ["OK", "100"]
        assert [int(run[1]) for run in runs] == list(range(150, 50, -1))
        assert client.call("OUTPUT", "many", "51")[:3] == ["OK", "51", "ran many\n"]
        assert client.call("OUTPUT", "many", "50")[:2] == ["ERROR", "not_found"]
        assert client.call("UNSET", "many") == ["OK"]
    assert running.server.stop() == 0
    store = RocksStore(str(running.server.data_dir))
    try:
        left = [key for key, _ in store.scan(b"", b"\xff") if b"many" in key]
    finally:
        store.close()
    assert left == [], f"keys of the deleted job: {left[:3]}"
    assert keys.run_of(keys.RUN, "many", 150) not in left


# The control bus and `kairoi ctl`.


def ctl(running: Running, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kairoi", "ctl", *arguments, "-c", str(running.server.config_path)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_kairoi_ctl_does_each_verb(running: Running) -> None:
    with running.client() as client:
        client.call("SET", "later.c", "2030-01-01 00:00:00")
        client.call("SET", "slow.c", "2030-01-01 00:00:00")
    got = ctl(running, "get", "later.c")
    assert got.returncode == 0 and '"status": "planned"' in got.stdout
    assert '"next_due": "2030-01-01T00:00:00Z"' in got.stdout
    assert ctl(running, "disable", "later.c").stdout == "ok\n"
    assert '"status": "disabled"' in ctl(running, "get", "later.c").stdout
    refused = ctl(running, "trigger", "later.c")
    assert refused.returncode == 1 and "conflict: job 'later.c' is disabled" in refused.stderr
    assert ctl(running, "enable", "later.c").returncode == 0
    assert ctl(running, "trigger", "slow.c").returncode == 0
    with running.client() as client:
        pids = eventually(lambda: children_of(running, "slow.c"))
        assert ctl(running, "stop", "slow.c").returncode == 0
        eventually(lambda: not any(alive(pid) for pid in pids), timeout=5)
        assert get(client, "slow.c")[1:5] == ["planned", "2030-01-01T00:00:00Z", "1", "stopped"]
    assert ctl(running, "delete", "slow.c").returncode == 0
    missing = ctl(running, "get", "slow.c")
    assert missing.returncode == 1 and "not_found: no job 'slow.c'" in missing.stderr


def test_kairoi_ctl_says_when_no_kairoi_answers(tmp_path: Path) -> None:
    config = tmp_path / "k.toml"
    config.write_text(f'[control]\nendpoint = "ipc://{tmp_path}/none.sock"\ntimeout = 0.3\n')
    result = subprocess.run(
        [sys.executable, "-m", "kairoi", "ctl", "get", "x", "-c", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 69 and "no answer from ipc://" in result.stderr


def test_the_control_bus_speaks_msgpack_to_any_client(running: Running) -> None:
    context = zmq.Context()
    req = context.socket(zmq.REQ)
    req.connect(f"ipc://{running.server.runtime_dir}/control.sock")
    dealer = context.socket(zmq.DEALER)
    dealer.connect(f"ipc://{running.server.runtime_dir}/control.sock")

    def ask(request: object) -> dict[str, object]:
        req.send(msgpack.packb(request) if not isinstance(request, bytes) else request)
        assert req.poll(5000)
        reply: dict[str, object] = msgpack.unpackb(req.recv())
        return reply

    try:
        assert ask({"op": "get", "job": "none", "id": [7]}) == {
            "status": "error", "code": "not_found", "reason": "no job 'none'", "id": [7],
        }  # fmt: skip
        assert ask({"op": "frob", "job": "x"})["code"] == "invalid"
        assert ask({"op": "get", "job": 5})["reason"] == "job must be a string, not 5"
        assert ask({"op": "get", "job": "x", "extra": 1})["code"] == "invalid"
        assert str(ask(b"\xc1")["reason"]).startswith("the request is not msgpack")
        assert ask([1, 2])["code"] == "invalid"
        with running.client() as client:
            client.call("SET", "later.bus", "2030-01-01 00:00:00")
        job = ask({"op": "get", "job": "later.bus"})["job"]
        assert isinstance(job, dict) and job["next_due_us"] == 1_893_456_000_000_000
        dealer.send_multipart([b"", msgpack.packb({"op": "disable", "job": "later.bus"})])
        assert dealer.poll(5000) and msgpack.unpackb(dealer.recv_multipart()[1]) == {"status": "ok"}
        dealer.send(b"no delimiter")  # answered, so the client is not left waiting
        assert dealer.poll(5000)
        assert msgpack.unpackb(dealer.recv_multipart()[-1])["code"] == "invalid"
        assert ask({"op": "get", "job": "later.bus"})["job"]["status"] == "disabled"  # type: ignore[index]
    finally:
        context.destroy(linger=0)


def test_a_run_stopped_while_it_waits_for_a_runner_never_starts(tmp_path: Path) -> None:
    """With one script slot taken, the next due run waits in the dispatcher (claimed, so
    Triggered); stopping it there means it never runs, even once the slot frees."""
    running = start_server(tmp_path, {"runners.shell": {"concurrency": 1}})
    try:
        (running.server.workdir / "scripts" / "spawner.sh").write_text(SPAWNER)
        with running.client() as client:
            client.call("RULE", "SET", "s", "slow.", "shell", "scripts/spawner.sh")
            client.call("SET", "slow.a", "2020-01-01 00:00:00")
            eventually(lambda: children_of(running, "slow.a"))
            client.call("SET", "slow.b", "2020-01-01 00:00:00")
            eventually(lambda: get(client, "slow.b")[1] == "triggered")
            assert client.call("STOP", "slow.b") == ["OK"]
            assert client.call("STOP", "slow.a") == ["OK"]  # the slot frees
            time.sleep(1.0)
            assert not (running.server.workdir / "slow.b.children").exists(), "never started"
            assert get(client, "slow.b")[1:5] == ["failed", "-", "1", "stopped"]
            (run,), _ = client.call_list("RUNS", "slow.b")
            assert run[3] == "-", "it never started"
    finally:
        running.server.stop()
