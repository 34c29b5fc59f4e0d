"""What a hostile client found on a real `kairoi serve` (the attack report's findings 3, 4,
6 and its minor ones), and what Kairoi does instead. Each test checks the replies, that the
connection still answers, that acknowledged data is intact and that no process restarted.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Running, start_server

CHILDREN = ("storage", "frontend", "dispatcher", "runner-0")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_server(tmp_path_factory.mktemp("hostile"))
    yield running
    running.server.stop()


def pids(running: Running) -> dict[str, int]:
    return {name: running.server.child_pid(name) for name in CHILDREN}


def test_an_over_long_cron_number_fails_only_its_own_line(running: Running) -> None:
    """Finding 3: a cron number of 5,000 digits made cronsim raise ValueError, and every
    pipelined SET around it was answered ``internal`` and not stored."""
    before = pids(running)
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
    assert pids(running) == before
