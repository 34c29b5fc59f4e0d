"""A test's own exchange and queue on the real broker, and reading what reached the queue."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aio_pika


class Queue:
    """A direct exchange and a queue bound to it with ``routing_key``, both the test's own."""

    def __init__(
        self, dsn: str, routing_key: str = "jobs", arguments: dict[str, Any] | None = None
    ) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.dsn = dsn
        self.exchange = f"kairoi.test.{suffix}"
        self.queue = f"kairoi.test.{suffix}"
        self.routing_key = routing_key
        self._arguments = arguments
        asyncio.run(self._declare())

    async def _declare(self) -> None:
        async with await aio_pika.connect(self.dsn) as connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.DIRECT)
            queue = await channel.declare_queue(self.queue, arguments=self._arguments)
            await queue.bind(exchange, self.routing_key)

    def take(self, count: int, timeout: float = 30.0) -> list[str]:
        """The bodies of ``count`` messages (or of all that came within ``timeout``)."""
        return asyncio.run(self._take(count, timeout))

    async def _take(self, count: int, timeout: float) -> list[str]:
        bodies: list[str] = []
        deadline = time.monotonic() + timeout
        async with await aio_pika.connect(self.dsn) as connection:
            queue = await (await connection.channel()).get_queue(self.queue)
            while len(bodies) < count and time.monotonic() < deadline:
                message = await queue.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                else:
                    bodies.append(message.body.decode())
        return bodies

    def delete(self) -> None:
        async def delete() -> None:
            async with await aio_pika.connect(self.dsn) as connection:
                channel = await connection.channel()
                await channel.queue_delete(self.queue)
                await channel.exchange_delete(self.exchange)

        asyncio.run(delete())
