"""What a hostile client found on a real `kairoi serve` (the attack report's findings 3, 4,
6 and its minor ones), and what Kairoi does instead. Each test checks the replies, that the
connection still answers, that acknowledged data is intact and that no process restarted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import msgpack
import pytest
import zmq

from kairoi import limits, messages
from kairoi.bus import ControlClient
from kairoi.client.kcp import KcpClient
from tests.conftest import Running, start_server
from tests.support import eventually


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_server(tmp_path_factory.mktemp("hostile"))
    yield running
    running.server.stop()


def test_an_over_long_cron_number_fails_only_its_own_line(running: Running) -> None:
    """Finding 3: a cron number of 5,000 digits made cronsim raise ValueError, and every
    pipelined SET around it was answered ``internal`` and not stored."""
    before = running.pids()
    with running.client() as client:
        client.send(b'1 SET fp1 "2030-01-01 00:00:00"\n2 SET fp2 "cron:' + b"9" * 5_000
                    + b' * * * * *"\n3 SET fp3 "2030-01-01 00:00:00"\n')  # fmt: skip
        replies = [client.reply() for _ in range(3)]
        assert [reply.arguments[:2] for reply in replies] == [["OK"], ["ERROR", "invalid"],
                                                              ["OK"]]  # fmt: skip
        assert replies[1].arguments[2].startswith("invalid cron expression")
        assert client.call("GET", "fp1")[:2] == ["OK", "planned"]
        assert client.call("GET", "fp3")[:2] == ["OK", "planned"]
        assert client.call("GET", "fp2")[:2] == ["ERROR", "not_found"]
    assert running.pids() == before


def ask_storage(running: Running, items: list[messages.Item]) -> list[messages.Item] | None:
    """Send one batch to storage as a local process may; its reply, or None (dropped)."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(f"ipc://{running.server.runtime_dir}/storage.sock")
    try:
        dealer.send_multipart(messages.encode(items))
        if not dealer.poll(5_000):
            return None
        return messages.decode(dealer.recv_multipart())
    finally:
        context.destroy(linger=0)


def test_storage_refuses_an_outsized_outcome_and_drops_a_message_of_a_million_items(
    running: Running,
) -> None:
    """Finding 4: a local process's RecordOutcome of a 5 MiB reason and 20 MiB output was
    kept (RUNS and OUTPUT then gave a 26 MB reply), and a 7 MB frame of a million Pings took
    storage to 309 MB."""
    before = running.pids()
    with running.client() as client:
        assert client.call("SET", "kept", "2030-01-01 00:00:00") == ["OK"]
    outcome = messages.RecordOutcome(
        job_id="kept", run=1, outcome="failed", exit_code=1, reason="r" * (5 << 20),
        started_us=0, finished_us=0, output=b"o" * (limits.MAX_OUTPUT_BYTES + 1),
    )  # fmt: skip
    reply = ask_storage(running, [(1, outcome)])
    assert reply is not None and isinstance(reply[0][1], messages.Failed)
    assert (reply[0][1].code, "is longer than" in reply[0][1].reason) == ("invalid", True)
    assert ask_storage(running, [(n, messages.Ping()) for n in range(1_000_000)]) is None
    assert ask_storage(running, [(7, messages.Ping())]) == [(7, messages.Pong())]
    with running.client() as client:
        assert client.call("GET", "kept")[:2] == ["OK", "planned"]
        assert client.call("RUNS", "kept") == ["OK", "0"]
    assert running.pids() == before


def test_a_hello_claiming_a_billion_slots_is_dropped_and_runs_go_to_the_real_runner(
    running: Running,
) -> None:
    """Finding 6: a local DEALER saying RunnerHello(capacity=10**9, free=10**9) was sent
    every run (with the DSNs of AMQP rules); the real runner got nothing."""
    before = running.pids()
    hello = messages.RunnerHello(
        name="thief", instance="t", capacity=(10**9, 10**9), free=(10**9, 10**9)
    )
    context = zmq.Context()
    thief = context.socket(zmq.DEALER)
    thief.setsockopt(zmq.LINGER, 0)
    thief.connect(f"ipc://{running.server.runtime_dir}/dispatcher.sock")
    try:
        thief.send_multipart(messages.encode([(0, hello)]))
        with running.client() as client:
            assert client.call("RULE", "SET", "r6", "app6.", "shell", "scripts/example.sh") == [
                "OK"]  # fmt: skip
            assert client.call("SET", "app6.job", "2030-01-01 00:00:00") == ["OK"]
            for run in ("1", "2", "3"):
                thief.send_multipart(messages.encode([(0, hello)]))
                assert client.call("TRIGGER", "app6.job") == ["OK"]
                eventually(functools.partial(has_run, client, "app6.job", run), 20)
        assert not thief.poll(0), "the thief was sent something"
        assert running.server.events("runner.hello_refused")
    finally:
        context.destroy(linger=0)
    assert running.pids() == before


def has_run(client: KcpClient, job_id: str, run: str) -> bool:
    """Whether GET shows ``job_id`` planned, with ``run`` its latest run, executed."""
    words = client.call("GET", job_id)
    return (words[1], words[3], words[4]) == ("planned", run, "executed")


def test_a_directory_is_refused_as_a_script_when_set_and_when_run(running: Running) -> None:
    """Minor finding: ``RULE SET r p. shell "scripts/"`` was taken, and its runs ended
    executed with exit status 0."""
    before = running.pids()
    script = running.server.workdir / "scripts" / "turned.sh"
    script.write_text("exit 0\n")
    with running.client() as client:
        reply = client.call("RULE", "SET", "rd", "dir.", "shell", "scripts/")
        assert reply[:2] == ["ERROR", "invalid"] and "is not a regular file" in reply[2]
        assert client.call("RULE", "SET", "rt", "turned.", "shell", "scripts/turned.sh") == ["OK"]
        assert client.call("SET", "turned.job", "2030-01-01 00:00:00") == ["OK"]
        script.unlink()
        script.mkdir()  # after it was set: the runner checks again before it runs
        assert client.call("TRIGGER", "turned.job") == ["OK"]
        eventually(lambda: client.call("GET", "turned.job")[4] == "failed", 20)
        runs, last = client.call_list("RUNS", "turned.job")
        assert last == ["OK", "1"] and "is not a regular file" in runs[0][-1]
        assert client.call("PING") == ["OK", "PONG"]
    assert running.pids() == before


def test_a_control_request_naming_a_key_twice_is_refused_and_deletes_nothing(
    running: Running,
) -> None:
    """Minor finding: ``{"op": "get", "op": "delete", "job": "keep"}`` deleted keep."""
    before = running.pids()
    with running.client() as kcp:
        assert kcp.call("SET", "keep", "2030-01-01 00:00:00") == ["OK"]
    control = ControlClient(f"ipc://{running.server.runtime_dir}/control.sock")
    try:
        answer = control.request(b"\x83\xa2op\xa3get\xa2op\xa6delete\xa3job\xa4keep", timeout=10)
        assert answer is not None
        refused = {"status": "error", "code": "invalid",
                   "reason": "a map names ['op'] more than once"}  # fmt: skip
        assert msgpack.unpackb(answer) == refused
        cascade_on_get = msgpack.packb({"op": "get", "job": "keep", "cascade": True})
        answer = control.request(cascade_on_get, timeout=10)
        assert answer is not None and msgpack.unpackb(answer)["code"] == "invalid"
    finally:
        control.close()
    with running.client() as kcp:
        assert kcp.call("GET", "keep")[:2] == ["OK", "planned"]
    assert running.pids() == before
