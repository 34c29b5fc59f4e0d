"""The AMQP runner against the real RabbitMQ: confirmed, never lost, failures said plainly."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kairoi.domain import JobStatus
from tests.conftest import Running, start_server
from tests.support import eventually
from tests.support_amqp import Queue
from tests.system.test_fire import final_jobs, send, statuses

PAST = '"2020-01-01 00:00:00"'


@pytest.fixture
def queue(rabbitmq: str) -> Iterator[Queue]:
    created = Queue(rabbitmq)
    yield created
    created.delete()


@pytest.fixture
def amqp_server(tmp_path: Path, rabbitmq: str) -> Iterator[Running]:
    running = start_server(
        tmp_path,
        {
            "runners": {"lease": 2.0},
            "runners.amqp": {"connect_timeout": 2.0, "publish_timeout": 2.0},
        },
    )
    yield running
    running.server.stop()


def rule(queue: Queue, pattern: str, dsn: str | None = None, exchange: str | None = None,
         routing_key: str | None = None) -> str:  # fmt: skip
    return (
        f'RULE SET r.{pattern} {pattern} amqp "{dsn or queue.dsn}" '
        f'"{queue.exchange if exchange is None else exchange}" {routing_key or queue.routing_key}'
    )


def recorded(running: Running, job_id: str) -> list[dict[str, Any]]:
    """Storage's `run.recorded` events for ``job_id`` (its outcome is stored), once there is one."""

    def found() -> list[dict[str, Any]]:
        return [e for e in running.server.events("run.recorded", "storage") if e["job"] == job_id]

    return eventually(found, timeout=20)


def test_a_thousand_jobs_due_at_once_are_published_and_executed(
    amqp_server: Running, queue: Queue
) -> None:
    job_ids = [f"amqp.burst.{i}" for i in range(1000)]
    replies = send(amqp_server, [rule(queue, "amqp.burst."), *(f"SET {j} {PAST}" for j in job_ids)])
    assert all(reply.endswith(b" OK") for reply in replies)
    received = queue.take(1000)
    assert sorted(received) == sorted(job_ids), "exactly those ids, each once"
    jobs = final_jobs(amqp_server, job_ids)
    assert set(statuses(jobs).values()) == {JobStatus.EXECUTED}


def test_an_unreachable_broker_fails_the_run_then_delivers_once_fixed(
    amqp_server: Running, queue: Queue
) -> None:
    unreachable = queue.dsn.replace(":5672/", ":1/")
    send(amqp_server, [rule(queue, "amqp.down.", dsn=unreachable), f"SET amqp.down.1 {PAST}"])
    (failure,) = recorded(amqp_server, "amqp.down.1")
    assert failure["status"] == "FAILED"
    assert failure["reason"].startswith("cannot connect to amqp://guest:***@127.0.0.1:1/")
    assert "refused" in failure["reason"].lower()
    assert send(amqp_server, [rule(queue, "amqp.down."), f"SET amqp.down.1 {PAST}"]) == [
        b"0 OK",
        b"1 OK",
    ]
    assert queue.take(1) == ["amqp.down.1"]
    jobs = final_jobs(amqp_server, ["amqp.down.1"])
    job = jobs["amqp.down.1"]
    assert job is not None and job.status is JobStatus.EXECUTED and job.run == 2


def test_unknown_exchange_and_unroutable_message_fail_with_the_reason(
    amqp_server: Running, queue: Queue
) -> None:
    send(amqp_server, [
        rule(queue, "amqp.noex.", exchange="kairoi.test.absent"),
        rule(queue, "amqp.noroute.", routing_key="nobody-listens"),
        f"SET amqp.noex.1 {PAST}",
        f"SET amqp.noroute.1 {PAST}",
    ])  # fmt: skip
    (no_exchange,) = recorded(amqp_server, "amqp.noex.1")
    (no_route,) = recorded(amqp_server, "amqp.noroute.1")
    assert no_exchange["reason"].startswith("exchange 'kairoi.test.absent' does not exist")
    assert no_route["reason"].startswith("unroutable: no queue is bound")
    assert queue.take(1, timeout=0.5) == []
    jobs = final_jobs(amqp_server, ["amqp.noex.1", "amqp.noroute.1"])
    assert set(statuses(jobs).values()) == {JobStatus.FAILED}


def test_passwords_never_reach_the_logs(amqp_server: Running, queue: Queue) -> None:
    secret_dsn = "amqp://guest:t0p-s3cret@127.0.0.1:1/"
    send(amqp_server, [rule(queue, "amqp.secret.", dsn=secret_dsn), f"SET amqp.secret.1 {PAST}"])
    recorded(amqp_server, "amqp.secret.1")
    time.sleep(0.2)
    log = amqp_server.server.log_path.read_text()
    assert "t0p-s3cret" not in log
    assert "guest:***@127.0.0.1:1" in log


def test_a_malformed_dsn_is_refused_when_the_rule_is_set(amqp_server: Running) -> None:
    replies = send(amqp_server, [
        'RULE SET r p amqp "http://broker/" ex rk',
        'RULE SET r p amqp "amqp://guest:pw@host:99999/" ex rk',
        'RULE SET r p amqp "amqp://" ex rk',
    ])  # fmt: skip
    assert (
        replies[0]
        == b"0 ERROR invalid \"invalid AMQP DSN 'http://broker/': the scheme must be amqp:// or amqps://\""
    )
    assert replies[1].startswith(
        b"1 ERROR invalid \"invalid AMQP DSN 'amqp://guest:***@host:99999/'"
    )
    assert b"pw" not in replies[1]
    assert replies[2].startswith(b"2 ERROR invalid \"invalid AMQP DSN 'amqp://': it names no host")


def test_a_silent_broker_does_not_hold_up_other_brokers(amqp_server: Running, queue: Queue) -> None:
    """Fault 15: the reference published on its one dispatch thread, so a slow broker stalled
    every run."""
    with socket.socket() as silent:  # accepts connections (kernel backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        silent_dsn = f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}/"
        lines = [rule(queue, "amqp.slow.", dsn=silent_dsn), rule(queue, "amqp.fast.")]
        lines += [f"SET amqp.slow.{i} {PAST}" for i in range(3)]
        lines += [f"SET amqp.fast.{i} {PAST}" for i in range(50)]
        started = time.monotonic()
        send(amqp_server, lines)
        assert len(queue.take(50, timeout=10)) == 50
        assert time.monotonic() - started < 1.5, "delivered while the silent broker hangs"
        (stalled,) = recorded(amqp_server, "amqp.slow.0")
    assert stalled["status"] == "FAILED"
    assert "timed out" in stalled["reason"]


def test_publishes_are_not_held_up_by_busy_shell_slots(tmp_path: Path, queue: Queue) -> None:
    """Runs of each kind have slots of their own: a runner whose one script slot is taken
    still publishes at once."""
    running = start_server(tmp_path, {"runners.shell": {"concurrency": 1}})
    try:
        (tmp_path / "scripts" / "slow.sh").write_text("sleep 5\n")
        send(running, ["RULE SET s slow. shell scripts/slow.sh", f"SET slow.1 {PAST}"])
        time.sleep(0.5)  # the script has its slot
        lines = [rule(queue, "amqp.busy.")] + [f"SET amqp.busy.{i} {PAST}" for i in range(200)]
        started = time.monotonic()
        send(running, lines)
        assert len(queue.take(200, timeout=4)) == 200
        assert time.monotonic() - started < 3, "published while the script slot was busy"
    finally:
        running.server.stop()
