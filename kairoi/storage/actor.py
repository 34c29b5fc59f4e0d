"""The storage process: the only writer of durable state.

Group commit: every request already waiting on the socket joins one batch, written once (with
fsync when ``database.fsync_on_persist``), and only then are the replies sent.

A batch that cannot be written (a full disk, an I/O error) is tried again a few times, the
database opened anew before each (RocksDB refuses every write after a failed one until then);
if it still fails, its requests are answered ``internal`` and storage is unwritable (STATS:
``writable=0``, ``write_errors``): each later batch is tried once, the database opened anew at
most every ``REOPEN_SECONDS``, so that writes are taken again by themselves once space is back.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping

from kairoi import log, messages
from kairoi.bus import ReplyServer
from kairoi.config import Config
from kairoi.errors import StoreError
from kairoi.runtime import IDLE_SECONDS, IdleWatch, ShutdownFlag, release_free_memory
from kairoi.scripts import ScriptPolicy
from kairoi.storage.engine import Engine
from kairoi.storage.failures import without_paths
from kairoi.storage.kv import KeyValueStore
from kairoi.storage.rocks import RocksStore

_log = log.get("kairoi.storage")
Batch = list[tuple[bytes, list[messages.Item]]]


def run(config: Config, shutdown: ShutdownFlag) -> None:
    """Serve requests until ``shutdown`` is set; raises StoreError or BusError at start."""
    kv = RocksStore(config.database.path)
    try:

        def open_engine() -> Engine:
            return Engine(
                kv,
                fsync=config.database.fsync_on_persist,
                lease_us=int(config.runners.lease * 1_000_000),
                runs_kept=config.history.runs_per_job,
                scripts=ScriptPolicy(config.runners.shell.allow),
            )

        engine = open_engine()
        server = ReplyServer(config.storage_endpoint)
        try:
            server.watch(shutdown.wakeup_fd)
            _log.info(
                "service.ready",
                endpoint=server.endpoint,
                database=config.database.path,
                rules=len(engine.rules),
            )
            storage = Storage(server, kv, engine, open_engine, config.storage.max_batch,
                              pause_seconds=config.runners.lease / 2)  # fmt: skip
            _serve(storage, server, shutdown)
            storage.serve_waiting()  # what arrived meanwhile
        finally:
            server.close()
    finally:
        kv.close()
    _log.info("service.stopped", signal=shutdown.signal_name)


def _serve(storage: Storage, server: ReplyServer, shutdown: ShutdownFlag) -> None:
    """Serve until shutdown; when storage turns idle after work, give memory back."""
    idle = IdleWatch()
    next_check = time.monotonic() + IDLE_SECONDS
    served_at = time.monotonic()
    while not shutdown.requested:
        waiting_ms = max(1, int((next_check - time.monotonic()) * 1000))
        server.wait(waiting_ms)
        # Longer than the wait since it last served: it was stopped (SIGSTOP), starved, or
        # busy; the runners could not reach it meanwhile.
        storage.stood_still(time.monotonic() - served_at - waiting_ms / 1000)
        storage.serve_waiting()
        served_at = time.monotonic()
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + IDLE_SECONDS
            if idle.turned_idle():
                storage.release_memory()


WRITE_PAUSES = (0.05, 0.2, 0.5)
"""Seconds between the attempts of a batch that could not be written, the database opened
anew before each: well under the frontend's request timeout, so its requests are answered
with the reason."""
REOPEN_SECONDS = 1.0
"""While storage cannot write, the database is opened anew at most this often."""
RUNNER_PEERS_KEPT = 1024
"""Runner connections remembered, to tell them of stopped runs (the oldest forgotten first)."""
_FROM_RUNNERS = (messages.RunnerStarted, messages.RenewLeases, messages.RecordOutcome)


class Storage:
    """Group commits over a ReplyServer; wake-ups for the dispatcher; stopped runs for
    whoever may hold them."""

    def __init__(
        self,
        server: ReplyServer,
        kv: KeyValueStore,
        engine: Engine,
        open_engine: Callable[[], Engine],
        max_batch: int,
        *,
        pause_seconds: float = 5.0,
    ) -> None:
        self._server = server
        self._kv = kv
        self._engine = engine
        self._open_engine = open_engine  # over the database opened anew
        self._max_batch = max_batch
        self._pause_seconds = pause_seconds  # standing still this long is being away
        self._dispatcher: bytes | None = None  # whoever claimed last
        self._runners: OrderedDict[bytes, None] = OrderedDict()  # heard from, newest last
        self._reopened = False  # the engine must be built again over what is on disk
        self._closed: str | None = None  # why the database could not be opened again
        self._failing_since: float | None = None  # when writes began to fail
        self._next_reopen = 0.0
        self._writable = True  # the last batch written was written
        self._write_errors = 0  # batches that could not be written, since storage started

    def serve_waiting(self) -> None:
        """Apply every waiting request (up to ``max_batch``) in one commit, then answer all."""
        if not self._engine_ready():
            self._refuse_waiting()
            return
        # Large listings fill the batch's reply budget: the rest waits its turn.
        answered: Batch = [
            (peer, [(c, self._apply(peer, r)) for c, r in items])
            for peer, items in self._waiting(lambda: not self._engine.replies_full)
        ]
        if not answered:
            return
        if (failure := self._commit(sum(map(len, (r for _, r in answered))))) is not None:
            answered = _refuse_applied(answered, failure)
        for peer, replies in answered:
            self._send(peer, replies)
        self._wake_dispatcher()
        self._announce_stops()

    def _refuse_waiting(self) -> None:
        """The database cannot be opened: what is waiting (up to ``max_batch``) is refused."""
        failed = messages.Failed(code="internal", reason=f"not saved: {self._closed}")
        for peer, items in self._waiting(lambda: True):
            self._server.send(peer, [(c, failed) for c, _ in items])

    def _waiting(self, more: Callable[[], bool]) -> Iterator[tuple[bytes, list[messages.Item]]]:
        """The batches waiting on the socket, while ``more()`` and up to ``max_batch``
        requests in all (each batch taken as it is asked for)."""
        count = 0
        while count < self._max_batch and more():
            if (received := self._server.receive_nowait()) is None:
                return
            yield received
            count += len(received[1])

    def _send(self, peer: bytes, replies: list[messages.Item]) -> None:
        """Answer ``peer``; a reply that cannot be encoded (a bug) is answered ``internal``
        alone, and the others still go."""
        try:
            self._server.send(peer, replies)
        except (TypeError, ValueError, OverflowError) as exc:
            _log.error("storage.reply_failed", replies=len(replies), exc_info=exc)
            self._server.send(peer, [(c, _encodable(c, reply)) for c, reply in replies])

    def _engine_ready(self) -> bool:
        """Whether requests can be applied: the database is open (opened anew if it must be),
        and the engine reads what it holds."""
        if self._closed is not None and not self._reopen_if_due():
            return False
        if self._reopened:  # a batch given up on may be on disk after all: read it all again
            try:
                self._engine = self._open_engine()
            except StoreError as exc:
                self._closed = without_paths(str(exc))
                return False
            self._reopened = False
        self._engine.write_errors, self._engine.writable = self._write_errors, self._writable
        return True

    # Writing, and recovering when it fails.

    def _commit(self, requests: int) -> str | None:
        """Write the batch, trying again while it fails (bounded); None once written, else
        the reason (its requests are refused with it)."""
        batch = self._engine.take_batch()
        if not batch:  # nothing to write says nothing of whether storage can
            self._engine.batch_written(True)
            return None
        failure = self._write(batch)
        self._engine.batch_written(failure is None)
        if failure is None:
            if not self._writable:
                down = time.monotonic() - (self._failing_since or time.monotonic())
                _log.info("storage.write_recovered", seconds=round(down, 3),
                          write_errors=self._write_errors)  # fmt: skip
                self._writable, self._failing_since = True, None
            return None
        self._write_errors += 1
        reason = without_paths(str(failure))
        if self._writable:
            _log.error("storage.write_failed", requests=requests, reason=reason,
                       retried=len(WRITE_PAUSES))  # fmt: skip
            self._writable, self._failing_since = False, time.monotonic()
        return f"{reason}; send it again once storage can write"

    def _write(self, batch: Mapping[bytes, bytes | None]) -> StoreError | None:
        if not self._writable:
            self._reopen_if_due()  # the way out of RocksDB's error state
        failure = self._try_write(batch)
        for pause in WRITE_PAUSES if self._writable else ():
            if failure is None:
                break
            time.sleep(pause)
            if self._reopen():
                failure = self._try_write(batch)
        return failure

    def _try_write(self, batch: Mapping[bytes, bytes | None]) -> StoreError | None:
        try:
            self._kv.write(batch, sync=self._engine.fsync)
        except StoreError as exc:
            return exc
        return None

    def _reopen_if_due(self) -> bool:
        if time.monotonic() < self._next_reopen:
            return False
        return self._reopen()

    def _reopen(self) -> bool:
        """Open the database anew; False (and it stays closed) when it cannot be."""
        self._next_reopen = time.monotonic() + REOPEN_SECONDS
        try:
            if not self._kv.reopen():
                return False  # too little space to: it stays open, for reads
        except StoreError as exc:
            self._closed = without_paths(str(exc))
            _log.warning("storage.reopen_failed", reason=self._closed)
            return False
        self._closed, self._reopened = None, True
        return True

    def stood_still(self, seconds: float) -> None:
        """Storage slept ``seconds`` longer than it asked to (stopped, or starved of CPU):
        after a long while, the leases under way get their grace."""
        if seconds >= self._pause_seconds and self._closed is None:
            _log.warning("storage.stood_still", seconds=round(seconds, 3))
            try:
                self._engine.grant_grace()
            except StoreError as exc:
                _log.warning("storage.grace_failed", reason=without_paths(str(exc)))

    def release_memory(self) -> None:
        """Idle: write the memtable out, then give the freed memory back to the system."""
        try:
            self._engine.release_memory()
        except StoreError as exc:
            _log.warning("storage.flush_failed", reason=str(exc))
        release_free_memory()

    def _apply(self, peer: bytes, request: messages.Message) -> messages.Reply:
        if isinstance(request, messages.ClaimDue):
            self._dispatcher = peer
        elif isinstance(request, _FROM_RUNNERS):
            self._runners[peer] = None
            self._runners.move_to_end(peer)
            if len(self._runners) > RUNNER_PEERS_KEPT:
                self._runners.popitem(last=False)
        return self._engine.apply(request)

    def _announce_stops(self) -> None:
        """Every runner and the dispatcher hear of each stopped run: the dispatcher drops it
        if it still holds it (and tells its runners too), a runner kills it if it runs it."""
        stops: list[messages.Item] = [(0, stop) for stop in self._engine.take_stops()]
        if stops:
            peers = [*self._runners, *([self._dispatcher] if self._dispatcher else [])]
            for peer in dict.fromkeys(peers):
                self._server.send(peer, stops)

    def _wake_dispatcher(self) -> None:
        due_us = self._engine.take_wakeup()
        if due_us is not None and self._dispatcher is not None:
            self._server.send(self._dispatcher, [(0, messages.Wakeup(due_us=due_us))])


def _encodable(correlation: int, reply: messages.Message) -> messages.Message:
    try:
        messages.encode([(correlation, reply)])
    except (TypeError, ValueError, OverflowError):
        return messages.Failed(code="internal", reason="storage could not encode its reply")
    return reply


def _refuse_applied(answered: Batch, reason: str) -> Batch:
    """The commit failed: every request that was going to succeed gets an error instead."""
    failed = messages.Failed(code="internal", reason=f"not saved: {reason}")
    return [
        (
            peer,
            [(c, reply if isinstance(reply, messages.Failed) else failed) for c, reply in replies],
        )
        for peer, replies in answered
    ]
