"""The AMQP publisher against the real broker: the connection bound, confirmed publishes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from kairoi.runner.amqp import AmqpPublisher
from tests.support_amqp import Queue


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
