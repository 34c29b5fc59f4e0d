"""One AMQP 0-9-1 connection: handshake (PLAIN), channels, heartbeats, and closing.

Frames for a channel go to its ``ChannelHandler``; a channel waits for at most one
synchronous reply at a time (``rpc``). Whatever ends the connection (the broker closing it,
a lost socket, missed heartbeats) ends every channel with the reason, in words.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any, cast

from pamqp import commands as spec
from pamqp.base import Frame

from kairoi import log
from kairoi.amqp import frames
from kairoi.amqp.dsn import Endpoint

_log = log.get("kairoi.amqp")
CHANNEL_MAX = 2047
FRAME_MAX = 131_072
_CAPABILITIES = {
    "authentication_failure_close": True,  # a refused login is a Connection.Close that says so
    "publisher_confirms": True,
    "connection.blocked": True,
}


class AmqpError(Exception):
    """The connection or channel failed; the message is the reason, fit for a run's outcome."""


class ChannelHandler:
    """What a channel's owner hears: frames other than replies, and its end."""

    def confirmed(self, confirm: frames.Confirm) -> None:
        """A ``Basic.Ack`` or ``Basic.Nack`` for publisher confirms."""

    def method(self, value: Frame) -> None:
        """An asynchronous method (``Basic.Return``, ``Basic.Deliver``, ...)."""

    def content_header(self, value: Frame) -> None:
        """The content header that follows ``Basic.Return`` or ``Basic.Deliver``."""

    def content_body(self, body: bytes) -> None:
        """A body frame of that content."""

    def closed(self, reason: str) -> None:
        """The channel is gone; nothing more will come."""


class Connection(asyncio.Protocol):
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.frame_max = FRAME_MAX
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self.closed: asyncio.Future[str] = self._loop.create_future()
        """Done, with the reason, once the connection has ended."""
        self._handlers: dict[int, ChannelHandler] = {}
        self._replies: dict[int, asyncio.Future[Frame]] = {}
        self._heartbeat = 0
        self._last_read = self._last_write = time.monotonic()
        self._heartbeat_timer: asyncio.TimerHandle | None = None

    @classmethod
    async def open(cls, endpoint: Endpoint, timeout: float) -> Connection:
        """Connect, log in and open the vhost within ``timeout`` seconds; AmqpError if not."""
        loop = asyncio.get_running_loop()
        tls = ssl.create_default_context() if endpoint.tls else None
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: cls(endpoint), endpoint.host, endpoint.port, ssl=tls
                )
                try:
                    await asyncio.shield(connection._opened)
                except BaseException:
                    connection.abort("the connection was not opened")
                    raise
        except TimeoutError:
            raise AmqpError(f"timed out after {timeout:g}s") from None
        except OSError as exc:
            raise AmqpError(exc.strerror or str(exc)) from None
        return connection

    @property
    def is_open(self) -> bool:
        return self._opened.done() and not self.closed.done()

    # Channels.

    async def open_channel(self, handler: ChannelHandler) -> int:
        number = next(n for n in range(1, CHANNEL_MAX + 1) if n not in self._handlers)
        self._handlers[number] = handler
        try:
            await self.rpc(number, spec.Channel.Open())
        except BaseException:
            self._handlers.pop(number, None)
            raise
        return number

    async def close_channel(self, number: int) -> None:
        if number in self._handlers and self.is_open:
            await self.rpc(number, spec.Channel.Close(200, "done", 0, 0))
        self._end_channel(number, "closed by us")

    async def rpc(self, channel: int, request: Frame) -> Frame:
        """Send a synchronous method on ``channel`` and wait for the broker's reply."""
        if self.closed.done():
            raise AmqpError(self.closed.result())
        if channel not in self._handlers:
            raise AmqpError(f"channel {channel} is closed")
        reply: asyncio.Future[Frame] = self._loop.create_future()
        self._replies[channel] = reply
        self.write(frames.method(channel, request))
        return await reply

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self.closed.done():
            self._transport.write(data)
            self._last_write = time.monotonic()

    async def close(self) -> None:
        """Close politely (the broker confirms); abort if it does not answer in time."""
        if self.closed.done():
            return
        if self.is_open:
            self.write(frames.method(0, spec.Connection.Close(200, "bye", 0, 0)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed), 2.0)
        self.abort("closed by us")

    def abort(self, reason: str) -> None:
        self._finish(reason)
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport.write(frames.PROTOCOL_HEADER)

    def data_received(self, data: bytes) -> None:
        self._last_read = time.monotonic()
        self._buffer += data
        try:
            for kind, channel, payload in frames.split(self._buffer):
                self._frame(kind, channel, payload)
        except frames.FrameError as exc:
            self.abort(f"protocol error: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._opened.done() and not self.closed.done():
            self._finish("the broker closed the connection during the handshake")
        self._finish(f"connection lost: {exc}" if exc else "connection lost")

    # Incoming frames.

    def _frame(self, kind: int, channel: int, payload: bytes) -> None:
        if kind == frames.METHOD:
            value = frames.decode_method(payload)
            if isinstance(value, frames.Confirm):
                if (handler := self._handlers.get(channel)) is not None:
                    handler.confirmed(value)
            elif channel == 0:
                self._connection_method(value)
            else:
                self._channel_method(channel, value)
        elif kind == frames.CONTENT_HEADER and (handler := self._handlers.get(channel)):
            handler.content_header(frames.decode_content_header(payload))
        elif kind == frames.CONTENT_BODY and (handler := self._handlers.get(channel)):
            handler.content_body(payload)
        # Heartbeats need nothing: every frame counts as a sign of life.

    def _connection_method(self, value: Frame) -> None:
        match value:
            case spec.Connection.Start():
                self._start(value)
            case spec.Connection.Tune():
                self._tune(value)
            case spec.Connection.OpenOk():
                self._opened.set_result(None)
                self._beat()
            case spec.Connection.Close(reply_code=code, reply_text=text):
                self.write(frames.method(0, spec.Connection.CloseOk()))
                self.abort(f"the broker closed the connection: {code} {text}")
            case spec.Connection.CloseOk():
                self.abort("closed by us")
            case spec.Connection.Blocked(reason=reason):
                _log.warning("amqp.blocked", host=self.endpoint.host, reason=reason)
            case spec.Connection.Unblocked():
                _log.info("amqp.unblocked", host=self.endpoint.host)
            case _:
                _log.warning("amqp.unexpected", frame=value.name)

    def _start(self, start: spec.Connection.Start) -> None:
        mechanisms = (start.mechanisms or "").split()
        if "PLAIN" not in mechanisms:
            self.abort(f"the broker does not offer PLAIN login (it offers {mechanisms})")
            return
        endpoint = self.endpoint
        properties: dict[str, Any] = {
            "product": "kairoi",
            "connection_name": endpoint.name,
            "capabilities": _CAPABILITIES,
        }
        self.write(
            frames.method(
                0,
                spec.Connection.StartOk(
                    client_properties=properties,
                    mechanism="PLAIN",
                    response=f"\0{endpoint.user}\0{endpoint.password}",
                    locale="en_US",
                ),
            )
        )

    def _tune(self, tune: spec.Connection.Tune) -> None:
        self.frame_max = min(tune.frame_max or FRAME_MAX, FRAME_MAX)
        self._heartbeat = self.endpoint.heartbeat
        ok = spec.Connection.TuneOk(
            channel_max=min(tune.channel_max or CHANNEL_MAX, CHANNEL_MAX),
            frame_max=self.frame_max,
            heartbeat=self._heartbeat,
        )
        opening = spec.Connection.Open(virtual_host=self.endpoint.vhost)
        self.write(frames.method(0, ok) + frames.method(0, opening))

    def _channel_method(self, channel: int, value: Frame) -> None:
        if isinstance(value, spec.Channel.Close):
            self.write(frames.method(channel, spec.Channel.CloseOk()))
            self._end_channel(channel, f"the broker closed the channel: {value.reply_code} "
                                       f"{value.reply_text}")  # fmt: skip
            return
        reply = self._replies.get(channel)
        if reply is not None and _is_reply(value):
            del self._replies[channel]
            if not reply.done():
                reply.set_result(value)
            if isinstance(value, spec.Channel.CloseOk):
                self._end_channel(channel, "closed by us")
        elif (handler := self._handlers.get(channel)) is not None:
            handler.method(value)

    def _end_channel(self, channel: int, reason: str) -> None:
        reply = self._replies.pop(channel, None)
        if reply is not None and not reply.done():
            reply.set_exception(AmqpError(reason))
        handler = self._handlers.pop(channel, None)
        if handler is not None:
            handler.closed(reason)

    def _finish(self, reason: str) -> None:
        """The connection is over: every waiter and channel learns why, once."""
        if self.closed.done():
            return
        self.closed.set_result(reason)
        if not self._opened.done():
            self._opened.set_exception(AmqpError(reason))
            self._opened.exception()  # retrieved: open() may have stopped waiting
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
        for channel in list(self._handlers):
            self._end_channel(channel, reason)

    # Heartbeats: send one when we have been quiet, give up when the broker has been.

    def _beat(self) -> None:
        if not self._heartbeat or self.closed.done():
            return
        now = time.monotonic()
        if now - self._last_read > 2 * self._heartbeat:
            self.abort(f"no heartbeat from the broker for {2 * self._heartbeat}s")
            return
        if now - self._last_write >= self._heartbeat / 2:
            self.write(frames.HEARTBEAT)
        self._heartbeat_timer = self._loop.call_later(self._heartbeat / 2, self._beat)


def _is_reply(value: Frame) -> bool:
    """Synchronous replies are the methods whose names end in Ok (and Basic.GetEmpty)."""
    return value.name.endswith("Ok") or value.name == "Basic.GetEmpty"
