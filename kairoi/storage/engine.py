"""What storage does with requests: pure logic over a KeyValueStore, no sockets.

Requests are applied to one pending batch (later requests in it see earlier ones); ``commit``
writes the batch at once. Only after it returns may the replies go out: OK means durable.
A request that fails leaves nothing of itself in the batch (savepoint.py); one that raises
anything but a KairoiError (a bug, a record it cannot handle) is answered ``internal``,
logged with its traceback, and the batch goes on. Jobs whose records cannot be read or
handled are quarantined (quarantine.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Final, TypeVar, assert_never

from kairoi import messages
from kairoi.checks import check_request
from kairoi.clock import Clock, SystemClock
from kairoi.domain import (
    MAX_PAGE_BYTES,
    ActiveRun,
    AmqpRunner,
    Job,
    Rule,
    ShellRunner,
)
from kairoi.errors import Conflict, CorruptRecord, InvalidRequest, KairoiError, NotFound, StoreError
from kairoi.scripts import ScriptPolicy
from kairoi.storage import failures, inbound, keys, migration, quarantine, sets, views
from kairoi.storage.actions import JobActions, RefusedJob
from kairoi.storage.active import ActiveRuns
from kairoi.storage.claims import Runs
from kairoi.storage.history import History
from kairoi.storage.jobs import JobTable
from kairoi.storage.kv import KeyValueStore
from kairoi.storage.quarantine import Quarantine, Quarantined
from kairoi.storage.rules import RuleBook
from kairoi.storage.savepoint import Savepoints
from kairoi.storage.sets import spec_of
from kairoi.storage.stats import Stats
from kairoi.storage.writes import PendingWrites

OK: Final = messages.Ok()
PONG: Final = messages.Pong()
DEFAULT_LEASE_US = 10_000_000
DEFAULT_RUNS_KEPT = 100
BATCH_REPLY_BYTES = 16 * MAX_PAGE_BYTES
"""About the most the listings answered in one batch may hold: storage's memory for replies
stays near it however many large reads arrive at once (a page past it holds one item)."""
MAX_RULES_LISTED = 1 << 62
"""RULE LIST has no LIMIT: every rule, as MAX_PAGE_BYTES allows."""
S = TypeVar("S")
V = TypeVar("V")

JobRequest = (
    messages.GetJob | messages.ListJobs | messages.ListRuns | messages.GetOutput
    | messages.UnsetJob | messages.DisableJob | messages.EnableJob | messages.StopJob
    | messages.TriggerJob
)  # fmt: skip
RuleRequest = (
    messages.SetShellRule | messages.SetAmqpRule | messages.GetRule | messages.ListRules
    | messages.UnsetRule
)  # fmt: skip
RunRequest = messages.ClaimDue | messages.RunnerStarted | messages.RenewLeases
SetRequest = messages.SetJob | messages.SetJobs | messages.DefineJob | messages.LoadJobs


class Engine:
    def __init__(
        self,
        kv: KeyValueStore,
        fsync: bool,
        *,
        clock: Clock | None = None,
        lease_us: int = DEFAULT_LEASE_US,
        runs_kept: int = DEFAULT_RUNS_KEPT,
        rng: random.Random | None = None,
        scripts: ScriptPolicy | None = None,
    ) -> None:
        """``scripts``: the allow-list every shell script set here is resolved and checked
        against (None, in tests of other logic: taken as given)."""
        self.kv = kv
        self._scripts = scripts
        self.fsync = fsync
        migration.upgrade(kv)
        clock = clock or SystemClock()
        self._writes = PendingWrites(kv)
        self._stats = Stats(kv)
        self._jobs = JobTable(self._writes, self._stats)
        self._active = ActiveRuns(self._writes)
        self._history = History(self._writes, runs_kept)
        self._rules = RuleBook(kv, self._writes)
        self._quarantine = Quarantine(self._writes, self._jobs, self._stats)
        self._savepoints = Savepoints(self._writes, self._stats, self._rules,
                                      (self._jobs.due, self._active.leases))  # fmt: skip
        self.write_errors = 0  # the commits that failed, as STATS shows them (the actor counts)
        self.writable = True  # whether the last commit was written
        self._announced: int | None = None  # the next due time the dispatcher was told
        self._earliest: int | None = None  # the earliest due time made in this batch
        self._reply_bytes = 0  # what the listings answered in this batch hold
        self.runs = Runs(
            self._jobs, self._active, self._history, stats=self._stats, rules=self._rules,
            clock=clock, lease_us=lease_us, on_due=self._due_at, rng=rng,
            quarantine=self._quarantine, savepoints=self._savepoints,
        )  # fmt: skip
        self._actions = JobActions(
            self._jobs, self._history, self.runs, clock, self._due_at, quarantine=self._quarantine
        )
        self.runs.grant_grace()  # storage was away until now: written with the first batch

    @property
    def rules(self) -> dict[str, Rule]:
        """The rules as last committed."""
        return self._rules.committed

    def apply(self, request: messages.Message) -> messages.Reply:
        """Apply ``request`` to the pending batch; its reply holds until ``commit``."""
        mark = self._savepoints.mark(outermost=True)
        stops, dispatcher = self._actions.stops_pending(), self.runs.dispatcher
        try:
            check_request(request)  # the ranges and sizes the frontend checks, for any sender
            return self._route(request)
        except Exception as exc:  # this request only: the batch goes on without it
            self._savepoints.roll_back(mark)
            self._actions.forget_stops(keep=stops)
            self.runs.dispatcher = dispatcher
            reply = failures.reply(request, exc)
            if (job_id := failures.sets_aside(request, exc)) is not None:
                # Else again and again. Clients see storage's own words; the log has the rest.
                self._quarantine.set_aside_after(job_id, quarantine.REQUEST_FAILED)
            return reply

    def _route(self, request: messages.Message) -> messages.Reply:
        request = inbound.checked(request, self._scripts)  # the bus is a door too
        match request:
            case (
                messages.SetJob() | messages.SetJobs() | messages.DefineJob() | messages.LoadJobs()
            ):
                return self._set_request(request)
            case messages.RecordOutcome():
                self.runs.record(request)
            case messages.ClaimDue() | messages.RunnerStarted() | messages.RenewLeases():
                return self._run_request(request)
            case (
                messages.GetJob() | messages.ListJobs() | messages.ListRuns()
                | messages.GetOutput() | messages.UnsetJob() | messages.DisableJob()
                | messages.EnableJob() | messages.StopJob() | messages.TriggerJob()
            ):  # fmt: skip
                return self._quarantined_or(request)
            case (
                messages.SetShellRule() | messages.SetAmqpRule() | messages.GetRule()
                | messages.ListRules() | messages.UnsetRule()
            ):  # fmt: skip
                return self._rule_request(request)
            case messages.Ping():
                return PONG
            case messages.GetStats():
                return self._stats_reply()
            case (
                messages.Ok() | messages.Failed() | messages.Claimed() | messages.Refused()
                | messages.JobState() | messages.Jobs() | messages.RunState() | messages.Runs()
                | messages.Output() | messages.RuleState() | messages.Rules() | messages.Pong()
                | messages.Stats() | messages.Execute() | messages.Wakeup()
                | messages.RunnerHello() | messages.SlotsFreed() | messages.StopRun()
            ):  # fmt: skip
                raise InvalidRequest(f"storage does not take {type(request).__name__}")
            case _:
                assert_never(request)
        return OK

    def _set_request(self, request: SetRequest) -> messages.Reply:
        match request:
            case messages.SetJob(job_id=job_id, due_us=due_us):
                refused, _ = sets.plan(self._jobs, self._quarantine, (job_id,), (due_us,))
                if refused:
                    raise refused[0]
                self._due_at(due_us)
            case messages.SetJobs():
                return self._set_jobs(request)
            case messages.DefineJob():
                self._actions.define(request.job_id, spec_of(request))
            case messages.LoadJobs():
                return self._load(request)
            case _:
                assert_never(request)
        return OK

    def _run_request(self, request: RunRequest) -> messages.Reply:
        match request:
            case messages.ClaimDue():
                claimed = self.runs.claim(request)
                self._announced = claimed.next_due_us
                return claimed
            case messages.RunnerStarted(name=name, instance=instance):
                self.runs.runner_started(name, instance)
            case messages.RenewLeases():
                self.runs.renew(request)
            case _:
                assert_never(request)
        return OK

    def _job_request(self, request: JobRequest) -> messages.Reply:
        match request:
            case messages.GetJob(job_id=job_id):
                return views.job_state(self._quarantine.shown(job_id))
            case messages.ListJobs(prefix=prefix, after=after, limit=limit):
                walked = self._quarantine.over(self._jobs.walk(prefix, after), prefix)
                jobs = self._page(limit, walked, _job_shown, views.job_bytes)
                return messages.Jobs(jobs=tuple(jobs.items), more=jobs.more)
            case messages.ListRuns(job_id=job_id, limit=limit, before=before):
                self._actions.existing(job_id)
                recent = self._history.recent(job_id, limit, before)
                runs = self._page(limit, recent, views.run_state, views.run_bytes)
                return messages.Runs(runs=tuple(runs.items), more=runs.more)
            case messages.GetOutput(job_id=job_id, run=run):
                return self._output(self._actions.existing(job_id), run)
            case messages.UnsetJob(job_id=job_id, cascade=cascade):
                self._actions.unset(job_id, cascade)
            case messages.DisableJob(job_id=job_id):
                self._actions.disable(job_id)
            case messages.EnableJob(job_id=job_id):
                self._actions.enable(job_id)
            case messages.StopJob(job_id=job_id):
                self._actions.stop(job_id)
            case messages.TriggerJob(job_id=job_id):
                self._actions.trigger(job_id)
            case _:
                assert_never(request)
        return OK

    def _quarantined_or(self, request: JobRequest) -> messages.Reply:
        """A job request; on a job whose records cannot be read, a refusal saying so."""
        try:
            return self._job_request(request)
        except CorruptRecord as exc:
            raise Conflict(f"{exc.reason}: the job is quarantined; UNSET it") from exc

    def _rule_request(self, request: RuleRequest) -> messages.Reply:
        match request:
            case messages.SetShellRule(rule_id=rule_id, pattern=pattern, script=script):
                self._rules.set(
                    Rule(id=rule_id, pattern=pattern, runner=ShellRunner(script=script))
                )
            case messages.SetAmqpRule():
                runner = AmqpRunner(
                    dsn=request.dsn, exchange=request.exchange, routing_key=request.routing_key
                )
                self._rules.set(Rule(id=request.rule_id, pattern=request.pattern, runner=runner))
            case messages.GetRule(rule_id=rule_id):
                return views.rule_state(self._rules.get(rule_id))
            case messages.ListRules(prefix=prefix, after=after):
                found = self._rules.starting_with(prefix, after)
                rules = self._page(MAX_RULES_LISTED, found, views.rule_state, views.rule_bytes)
                return messages.Rules(rules=tuple(rules.items), more=rules.more)
            case messages.UnsetRule(rule_id=rule_id):
                self._rules.unset(rule_id)
            case _:
                assert_never(request)
        return OK

    def commit(self) -> None:
        """Write the pending batch durably; on StoreError nothing of it is kept."""
        batch = self.take_batch()
        try:
            if batch:
                self.kv.write(batch, sync=self.fsync)
        except StoreError:
            self.batch_written(False)
            raise
        self.batch_written(True)

    def take_batch(self) -> dict[bytes, bytes | None]:
        """``commit`` in two steps, for a caller that writes the batch itself (trying again):
        the pending batch with its counts, then ``batch_written``."""
        self._reply_bytes = 0  # the next batch's listings start afresh
        batch = self._writes.take()
        if (counts := self._stats.take_changes()) is not None:
            batch[keys.STATS] = counts
        return batch

    def batch_written(self, written: bool) -> None:
        """The batch ``take_batch`` gave was written, or was not (then nothing of it holds)."""
        if not written:
            self._jobs.due.forget_floor()  # it assumed the batch written
            self._active.leases.forget_floor()
            self._actions.forget_stops()
        self._stats.committed(written)
        self._rules.committed_batch(written)

    def grant_grace(self) -> None:
        """Storage stood still for a while (stopped, starved): no lease ends for that."""
        self.runs.grant_grace()

    def take_wakeup(self) -> int | None:
        """After a commit: a due time earlier than the dispatcher knows of, to tell it."""
        earliest, self._earliest = self._earliest, None
        if earliest is None or (self._announced is not None and earliest >= self._announced):
            return None
        self._announced = earliest
        return earliest

    def take_stops(self) -> list[messages.StopRun]:
        """After a commit: the runs stopped in it, whose holders must kill them."""
        return self._actions.take_stops()

    def release_memory(self) -> None:
        """Between bursts: let the store give back the memory it holds for writes."""
        self.kv.release_memory()

    def job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def rule_for(self, job_id: str) -> Rule | None:
        return self._rules.rule_for(job_id)

    def active_run(self, job_id: str, run: int) -> ActiveRun | None:
        return self._active.get(job_id, run)

    def _due_at(self, due_us: int) -> None:
        if self._earliest is None or due_us < self._earliest:
            self._earliest = due_us

    def _set_jobs(self, request: messages.SetJobs) -> messages.Reply:
        job_ids, due_us = request.job_ids, request.due_us
        if len(job_ids) != len(due_us):
            raise InvalidRequest("job_ids and due_us must have the same length")
        refused, earliest = sets.plan(self._jobs, self._quarantine, job_ids, due_us)
        if earliest is not None:
            self._due_at(earliest)
        if not refused:
            return OK
        return messages.Refused(
            positions=tuple(refused),
            codes=tuple(error.code for error in refused.values()),
            reasons=tuple(error.reason for error in refused.values()),
        )

    def _load(self, request: messages.LoadJobs) -> messages.Reply:
        try:
            jobs = [(job.job_id, spec_of(job)) for job in request.jobs]
        except KairoiError as exc:
            return messages.Failed(code=exc.code, reason=exc.reason)
        if any(job.source != request.source for job in request.jobs):
            raise InvalidRequest("every job of a job file has the file as its source")
        try:
            self._actions.load(request.source, jobs)
        except RefusedJob as refused:
            error = refused.error
            return messages.Refused(
                positions=(refused.position,), codes=(error.code,), reasons=(error.reason,)
            )
        return OK

    def _output(self, job: Job, run: int) -> messages.Reply:
        if run == 0:
            latest = self._history.recent(job.id, 1)
            if not latest:
                raise NotFound(f"job {job.id!r} has no finished run yet")
            run = latest[0].run
        output = self._history.output(job.id, run)
        if output is None:
            raise NotFound(f"job {job.id!r} has no run {run} in its history")
        return messages.Output(run=run, output=output)

    @property
    def replies_full(self) -> bool:
        """Whether the listings of the pending batch hold BATCH_REPLY_BYTES: take no more
        requests into it (what waits joins the next batch)."""
        return self._reply_bytes >= BATCH_REPLY_BYTES

    def _page(
        self, limit: int, found: Iterable[S], show: Callable[[S], V], size: Callable[[V], int]
    ) -> views.Page[V]:
        """A listing reply's page of what is ``found``: up to ``limit`` items and, within
        the batch's reply budget, MAX_PAGE_BYTES (at least one item, so a listing goes on)."""
        budget = max(0, min(MAX_PAGE_BYTES, BATCH_REPLY_BYTES - self._reply_bytes))
        page: views.Page[V] = views.Page(budget, limit)
        for item in found:
            shown = show(item)
            if not page.take(shown, size(shown)):
                break
        self._reply_bytes += page.size
        return page

    def _stats_reply(self) -> messages.Stats:
        counts = self._stats.snapshot()
        counts["rules"] = len(self._rules.current())
        counts["write_errors"] = self.write_errors
        counts["writable"] = int(self.writable)
        self._quarantine.counted(counts)
        names = sorted(counts)
        return messages.Stats(names=tuple(names), values=tuple(counts[name] for name in names))


def _job_shown(found: tuple[str, Job | Quarantined]) -> messages.JobState:
    return views.job_state(found[1])
