"""What a client sends cannot make a Kairoi process hold unbounded memory (issue 13, items 5
and 6): a huge control-bus frame, a line that never ends, many large reads at once. Each
test checks the replies, that the processes keep their pids and that they still answer.

Peaks are read from the kernel (``VmHWM`` in /proc/PID/status, reset through clear_refs
before each test), so no sampling can miss one.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq

from kairoi.bus import ControlClient
from tests.conftest import Running, start_server

MIB = 1 << 20
ID_BYTES = 60_000
JOBS = 500
CONNECTIONS = 8
LISTS_PER_CONNECTION = 25


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_server(tmp_path_factory.mktemp("bounded"))
    yield running
    running.server.stop()


def peak_bytes(pid: int) -> int:
    """The most memory ``pid`` held since its peak was last reset."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match[1]) * 1024


def reset_peak(pid: int) -> int:
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return peak_bytes(pid)


def control_answers(running: Running) -> bool:
    client = ControlClient(f"ipc://{running.server.runtime_dir}/control.sock")
    try:
        body = msgpack.packb({"op": "get", "job": "none"})
        answer = client.request(body, timeout=10)
    finally:
        client.close()
    return answer is not None and msgpack.unpackb(answer)["code"] == "not_found"


def test_a_64_mib_control_frame_is_refused_without_holding_it(running: Running) -> None:
    before = running.pids()
    frontend = before["frontend"]
    start = reset_peak(frontend)
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(f"ipc://{running.server.runtime_dir}/control.sock")
    try:
        for _ in range(3):
            dealer.send_multipart([b"", b"\x00" * (64 * MIB)])
        assert control_answers(running)  # sent after, answered: the big ones were dropped
        assert not dealer.poll(500), "no answer to a frame over the size limit"
    finally:
        context.destroy(linger=0)
    assert peak_bytes(frontend) - start < 32 * MIB
    assert running.pids() == before
    assert control_answers(running)


def test_100_mib_without_a_line_feed_is_refused_and_not_held(running: Running) -> None:
    before = running.pids()
    frontend = before["frontend"]
    start = reset_peak(frontend)
    got = bytearray()
    with socket.create_connection(("127.0.0.1", running.port), timeout=20) as sock:
        reader = threading.Thread(target=_read_until_closed, args=(sock, got))
        reader.start()
        sock.sendall(b"1 PING\n")
        chunk = b"x" * MIB
        try:
            for _ in range(100):
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed once the line passed the limit: the rest is not read
        reader.join(20)
    assert got.startswith(b"1 OK PONG\n")
    # The error line is written before the close; a reset (the server closes with the rest
    # of the line unread) may still beat it to the client.
    assert bytes(got[10:]) in (
        b"",
        b'"" ERROR invalid "message longer than 1048576 bytes without an LF"\n',
    )
    assert peak_bytes(frontend) - start < 32 * MIB
    assert running.pids() == before
    with running.client() as client:
        assert client.call("PING") == ["OK", "PONG"]


def _read_until_closed(sock: socket.socket, got: bytearray) -> None:
    try:
        while data := sock.recv(65536):
            got += data
    except ConnectionResetError:
        pass


def test_many_large_lists_at_once_keep_storage_bounded(running: Running) -> None:
    """8 connections each pipelining 25 ``LIST LIMIT 10000`` over 500 jobs with 60 KB
    ids (30 MB a full listing): each page ends early with its cursor, nothing is answered
    ``unavailable``, and no process holds more than its budgets allow."""
    ids = [f"{n:04}{'x' * (ID_BYTES - 4)}" for n in range(JOBS)]
    with running.client() as client:
        client.send(b"".join(f'{n} SET {i} "2030-01-01 00:00:00"\n'.encode()
                             for n, i in enumerate(ids)))  # fmt: skip
        assert all(client.reply().arguments == ["OK"] for _ in ids)
    before = running.pids()
    start = {name: reset_peak(pid) for name, pid in before.items()}
    results: list[tuple[int, int, bytes]] = [(0, 0, b"")] * CONNECTIONS
    readers = [
        threading.Thread(target=_pipeline_lists, args=(running.port, index, results))
        for index in range(CONNECTIONS)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(120)
    for pages, jobs, errors in results:
        assert errors == b"" and pages == LISTS_PER_CONNECTION
        assert LISTS_PER_CONNECTION <= jobs <= LISTS_PER_CONNECTION * (MIB // ID_BYTES)
    grown = {name: peak_bytes(pid) - start[name] for name, pid in before.items()}
    # Storage's listings of one batch hold 16 MiB (BATCH_REPLY_BYTES); the frontend's owed
    # replies 8 MiB a connection (MAX_OWED_BYTES), held as frames, messages and lines.
    assert grown["storage"] < 64 * MIB, grown
    assert grown["frontend"] < 160 * MIB, grown
    assert running.pids() == before
    with running.client() as client:
        page, last = client.call_list("LIST", "LIMIT", "2")
        assert [words[1] for words in page] == ids[:2] and last == ["OK", "2"]


_FINAL = re.compile(rb"^L\d+ (OK (\d+)[^\n]*|ERROR[^\n]*)\n", re.MULTILINE)
_ITEM = re.compile(rb"^L\d+ JOB ", re.MULTILINE)


def _pipeline_lists(port: int, index: int, results: list[tuple[int, int, bytes]]) -> None:
    """Send every LIST at once, then read the replies, counting pages, jobs and errors."""
    pages = jobs = 0
    errors = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"".join(b"L%d LIST LIMIT 10000\n" % n for n in range(LISTS_PER_CONNECTION)))
        pending = b""
        while pages < LISTS_PER_CONNECTION and (data := sock.recv(1 << 20)):
            pending += data
            whole, _, pending = pending.rpartition(b"\n")
            whole += b"\n"
            jobs += len(_ITEM.findall(whole))
            for final in _FINAL.finditer(whole):
                pages += 1
                if final[1].startswith(b"ERROR"):
                    errors += final[0]
    results[index] = (pages, jobs, bytes(errors))
