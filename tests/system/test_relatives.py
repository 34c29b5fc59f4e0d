"""Jobs that run after others, through `kairoi serve` over KCP: a cycle of AFTER parents is
refused (findings: two jobs ran each other forever after one TRIGGER), and UNSET CASCADE of
a wide fan-out answers without holding storage up (it took ~15 ms a child, and a deep chain
raised RecursionError). No process restarts; the connection and the other jobs stay."""

from __future__ import annotations

from pathlib import Path

from kairoi.client.kcp import KcpClient
from tests.conftest import start_server
from tests.support import pipeline, read_jobs

LATER = "2030-01-01 00:00:00"
PROCESSES = ("storage", "frontend", "dispatcher")


def test_after_cycles_are_refused_and_a_wide_cascade_is_answered(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    try:
        pids = {name: running.server.child_pid(name) for name in PROCESSES}
        replies = pipeline(running.port, [
            f'SET p0.cyB "{LATER}"', "SET p0.cyA AFTER p0.cyB", "SET p0.cyB AFTER p0.cyA",
            "SET p0.cyA AFTER p0.cyB p0.cyA", "TRIGGER p0.cyA", f'SET kept "{LATER}"',
        ])  # fmt: skip
        assert replies[:2] == [b"0 OK", b"1 OK"]
        cycle = "'p0.cyB' running after 'p0.cyA' would make a cycle: p0.cyB → p0.cyA → p0.cyB"
        assert replies[2] == f'2 ERROR invalid "{cycle}"'.encode()
        assert replies[3] == b"3 ERROR invalid \"job 'p0.cyA' cannot run after itself\""
        assert replies[4:] == [b"4 OK", b"5 OK"]
        fan = [f'SET fan "{LATER}"'] + [f"SET fan.{n} AFTER fan" for n in range(3_000)]
        assert set(pipeline(running.port, fan)) == {b"%d OK" % n for n in range(len(fan))}
        with KcpClient("127.0.0.1", running.port) as client:
            assert client.call("UNSET", "fan")[:2] == ["ERROR", "conflict"]
            assert client.call("UNSET", "fan", "CASCADE") == ["OK"]
            assert client.call("GET", "fan.2999")[:2] == ["ERROR", "not_found"]
            assert client.call("GET", "p0.cyB")[:2] == ["OK", "planned"]
            assert client.call("PING") == ["OK", "PONG"]
        assert {name: running.server.child_pid(name) for name in PROCESSES} == pids
    finally:
        running.server.stop()
    saved = read_jobs(running.server.data_dir, ["kept", "p0.cyA", "fan", "fan.0"])
    assert saved["kept"] and saved["p0.cyA"] and not saved["fan"] and not saved["fan.0"]
