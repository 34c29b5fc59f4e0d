"""The dispatcher process: the clock of Kairoi.

It sleeps until the earliest due time storage announced (minus the lookahead), never polling;
storage wakes it early when an earlier job is set. It claims as many runs as its runners have
free slots for, plus as many again to hand out the moment a slot frees (without a round trip
to storage), and hands each to the runner with the most free slots of that run's kind (shell
or amqp), so a due run never waits behind a busy runner while another is idle. A runner is
never sent more runs of a kind than it has room for. While a claimed run waits here for a
slot, the dispatcher renews its lease, so it is not taken for lost.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import deque
from dataclasses import dataclass

from kairoi import limits, log, messages
from kairoi.bus import RequestClient, Router
from kairoi.clock import Clock, SystemClock
from kairoi.config import Config
from kairoi.runtime import stop_on_signals

_log = log.get("kairoi.dispatcher")
CLAIM_TIMEOUT_SECONDS = 2.0
RETRY_SECONDS = 0.5
RUNNER_SILENCE_SECONDS = 3.0
"""A runner not heard from for this long is gone; what it held comes back by lease."""


def _hello_problem(hello: messages.RunnerHello) -> str | None:
    """Why a runner's hello cannot be taken (None: it can): each kind's slots must be within
    0..limits.MAX_RUNNER_SLOTS and none more free than it has, so one hello cannot claim
    every run."""
    for capacity, free in itertools.zip_longest(hello.capacity, hello.free, fillvalue=0):
        if not 0 <= free <= capacity <= limits.MAX_RUNNER_SLOTS:
            return (f"capacity {capacity} and free {free} must be within 0 and "
                    f"{limits.MAX_RUNNER_SLOTS}, free at most capacity")  # fmt: skip
    return None


@dataclass
class RunnerSlots:
    peer: bytes
    name: str
    capacity: list[int]  # by kind, in the order of messages.RUNNER_KINDS
    free: list[int]
    last_seen: float


class Dispatcher:
    def __init__(
        self, config: Config, storage: RequestClient, router: Router, clock: Clock | None = None
    ) -> None:
        self.instance = uuid.uuid4().hex[:12]
        self._storage = storage
        self._router = router
        self._clock = clock or SystemClock()
        self._lookahead_us = int(config.dispatcher.lookahead * 1_000_000)
        self._claim_batch = config.dispatcher.claim_batch
        self._renew_seconds = config.runners.lease / 3
        self._runners: dict[bytes, RunnerSlots] = {}
        self._queues: list[deque[messages.Execute]] = [
            deque() for _ in messages.RUNNER_KINDS
        ]  # claimed, not yet handed out, by kind (messages.kind_index)
        self._next_due_us: int | None = None
        self._synced = False  # whether storage has told us its next due time since we started
        self._claiming: asyncio.TimerHandle | None = None  # the timeout of the claim in flight
        self._timer: asyncio.TimerHandle | None = None
        self._correlation = 0

    async def serve(self, stop: asyncio.Event) -> None:
        _log.info("service.ready", endpoint=self._router.endpoint, instance=self.instance)
        loops = [self._from_storage(), self._from_runners(), self._on_storage_connect()]
        loops += [self._reap_silent_runners(), self._renew_queued()]
        tasks = [asyncio.create_task(loop) for loop in loops]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        _log.info("service.stopping", unsent=self._queued())

    # Claiming from storage.

    def _maybe_claim(self) -> None:
        if self._claiming is not None:
            return
        room = min(self._room(), self._claim_batch)
        if room <= 0 or (self._queued() and room < self._capacity() // 2):
            return  # enough in hand: claim in batches, not one storage write per run
        wake_us = None if self._next_due_us is None else self._next_due_us - self._lookahead_us
        if self._synced and (wake_us is None or wake_us > self._clock.now_us()):
            self._sleep_until(wake_us)
            return
        self._correlation += 1
        claim = messages.ClaimDue(
            dispatcher=self.instance, lookahead_us=self._lookahead_us, limit=room
        )
        if not self._storage.try_send([(self._correlation, claim)]):
            self._retry_later()
            return
        loop = asyncio.get_running_loop()
        self._claiming = loop.call_later(CLAIM_TIMEOUT_SECONDS, self._claim_lost)

    def _claimed(self, claimed: messages.Claimed) -> None:
        self._end_claim()
        for run in claimed.runs:
            self._queues[messages.kind_index(run.runner)].append(run)
        self._next_due_us = claimed.next_due_us
        self._synced = True
        if claimed.runs:
            _log.debug("runs.claimed", count=len(claimed.runs), next_due_us=claimed.next_due_us)
        self._hand_out()
        self._maybe_claim()

    def _claim_lost(self) -> None:
        _log.warning("storage.timeout", waited=CLAIM_TIMEOUT_SECONDS)
        self._claiming = None
        self._maybe_claim()

    def _end_claim(self) -> None:
        if self._claiming is not None:
            self._claiming.cancel()
            self._claiming = None

    def _retry_later(self) -> None:
        self._synced = False
        self._sleep_until(self._clock.now_us() + int(RETRY_SECONDS * 1_000_000))

    def _sleep_until(self, wake_us: int | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if wake_us is not None:
            delay = max(0.0, (wake_us - self._clock.now_us()) / 1_000_000)
            self._timer = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._maybe_claim()

    async def _from_storage(self) -> None:
        while True:
            for _, message in await self._storage.receive():
                match message:
                    case messages.Claimed():
                        self._claimed(message)
                    case messages.Wakeup(due_us=due_us):
                        if self._next_due_us is None or due_us < self._next_due_us:
                            self._next_due_us = due_us
                        self._maybe_claim()
                    case messages.StopRun():
                        self._stop_run(message)
                    case messages.Ok():
                        pass  # a lease renewal was applied
                    case messages.Failed(reason=reason):
                        _log.error("storage.refused", reason=reason)
                        self._end_claim()
                        self._retry_later()
                    case _:
                        _log.warning("bus.unexpected", message=type(message).__name__)

    def _stop_run(self, stop: messages.StopRun) -> None:
        """A stopped run: never hand it out; its runner (whichever it is) must kill it."""
        for queue in self._queues:
            held = [run for run in queue if (run.job_id, run.run) == (stop.job_id, stop.run)]
            for run in held:
                queue.remove(run)
        for peer in self._runners:
            self._router.send(peer, [(0, stop)])

    async def _on_storage_connect(self) -> None:
        """Storage (re)started: it no longer knows us, so ask it afresh what is due."""
        async for _ in self._storage.connections():
            self._synced = False
            self._end_claim()
            self._maybe_claim()

    # Handing runs to runners.

    def _queued(self) -> int:
        return sum(len(queue) for queue in self._queues)

    def _capacity(self) -> int:
        """Runs the dispatcher may hold ready for slots that are about to free."""
        return sum(sum(runner.capacity) for runner in self._runners.values())

    def _room(self) -> int:
        """Runs to claim: for each kind, its free slots and as many again, less what is held."""
        room = 0
        for kind, queue in enumerate(self._queues):
            free = sum(r.free[kind] + r.capacity[kind] for r in self._runners.values())
            room += max(0, free - len(queue))
        return room

    def _hand_out(self) -> None:
        batches: dict[bytes, list[messages.Item]] = {}
        for kind, queue in enumerate(self._queues):
            while queue and self._runners:
                runner = max(self._runners.values(), key=lambda slots: slots.free[kind])
                free = runner.free[kind]
                if free <= 0:
                    break
                taken = [queue.popleft() for _ in range(min(free, len(queue)))]
                runner.free[kind] -= len(taken)
                batches.setdefault(runner.peer, []).extend((0, run) for run in taken)
        for peer, items in batches.items():
            if not self._router.send(peer, items):
                self._give_back(peer, [run for _, run in items])  # type: ignore[misc]

    def _give_back(self, peer: bytes, runs: list[messages.Execute]) -> None:
        """Runs that could not be sent to ``peer``: first in line again, its slots free."""
        runner = self._runners[peer]
        for run in reversed(runs):
            kind = messages.kind_index(run.runner)
            self._queues[kind].appendleft(run)
            runner.free[kind] += 1

    async def _from_runners(self) -> None:
        while True:
            peer, items = await self._router.receive()
            for _, message in items:
                match message:
                    case messages.RunnerHello():
                        self._hello(peer, message)
                    case messages.SlotsFreed(counts=counts) if peer in self._runners:
                        self._freed(self._runners[peer], counts)
                    case _:
                        continue
            self._hand_out()
            self._maybe_claim()

    @staticmethod
    def _freed(runner: RunnerSlots, counts: tuple[int, ...]) -> None:
        """Slots freed: never more free than the runner's capacity (nor fewer than none)."""
        for kind, count in enumerate(counts[: len(runner.free)]):
            runner.free[kind] = min(runner.capacity[kind], runner.free[kind] + max(0, count))

    def _hello(self, peer: bytes, hello: messages.RunnerHello) -> None:
        runner = self._runners.get(peer)
        if runner is None:
            if (problem := _hello_problem(hello)) is not None:
                _log.warning("runner.hello_refused", name=hello.name[:200], reason=problem)
                return
            kinds = len(messages.RUNNER_KINDS)  # a kind the runner does not name: no slots
            capacity = [*hello.capacity[:kinds], *[0] * (kinds - len(hello.capacity))]
            free = [*hello.free[:kinds], *[0] * (kinds - len(hello.free))]
            self._runners[peer] = RunnerSlots(peer, hello.name, capacity, free, time.monotonic())
            _log.info("runner.joined", name=hello.name, instance=hello.instance, free=hello.free)
        else:
            runner.last_seen = time.monotonic()

    async def _renew_queued(self) -> None:
        """Runs waiting here for a slot are not lost: keep their leases (ours) alive."""
        while True:
            await asyncio.sleep(self._renew_seconds)
            held = [run for queue in self._queues for run in queue]
            if held:
                renew = messages.RenewLeases(
                    owner=f"dispatcher:{self.instance}",
                    job_ids=tuple(run.job_id for run in held),
                    runs=tuple(run.run for run in held),
                )
                self._storage.try_send([(0, renew)])

    async def _reap_silent_runners(self) -> None:
        while True:
            await asyncio.sleep(RUNNER_SILENCE_SECONDS / 3)
            silent_since = time.monotonic() - RUNNER_SILENCE_SECONDS
            for peer, runner in list(self._runners.items()):
                if runner.last_seen < silent_since:
                    del self._runners[peer]
                    _log.warning("runner.lost", name=runner.name)


async def run(config: Config) -> None:
    """Dispatch until SIGTERM or SIGINT."""
    stop = stop_on_signals()
    router = Router(config.dispatcher_endpoint)
    storage = RequestClient(config.storage_endpoint)
    try:
        await Dispatcher(config, storage, router).serve(stop)
    finally:
        storage.close()
        router.close()
