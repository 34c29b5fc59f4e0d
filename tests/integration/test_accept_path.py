"""The frontend actor and the storage loop in one process, over a real ipc:// socket."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import zmq
from structlog.testing import capture_logs

from kairoi import limits, messages
from kairoi.bus import ReplyServer
from kairoi.domain import Job, JobStatus
from kairoi.frontend import definitions, instructions
from kairoi.frontend.replies import INTERNAL_SUFFIX, MAX_TOTAL_OWED_BYTES, reserved_bytes
from kairoi.storage import codec, keys
from kairoi.storage.actor import Storage
from kairoi.storage.engine import Engine
from kairoi.storage.kv import MemoryStore
from tests.support import do
from tests.support_bus import frontend_on, serving


@pytest.fixture
def endpoint() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="kairoi-", dir="/tmp") as short:
        yield f"ipc://{short}/storage.sock"


@contextmanager
def storage_loop(endpoint: str, engine: Engine) -> Iterator[None]:
    def start(server: ReplyServer) -> Callable[[], None]:
        return Storage(server, engine.kv, engine, lambda: Engine(engine.kv, fsync=True),
                       1000).serve_waiting  # fmt: skip

    with serving(endpoint, start):
        yield


async def ask(endpoint: str, lines: bytes, replies: int) -> list[bytes]:
    """Start a frontend on port 0, send ``lines`` over TCP, return ``replies`` reply lines."""
    async with frontend_on(endpoint, request_timeout=2.0) as frontend:
        assert frontend.address is not None
        reader, writer = await asyncio.open_connection(*frontend.address)
        writer.write(lines)
        got = [await asyncio.wait_for(reader.readline(), 5) for _ in range(replies)]
        writer.close()
        return got


def test_sets_are_applied_and_acknowledged(endpoint: str) -> None:
    kv = MemoryStore()
    with storage_loop(endpoint, Engine(kv, fsync=True)):
        replies = asyncio.run(
            ask(endpoint, b'1 SET a "2030-01-01 00:00:00"\n2 SET b "2030-01-01 00:00:00"\n', 2)
        )
    assert replies == [b"1 OK\n", b"2 OK\n"]
    assert kv.get(keys.job("a")) is not None and kv.get(keys.job("b")) is not None


def test_a_failed_write_is_answered_internal_and_nothing_is_kept(endpoint: str) -> None:
    kv = MemoryStore()
    engine = Engine(kv, fsync=True)
    kept = dict(kv.data)
    kv.fail_writes = True
    with storage_loop(endpoint, engine), capture_logs() as logs:
        replies = asyncio.run(ask(endpoint, b'1 SET a "2030-01-01 00:00:00"\n2 BAD\n', 2))
    assert replies == [
        b'1 ERROR internal "not saved: write refused (fail_writes is set); send it again once '
        b'storage can write"\n',
        b"2 ERROR invalid \"unknown instruction 'BAD'\"\n",
    ]
    assert kv.data == kept
    assert [log["event"] for log in logs if log["log_level"] == "error"] == ["storage.write_failed"]


def test_storage_writes_again_by_itself_once_it_can(endpoint: str) -> None:
    kv = MemoryStore()
    engine = Engine(kv, fsync=True)
    kv.fail_writes = True  # as a full disk would
    with storage_loop(endpoint, engine), capture_logs() as logs:
        refused = asyncio.run(ask(endpoint, b'1 SET a "2030-01-01 00:00:00"\n', 1))
        unwritable = asyncio.run(ask(endpoint, b"2 STATS\n", 1))
        kv.fail_writes = False  # space is back
        taken = asyncio.run(ask(endpoint, b'3 SET b "2030-01-01 00:00:00"\n', 1))
        writable = asyncio.run(ask(endpoint, b"4 STATS\n", 1))
    assert refused[0].startswith(b"1 ERROR internal")
    assert b"writable=0" in unwritable[0] and b"write_errors=1" in unwritable[0]
    assert taken[0] == b"3 OK\n" and b"writable=1" in writable[0]
    assert kv.get(keys.job("b")) is not None
    assert [log["event"] for log in logs if log["event"].startswith("storage.write")] == [
        "storage.write_failed", "storage.write_recovered",
    ]  # fmt: skip


def test_garbage_on_the_bus_is_logged_and_dropped(endpoint: str) -> None:
    kv = MemoryStore()
    context = zmq.Context()
    rogue = context.socket(zmq.DEALER)
    rogue.connect(endpoint)
    try:
        with storage_loop(endpoint, Engine(kv, fsync=True)), capture_logs() as logs:
            rogue.send_multipart([b"hello"])
            rogue.send_multipart([messages.PROTOCOL_VERSION, b"\x91\x93\x01\x01\xa1a"])
            rogue.send_multipart(messages.encode([(7, messages.SetJob(job_id="ok", due_us=1))]))
            assert rogue.poll(5000), "the valid batch after the garbage is answered"
            assert messages.decode(rogue.recv_multipart()) == [(7, messages.Ok())]
            replies = asyncio.run(ask(endpoint, b'1 SET a "2030-01-01 00:00:00"\n', 1))
    finally:
        rogue.close(linger=0)
        context.term()
    assert replies == [b"1 OK\n"]
    dropped = [log for log in logs if log["event"] == "bus.message_dropped"]
    assert len(dropped) == 2
    assert "SetJob takes 2 fields" in dropped[1]["reason"]


def test_pipelined_sets_with_errors_among_them_are_answered_in_order(endpoint: str) -> None:
    kv = MemoryStore()
    running = Job(id="busy", due_us=1, status=JobStatus.TRIGGERED, run=1, active=(1,))
    kv.write({keys.job("busy"): codec.encode_job(running)}, sync=True)
    lines = b"".join(
        [
            *(
                b'%d SET a.%d "2030-01-01 00:%02d:%02d"\n' % (i, i, i // 60, i % 60)
                for i in range(500)
            ),
            b'bad SET a.x "2030-02-30 00:00:00"\n',
            b'run SET busy "2030-01-01 00:00:00"\n',
            b"rule RULE SET r a. shell /bin/sh\n",
            b'last SET a.last "2030-01-01 00:00:00"\n',
        ]
    )
    with storage_loop(endpoint, Engine(kv, fsync=True)):
        replies = asyncio.run(ask(endpoint, lines, 504))
    assert replies[:500] == [b"%d OK\n" % i for i in range(500)]
    assert replies[500].startswith(b'bad ERROR invalid "invalid date')
    assert replies[501].startswith(b"run ERROR conflict \"job 'busy' is running")
    assert replies[502].startswith(b"rule ERROR forbidden")
    assert replies[503] == b"last OK\n"
    assert kv.get(keys.job("a.499")) is not None and kv.get(keys.job("a.x")) is None
    assert kv.get(keys.job("busy")) == codec.encode_job(running)


def test_a_reply_that_cannot_be_encoded_is_answered_internal_and_the_others_go(
    endpoint: str,
) -> None:
    kv = MemoryStore()
    engine = Engine(kv, fsync=True)
    server = ReplyServer(endpoint)
    context = zmq.Context()
    peer = context.socket(zmq.DEALER)
    peer.connect(endpoint)
    try:
        storage = Storage(server, kv, engine, lambda: Engine(kv, fsync=True), 1000)
        peer.send_multipart(messages.encode([(1, messages.Ping())]))
        server.wait(5000)
        received = server.receive_nowait()
        assert received is not None
        sender = received[0]
        unencodable = messages.Output(run=2**70, output=b"")  # a bug's reply
        with capture_logs() as logs:
            storage._send(sender, [(1, messages.Pong()), (2, unencodable)])
        assert peer.poll(5000)
        replies = messages.decode(peer.recv_multipart())
        assert replies[0] == (1, messages.Pong())
        assert replies[1] == (
            2,
            messages.Failed(code="internal", reason="storage could not encode its reply"),
        )
        assert [log["event"] for log in logs] == ["storage.reply_failed"]
    finally:
        peer.close(linger=0)
        context.term()
        server.close()


POISON_CRON = b'"cron:' + b"9" * 5_000 + b' * * * * *"'
"""A number cronsim cannot convert (Python's 4,300-digit limit): it raised ValueError."""


def test_a_poison_line_among_pipelined_sets_is_answered_alone(endpoint: str) -> None:
    """Attack report, finding 3: one SET whose reading raised answered the whole pipelined
    run ``internal``, and its good lines were not stored."""
    kv = MemoryStore()
    lines = (b'1 SET fp1 "2030-01-01 00:00:00"\n2 SET fp2 ' + POISON_CRON
             + b'\n3 SET fp3 "2030-01-01 00:00:00"\n')  # fmt: skip
    with storage_loop(endpoint, Engine(kv, fsync=True)):
        replies = asyncio.run(ask(endpoint, lines, 3))
    assert replies[0] == b"1 OK\n" and replies[2] == b"3 OK\n"
    assert replies[1].startswith(b'2 ERROR invalid "invalid cron expression')
    assert kv.get(keys.job("fp1")) is not None and kv.get(keys.job("fp3")) is not None
    assert kv.get(keys.job("fp2")) is None


def test_a_listing_whose_long_request_id_could_pass_what_a_connection_may_be_owed_is_refused(
    endpoint: str,
) -> None:
    """A listing repeats its request id on every line: a 50 KB id on 10,000 lines would be half a
    gigabyte, whatever the page's own bytes. Refused; a shorter LIST, or a short id, is not."""
    long_id = b"i" * 50_000
    lines = (
        long_id + b" LIST LIMIT 10000\n" + long_id + b" LIST LIMIT 10\n2 LIST LIMIT 10000\n3 PING\n"
    )
    with storage_loop(endpoint, Engine(MemoryStore(), fsync=True)):
        replies = asyncio.run(ask(endpoint, lines, 4))
    assert replies[0].startswith(long_id + b' ERROR invalid "a listing with a request id of')
    assert replies[1:] == [long_id + b" OK 0\n", b"2 OK 0\n", b"3 OK PONG\n"]


def test_a_bug_reading_one_set_of_a_pipelined_run_costs_only_that_line(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any fault reading a run of SETs (here a bug put into the reading of one date) falls
    back to reading the lines one by one: only the faulty line is answered ``internal``."""
    real_read_set = definitions.read_set

    def read_set_with_a_bug(arguments: list[str]) -> messages.Request:
        if arguments[1] == "2030-01-01 00:00:01":
            raise RuntimeError("a bug")
        return real_read_set(arguments)

    monkeypatch.setattr(instructions, "read_set", read_set_with_a_bug)
    lines = b"".join(b'%d SET j%d "2030-01-01 00:00:0%d"\n' % (i, i, i % 3) for i in range(6))
    kv = MemoryStore()
    with storage_loop(endpoint, Engine(kv, fsync=True)), capture_logs() as logs:
        replies = asyncio.run(ask(endpoint, b'b SET bad "2030-02-30 00:00:00"\n' + lines, 7))
    assert replies[0].startswith(b'b ERROR invalid "invalid date')  # the slow pass is taken
    internal = [b"%d" % i + INTERNAL_SUFFIX for i in (1, 4)]
    assert replies[1:] == [b"0 OK\n", internal[0], b"2 OK\n", b"3 OK\n", internal[1], b"5 OK\n"]
    assert [kv.get(keys.job(f"j{i}")) is not None for i in range(6)] == [
        True, False, True, True, False, True]  # fmt: skip
    assert "kcp.request_failed" in [log["event"] for log in logs]


CLIENTS = 12


def test_the_bytes_owed_to_clients_that_do_not_read_are_bounded_in_all_and_never_leak(
    endpoint: str,
) -> None:
    """Attack report, finding 4: ten connections pipelining OUTPUT and RUNS without reading
    took the frontend to 733 MB. Each reply now counts at the most it can hold, per
    connection and over all of them; closing the connections gives every byte back, even
    for the replies that come after the close."""
    kv = MemoryStore()
    engine = Engine(kv, fsync=True)
    do(engine, messages.SetShellRule(rule_id="r", pattern="", script="/bin/true"))
    do(engine, messages.SetJob(job_id="big", due_us=1))
    (run,) = claimed_runs(engine)
    do(engine, messages.RecordOutcome(
        job_id="big", run=run.run, outcome="executed", exit_code=0, reason="", started_us=2,
        finished_us=3, output=b"\xff" * limits.MAX_OUTPUT_BYTES,
    ))  # fmt: skip
    lines = b"".join(b"%d OUTPUT big\n%d RUNS big\n" % (i, i) for i in range(40))
    with storage_loop(endpoint, engine):
        most, left = asyncio.run(owed_to_clients_that_do_not_read(endpoint, lines))
    reservation = reserved_bytes(messages.GetOutput(job_id="big", run=0), b"39")
    assert most <= MAX_TOTAL_OWED_BYTES + CLIENTS * (reservation + 4 * limits.MAX_PAGE_BYTES)
    assert left == 0


def claimed_runs(engine: Engine) -> tuple[messages.Execute, ...]:
    reply = do(engine, messages.ClaimDue(dispatcher="d", lookahead_us=0, limit=10))
    assert isinstance(reply, messages.Claimed)
    return reply.runs


async def owed_to_clients_that_do_not_read(endpoint: str, lines: bytes) -> tuple[int, int]:
    """The most the frontend owed while CLIENTS connections sent ``lines`` and read nothing,
    and what it owed once they had closed."""
    writers, most = [], 0
    async with frontend_on(endpoint) as frontend:
        assert frontend.address is not None
        for _ in range(CLIENTS):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(frontend.address)
            _, writer = await asyncio.open_connection(sock=sock)
            writer.write(lines)
            writers.append(writer)
        for _ in range(150):  # 3 s of the replies coming in, watched
            await asyncio.sleep(0.02)
            most = max(most, frontend.owed_bytes.value)
        for writer in writers:
            writer.close()
        for _ in range(400):  # replies still on their way come to closed connections
            if not frontend.connections and not frontend.gateway.waiting:
                break
            await asyncio.sleep(0.02)
        return most, frontend.owed_bytes.value
