"""Each reference fault on the accept path (reference §12), and what Kairoi does instead.

All against a real `kairoi serve` over TCP; byte-exact replies where the format matters.
"""

from __future__ import annotations

import resource
import socket
import struct
import threading
import time
from pathlib import Path

from kairoi.client.kcp import KcpClient
from tests.conftest import Running
from tests.support import eventually, read_jobs

WHEN = b'"2030-01-01 00:00:00"'


def connect(running: Running) -> socket.socket:
    return socket.create_connection(("127.0.0.1", running.port), timeout=20)


def read_lines(sock: socket.socket, count: int) -> list[bytes]:
    """``count`` reply lines (ids and reasons here hold no LF)."""
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data.splitlines(keepends=True)


def exchange(running: Running, data: bytes, count: int) -> list[bytes]:
    with connect(running) as sock:
        sock.sendall(data)
        return read_lines(sock, count)


def test_user_story_rule_then_job(shared_server: Running) -> None:
    data = (
        b"0 RULE SET app.rule.default app. shell scripts/example.sh\n1 SET app.domain.job.1 "
        + WHEN
        + b"\n"
    )
    assert exchange(shared_server, data, 2) == [b"0 OK\n", b"1 OK\n"]


def test_blank_line_gets_error_and_connection_survives(shared_server: Running) -> None:
    """Fault 1: empty lines, one-word lines and bad escapes killed the connection and lost
    the replies it still owed."""
    data = b"V0 SET j " + WHEN + b'\n\n   \nA\nB "x\\n"\nV1 SET j ' + WHEN + b"\n"
    assert exchange(shared_server, data, 6) == [
        b"V0 OK\n",
        b'"" ERROR invalid "empty message: expected an identifier and an instruction"\n',
        b'"" ERROR invalid "empty message: expected an identifier and an instruction"\n',
        b'A ERROR invalid "missing instruction after the identifier"\n',
        b'B ERROR invalid "invalid escape \\\\n in a quoted string"\n',
        b"V1 OK\n",
    ]


def test_stray_quote_is_bounded_and_owed_replies_are_sent_before_closing(
    shared_server: Running,
) -> None:
    """Fault 2: a stray quote swallowed every later line, with no size limit."""
    with connect(shared_server) as sock:
        sock.sendall(b"V0 SET j " + WHEN + b'\nX SET "' + b"y\n" * 2100)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received == b'V0 OK\nX ERROR invalid "message longer than 4096 bytes without an LF"\n'


def test_line_without_lf_is_bounded(shared_server: Running) -> None:
    with connect(shared_server) as sock:
        sock.sendall(b"z" * 5000)
        received = sock.recv(65536)
        assert received == b'"" ERROR invalid "message longer than 4096 bytes without an LF"\n'
        assert sock.recv(65536) == b"", "then the connection is closed"


def test_utf8_character_split_across_reads(server: Running) -> None:
    """Fault 3: the reference inserted an extra U+FFFD before a split character."""
    pieces = [b"\xc3", b"\xa9 SET caf\xc3", b"\xa9 " + WHEN + b"\n"]
    with connect(server) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.05)
        assert read_lines(sock, 1) == ["é OK\n".encode()]
    server.server.stop()
    assert read_jobs(server.server.data_dir, ["café"])["café"] is not None


def test_reply_id_that_needs_quoting_is_quoted(shared_server: Running) -> None:
    """Fault 4: ids were echoed raw, so a reply to "a b" could not be parsed."""
    data = b'"a b" FOO\n"q\\"" FOO\n"" FOO\nback\\slash FOO\n'
    assert exchange(shared_server, data, 4) == [
        b'"a b" ERROR invalid "unknown instruction \'FOO\'"\n',
        b'"q\\"" ERROR invalid "unknown instruction \'FOO\'"\n',
        b'"" ERROR invalid "unknown instruction \'FOO\'"\n',
        b"back\\slash ERROR invalid \"unknown instruction 'FOO'\"\n",
    ]
    with KcpClient("127.0.0.1", shared_server.port) as client:
        client.send(b'"id\nwith nl" SET j ' + WHEN + b"\n")
        reply = client.reply()
        assert (reply.request_id, reply.arguments) == ("id\nwith nl", ["OK"])


def test_crlf_line_endings_are_accepted(shared_server: Running) -> None:
    """Fault 5: CR became part of the last argument (an error for SET)."""
    data = b"C1 SET j " + WHEN + b"\r\nC2 RULE SET r app. shell scripts/example.sh\r\n"
    assert exchange(shared_server, data, 2) == [b"C1 OK\n", b"C2 OK\n"]


def test_half_close_still_gets_every_reply(shared_server: Running) -> None:
    """Fault 6: after shutdown(SHUT_WR) only the first request was applied, none answered."""
    count = 500
    with connect(shared_server) as sock:
        sock.sendall(
            b"".join(b"H%d SET half.%d %s\n" % (i, i, WHEN) for i in range(count)) + b"T SET x"
        )
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    lines = received.splitlines()
    assert lines[:count] == [b"H%d OK" % i for i in range(count)]
    assert lines[count:] == [b'T ERROR invalid "incomplete message: the input ended before its LF"']


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_client_that_does_not_read_is_backpressured_not_killed(shared_server: Running) -> None:
    """Fault 7: a client that stopped reading made the connection thread panic.

    Each request earns a ~1 KiB reply; 64 MiB of them is more than every kernel buffer on the
    way can hold, so a frontend without backpressure would hold the rest in its own memory.
    """
    count, word = 64 * 1024, b"w" * 1000
    frontend = shared_server.server.child_pid("frontend")
    baseline = _rss_bytes(frontend)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: we do not read
    slow.connect(("127.0.0.1", shared_server.port))
    with slow:
        flood = (b"x " + word + b"\n") * count
        sender = threading.Thread(target=slow.sendall, args=(flood,), daemon=True)
        sender.start()
        time.sleep(1.5)
        assert sender.is_alive(), "the whole flood was read: nothing held the client back"
        assert _rss_bytes(frontend) - baseline < 32 * 1024 * 1024
        with KcpClient("127.0.0.1", shared_server.port) as other:
            assert other.call("SET", "other", "2030-01-01 00:00:00") == ["OK"]
        slow.settimeout(20)
        received = 0
        while received < count:
            chunk = slow.recv(1 << 20)
            assert chunk, "the connection was closed"
            received += chunk.count(b"\n")
        sender.join(10)
    assert received == count


def test_client_reset_with_owed_replies_does_not_hurt_the_server(shared_server: Running) -> None:
    sock = connect(shared_server)
    sock.sendall(b"".join(b"R%d SET reset.%d %s\n" % (i, i, WHEN) for i in range(2000)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    with KcpClient("127.0.0.1", shared_server.port) as client:
        assert client.call("SET", "after.reset", "2030-01-01 00:00:00") == ["OK"]


def test_error_never_overtakes_an_earlier_ok(shared_server: Running) -> None:
    """Fault 8: a malformed request's ERROR was written before an earlier request's OK."""
    data = b"V1 SET j " + WHEN + b"\nV2 BAD\n"
    assert exchange(shared_server, data, 2) == [
        b"V1 OK\n",
        b"V2 ERROR invalid \"unknown instruction 'BAD'\"\n",
    ]


def test_dates_outside_0001_9999_are_refused(shared_server: Running) -> None:
    """Fault 9: such dates got OK, were stored wrapped around, and broke the restart."""
    data = b'D1 SET j "+10000-01-01 00:00:00"\nD2 SET j "-0001-12-31 23:59:59"\n'
    reason = b': the year must be within 0001-9999"\n'
    assert exchange(shared_server, data, 2) == [
        b"D1 ERROR invalid \"invalid date '+10000-01-01 00:00:00'" + reason,
        b"D2 ERROR invalid \"invalid date '-0001-12-31 23:59:59'" + reason,
    ]


def test_shell_rule_outside_the_allow_list_is_forbidden(shared_server: Running) -> None:
    replies = exchange(
        shared_server, b"F RULE SET r app. shell /bin/rm\nG RULE SET r app. shell ../x.sh\n", 2
    )
    assert all(
        line.startswith(b"F ERROR forbidden ") or line.startswith(b"G ERROR forbidden ")
        for line in replies
    )
    assert b"runners.shell.allow" in replies[0]


def test_accept_failures_do_not_stop_the_frontend(server: Running) -> None:
    """Fault 20: an accept() error such as EMFILE made the reference controller panic."""
    frontend = server.server.child_pid("frontend")
    open_fds = len(list(Path(f"/proc/{frontend}/fd").iterdir()))
    resource.prlimit(frontend, resource.RLIMIT_NOFILE, (open_fds + 5, open_fds + 5))
    crowd = [connect(server) for _ in range(30)]
    for sock in crowd:
        sock.close()

    def served() -> bool:
        # Until the frontend has closed its side of the crowd, it is still out of descriptors,
        # and uvloop (libuv) then accepts and closes whatever waits in the backlog: a client
        # arriving in that moment is reset, and tries again.
        try:
            with KcpClient("127.0.0.1", server.port) as client:
                return client.call("SET", "after.emfile", "2030-01-01 00:00:00") == ["OK"]
        except ConnectionError:
            return False

    assert eventually(served)
    assert server.server.process is not None and server.server.process.poll() is None


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_idle_connections_cost_no_cpu(shared_server: Running) -> None:
    """Fault 22: every idle connection busy-polled every 100 µs."""
    frontend = shared_server.server.child_pid("frontend")
    idle = [connect(shared_server) for _ in range(100)]
    try:
        time.sleep(0.2)
        before = _cpu_ticks(frontend)
        time.sleep(1.0)
        assert _cpu_ticks(frontend) - before <= 3  # ticks of 10 ms: nothing but noise
    finally:
        for sock in idle:
            sock.close()
