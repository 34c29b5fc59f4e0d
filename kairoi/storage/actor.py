"""The storage process: the only writer of durable state.

Group commit: every request already waiting on the socket joins one batch, written once (with
fsync when ``database.fsync_on_persist``), and only then are the replies sent.
"""

from __future__ import annotations

from kairoi import log, messages
from kairoi.bus import ReplyServer
from kairoi.config import Config
from kairoi.errors import StoreError
from kairoi.runtime import ShutdownFlag
from kairoi.storage.engine import Engine
from kairoi.storage.rocks import RocksStore

_log = log.get("kairoi.storage")
Batch = list[tuple[bytes, list[messages.Item]]]


def run(config: Config, shutdown: ShutdownFlag) -> None:
    """Serve requests until ``shutdown`` is set; raises StoreError or BusError at start."""
    kv = RocksStore(config.database.path)
    try:
        engine = Engine(kv, fsync=config.database.fsync_on_persist)
        server = ReplyServer(config.storage_endpoint)
        try:
            server.watch(shutdown.wakeup_fd)
            _log.info(
                "service.ready",
                endpoint=server.endpoint,
                database=config.database.path,
                rules=len(engine.rules),
            )
            while not shutdown.requested:
                server.wait(None)
                serve_waiting(server, engine, config.storage.max_batch)
            serve_waiting(server, engine, config.storage.max_batch)  # what arrived meanwhile
        finally:
            server.close()
    finally:
        kv.close()
    _log.info("service.stopped", signal=shutdown.signal_name)


def serve_waiting(server: ReplyServer, engine: Engine, max_batch: int) -> None:
    """Apply every waiting request (up to ``max_batch``) in one commit, then answer them all."""
    answered: Batch = []
    count = 0
    while count < max_batch and (received := server.receive_nowait()) is not None:
        peer, items = received
        answered.append(
            (peer, [(correlation, engine.apply(request)) for correlation, request in items])
        )
        count += len(items)
    if not answered:
        return
    try:
        engine.commit()
    except StoreError as exc:
        _log.error("storage.write_failed", requests=count, reason=str(exc))
        answered = _refuse_applied(answered, str(exc))
    for peer, replies in answered:
        server.send(peer, replies)


def _refuse_applied(answered: Batch, reason: str) -> Batch:
    """The commit failed: every request that was going to get OK gets an error instead."""
    failed = messages.Failed(code="internal", reason=f"not saved: {reason}")
    return [
        (
            peer,
            [(c, reply if isinstance(reply, messages.Failed) else failed) for c, reply in replies],
        )
        for peer, replies in answered
    ]
