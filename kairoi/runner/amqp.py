"""The adapter for AMQP brokers (aio-pika): publish a job id, confirmed, or say why not.

One connection per DSN, at most ``max_connections`` open: the least recently used idle one is
closed to make room (a connection with publishes under way is never closed under them; a new
DSN waits for one to go idle). Each connection has one channel with publisher confirms, so a
publish succeeds only once the broker has taken the message; messages are persistent and
mandatory, so one that no queue would receive is a failure, not a silent loss. Any failure of
the connection or channel drops it; the next publish opens a new one. Passwords never appear
in reasons or logs.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from kairoi import log
from kairoi.domain import mask_dsn

_log = log.get("kairoi.runner.amqp")


class _Broker:
    """A connection to one DSN, its confirming channel and the exchanges checked on it."""

    def __init__(self, connection: AbstractConnection, channel: AbstractChannel) -> None:
        self.connection = connection
        self.channel = channel
        self.exchanges: dict[str, AbstractExchange] = {}


class AmqpPublisher:
    def __init__(
        self, max_connections: int = 16, connect_timeout: float = 5.0, publish_timeout: float = 5.0
    ) -> None:
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._publish_timeout = publish_timeout
        self._brokers: OrderedDict[str, _Broker] = OrderedDict()  # least recently used first
        self._opening: dict[str, asyncio.Task[_Broker]] = {}
        self._connecting = 0  # openings admitted under the bound, not yet in _brokers
        self._users: Counter[str] = Counter()  # publishes under way, from their very start
        self._idle = asyncio.Condition()

    @property
    def open_connections(self) -> int:
        return len(self._brokers) + self._connecting

    async def publish(self, dsn: str, exchange: str, routing_key: str, body: bytes) -> str:
        """Publish ``body``; "" once the broker confirmed it, else the reason it was not."""
        self._users[dsn] += 1  # before any await: its connection is in use from now on
        try:
            try:
                broker = await self._broker(dsn)
            except Exception as exc:  # every failure becomes the run's reason
                return f"cannot connect to {mask_dsn(dsn)}: {_describe(exc)}"
            return await self._publish(dsn, broker, exchange, routing_key, body)
        finally:
            self._users[dsn] -= 1
            if not self._users[dsn]:
                del self._users[dsn]
                async with self._idle:
                    self._idle.notify_all()

    async def _publish(
        self, dsn: str, broker: _Broker, exchange: str, routing_key: str, body: bytes
    ) -> str:
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        try:
            target = await self._exchange(broker, exchange)
            await asyncio.wait_for(
                target.publish(message, routing_key, mandatory=True), self._publish_timeout
            )
        except aio_pika.exceptions.PublishError:
            return f"unroutable: no queue is bound to exchange {exchange!r} for {routing_key!r}"
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return f"exchange {exchange!r} does not exist on {mask_dsn(dsn)}"
        except TimeoutError:
            await self._drop(dsn, broker)
            return f"no confirmation from {mask_dsn(dsn)} within {self._publish_timeout:g}s"
        except Exception as exc:  # any other failure: drop the connection, say why
            await self._drop(dsn, broker)
            return f"publishing to {mask_dsn(dsn)} failed: {_describe(exc)}"
        return ""

    async def _exchange(self, broker: _Broker, name: str) -> AbstractExchange:
        if name == "":
            return broker.channel.default_exchange
        if name not in broker.exchanges:
            await asyncio.wait_for(self._check_exchange(broker, name), self._publish_timeout)
            broker.exchanges[name] = await broker.channel.get_exchange(name, ensure=False)
        return broker.exchanges[name]

    async def _check_exchange(self, broker: _Broker, name: str) -> None:
        """A passive declare (the exchange must exist) on a channel of its own: when the
        broker answers NOT_FOUND it closes that channel, not the one others publish on."""
        channel = await broker.connection.channel()
        try:
            await channel.get_exchange(name, ensure=True)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def _broker(self, dsn: str) -> _Broker:
        broker = self._brokers.get(dsn)
        if broker is not None and not broker.connection.is_closed and not broker.channel.is_closed:
            self._brokers.move_to_end(dsn)
            return broker
        if broker is not None:
            await self._drop(dsn, broker)
        opening = self._opening.get(dsn)
        if opening is None:  # no await between the look and the registration: one opener
            opening = self._opening[dsn] = asyncio.create_task(self._connect(dsn))
        return await asyncio.shield(opening)

    async def _connect(self, dsn: str) -> _Broker:
        """Open a connection for ``dsn`` once there is room; every waiter gets it."""
        try:
            await self._make_room()
            try:
                broker = self._brokers[dsn] = await self._open(dsn)
                return broker
            finally:
                self._connecting -= 1
                async with self._idle:
                    self._idle.notify_all()
        finally:
            del self._opening[dsn]

    async def _make_room(self) -> None:
        """Wait for room under the bound (closing an idle connection if need be), take it."""
        async with self._idle:
            while self.open_connections >= self._max:
                idle = next((d for d in self._brokers if d not in self._users), None)
                if idle is not None:
                    _log.info("amqp.connection_evicted", dsn=mask_dsn(idle))
                    await self._drop(idle, self._brokers[idle])
                else:
                    await self._idle.wait()
            self._connecting += 1

    async def _open(self, dsn: str) -> _Broker:
        connection = await asyncio.wait_for(aio_pika.connect(dsn), self._connect_timeout)
        try:
            channel = await asyncio.wait_for(
                connection.channel(publisher_confirms=True, on_return_raises=True),
                self._connect_timeout,
            )
        except BaseException:
            await connection.close()
            raise
        _log.info("amqp.connected", dsn=mask_dsn(dsn))
        return _Broker(connection, channel)

    async def _drop(self, dsn: str, broker: _Broker) -> None:
        if self._brokers.get(dsn) is broker:
            del self._brokers[dsn]
        try:
            await asyncio.wait_for(broker.connection.close(), self._connect_timeout)
        except Exception as exc:  # it is going away either way
            _log.debug("amqp.close_failed", dsn=mask_dsn(dsn), reason=_describe(exc))

    async def close(self) -> None:
        for dsn, broker in list(self._brokers.items()):
            await self._drop(dsn, broker)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aio_pika.exceptions.ProbableAuthenticationError):
        return "authentication refused (user or password)"
    if isinstance(
        exc, aiormq.exceptions.ChannelAccessRefused | aiormq.exceptions.ConnectionNotAllowed
    ):
        return f"access refused: {exc}"
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")[:300]
