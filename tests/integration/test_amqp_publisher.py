"""The AMQP publisher against the real broker: the connection bound, confirmed publishes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from kairoi.amqp.publishing import REFUSED
from kairoi.runner.amqp import AmqpPublisher
from tests.support_amqp import Queue
from tests.support_proxy import Proxy


@pytest.fixture
def queue(rabbitmq: str) -> Iterator[Queue]:
    created = Queue(rabbitmq)
    yield created
    created.delete()


def test_twenty_dsns_never_hold_more_than_sixteen_connections(queue: Queue) -> None:
    """The reference's cache lost track of connections (an inverted predicate) and grew."""
    dsns = [f"{queue.dsn}?name=kairoi-test-{i}" for i in range(20)]

    async def publish_everywhere() -> tuple[list[str], int]:
        publisher = AmqpPublisher(max_connections=16, connect_timeout=5, publish_timeout=5)
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, publisher.open_connections)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        try:
            reasons = await asyncio.gather(
                *(
                    publisher.publish(dsn, "", queue.queue, dsn.encode(), f"m{n}")
                    for n, dsn in enumerate(dsns * 3)
                )
            )
        finally:
            watcher.cancel()
            await publisher.close()
        return reasons, peak

    reasons, peak = asyncio.run(publish_everywhere())
    assert set(reasons) == {""}, "every publish was confirmed"
    assert 0 < peak <= 16
    assert sorted(queue.take(60)) == sorted(dsn for n, dsn in enumerate(dsns * 3))


def test_a_dropped_connection_is_opened_again(queue: Queue) -> None:
    async def publish_twice() -> list[str]:
        publisher = AmqpPublisher(max_connections=2, connect_timeout=5, publish_timeout=5)
        try:
            first = await publisher.publish(queue.dsn, queue.exchange, queue.routing_key, b"1", "1")
            for broker in list(publisher._brokers.values()):
                broker.connection.abort("gone")  # as a broker restart would
            second = await publisher.publish(
                queue.dsn, queue.exchange, queue.routing_key, b"2", "2"
            )
            return [first, second]
        finally:
            await publisher.close()

    assert asyncio.run(publish_twice()) == ["", ""]
    assert queue.take(2) == ["1", "2"]


def publish_all(dsn: str, target: Queue, bodies: list[str]) -> list[str]:
    """Publish ``bodies`` at once through a fresh publisher; the reason for each ("" is ok)."""

    async def publish() -> list[str]:
        publisher = AmqpPublisher(connect_timeout=5, publish_timeout=5)
        try:
            return await asyncio.gather(
                *(
                    publisher.publish(dsn, target.exchange, target.routing_key, b.encode(), b)
                    for b in bodies
                )
            )
        finally:
            await publisher.close()

    return asyncio.run(publish())


def test_five_thousand_in_flight_are_all_confirmed_and_delivered(queue: Queue) -> None:
    bodies = [f"many.{i}" for i in range(5000)]
    assert set(publish_all(queue.dsn, queue, bodies)) == {""}
    assert sorted(queue.take(5000)) == sorted(bodies)


def test_a_refused_login_names_the_cause(queue: Queue) -> None:
    (reason,) = publish_all("amqp://guest:wrong@127.0.0.1:5672/", queue, ["x"])
    assert reason.startswith("cannot connect to amqp://guest:***@127.0.0.1:5672/: ")
    assert "403 ACCESS_REFUSED" in reason and "wrong" not in reason


def test_an_unknown_vhost_names_the_cause(queue: Queue) -> None:
    (reason,) = publish_all("amqp://guest:guest@127.0.0.1:5672/kairoi-absent", queue, ["x"])
    assert "530 NOT_ALLOWED" in reason and "kairoi-absent" in reason


def test_a_closed_port_names_the_cause(queue: Queue) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    (reason,) = publish_all(f"amqp://guest:guest@127.0.0.1:{port}/", queue, ["x"])
    assert reason.startswith(f"cannot connect to amqp://guest:***@127.0.0.1:{port}/: ")
    assert "refused" in reason.lower() or "failed" in reason.lower()


def test_a_message_the_broker_refuses_fails(rabbitmq: str) -> None:
    """A full queue that rejects publishes makes the broker nack: the run is not Executed."""
    full = Queue(rabbitmq, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    try:
        assert publish_all(full.dsn, full, ["a", "b"]) == [REFUSED, REFUSED]
    finally:
        full.delete()


def test_a_broker_that_falls_silent_fails_in_flight_publishes_then_recovers(
    queue: Queue,
) -> None:
    proxy = Proxy("127.0.0.1", 5672)
    try:

        async def scenario() -> list[str]:
            publisher = AmqpPublisher(connect_timeout=2, publish_timeout=0.5)
            target = (proxy.dsn, queue.exchange, queue.routing_key)
            try:
                first = await publisher.publish(*target, b"before", "before")
                proxy.hold()
                silent = await asyncio.gather(
                    *(publisher.publish(*target, b"held", f"held.{i}") for i in range(3))
                )
                proxy.release()
                after = await publisher.publish(*target, b"after", "after")
                return [first, *silent, after]
            finally:
                await publisher.close()

        reasons = asyncio.run(scenario())
    finally:
        proxy.close()
    masked = f"amqp://guest:***@127.0.0.1:{proxy.port}/"
    assert reasons[0] == reasons[-1] == ""
    assert reasons[1:4] == [f"publishing to {masked} failed: no confirmation within 0.5s"] * 3


def test_a_dropped_connection_fails_what_was_in_flight_and_reconnects(queue: Queue) -> None:
    proxy = Proxy("127.0.0.1", 5672)
    try:

        async def scenario() -> tuple[list[str], str]:
            publisher = AmqpPublisher(connect_timeout=2, publish_timeout=5)
            target = (proxy.dsn, queue.exchange, queue.routing_key)
            try:
                await publisher.publish(*target, b"warm", "warm")
                proxy.hold()
                in_flight = [
                    asyncio.ensure_future(publisher.publish(*target, b"x", f"x.{i}"))
                    for i in range(3)
                ]
                await asyncio.sleep(0.2)
                proxy.cut()
                proxy.release()
                reasons = await asyncio.gather(*in_flight)
                return reasons, await publisher.publish(*target, b"again", "again")
            finally:
                await publisher.close()

        reasons, again = asyncio.run(scenario())
    finally:
        proxy.close()
    assert all("connection lost" in reason for reason in reasons), reasons
    assert again == ""


def test_an_exchange_deleted_after_its_check_fails_the_publish_with_the_cause(
    queue: Queue,
) -> None:
    async def scenario() -> list[str]:
        publisher = AmqpPublisher(connect_timeout=2, publish_timeout=2)
        target = (queue.dsn, queue.exchange, queue.routing_key)
        try:
            first = await publisher.publish(*target, b"1", "1")
            await asyncio.to_thread(queue.delete)
            second = await publisher.publish(*target, b"2", "2")
            third = await publisher.publish(*target, b"3", "3")
            return [first, second, third]
        finally:
            await publisher.close()

    first, second, third = asyncio.run(scenario())
    assert first == ""
    assert "404 NOT_FOUND" in second and queue.exchange in second
    assert third.startswith(f"exchange {queue.exchange!r} does not exist")
