"""A channel in confirm mode: publish many messages at once, learn each one's fate.

Every ``publish`` of one loop turn goes out in a single write. The broker confirms by
delivery tag, often many at once (``multiple``), so a confirm costs little however many are
in flight. A message that no queue takes comes back (``Basic.Return``, matched by its
message id) before its confirm, and fails. A message not confirmed within ``timeout`` fails,
and so does everything in flight when the channel or connection ends.
"""

from __future__ import annotations

import asyncio
import time

from pamqp import commands as spec
from pamqp.base import Frame

from kairoi.amqp import frames
from kairoi.amqp.connection import ChannelHandler, Connection

REFUSED = "the broker refused the message (basic.nack)"


class ConfirmingChannel(ChannelHandler):
    def __init__(self, connection: Connection, timeout: float) -> None:
        self._connection = connection
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self.number = 0
        self.ended: str | None = None
        """Why the channel ended, once it has."""
        self._tag = 0
        self._pending: dict[int, tuple[asyncio.Future[str], bytes, float]] = {}
        """tag -> (outcome, message id, deadline), in publishing order: the first is the
        oldest unconfirmed message, whose deadline comes first."""
        self._tags_by_message_id: dict[bytes, int] = {}
        self._returned: dict[int, str] = {}  # tag -> why the broker returned it
        self._return_reason: str | None = None  # of the Basic.Return whose header comes next
        self._outbox: list[bytes] = []
        self._publish_methods: dict[tuple[str, str], bytes] = {}
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    async def open(cls, connection: Connection, timeout: float) -> ConfirmingChannel:
        channel = cls(connection, timeout)
        channel.number = await connection.open_channel(channel)
        await connection.rpc(channel.number, spec.Confirm.Select())
        return channel

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def publish(
        self, exchange: str, routing_key: str, body: bytes, message_id: bytes
    ) -> asyncio.Future[str]:
        """A future of "" once the broker confirmed the message, else of the reason it failed."""
        outcome: asyncio.Future[str] = self._loop.create_future()
        if self.ended is not None:
            outcome.set_result(self.ended)
            return outcome
        self._tag += 1
        self._pending[self._tag] = (outcome, message_id, time.monotonic() + self._timeout)
        self._tags_by_message_id[message_id] = self._tag
        if not self._outbox:
            self._loop.call_soon(self._flush)
        self._outbox.append(self._publish_method(exchange, routing_key))
        self._outbox.append(
            frames.content(self.number, body, message_id, self._connection.frame_max)
        )
        if self._timer is None:
            self._timer = self._loop.call_later(self._timeout, self._check_deadlines)
        return outcome

    def _publish_method(self, exchange: str, routing_key: str) -> bytes:
        key = (exchange, routing_key)
        if (encoded := self._publish_methods.get(key)) is None:
            encoded = self._publish_methods[key] = frames.publish_method(
                self.number, exchange, routing_key
            )
        return encoded

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        self._connection.write(b"".join(outbox))

    # What the broker says.

    def confirmed(self, confirm: frames.Confirm) -> None:
        if confirm.multiple:
            tags = []
            for tag in self._pending:
                if tag > confirm.delivery_tag:
                    break
                tags.append(tag)
        else:
            tags = [confirm.delivery_tag]
        for tag in tags:
            entry = self._pending.pop(tag, None)
            returned = self._returned.pop(tag, None)
            if entry is None:
                continue
            outcome, message_id, _ = entry
            if self._tags_by_message_id.get(message_id) == tag:
                del self._tags_by_message_id[message_id]
            if not outcome.done():
                outcome.set_result(returned or (REFUSED if confirm.refused else ""))

    def method(self, value: Frame) -> None:
        if isinstance(value, spec.Basic.Return):
            self._return_reason = (
                f"unroutable: no queue is bound to exchange {value.exchange!r} for "
                f"{value.routing_key!r}" if value.reply_code == 312
                else f"returned by the broker: {value.reply_code} {value.reply_text}"
            )  # fmt: skip

    def content_header(self, value: Frame) -> None:
        reason, self._return_reason = self._return_reason, None
        message_id = getattr(getattr(value, "properties", None), "message_id", None)
        if reason is not None and message_id is not None:
            tag = self._tags_by_message_id.get(message_id.encode())
            if tag is not None:
                self._returned[tag] = reason

    def closed(self, reason: str) -> None:
        self.ended = reason
        self._fail_all(reason)

    # Deadlines.

    def _check_deadlines(self) -> None:
        self._timer = None
        oldest = next(iter(self._pending.values()), None)
        if oldest is None:
            return
        _, _, deadline = oldest
        if deadline <= time.monotonic():
            self.ended = f"no confirmation within {self._timeout:g}s"
            self._fail_all(self.ended)
            self._connection.abort(self.ended)  # a broker this slow is not to be trusted
        else:
            self._timer = self._loop.call_later(deadline - time.monotonic(), self._check_deadlines)

    def _fail_all(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for outcome, _, _ in pending.values():
            if not outcome.done():
                outcome.set_result(reason)
        self._tags_by_message_id.clear()
        self._returned.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
