"""The storage process: the only writer of durable state.

Group commit: every request already waiting on the socket joins one batch, written once (with
fsync when ``database.fsync_on_persist``), and only then are the replies sent.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from kairoi import log, messages
from kairoi.bus import ReplyServer
from kairoi.config import Config
from kairoi.errors import StoreError
from kairoi.runtime import IDLE_SECONDS, IdleWatch, ShutdownFlag, release_free_memory
from kairoi.scripts import ScriptPolicy
from kairoi.storage.engine import Engine
from kairoi.storage.rocks import RocksStore

_log = log.get("kairoi.storage")
Batch = list[tuple[bytes, list[messages.Item]]]


def run(config: Config, shutdown: ShutdownFlag) -> None:
    """Serve requests until ``shutdown`` is set; raises StoreError or BusError at start."""
    kv = RocksStore(config.database.path)
    try:
        engine = Engine(
            kv,
            fsync=config.database.fsync_on_persist,
            lease_us=int(config.runners.lease * 1_000_000),
            runs_kept=config.history.runs_per_job,
            scripts=ScriptPolicy(config.runners.shell.allow),
        )
        server = ReplyServer(config.storage_endpoint)
        try:
            server.watch(shutdown.wakeup_fd)
            _log.info(
                "service.ready",
                endpoint=server.endpoint,
                database=config.database.path,
                rules=len(engine.rules),
            )
            storage = Storage(server, engine, config.storage.max_batch)
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
    while not shutdown.requested:
        server.wait(max(1, int((next_check - time.monotonic()) * 1000)))
        storage.serve_waiting()
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + IDLE_SECONDS
            if idle.turned_idle():
                storage.release_memory()


RUNNER_PEERS_KEPT = 1024
"""Runner connections remembered, to tell them of stopped runs (the oldest forgotten first)."""
_FROM_RUNNERS = (messages.RunnerStarted, messages.RenewLeases, messages.RecordOutcome)


class Storage:
    """Group commits over a ReplyServer; wake-ups for the dispatcher; stopped runs for
    whoever may hold them."""

    def __init__(self, server: ReplyServer, engine: Engine, max_batch: int) -> None:
        self._server = server
        self._engine = engine
        self._max_batch = max_batch
        self._dispatcher: bytes | None = None  # whoever claimed last
        self._runners: OrderedDict[bytes, None] = OrderedDict()  # heard from, newest last

    def serve_waiting(self) -> None:
        """Apply every waiting request (up to ``max_batch``) in one commit, then answer all."""
        answered: Batch = []
        count = 0
        while (
            count < self._max_batch
            and not self._engine.replies_full  # large listings: the rest waits its turn
            and (received := self._server.receive_nowait()) is not None
        ):
            peer, items = received
            answered.append((peer, [(c, self._apply(peer, request)) for c, request in items]))
            count += len(items)
        if not answered:
            return
        try:
            self._engine.commit()
        except StoreError as exc:
            _log.error("storage.write_failed", requests=count, reason=str(exc))
            answered = _refuse_applied(answered, str(exc))
        for peer, replies in answered:
            self._server.send(peer, replies)
        self._wake_dispatcher()
        self._announce_stops()

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
