"""Numbers and times that do not fit, through a real `kairoi serve` (issue 13, items 2 and 5):
over KCP, and crafted on the storage socket itself, bypassing the frontend. Every process
keeps its pid, every connection keeps working, nothing refused is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from kairoi import messages
from kairoi.client.kcp import KcpClient
from tests.conftest import Running, start_server
from tests.support import eventually

HUGE = "9" * 5000


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    running = start_server(tmp_path)
    (running.server.workdir / "scripts" / "fail.sh").write_text("exit 3\n")
    yield running
    running.server.stop()


def status(client: KcpClient, job_id: str) -> str:
    return client.call("GET", job_id)[1]


def test_a_job_whose_retries_would_pass_the_calendar_ends_failed_and_can_be_unset(
    running: Running,
) -> None:
    """Item 2: backoff × 2ⁿ overflowed, and storage crash-looped until nothing could be
    served, not even the UNSET of the job."""
    before = running.pids()
    with running.client() as client:
        assert client.call("RULE", "SET", "f", "fail.", "shell", "scripts/fail.sh") == ["OK"]
        far = ["RETRIES", "1000", "BACKOFF"]
        assert client.call("SET", "fail.end", "2020-01-01T00:00:00Z", *far, "P3652059D") == ["OK"]
        assert client.call("SET", "fail.far", "2020-01-01T00:00:00Z", *far, "P1000000D") == ["OK"]
        eventually(lambda: status(client, "fail.end") == "failed")
        eventually(lambda: client.call("GET", "fail.far")[3] == "1")  # ran once, retry planned
        far_state = client.call("GET", "fail.far")
        # now + 1,000,000 days (year 4764), with up to a quarter more of jitter
        assert far_state[1] == "planned" and 4764 <= int(far_state[2][:4]) <= 5450, far_state
        assert client.call("UNSET", "fail.end") == ["OK"]
        assert client.call("UNSET", "fail.far") == ["OK"]
        assert client.call("GET", "fail.end")[:2] == ["ERROR", "not_found"]
    assert running.pids() == before


def test_out_of_range_numbers_and_instants_over_kcp_are_refused_and_the_connection_lives(
    running: Running,
) -> None:
    """Item 2: an instant outside years 1-9999 in UTC was stored and killed the frontend's
    reply routing when shown; a number of thousands of digits closed the connection."""
    before = running.pids()
    refused = [
        ("SET", "j", "0001-01-01T00:00:00+14:00"),
        ("SET", "j", "9999-12-31T23:59:59-14:00"),
        ("SET", "j", "R/9999-12-31T23:59:59-14:00/PT1H"),
        ("SET", "j", "cron:* * * * *", "RETRIES", HUGE, "BACKOFF", "PT1S"),
        ("SET", "j", f"R{HUGE}/2030-01-01T00:00:00Z/PT1S"),
        ("LIST", "LIMIT", HUGE),
        ("OUTPUT", "j", HUGE),
        ("RULE", "SET", "a", "p", "amqp", "amqp://[::1", "x", "k"),
        ("RULE", "SET", "a", "p", "amqp", "amqp://[zz]:99999/", "x", "k"),
    ]
    with running.client() as client:
        assert client.call("SET", "kept", "2030-01-01T00:00:00Z") == ["OK"]
        for words in refused:
            assert client.call(*words)[:2] == ["ERROR", "invalid"], words
        items, last = client.call_list("LIST")
        assert [item[1] for item in items] == ["kept"] and last == ["OK", "1"]
    assert running.pids() == before


def ask_storage(running: Running, requests: list[messages.Message]) -> list[messages.Message]:
    """Send ``requests`` on the storage socket as any local process could; their replies."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.connect(f"ipc://{running.server.runtime_dir}/storage.sock")
    try:
        dealer.send_multipart(messages.encode(list(enumerate(requests))))
        replies: list[messages.Item] = []
        while len(replies) < len(requests):
            assert dealer.poll(10_000), f"storage answered {len(replies)} of {len(requests)}"
            replies += messages.decode(dealer.recv_multipart())
        return [reply for _, reply in sorted(replies, key=lambda item: item[0])]
    finally:
        dealer.close(linger=0)
        context.term()


def test_storage_refuses_crafted_requests_on_its_own_socket(running: Running) -> None:
    """Item 5: the internal bus is a door too: sizes and ranges are checked there as the
    frontend checks them, request by request, without a crash or a stored record."""
    before = running.pids()
    crafted: list[messages.Message] = [
        messages.SetJob(job_id="x" * 1_048_576, due_us=0),
        messages.SetJob(job_id="late", due_us=2**63 - 1),
        messages.ListJobs(prefix="", after=None, limit=-1),
        messages.ListJobs(prefix="", after=None, limit=10**9),
        messages.DefineJob(
            job_id="retry",
            when="cron:* * * * *",
            zone="",
            missed="once",
            overlap="skip",
            retries=10**6,
            backoff_us=1_000_000,
            max_backoff_us=0,
            parents=(),
            all_parents=True,
            runner="",
            arguments=(),
            rule_id="",
            source="",
        ),
        messages.GetOutput(job_id="j", run=-1),
        messages.SetJob(job_id="fine", due_us=1_900_000_000_000_000),
    ]
    replies = ask_storage(running, crafted)
    assert [type(reply).__name__ for reply in replies] == ["Failed"] * 6 + ["Ok"]
    assert all(isinstance(r, messages.Failed) and r.code == "invalid" for r in replies[:-1])
    with running.client() as client:
        items, last = client.call_list("LIST")
        assert [item[1] for item in items] == ["fine"] and last == ["OK", "1"]
        assert client.call("GET", "late")[:2] == ["ERROR", "not_found"]
    assert running.pids() == before
