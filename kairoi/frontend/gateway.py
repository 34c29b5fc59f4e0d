"""The frontend's way to storage: requests out in batches, each reply routed to its slot.

Nothing a reply holds may stop the routing: a slot that cannot take its reply is answered
``ERROR internal`` (and the fault logged with its traceback) while the others go on, and the
frontend's long-lived tasks run under ``supervised``, which logs a task's failure and starts it
again instead of leaving every client to time out with no word in the log.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from kairoi import log, messages
from kairoi.bus import RequestClient
from kairoi.errors import MessageError
from kairoi.frontend.replies import INTERNAL, Owed, Sink

_log = log.get("kairoi.frontend")
RETRY_SECONDS = 0.01
"""How often to try again to reach storage while requests wait for it."""
TASK_RESTART_SECONDS = 0.1
"""How long a failed task waits before it starts again (a fault that repeats must not spin)."""


async def supervised(task: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run ``run`` for as long as the process lives: an exception is logged
    (``frontend.task_failed``, with its traceback) and ``run`` started again."""
    while True:
        try:
            await run()
        except Exception:
            _log.exception("frontend.task_failed", task=task)
        else:
            return
        await asyncio.sleep(TASK_RESTART_SECONDS)


def answer(slot: Owed, reply: messages.Message) -> None:
    """Give ``slot`` its reply; if that fails, ``ERROR internal`` instead."""
    try:
        slot.answer(reply)
    except Exception:
        _log.exception("frontend.reply_failed", reply=type(reply).__name__)
        _fallback(slot.answer, INTERNAL)


def expire(slot: Owed) -> None:
    """Answer ``slot`` that storage did not answer in time."""
    try:
        slot.expire()
    except Exception:
        _log.exception("frontend.reply_failed", reply="unavailable")
        _fallback(slot.answer, INTERNAL)


def _fallback(give: Callable[[messages.Message], None], reply: messages.Message) -> None:
    try:
        give(reply)
    except Exception:  # nothing more can be said to this one; the others go on
        _log.exception("frontend.reply_lost", reply=type(reply).__name__)


def deliver(sinks: set[Sink]) -> None:
    """Let each sink write what is ready; one that fails does not stop the others."""
    for sink in sinks:
        try:
            sink.deliver()
        except Exception:
            _log.exception("frontend.deliver_failed", sink=type(sink).__name__)


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

    @property
    def waiting(self) -> int:
        """How many requests sent to storage wait for its reply."""
        return len(self._pending)

    def submit(self, sink: Sink, batch: Sequence[tuple[Owed, messages.Request]]) -> None:
        first = self._last_correlation + 1
        items: list[messages.Item] = [
            (correlation, request) for correlation, (_, request) in enumerate(batch, start=first)
        ]
        try:
            frames = self._client.encode(items)
        except MessageError as exc:
            self._too_large(sink, batch, str(exc))
            return
        except Exception:  # a bug: these slots, never pending, would wait for ever
            _log.exception("storage.submit_failed", requests=len(batch))
            for slot, _ in batch:
                answer(slot, INTERNAL)
            deliver({sink})
            return
        for correlation, (slot, _) in enumerate(batch, start=first):
            self._pending[correlation] = (sink, slot)
        self._last_correlation = last = first + len(batch) - 1
        loop = asyncio.get_running_loop()
        loop.call_later(self._timeout, self._expire, first, last)
        if self._outbox or not self._client.try_send_frames(frames):
            self._outbox.append(items)
            if self._retry is None:
                self._note_reachable(False)
                self._retry = loop.call_later(RETRY_SECONDS, self._send_outbox)

    def _too_large(
        self, sink: Sink, batch: Sequence[tuple[Owed, messages.Request]], reason: str
    ) -> None:
        """A batch over the bus's message size: sent in halves, down to the one request too
        large on its own, refused."""
        if len(batch) > 1:
            half = len(batch) // 2
            self.submit(sink, batch[:half])
            self.submit(sink, batch[half:])
            return
        slot, request = batch[0]
        error = messages.Failed(code="invalid", reason=f"the request is too large: {reason}")
        _log.warning("storage.request_too_large", request=type(request).__name__, reason=reason)
        answer(slot, error)
        deliver({sink})

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
        """Route replies for good (run it under ``supervised``)."""
        while True:
            touched: set[Sink] = set()
            for correlation, reply in await self._client.receive():
                entry = self._pending.pop(correlation, None)
                if entry is None:
                    continue  # already answered `unavailable` on timeout
                sink, slot = entry
                answer(slot, reply)
                touched.add(sink)
            deliver(touched)

    def _expire(self, first: int, last: int) -> None:
        touched: set[Sink] = set()
        for correlation in range(first, last + 1):
            entry = self._pending.pop(correlation, None)
            if entry is not None:
                expire(entry[1])
                touched.add(entry[0])
        if touched:
            _log.warning("storage.timeout", requests=last - first + 1, seconds=self._timeout)
        deliver(touched)

    def _note_reachable(self, reachable: bool) -> None:
        if reachable != self._reachable:
            self._reachable = reachable
            (_log.info if reachable else _log.warning)(
                "storage.reachable" if reachable else "storage.unreachable",
                endpoint=self._client.endpoint,
            )
