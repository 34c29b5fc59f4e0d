"""The frontend process: KCP over TCP, forwarding requests to storage.

Every request gets a slot in its connection's reply queue, in arrival order; replies are
written strictly in that order as their slots fill, so an early error never overtakes an
earlier OK. Backpressure instead of buffering: a connection stops being read while it is owed
``controller.max_pending`` replies, while they hold their bytes' bound (its own, or all
connections' together: replies.MAX_OWED_BYTES, MAX_TOTAL_OWED_BYTES), or while its client is
not reading what it is sent.
"""

from __future__ import annotations

import asyncio
import signal
from collections import deque
from typing import Any, TypeVar, assert_never, cast

from kairoi import log, messages
from kairoi.bus import ControlServer, RequestClient
from kairoi.config import Config, parse_listen
from kairoi.errors import InvalidRequest, KairoiError
from kairoi.frontend import kcp
from kairoi.frontend.control_door import ControlDoor
from kairoi.frontend.gateway import Gateway, supervised
from kairoi.frontend.instructions import InstructionReader, Local
from kairoi.frontend.job_loader import JobFileLoader
from kairoi.frontend.replies import (
    INTERNAL_SUFFIX,
    MAX_OWED_BYTES,
    MAX_TOTAL_OWED_BYTES,
    AnySlot,
    OwedBytes,
    SetsSlot,
    Slot,
    reserved_bytes,
)
from kairoi.runtime import stop_on_signals
from kairoi.scripts import ScriptPolicy

_log = log.get("kairoi.frontend")
SHUTDOWN_GRACE_SECONDS = 3.0
"""Less than the supervisor's stop timeout, so owed replies go out before any SIGKILL."""
SlotT = TypeVar("SlotT", Slot, SetsSlot)


class Connection(asyncio.Protocol):
    def __init__(self, frontend: Frontend) -> None:
        self._frontend = frontend
        self._parser = kcp.Parser(frontend.config.controller.max_line_bytes)
        self._max_pending = frontend.config.controller.max_pending
        self._slots: deque[AnySlot] = deque()
        self._owed = 0  # replies in the slots (a slot of SETs holds many)
        self._transport: asyncio.Transport | None = None
        self._read_paused = self._write_paused = False
        self._closing = False  # answer what is owed, read nothing more, then close
        self._eof = False
        self._bytes = OwedBytes(frontend.owed_bytes)  # what the owed replies hold, or may
        self._backlog = False  # parsed input left unread while too many bytes were owed

    @property
    def owed(self) -> int:
        return self._owed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)
        self._frontend.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._slots.clear()
        self._owed = 0
        self._bytes.add(-self._bytes.value)
        self._bytes.total = None  # a reply that comes after the close counts in no total
        self._frontend.forget(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._parser.feed(data)
        self._read_requests()
        self.deliver()

    def eof_received(self) -> bool:
        self._eof = True  # what is buffered is still read, then the connection closes
        self._read_requests()
        self.deliver()
        return True  # keep writing: a half-closed client is still owed its replies

    def pause_writing(self) -> None:
        self._write_paused = True
        self._steer_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self.deliver()  # reads on what waits in the parser, if anything does

    def _may_read(self) -> bool:
        """Whether more requests may be read: the client reads its replies, and those owed
        hold less than their bound, this connection's and (if it owes any) all together."""
        owed = self._bytes.value
        return (
            not self._write_paused
            and owed < MAX_OWED_BYTES
            and (not owed or self._frontend.owed_bytes.value < MAX_TOTAL_OWED_BYTES)
        )

    def stop(self) -> None:
        """Shutting down: read nothing more, answer what is owed, then close."""
        self._closing = True
        self.deliver()

    def deliver(self) -> None:
        """Write every reply at the head of the queue that is ready, in request order; read
        on what waits in the parser once the replies owed hold less than their bound."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._write_ready(transport)
        if self._backlog and self._may_read():
            self._read_requests()
            self._write_ready(transport)
        if self._closing and not self._slots:
            transport.close()  # after what was written has been sent
        else:
            self._steer_reading()

    def _write_ready(self, transport: asyncio.Transport) -> None:
        slots, ready = self._slots, []
        while slots and slots[0].line is not None:
            slot = slots.popleft()
            self._owed -= slot.size
            self._bytes.add(-slot.reserved)
            ready.append(slot.line)
        if ready:
            transport.write(b"".join(ready))  # type: ignore[arg-type]

    def _read_requests(self) -> None:
        """Read the parsed requests while the replies owed may grow. A fault reading one
        answers it ``ERROR internal``; a fault of the parser itself closes the connection,
        once what is owed has been written. Both are logged with their traceback."""
        batch: list[tuple[AnySlot, messages.Request]] = []
        self._backlog = False
        while not self._closing:
            if not self._may_read():
                self._backlog = True  # left in the parser until replies go out
                break
            try:
                parsed = self._parser.next()
            except Exception:
                _log.exception("kcp.parse_failed")
                self._closing = True
                break
            if parsed is None:
                if self._eof:
                    self._finish()
                break
            try:
                self._read_parsed(parsed, batch)
            except Exception:
                _log.exception("kcp.request_failed")
                self._answer_internal(parsed)
        if batch:
            self._frontend.gateway.submit(self, batch)  # a fault there answers the slots

    def _answer_internal(self, parsed: kcp.Parsed) -> None:
        ids = parsed.request_ids if isinstance(parsed, kcp.SetLines) else (parsed.request_id,)
        for request_id in ids:
            prefix = kcp.reply_prefix(request_id)
            self._owe(Slot(prefix, prefix + INTERNAL_SUFFIX))

    def _finish(self) -> None:
        """The client sent its last byte: answer a message left without its LF, then close."""
        self._closing = True
        incomplete = self._parser.finish()
        if incomplete is not None:
            self._answer_malformed(incomplete)

    def _read_parsed(
        self, parsed: kcp.Parsed, batch: list[tuple[AnySlot, messages.Request]]
    ) -> None:
        match parsed:
            case kcp.SetLines():
                self._read_sets(parsed, batch)
            case kcp.Message():
                self._read_message(parsed, batch)
            case kcp.Malformed():
                self._answer_malformed(parsed)
            case _:
                assert_never(parsed)

    def _read_sets(
        self, lines: kcp.SetLines, batch: list[tuple[AnySlot, messages.Request]]
    ) -> None:
        """A run of ``SET <job> <when>`` lines as one request. A fault in that (pure) pass
        costs only speed: the lines are read again one by one, each answered on its own."""
        try:
            read = self._frontend.instructions.read_sets(lines.job_ids, lines.whens)
        except Exception:
            _log.exception("kcp.sets_read_failed", requests=len(lines.request_ids))
            read = None
        if read is None:  # not all reference times, or a fault: one line at a time
            for message in lines.messages():
                self._read_message(message, batch)
            return
        request, refused = read
        sets = self._owe(SetsSlot(lines.request_ids, refused))
        if request is not None:
            batch.append((sets, request))

    def _read_message(
        self, message: kcp.Message, batch: list[tuple[AnySlot, messages.Request]]
    ) -> None:
        prefix = kcp.reply_prefix(message.request_id)
        try:
            asked = self._frontend.instructions.read(message.arguments)
        except KairoiError as exc:
            self._owe(Slot(prefix, prefix + kcp.error_suffix(exc.code, exc.reason)))
            return
        except Exception:  # a bug reading one request must not cost the connection
            _log.exception("kcp.request_failed", request=prefix.decode())
            self._owe(Slot(prefix, prefix + INTERNAL_SUFFIX))
            return
        if isinstance(asked, Local):
            self._owe(Slot(prefix, prefix + asked.suffix))
        elif (reserved := reserved_bytes(asked, prefix)) > MAX_OWED_BYTES:
            self._owe(Slot(prefix, prefix + kcp.error_suffix("invalid", _too_long(prefix))))
        else:
            batch.append((self._owe(Slot(prefix, reserved=reserved, owed=self._bytes)), asked))

    def _owe(self, slot: SlotT) -> SlotT:
        self._slots.append(slot)
        self._owed += slot.size
        self._bytes.add(slot.reserved)
        return slot

    def _answer_malformed(self, malformed: kcp.Malformed) -> None:
        error = InvalidRequest(malformed.reason)
        prefix = kcp.reply_prefix(malformed.request_id)
        self._owe(Slot(prefix, prefix + kcp.error_suffix(error.code, error.reason)))
        if malformed.fatal:
            self._closing = True

    def _steer_reading(self) -> None:
        transport = self._transport
        if transport is None or self._eof or transport.is_closing():
            return
        pause = (
            self._closing or self._backlog or self._owed >= self._max_pending
            or not self._may_read()
        )  # fmt: skip
        if pause and not self._read_paused:
            transport.pause_reading()
            self._read_paused = True
        elif not pause and self._read_paused and self._owed <= self._max_pending // 2:
            transport.resume_reading()
            self._read_paused = False


def _too_long(prefix: bytes) -> str:
    """Why a listing is refused whose request id, repeated on each line, could make its reply
    longer than a connection may be owed."""
    return (f"a listing with a request id of {len(prefix) - 1} bytes could pass the "
            f"{MAX_OWED_BYTES} bytes a connection may be owed: use a shorter request id, or "
            "a smaller LIMIT")  # fmt: skip


class Frontend:
    def __init__(
        self, config: Config, client: RequestClient, control_server: ControlServer | None = None
    ) -> None:
        self.config = config
        self.gateway = Gateway(client, config.controller.request_timeout)
        self._control = control_server
        scripts = ScriptPolicy(config.runners.shell.allow)
        self.instructions = InstructionReader(scripts)
        self.job_files = JobFileLoader(config.jobs.files, self.gateway, scripts)
        self.connections: set[Connection] = set()
        self.owed_bytes = OwedBytes()  # of every connection (replies.MAX_TOTAL_OWED_BYTES)
        self.address: tuple[str, int] | None = None
        """Where KCP is served, once it is (port 0 in the configuration picks one)."""
        self.ready = asyncio.Event()
        self._all_closed = asyncio.Event()

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if not self.connections:
            self._all_closed.set()

    async def serve(self, stop: asyncio.Event) -> None:
        host, port = parse_listen(self.config.controller.listen)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Connection(self), host, port, backlog=1024)
        self.address = server.sockets[0].getsockname()[:2]
        _log.info("service.ready", listen=f"{self.address[0]}:{self.address[1]}")
        self.ready.set()
        tasks = [asyncio.create_task(supervised("replies", self.gateway.run))]
        if self._control is not None:
            _log.info("control.ready", endpoint=self._control.endpoint)
            door = ControlDoor(self._control, self.gateway)
            tasks.append(asyncio.create_task(supervised("control", door.run)))
        loop.add_signal_handler(signal.SIGHUP, self.job_files.load_all)
        self.job_files.load_all()
        await stop.wait()
        server.close()
        await self._drain()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self) -> None:
        """Answer every owed reply (or give up after the grace period), then close."""
        owed = sum(connection.owed for connection in self.connections)
        self._all_closed.set()
        _log.info("service.stopping", connections=len(self.connections), owed=owed)
        if self.connections:
            self._all_closed.clear()
            for connection in list(self.connections):
                connection.stop()
        try:
            await asyncio.wait_for(self._all_closed.wait(), SHUTDOWN_GRACE_SECONDS)
        except TimeoutError:
            _log.warning("service.replies_abandoned", connections=len(self.connections))


async def run(config: Config) -> None:
    """Serve KCP and the control bus until SIGTERM or SIGINT."""
    stop = stop_on_signals()
    asyncio.get_running_loop().set_exception_handler(_log_loop_error)
    client = RequestClient(config.storage_endpoint)
    try:
        control_server = ControlServer(config.control_endpoint)
        try:
            await Frontend(config, client, control_server).serve(stop)
        finally:
            control_server.close()
    finally:
        client.close()


def _log_loop_error(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """What the event loop caught (a callback or protocol method that raised), as an event
    with its traceback rather than asyncio's bare log line."""
    _log.error("frontend.callback_failed", reason=context.get("message"),
               exc_info=context.get("exception") or False)  # fmt: skip
