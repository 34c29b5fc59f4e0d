"""The AMQP runner's publisher: a job id to an exchange, confirmed, or the reason why not.

One connection per DSN, at most ``max_connections`` open: the least recently used idle one is
closed to make room (a connection with publishes under way is never closed under them; a new
DSN waits for one to go idle). Each connection has one channel in confirm mode, so a publish
succeeds only once the broker has taken the message; messages are persistent and mandatory,
so one that no queue would receive is a failure, not a silent loss. An exchange is checked
once per connection (a passive declare on a channel of its own), before the first publish to
it. Any failure of the connection or its channel drops it; the next publish opens a new one.
Passwords never appear in reasons or logs.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from pamqp import commands as spec

from kairoi import log
from kairoi.amqp.connection import AmqpError, ChannelHandler, Connection
from kairoi.amqp.dsn import mask_dsn, parse_dsn
from kairoi.amqp.publishing import ConfirmingChannel

_log = log.get("kairoi.runner.amqp")


class _Broker:
    """A connection to one DSN, its confirming channel and the exchanges checked on it."""

    def __init__(self, connection: Connection, channel: ConfirmingChannel) -> None:
        self.connection = connection
        self.channel = channel
        self.exchanges: dict[str, asyncio.Future[str]] = {}  # name -> "" or why it is unusable

    @property
    def usable(self) -> bool:
        return self.connection.is_open and self.channel.ended is None


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
        self._released = asyncio.Event()  # set whenever a connection may have become idle
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def open_connections(self) -> int:
        return len(self._brokers) + self._connecting

    async def publish(
        self, dsn: str, exchange: str, routing_key: str, body: bytes, message_id: str
    ) -> str:
        """Publish ``body``; "" once the broker confirmed it, else the reason it was not.
        ``message_id`` tells a returned message from the others in flight: keep it unique."""
        self._users[dsn] += 1  # before any await: its connection is in use from now on
        try:
            try:
                broker = await self._broker(dsn)
            except AmqpError as exc:
                return f"cannot connect to {mask_dsn(dsn)}: {exc}"
            if unusable := await self._exchange(dsn, broker, exchange):
                return unusable
            outcome = broker.channel.publish(exchange, routing_key, body, message_id.encode())
            reason = await outcome
            if not reason or broker.usable:  # confirmed, or returned or refused: it answered
                return reason
            await self._drop(dsn, broker)
            return f"publishing to {mask_dsn(dsn)} failed: {reason}"
        finally:
            self._release(dsn)

    def publish_at_once(
        self,
        dsn: str,
        exchange: str,
        routing_key: str,
        body: bytes,
        message_id: str,
        *,
        then: Callable[[str], None],
    ) -> bool:
        """Publish now, without a task, when the connection is open and the exchange known
        to exist; ``then`` gets what ``publish`` would return. False: nothing was done, call
        ``publish``."""
        if not self.ready(dsn, exchange):
            return False
        broker = self._brokers[dsn]
        if exchange and broker.exchanges[exchange].result():
            return False  # the exchange is missing: publish says so
        self._users[dsn] += 1
        self._brokers.move_to_end(dsn)
        outcome = broker.channel.publish(exchange, routing_key, body, message_id.encode())

        def settled(outcome: asyncio.Future[str]) -> None:
            self._release(dsn)
            reason = outcome.result()
            if reason and not broker.usable:
                self._spawn(self._drop(dsn, broker))
                reason = f"publishing to {mask_dsn(dsn)} failed: {reason}"
            then(reason)

        outcome.add_done_callback(settled)
        return True

    def _release(self, dsn: str) -> None:
        self._users[dsn] -= 1
        if not self._users[dsn]:
            del self._users[dsn]
            self._released.set()  # its connection may now be closed to make room

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def ready(self, dsn: str, exchange: str) -> bool:
        """Whether a publish to ``exchange`` on ``dsn`` would go out at once."""
        broker = self._brokers.get(dsn)
        if broker is None or not broker.usable:
            return False
        check = broker.exchanges.get(exchange)
        return exchange == "" or (check is not None and check.done())

    async def prepare(self, dsn: str, exchange: str) -> None:
        """Open the connection and check the exchange ahead of a publish, so that the publish
        itself goes out at once; a failure here is only found again (and told) by it."""
        self._users[dsn] += 1
        try:
            await self._exchange(dsn, await self._broker(dsn), exchange)
        except AmqpError:
            pass
        finally:
            self._release(dsn)

    async def _exchange(self, dsn: str, broker: _Broker, name: str) -> str:
        """ "" if ``name`` exists on the broker (checked once per connection), else why not."""
        if name == "":
            return ""
        check = broker.exchanges.get(name)
        if check is not None and check.done():
            return check.result()
        if check is None:  # the first to ask checks; the others share its answer
            check = broker.exchanges[name] = asyncio.ensure_future(
                self._check_exchange(dsn, broker, name)
            )
        return await asyncio.shield(check)

    async def _check_exchange(self, dsn: str, broker: _Broker, name: str) -> str:
        """A passive declare on a channel of its own: when the broker answers NOT_FOUND it
        closes that channel, not the one others publish on."""
        try:
            async with asyncio.timeout(self._publish_timeout):
                channel = await broker.connection.open_channel(ChannelHandler())
                declare = spec.Exchange.Declare(exchange=name, passive=True)
                await broker.connection.rpc(channel, declare)
                await broker.connection.close_channel(channel)
            return ""
        except AmqpError as exc:
            del broker.exchanges[name]  # not cached: the exchange may be declared later
            if "404" in str(exc):
                return f"exchange {name!r} does not exist on {mask_dsn(dsn)}"
            return f"checking exchange {name!r} on {mask_dsn(dsn)} failed: {exc}"
        except TimeoutError:
            del broker.exchanges[name]
            return (
                f"checking exchange {name!r} on {mask_dsn(dsn)} timed out after "
                f"{self._publish_timeout:g}s"
            )

    async def _broker(self, dsn: str) -> _Broker:
        """The open connection for ``dsn``, opened (by one caller, for all) if need be."""
        broker = self._brokers.get(dsn)
        if broker is not None and broker.usable:
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
                self._released.set()
        finally:
            del self._opening[dsn]

    async def _make_room(self) -> None:
        """Wait for room under the bound (closing an idle connection if need be), take it.
        The room is taken in the same loop turn as the count is read: no other opener can
        take it in between."""
        while self.open_connections >= self._max:
            idle = next((d for d in self._brokers if d not in self._users), None)
            if idle is not None:
                _log.info("amqp.connection_evicted", dsn=mask_dsn(idle))
                await self._drop(idle, self._brokers[idle])
            else:
                self._released.clear()
                await self._released.wait()
        self._connecting += 1

    async def _open(self, dsn: str) -> _Broker:
        connection = await Connection.open(parse_dsn(dsn), self._connect_timeout)
        try:
            async with asyncio.timeout(self._connect_timeout):
                channel = await ConfirmingChannel.open(connection, self._publish_timeout)
        except TimeoutError:
            await connection.close()
            timeout = self._connect_timeout
            raise AmqpError(f"opening a channel timed out after {timeout:g}s") from None
        except BaseException:
            await connection.close()
            raise
        _log.info("amqp.connected", dsn=mask_dsn(dsn))
        return _Broker(connection, channel)

    async def _drop(self, dsn: str, broker: _Broker) -> None:
        if self._brokers.get(dsn) is broker:
            del self._brokers[dsn]
        await broker.connection.close()

    async def close(self) -> None:
        for dsn, broker in list(self._brokers.items()):
            await self._drop(dsn, broker)
