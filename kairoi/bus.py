"""All of Kairoi's ZeroMQ code: the sockets processes talk over, and nothing else.

Each socket carries batches of ``messages`` items, no frame larger than MAX_MESSAGE_BYTES
(the control bus's requests, MAX_CONTROL_BYTES). A batch that does not decode is logged as
``bus.message_dropped`` and skipped: a bad peer never stops a process. ZeroMQ's own errors
become ``BusError`` here, so no other module imports ``zmq``.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import zmq
import zmq.asyncio

from kairoi import log, messages
from kairoi.errors import BusError, MessageError
from kairoi.runtime import private_directory, private_file

_log = log.get("kairoi.bus")
HIGH_WATER_MARK = 100_000
"""Batches queued per socket and peer before a sender is refused."""
MAX_MESSAGE_BYTES = 512 * 1024 * 1024
"""The largest frame a socket between Kairoi's processes takes (ZMQ_MAXMSGSIZE): a peer that
sends a larger one is disconnected before ZeroMQ holds it. Above the largest legitimate
batch: a claim of ``dispatcher.claim_batch`` (1,000) runs whose ids, rules and arguments are
at their longest (about 320 KiB a run), a lease renewal of 1,024 runs, storage's listings of
one batch (16 MiB). Larger batches of many items go out in parts."""
MAX_CONTROL_BYTES = MAX_MESSAGE_BYTES // 512
"""The control bus's limit (1 MiB): its requests hold a job id (at most 64 KiB) and an id."""


def _ipc_path(endpoint: str) -> str | None:
    scheme, _, path = endpoint.partition("://")
    return path if scheme == "ipc" and not path.startswith("@") else None  # @: abstract


def _prepare(endpoint: str) -> None:
    """Make the directory of an ``ipc://`` endpoint private to this user (created 0700, or
    tightened to it; refused when it is another user's)."""
    path = _ipc_path(endpoint)
    if path is not None and os.path.dirname(path):  # not the working directory itself
        private_directory(os.path.dirname(path))


def _configure(socket: zmq.Socket[Any], linger_ms: int, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
    socket.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
    socket.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
    socket.setsockopt(zmq.LINGER, linger_ms)
    socket.setsockopt(zmq.MAXMSGSIZE, max_bytes)


def _bind(socket: zmq.Socket[Any], endpoint: str, close: Callable[[], None]) -> str:
    """Bind ``socket``; what was really bound (``tcp://HOST:*`` picks a free port)."""
    try:
        _prepare(endpoint)
        socket.bind(endpoint)
        if (path := _ipc_path(endpoint)) is not None:
            private_file(path)  # in a private directory already: this is a second lock
    except (zmq.ZMQError, OSError) as exc:
        close()
        raise BusError(f"cannot bind {endpoint}: {exc}") from exc
    return socket.getsockopt_string(zmq.LAST_ENDPOINT)


def _decode(frames: Sequence[bytes], endpoint: str) -> list[messages.Item] | None:
    try:
        return messages.decode(frames)
    except MessageError as exc:
        _log.warning("bus.message_dropped", endpoint=endpoint, reason=str(exc))
        return None


def _send_now(socket: zmq.asyncio.Socket, frames: list[bytes], endpoint: str) -> bool:
    """Send without waiting; False when the message cannot be queued now."""
    # With NOBLOCK, pyzmq's asyncio socket sends at once and returns a finished future
    # (and keeps the receiving side's edge-triggered wake-ups right, which a send on the
    # plain socket would not).
    sent = socket.send_multipart(frames, zmq.NOBLOCK)
    assert isinstance(sent, asyncio.Future)
    error = sent.exception() if sent.done() else None
    if isinstance(error, zmq.Again):
        return False
    if error is not None:
        raise BusError(f"cannot send on {endpoint}: {error}") from error
    return True


class ReplyServer:
    """Binds a ROUTER socket; receives request batches and answers each to its sender.

    Synchronous: the storage loop waits on it together with other descriptors.
    """

    def __init__(self, endpoint: str, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        self._max_bytes = max_bytes
        _configure(self._socket, linger_ms=1_000, max_bytes=max_bytes)
        self.endpoint = _bind(self._socket, endpoint, self.close)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)

    def watch(self, fd: int) -> None:
        """Make ``wait`` also return when ``fd`` becomes readable."""
        self._poller.register(fd, zmq.POLLIN)

    def wait(self, timeout_ms: int | None) -> None:
        """Block until a batch or a watched descriptor is readable, or the timeout."""
        try:
            self._poller.poll(timeout_ms)
        except zmq.ZMQError as exc:
            if exc.errno != errno.EINTR:  # a signal arrived: the caller checks its flag
                raise BusError(f"poll on {self.endpoint} failed: {exc}") from exc

    def receive_nowait(self) -> tuple[bytes, list[messages.Item]] | None:
        """The next decodable batch and its sender, or None when nothing is waiting."""
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return None
            items = _decode(frames[1:], self.endpoint)
            if items is not None:
                return frames[0], items

    def send(self, peer: bytes, items: Sequence[messages.Item]) -> None:
        """Answer ``peer``; a peer that has gone away is skipped silently."""
        frames = messages.encode(items)
        too_many = len(items) > messages.MAX_BATCH_ITEMS
        if (too_many or len(frames[1]) > self._max_bytes) and len(items) > 1:  # it'd be dropped
            half = len(items) // 2
            self.send(peer, items[:half])
            self.send(peer, items[half:])
            return
        try:
            self._socket.send_multipart([peer, *frames], zmq.NOBLOCK)
        except zmq.Again:
            _log.warning("bus.reply_dropped", endpoint=self.endpoint, items=len(items))

    def close(self) -> None:
        self._socket.close()
        self._context.term()


class RequestClient:
    """Connects a DEALER socket to a ReplyServer, inside an asyncio loop.

    Batches are only queued to a connected server (ZMQ_IMMEDIATE), so ``try_send`` tells at
    once when the server is down instead of queueing requests it would apply much later.
    """

    def __init__(self, endpoint: str, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.endpoint = endpoint
        self._context = zmq.asyncio.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._max_bytes = max_bytes
        _configure(self._socket, linger_ms=0, max_bytes=max_bytes)
        self._socket.setsockopt(zmq.IMMEDIATE, 1)
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise BusError(f"cannot connect to {endpoint}: {exc}") from exc

    def try_send(self, items: Sequence[messages.Item]) -> bool:
        """Queue a batch; False when no server is connected or its queue is full."""
        return self.try_send_frames(self.encode(items))

    def encode(self, items: Sequence[messages.Item]) -> list[bytes]:
        """The frames of a batch; MessageError when they pass the message size or its count
        of items (the server would drop them, and with them every request in flight)."""
        if len(items) > messages.MAX_BATCH_ITEMS:
            raise MessageError(f"{len(items)} items, over the {messages.MAX_BATCH_ITEMS} a "
                               "message may hold")  # fmt: skip
        frames = messages.encode(items)
        if len(frames[1]) > self._max_bytes:
            raise MessageError(f"{len(frames[1])} bytes, over the {self._max_bytes} a "
                               "message may hold")  # fmt: skip
        return frames

    def try_send_frames(self, frames: list[bytes]) -> bool:
        """Queue an encoded batch; False when no server is connected or its queue is full."""
        return _send_now(self._socket, frames, self.endpoint)

    async def receive(self) -> list[messages.Item]:
        """The next decodable batch of replies."""
        while True:
            frames = await self._socket.recv_multipart()
            items = _decode(frames, self.endpoint)
            if items is not None:
                return items

    async def connections(self) -> AsyncIterator[None]:
        """Yield each time a connection to the server is made: at start and after a restart."""
        monitor = self._socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            while True:
                await monitor.recv_multipart()
                yield None
        finally:
            self._socket.disable_monitor()
            monitor.close(linger=0)

    def close(self) -> None:
        """Close every socket of this client (its monitor too) without waiting."""
        self._context.destroy(linger=0)


class Router:
    """Binds a ROUTER socket inside an asyncio loop: batches from many peers, answered or
    sent to any of them by identity (the dispatcher, with its runners)."""

    def __init__(self, endpoint: str) -> None:
        self._context = zmq.asyncio.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        _configure(self._socket, linger_ms=0)
        self.endpoint = _bind(self._socket, endpoint, self.close)

    async def receive(self) -> tuple[bytes, list[messages.Item]]:
        """The next decodable batch and the identity of its sender."""
        while True:
            peer, *frames = await self._socket.recv_multipart()
            items = _decode(frames, self.endpoint)
            if items is not None:
                return peer, items

    def send(self, peer: bytes, items: Sequence[messages.Item]) -> bool:
        """Send to ``peer``; False when its queue is full. A peer that has gone is skipped
        silently (what it held is recovered by lease)."""
        return _send_now(self._socket, [peer, *messages.encode(items)], self.endpoint)

    def close(self) -> None:
        """Close every socket of this client (its monitor too) without waiting."""
        self._context.destroy(linger=0)


class ControlServer:
    """Binds the control bus's ROUTER socket inside an asyncio loop: raw request bodies from
    REQ clients (or DEALERs that send an empty delimiter frame first), each answered to its
    sender. The bodies are the control protocol's, not ``messages``'."""

    def __init__(self, endpoint: str) -> None:
        self._context = zmq.asyncio.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        _configure(self._socket, linger_ms=0, max_bytes=MAX_CONTROL_BYTES)
        self.endpoint = _bind(self._socket, endpoint, self.close)

    async def receive(self) -> tuple[list[bytes], bytes | None]:
        """The next request: its envelope (the route back), and its body (None when the
        message has not the shape of a request: the caller answers that it is invalid)."""
        frames = await self._socket.recv_multipart()
        try:
            delimiter = frames.index(b"", 1)
        except ValueError:
            return frames[:1], None
        envelope, body = frames[: delimiter + 1], frames[delimiter + 1 :]
        return envelope, body[0] if len(body) == 1 else None

    def send(self, envelope: list[bytes], body: bytes) -> None:
        """Answer; a client that has gone away, or does not read, is skipped."""
        _send_now(self._socket, [*envelope, body], self.endpoint)

    def close(self) -> None:
        self._context.destroy(linger=0)


class ControlClient:
    """A REQ socket to the control bus, for ``kairoi ctl``: one request, one answer."""

    def __init__(self, endpoint: str) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.REQ)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # answers from Kairoi
        self.endpoint = endpoint
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise BusError(f"cannot connect to {endpoint}: {exc}") from exc

    def request(self, body: bytes, timeout: float) -> bytes | None:
        """Send ``body``; the answer, or None if none came within ``timeout`` seconds."""
        self._socket.send(body)
        if not self._socket.poll(int(timeout * 1000)):
            return None
        answer: bytes = self._socket.recv()
        return answer

    def close(self) -> None:
        self._context.destroy(linger=0)
