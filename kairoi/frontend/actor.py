"""The frontend process: KCP over TCP, forwarding requests to storage.

Every request gets a slot in its connection's reply queue, in arrival order; replies are
written strictly in that order as their slots fill, so an early error never overtakes an
earlier OK. Backpressure instead of buffering: a connection stops being read while it is owed
``controller.max_pending`` replies or while its client is not reading what it is sent.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from kairoi import log, messages
from kairoi.bus import ControlServer, RequestClient
from kairoi.config import Config, parse_listen
from kairoi.control import protocol as control
from kairoi.errors import InvalidRequest, KairoiError
from kairoi.frontend import jobfiles, kcp
from kairoi.frontend.instructions import InstructionReader, Local
from kairoi.frontend.replies import AnySlot, Owed, SetsSlot, Sink, Slot
from kairoi.runtime import stop_on_signals
from kairoi.scripts import ScriptPolicy

_log = log.get("kairoi.frontend")
SHUTDOWN_GRACE_SECONDS = 3.0
"""Less than the supervisor's stop timeout, so owed replies go out before any SIGKILL."""
RETRY_SECONDS = 0.01
"""How often to try again to reach storage while requests wait for it."""
SlotT = TypeVar("SlotT", Slot, SetsSlot)


class Gateway:
    """Sends requests to storage in batches and routes each reply to its slot.

    While storage is unreachable (starting, restarting), batches wait in an outbox, in order,
    and go out as soon as it is back; a request still unanswered after the request timeout is
    answered ``unavailable``, whether it was sent or not.
    """

    def __init__(self, client: RequestClient, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        self._pending: dict[int, tuple[Sink, Owed]] = {}
        self._outbox: deque[list[messages.Item]] = deque()
        self._retry: asyncio.TimerHandle | None = None
        self._last_correlation = 0
        self._reachable = True

    def submit(self, sink: Sink, batch: Sequence[tuple[Owed, messages.Request]]) -> None:
        first = self._last_correlation + 1
        items: list[messages.Item] = []
        for correlation, (slot, request) in enumerate(batch, start=first):
            self._pending[correlation] = (sink, slot)
            items.append((correlation, request))
        self._last_correlation = last = first + len(batch) - 1
        loop = asyncio.get_running_loop()
        loop.call_later(self._timeout, self._expire, first, last)
        if self._outbox or not self._client.try_send(items):
            self._outbox.append(items)
            if self._retry is None:
                self._note_reachable(False)
                self._retry = loop.call_later(RETRY_SECONDS, self._send_outbox)

    def _send_outbox(self) -> None:
        """Retry what waits for storage, oldest first; requests already expired are left out."""
        self._retry = None
        while self._outbox:
            items = [item for item in self._outbox[0] if item[0] in self._pending]
            if items and not self._client.try_send(items):
                self._retry = asyncio.get_running_loop().call_later(
                    RETRY_SECONDS, self._send_outbox
                )
                return
            self._outbox.popleft()
        self._note_reachable(True)

    async def run(self) -> None:
        while True:
            touched: set[Sink] = set()
            for correlation, reply in await self._client.receive():
                entry = self._pending.pop(correlation, None)
                if entry is None:
                    continue  # already answered `unavailable` on timeout
                connection, slot = entry
                slot.answer(reply)
                touched.add(connection)
            for connection in touched:
                connection.deliver()

    def _expire(self, first: int, last: int) -> None:
        touched: set[Sink] = set()
        for correlation in range(first, last + 1):
            entry = self._pending.pop(correlation, None)
            if entry is not None:
                entry[1].expire()
                touched.add(entry[0])
        if touched:
            _log.warning("storage.timeout", requests=last - first + 1, seconds=self._timeout)
        for connection in touched:
            connection.deliver()

    def _note_reachable(self, reachable: bool) -> None:
        if reachable != self._reachable:
            self._reachable = reachable
            (_log.info if reachable else _log.warning)(
                "storage.reachable" if reachable else "storage.unreachable",
                endpoint=self._client.endpoint,
            )


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
        self._frontend.forget(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._parser.feed(data)
        self._read_requests()
        self.deliver()

    def eof_received(self) -> bool:
        self._eof = self._closing = True
        incomplete = self._parser.finish()
        if incomplete is not None:
            self._answer_malformed(incomplete)
        self.deliver()
        return True  # keep writing: a half-closed client is still owed its replies

    def pause_writing(self) -> None:
        self._write_paused = True
        self._steer_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._steer_reading()

    def stop(self) -> None:
        """Shutting down: read nothing more, answer what is owed, then close."""
        self._closing = True
        self.deliver()

    def deliver(self) -> None:
        """Write every reply at the head of the queue that is ready, in request order."""
        transport, slots = self._transport, self._slots
        if transport is None or transport.is_closing():
            return
        ready = []
        while slots and slots[0].line is not None:
            slot = slots.popleft()
            self._owed -= slot.size
            ready.append(slot.line)
        if ready:
            transport.write(b"".join(ready))  # type: ignore[arg-type]
        if self._closing and not slots:
            transport.close()  # after what was written has been sent
        else:
            self._steer_reading()

    def _read_requests(self) -> None:
        batch: list[tuple[AnySlot, messages.Request]] = []
        reader = self._frontend.instructions
        while (parsed := self._parser.next()) is not None:
            match parsed:
                case kcp.SetLines():
                    read = reader.read_sets(parsed.job_ids, parsed.whens)
                    if read is None:  # not all reference times: one line at a time
                        for message in parsed.messages():
                            self._read_message(message, batch)
                        continue
                    request, refused = read
                    sets = self._owe(SetsSlot(parsed.request_ids, refused))
                    if request is not None:
                        batch.append((sets, request))
                case kcp.Message():
                    self._read_message(parsed, batch)
                case kcp.Malformed():
                    self._answer_malformed(parsed)
                    if parsed.fatal:
                        break
        if batch:
            self._frontend.gateway.submit(self, batch)

    def _read_message(
        self, message: kcp.Message, batch: list[tuple[AnySlot, messages.Request]]
    ) -> None:
        slot = self._owe(Slot(kcp.reply_prefix(message.request_id)))
        try:
            asked = self._frontend.instructions.read(message.arguments)
        except KairoiError as exc:
            slot.line = slot.prefix + kcp.error_suffix(exc.code, exc.reason)
            return
        if isinstance(asked, Local):
            slot.line = slot.prefix + asked.suffix
        else:
            batch.append((slot, asked))

    def _owe(self, slot: SlotT) -> SlotT:
        self._slots.append(slot)
        self._owed += slot.size
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
        pause = self._closing or self._write_paused or self._owed >= self._max_pending
        if pause and not self._read_paused:
            transport.pause_reading()
            self._read_paused = True
        elif not pause and self._read_paused and self._owed <= self._max_pending // 2:
            transport.resume_reading()
            self._read_paused = False


class ControlSlot:
    """A control-bus request's reply: sent as soon as storage answers (each carries its own
    route back, so replies need no order)."""

    __slots__ = ("_envelope", "_request_id", "_server")

    def __init__(self, server: ControlServer, envelope: list[bytes], request_id: Any) -> None:
        self._server = server
        self._envelope = envelope
        self._request_id = request_id

    def answer(self, reply: messages.Message) -> None:
        self._server.send(self._envelope, control.encode_reply(self._request_id, reply))

    def expire(self) -> None:
        reason = "storage did not answer; the outcome is unknown"
        body = control.encode_error(self._request_id, "unavailable", reason)
        self._server.send(self._envelope, body)


class ControlDoor:
    """The control bus: msgpack requests from operators' tools, through storage like KCP's,
    so that a job stopped, disabled or deleted by either door is the same."""

    def __init__(self, server: ControlServer, gateway: Gateway) -> None:
        self._server = server
        self._gateway = gateway

    async def run(self) -> None:
        while True:
            envelope, body = await self._server.receive()
            if body is None:
                reason = "expected a request frame after an empty delimiter frame (use REQ)"
                self._server.send(envelope, control.encode_error(None, "invalid", reason))
                continue
            try:
                request_id, request = control.decode_request(body)
            except control.ControlError as exc:
                body = control.encode_error(exc.request_id, "invalid", exc.reason)
                self._server.send(envelope, body)
                continue
            except Exception as exc:  # a bug must not take the control bus down
                _log.exception("control.request_failed", reason=repr(exc))
                body = control.encode_error(None, "internal", f"cannot read it: {exc!r}")
                self._server.send(envelope, body)
                continue
            self._gateway.submit(self, [(ControlSlot(self._server, envelope, request_id), request)])

    def deliver(self) -> None:
        """Replies went out as they were answered."""


JOB_FILE_RETRY_SECONDS = 2.0
"""How soon a job file is sent again when storage did not answer."""


class JobFileLoader:
    """Loads the job files (``jobs.files``) at start and on SIGHUP: each file is read, checked
    as a whole, and sent to storage as one request; what became of it is logged
    (``jobs.loaded``, or ``jobs.refused`` with the line and the reason)."""

    def __init__(self, paths: tuple[str, ...], gateway: Gateway, scripts: ScriptPolicy) -> None:
        self._paths = paths
        self._gateway = gateway
        self._scripts = scripts

    def load_all(self) -> None:
        for path in self._paths:
            self.load(os.path.abspath(path))

    def load(self, path: str) -> None:
        try:
            text = Path(path).read_text(encoding="utf-8")
            job_file = jobfiles.read(path, text, self._scripts)
        except (OSError, UnicodeDecodeError) as exc:
            _log.error("jobs.refused", file=path, line=0, reason=f"cannot read it: {exc}")
            return
        except jobfiles.FileError as exc:
            _log.error("jobs.refused", file=path, line=exc.line, reason=exc.reason)
            return
        self._gateway.submit(self, [(JobFileSlot(self, job_file), job_file.request)])

    def deliver(self) -> None:
        """Each file's outcome was logged as storage answered."""


class JobFileSlot:
    """A job file sent to storage: its outcome is logged; unanswered, it is sent again."""

    def __init__(self, loader: JobFileLoader, job_file: jobfiles.JobFile) -> None:
        self._loader = loader
        self._file = job_file

    def answer(self, reply: messages.Message) -> None:
        request = self._file.request
        match reply:
            case messages.Ok():
                _log.info("jobs.loaded", file=request.source, jobs=len(request.jobs))
            case messages.Refused(positions=(position, *_), reasons=(reason, *_)):
                job_id = request.jobs[position].job_id
                _log.error("jobs.refused", file=request.source, line=self._file.lines[position],
                           job=job_id, reason=reason)  # fmt: skip
            case messages.Failed(code="unavailable"):
                self.expire()
            case messages.Failed(reason=reason):
                _log.error("jobs.refused", file=request.source, line=0, reason=reason)
            case _:
                _log.error("jobs.refused", file=request.source, line=0, reason=repr(reply))

    def expire(self) -> None:
        source = self._file.request.source
        _log.warning("jobs.unanswered", file=source, retry_in=JOB_FILE_RETRY_SECONDS)
        asyncio.get_running_loop().call_later(JOB_FILE_RETRY_SECONDS, self._loader.load, source)


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
        tasks = [asyncio.create_task(self.gateway.run())]
        if self._control is not None:
            _log.info("control.ready", endpoint=self._control.endpoint)
            tasks.append(asyncio.create_task(ControlDoor(self._control, self.gateway).run()))
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
    client = RequestClient(config.storage_endpoint)
    try:
        control_server = ControlServer(config.control_endpoint)
        try:
            await Frontend(config, client, control_server).serve(stop)
        finally:
            control_server.close()
    finally:
        client.close()
