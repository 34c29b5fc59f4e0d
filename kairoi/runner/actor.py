"""A runner process: takes runs from the dispatcher, starts each at its due time, reports.

Flow control is by credit, per kind of run: the runner tells the dispatcher how many runs of
each kind it can take (``RunnerHello`` on every heartbeat, ``SlotsFreed`` as runs end), and the
dispatcher never sends more. Scripts are few at once (each is a process); publishes are many
(each is a message awaiting the broker's confirmation). A run is reported straight to storage
and the report is held in an outbox and sent again until storage acknowledges it (every
second, and at once when storage comes back), however long storage is away; storage ignores a
second copy. A report storage could not save (``internal``: it could not write) is kept and
sent again too, up to ``REPORT_ATTEMPTS`` refusals. The outbox holds at most ``OUTBOX_KEPT``
reports (the oldest dropped first: its run is run again when its lease ends). While a run
lasts, its lease is renewed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from kairoi import limits, log, messages
from kairoi.bus import RequestClient
from kairoi.clock import Clock, SystemClock
from kairoi.config import Config
from kairoi.domain import Outcome
from kairoi.runner.alarm import Alarm
from kairoi.runner.amqp import AmqpPublisher
from kairoi.runner.shell import ScriptResult, ShellScripts, kill_leftovers, runner_key
from kairoi.runtime import stop_on_signals
from kairoi.scripts import ScriptPolicy

_log = log.get("kairoi.runner")
HEARTBEAT_SECONDS = 1.0
RESEND_SECONDS = 1.0
STOP_GRACE_SECONDS = 2.0
COALESCE_SECONDS = 0.0005
WAKE_EARLY_US = 300
REPORT_COALESCE_SECONDS = 0.005
"""Outcomes wait this long for company: fewer, larger writes, and storage stays out of the way
of the runs falling due (the run itself is over; only its record waits)."""
LOG_OUTPUT_BYTES = 4096
"""The most of a run's output its ``run.output`` log line shows (its history keeps more)."""
OUTBOX_KEPT = 100_000
"""Reports storage has not acknowledged yet, held at most (one a run that ended)."""
OUTBOX_BYTES = 256 * 1024 * 1024
"""The output and reasons the outbox may hold in all: past it the oldest report is dropped
(its run runs again when its lease ends), so a long absence of storage cannot exhaust memory."""
RESEND_SHARE = 256
"""Reports sent again in one message: 256 of the largest (1 MiB of output each) stay well
within bus.MAX_MESSAGE_BYTES."""
REPORT_ATTEMPTS = 60
"""Refusals (``internal``) after which a report is dropped: storage cannot record it."""
STOPPED_KEPT = 4096
"""Stopped runs remembered, so that one whose Execute arrives after its stop never starts."""


class Runner:
    def __init__(
        self,
        config: Config,
        name: str,
        dispatcher: RequestClient,
        storage: RequestClient,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.instance = uuid.uuid4().hex[:12]
        self.key = runner_key(config.storage_endpoint, name)
        self.capacity = (config.runners.shell.concurrency, config.runners.amqp.concurrency)
        self._renew_seconds = config.runners.lease / 3
        self._dispatcher = dispatcher
        self._storage = storage
        self._clock = clock or SystemClock()
        self._shell = config.runners.shell
        self._amqp = config.runners.amqp
        self._runs: dict[tuple[str, int], messages.Execute] = {}  # taken: waiting or running
        self._waiting: set[tuple[str, int]] = set()  # taken, not started yet
        self._stopped: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._unacked: dict[int, messages.Request] = {}  # the outbox, oldest first
        self._unacked_bytes = 0  # the output and reasons it holds
        self._refusals: dict[int, int] = {}  # of the requests in it that storage refused
        self._outgoing: list[messages.Item] = []
        self._last_correlation = 0
        self._taken = [0] * len(messages.RUNNER_KINDS)  # runs held, by kind
        self._freed = [0] * len(messages.RUNNER_KINDS)  # slots freed, not yet announced
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def owner(self) -> str:
        return f"runner:{self.name}:{self.instance}"

    async def serve(self, stop: asyncio.Event) -> None:
        shell, amqp = self._shell, self._amqp
        self._scripts = ShellScripts(
            (self.name, self.key, self.instance), ScriptPolicy(shell.allow), shell.timeout,
            shell.output_bytes,
        )  # fmt: skip
        self._publisher = AmqpPublisher(
            amqp.max_connections, amqp.connect_timeout, amqp.publish_timeout
        )
        self._alarm: Alarm[messages.Execute] = Alarm(self._start_all)
        leftovers = kill_leftovers(self.key, self.instance)
        _log.info(
            "service.ready", name=self.name, instance=self.instance, key=self.key,
            capacity=dict(zip(messages.RUNNER_KINDS, self.capacity, strict=True)),
            leftovers_killed=leftovers,
        )  # fmt: skip
        self._request(messages.RunnerStarted(name=self.name, instance=self.instance))
        loops = [
            self._take_work(),
            self._take_acks(),
            self._every(HEARTBEAT_SECONDS, self._hello),
            self._every(self._renew_seconds, self._renew),
            self._every(RESEND_SECONDS, self._resend),
            self._hello_on_connect(),
            self._resend_on_connect(),
        ]
        background = [asyncio.create_task(loop) for loop in loops]
        await stop.wait()
        await self._stop()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        self._scripts.close()
        self._alarm.close()
        await self._publisher.close()

    async def _stop(self) -> None:
        """Kill every script (its run goes to another runner), deliver what is owed, stop."""
        self._stopping = True
        running = len(self._runs)
        self._scripts.kill_all()
        deadline = asyncio.get_running_loop().time() + STOP_GRACE_SECONDS
        while (self._tasks or self._unacked) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        _log.info("service.stopping", killed=running, unreported=len(self._unacked))

    # Work from the dispatcher.

    async def _take_work(self) -> None:
        while True:
            for _, message in await self._dispatcher.receive():
                if isinstance(message, messages.Execute) and not self._stopping:
                    self._accept(message)
                elif isinstance(message, messages.StopRun):
                    self._stop_run(message)

    def _accept(self, run: messages.Execute) -> None:
        kind = messages.kind_index(run.runner)
        if self._taken[kind] >= self.capacity[kind]:
            _log.warning("run.overbooked", job=run.job_id, run=run.run, runner=run.runner)
        self._taken[kind] += 1
        key = (run.job_id, run.run)
        if key in self._stopped:  # stopped on its way here
            self._free_slot(kind)
            return
        self._runs[key] = run
        self._waiting.add(key)
        if (message := _message(run)) is not None:  # connect before it falls due
            dsn, exchange = message[:2]
            if not self._publisher.ready(dsn, exchange):
                self._spawn(self._publisher.prepare(dsn, exchange))
        self._start_at_due(run)

    def _start_at_due(self, run: messages.Execute) -> None:
        """Start ``run`` at its due time: never before, and within a moment after. The alarm
        rings a little early (waking a process takes time), then the clock is watched on
        every loop turn until the instant."""
        early_us = run.due_us - self._clock.now_us()
        if early_us <= 0:
            self._start(run)
        elif early_us > WAKE_EARLY_US:
            self._alarm.add(run.due_us - WAKE_EARLY_US, run)
        else:
            asyncio.get_running_loop().call_soon(self._start_at_due, run)

    def _start_all(self, runs: list[messages.Execute]) -> None:
        for run in runs:
            self._start_at_due(run)

    def _stop_run(self, stop: messages.StopRun) -> None:
        """Kill the run if it runs here (its report then tells how far it got); drop it if it
        waits here for its time; never start it if it arrives later."""
        key = (stop.job_id, stop.run)
        self._stopped[key] = None
        if len(self._stopped) > STOPPED_KEPT:
            self._stopped.popitem(last=False)
        if key in self._waiting:
            self._waiting.discard(key)
            run = self._runs.pop(key)
            self._free_slot(messages.kind_index(run.runner))
            _log.info("run.dropped", job=stop.job_id, run=stop.run, reason="stopped")
        elif self._scripts.kill(stop.job_id, stop.run):
            _log.info("run.killed", job=stop.job_id, run=stop.run, reason="stopped")

    def _start(self, run: messages.Execute) -> None:
        key = (run.job_id, run.run)
        if key not in self._waiting:
            return  # stopped while it waited
        self._waiting.discard(key)
        started_us = self._clock.now_us()
        if (message := _message(run)) is not None:  # the common case needs no task

            def published(reason: str) -> None:
                self._finish(run, started_us, _published(reason))

            if self._publisher.publish_at_once(*message, then=published):
                return
        self._spawn(self._execute(run, started_us))

    async def _execute(self, run: messages.Execute, started_us: int) -> None:
        result = ScriptResult(None, "interrupted", b"")
        try:
            result = await self._run(run)
        finally:
            self._finish(run, started_us, result)

    def _finish(self, run: messages.Execute, started_us: int, result: ScriptResult) -> None:
        self._runs.pop((run.job_id, run.run), None)
        self._free_slot(messages.kind_index(run.runner))
        if self._stopping:
            return  # killed by the stop: the run is given up, to be run again
        finished_us = self._clock.now_us()
        if result.output:
            shown = result.output[-LOG_OUTPUT_BYTES:]
            _log.info("run.output", job=run.job_id, run=run.run, output=_text(shown))
        _log.debug(
            "run.finished", job=run.job_id, run=run.run, succeeded=result.succeeded,
            late_ms=round((started_us - run.due_us) / 1000, 3), reason=result.reason,
        )  # fmt: skip
        self._request(
            messages.RecordOutcome(
                job_id=run.job_id,
                run=run.run,
                outcome=_outcome(result),
                exit_code=result.exit_code,
                reason=_reason(result),
                started_us=started_us,
                finished_us=finished_us,
                output=bytes(result.output[-limits.MAX_OUTPUT_BYTES :]),
            )
        )

    async def _run(self, run: messages.Execute) -> ScriptResult:
        match run.runner, run.arguments:
            case "shell", (script,):
                return await self._scripts.run(script, run.job_id, run.run)
            case "amqp", _ if (message := _message(run)) is not None:
                return _published(await self._publisher.publish(*message))
            case _:
                return ScriptResult(None, f"this runner cannot run {run.runner!r} rules", b"")

    def _free_slot(self, kind: int) -> None:
        self._taken[kind] -= 1
        if not any(self._freed):  # one SlotsFreed for every run that ends within the window
            asyncio.get_running_loop().call_later(COALESCE_SECONDS, self._send_freed)
        self._freed[kind] += 1

    def _send_freed(self) -> None:
        freed, self._freed = tuple(self._freed), [0] * len(self._freed)
        if not self._stopping:
            self._dispatcher.try_send([(0, messages.SlotsFreed(counts=freed))])

    def _hello(self) -> None:
        free = tuple(
            0 if self._stopping else max(0, capacity - taken)
            for capacity, taken in zip(self.capacity, self._taken, strict=True)
        )
        hello = messages.RunnerHello(
            name=self.name, instance=self.instance, capacity=self.capacity, free=free
        )
        self._dispatcher.try_send([(0, hello)])

    async def _hello_on_connect(self) -> None:
        async for _ in self._dispatcher.connections():
            self._hello()

    async def _resend_on_connect(self) -> None:
        """What could not be sent while storage was away goes as soon as it is back."""
        async for _ in self._storage.connections():
            self._resend()

    # Requests to storage: sent again until acknowledged.

    def _request(self, request: messages.Request) -> None:
        """Send in this loop turn's batch, and again until acknowledged."""
        self._last_correlation += 1
        self._unacked[self._last_correlation] = request
        self._unacked_bytes += _held_bytes(request)
        while len(self._unacked) > OUTBOX_KEPT or (
            self._unacked_bytes > OUTBOX_BYTES and len(self._unacked) > 1
        ):
            self._drop(next(iter(self._unacked)), "the outbox is full")
        if not self._outgoing:
            asyncio.get_running_loop().call_later(REPORT_COALESCE_SECONDS, self._send_outgoing)
        self._outgoing.append((self._last_correlation, request))

    def _send_outgoing(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        self._storage.try_send(outgoing)

    def _resend(self) -> None:
        """The whole outbox again, a share at a time: one message may hold only so many
        reports (each with up to a MiB of output)."""
        waiting = list(self._unacked.items())
        for first in range(0, len(waiting), RESEND_SHARE):
            if not self._storage.try_send(waiting[first : first + RESEND_SHARE]):
                return  # storage is away or its queue full: the next resend tries again

    def _renew(self) -> None:
        if self._runs and not self._stopping:
            job_ids, runs = zip(*self._runs, strict=True)
            renew = messages.RenewLeases(owner=self.owner, job_ids=job_ids, runs=runs)
            self._storage.try_send([(0, renew)])

    async def _take_acks(self) -> None:
        while True:
            for correlation, reply in await self._storage.receive():
                if isinstance(reply, messages.StopRun):
                    self._stop_run(reply)
                elif isinstance(reply, messages.Failed) and correlation in self._unacked:
                    self._refused(correlation, reply)
                elif correlation in self._unacked:
                    self._forget(correlation)

    def _refused(self, correlation: int, reply: messages.Failed) -> None:
        """A refusal for ``internal`` (storage could not write) keeps the request in the
        outbox, to send again, a bounded number of times; any other ends it."""
        request = self._unacked[correlation]
        _log.error("storage.refused", request=type(request).__name__, reason=reply.reason)
        refusals = self._refusals.get(correlation, 0) + 1
        if reply.code == "internal" and refusals < REPORT_ATTEMPTS:
            self._refusals[correlation] = refusals
        else:
            self._drop(correlation, reply.reason)

    def _forget(self, correlation: int) -> messages.Request:
        """Take a request out of the outbox (acknowledged, or given up)."""
        request = self._unacked.pop(correlation)
        self._refusals.pop(correlation, None)
        self._unacked_bytes -= _held_bytes(request)
        return request

    def _drop(self, correlation: int, reason: str) -> None:
        request = self._forget(correlation)
        if isinstance(request, messages.RecordOutcome):
            _log.warning("run.report_dropped", job=request.job_id, run=request.run, reason=reason)

    # Plumbing.

    async def _every(self, seconds: float, action: Callable[[], None]) -> None:
        while True:
            action()
            await asyncio.sleep(seconds)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _message(run: messages.Execute) -> tuple[str, str, str, bytes, str] | None:
    """What an AMQP run publishes: DSN, exchange, routing key, body (the job id), message id."""
    if run.runner != "amqp" or len(run.arguments) != 3:
        return None
    dsn, exchange, routing_key = run.arguments
    return dsn, exchange, routing_key, run.job_id.encode(), f"{run.job_id}:{run.run}"


def _published(reason: str) -> ScriptResult:
    return ScriptResult(None if reason else 0, reason, b"")


def _outcome(result: ScriptResult) -> str:
    if result.succeeded:
        return Outcome.EXECUTED.value
    return (Outcome.TIMED_OUT if result.timed_out else Outcome.FAILED).value


def _text(output: bytes | bytearray) -> str:
    return bytes(output).decode("utf-8", "replace")


def _reason(result: ScriptResult) -> str:
    """The failure reason, with the script's last line of output when there is one."""
    last_line = _text(result.output).rstrip().rpartition("\n")[2][:200]
    reason = f"{result.reason}: {last_line}" if result.reason and last_line else result.reason
    return limits.clipped(reason, limits.MAX_REASON_BYTES)  # a reason may name a long path


async def run(config: Config, name: str) -> None:
    """Run until SIGTERM or SIGINT."""
    stop = stop_on_signals()
    dispatcher = RequestClient(config.dispatcher_endpoint)
    storage = RequestClient(config.storage_endpoint)
    try:
        await Runner(config, name, dispatcher, storage).serve(stop)
    finally:
        dispatcher.close()
        storage.close()


def _held_bytes(request: messages.Request) -> int:
    """What a request in the outbox holds beyond its fixed fields: a report's output and
    reason."""
    if isinstance(request, messages.RecordOutcome):
        return len(request.output) + len(request.reason)
    return 0
