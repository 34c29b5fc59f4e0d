"""Runs: claiming due jobs for the dispatcher, leases, and recording how runs end.

A claimed run gets its own record (active.py) with a lease owned by the dispatcher; its
runner takes the lease over by renewing it. A lease that runs out, or whose owner is known
to have restarted, makes the run lost: it is run again, as the job's next run (at least
once). Outcomes count only for a run under way, so a report sent twice, or a late report of
a run given up on, changes nothing. When a run ends, what the job does next is planned
(planning.py): a retry, its next occurrence, its children's runs. A job or run under way
that cannot be read or claimed is quarantined (quarantine.py), each apart: the others are
claimed, and the next claim does not meet it again.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from kairoi import limits, log, messages
from kairoi.clock import Clock
from kairoi.domain import ActiveRun, Job, JobStatus, Outcome, Overlap, Run, runner_arguments
from kairoi.errors import CorruptRecord, InvalidRequest
from kairoi.schedule import format_instant
from kairoi.storage import failures, keys, lifecycle, planning
from kairoi.storage.active import ActiveRuns
from kairoi.storage.history import History
from kairoi.storage.jobs import JobTable
from kairoi.storage.quarantine import CLAIM_FAILED, Quarantine, refusal
from kairoi.storage.rules import RuleBook
from kairoi.storage.savepoint import Savepoints
from kairoi.storage.stats import Stats

_log = log.get("kairoi.storage")
_REPORTED = {outcome.value: outcome for outcome in (Outcome.EXECUTED, Outcome.FAILED,
                                                    Outcome.TIMED_OUT)}  # fmt: skip
"""The outcomes a runner reports, by their words; the others are storage's own."""
LOST_REASON = "its runner or dispatcher was lost (the lease ended); the job was run again"
NO_RULE_REASON = "no rule's pattern is a prefix of the job's id"
NO_RECORD_REASON = "its due-index entry names no job record"
Runner = tuple[str, str, tuple[str, ...]]
"""(rule id, runner, arguments) of a run."""


class Runs:
    def __init__(
        self,
        jobs: JobTable,
        active: ActiveRuns,
        history: History,
        *,
        stats: Stats,
        rules: RuleBook,
        clock: Clock,
        lease_us: int,
        on_due: Callable[[int], None],
        quarantine: Quarantine,
        savepoints: Savepoints,
        rng: random.Random | None = None,
    ) -> None:
        self._jobs = jobs
        self._active = active
        self._history = history
        self._stats = stats
        self._rules = rules
        self._clock = clock
        self._lease_us = lease_us
        self._on_due = on_due
        self._rng = rng or random.Random()
        self._quarantine = quarantine
        self._savepoints = savepoints
        self.dispatcher: str | None = None
        """The dispatcher that claimed last (restored with the rest when a claim fails)."""

    def claim(self, request: messages.ClaimDue) -> messages.Claimed:
        if request.lookahead_us < 0 or request.limit < 0:
            raise InvalidRequest("lookahead_us and limit must not be negative")
        now = self._clock.now_us()
        owner = f"dispatcher:{request.dispatcher}"
        if request.dispatcher != self.dispatcher:
            self.dispatcher = request.dispatcher
            self._expire(lambda held_by: held_by.startswith("dispatcher:") and held_by != owner)
        # Besides what it takes, the first entry left over tells when to claim next.
        lost, next_lost = self._active.leases.due_by(now, request.limit)
        room = request.limit - len(lost)
        due, next_due = self._jobs.due.due_by(now + request.lookahead_us, room)
        runs = [self._apart(job_id, None, self._run_again, job_id, run, now, owner)
                for job_id, run in lost]  # fmt: skip
        runs += [self._apart(job.id, entry, self._claim, job, now, owner)
                 for job, entry in self._due_jobs(due)]  # fmt: skip
        claimed = tuple(run for run in runs if run is not None)
        if claimed:  # the leases this claim starts end after any older one, but they end
            next_lost = min(next_lost or now + self._lease_us, now + self._lease_us)
        instants = [instant for instant in (next_lost, next_due) if instant is not None]
        return messages.Claimed(runs=claimed, next_due_us=min(instants, default=None))

    def grant_grace(self) -> None:
        """Storage was away (it has just opened, or stood still): every lease of a run under
        way ends a lease from now at the earliest, so that its runner, which held its outcome
        or renewed meanwhile, reaches storage before the run is given up as lost. (A lease
        ended on purpose, whose owner is known gone, is left ended.)"""
        until = self._clock.now_us() + self._lease_us
        for run in self._leased_runs():
            if run.owner and run.lease_until_us < until:
                self._active.save(dataclasses.replace(run, lease_until_us=until), run)

    def runner_started(self, name: str, instance: str) -> None:
        current = f"runner:{name}:{instance}"
        self._expire(lambda held_by: held_by.startswith(f"runner:{name}:") and held_by != current)

    def renew(self, request: messages.RenewLeases) -> None:
        if len(request.job_ids) != len(request.runs):
            raise InvalidRequest("job_ids and runs must have the same length")
        until = self._clock.now_us() + self._lease_us
        quarantined = set(self._quarantine.held_among(request.job_ids))  # leases taken out
        for position, (job_id, number) in enumerate(
            zip(request.job_ids, request.runs, strict=True)
        ):
            if position in quarantined:
                continue
            if (run := self._active.get(job_id, number)) is not None:
                held = dataclasses.replace(run, lease_until_us=until, owner=request.owner)
                self._active.save(held, run)

    def record(self, report: messages.RecordOutcome) -> None:
        outcome = _reported_outcome(report.outcome)
        if self._quarantine.held(report.job_id):
            raise refusal(report.job_id, self._quarantine.reason(report.job_id) or "")
        active = self._active.get(report.job_id, report.run)
        job = self._jobs.get(report.job_id)
        if active is None or job is None:
            self._complete_stopped(report)
            return
        run = Run(
            run=active.run, due_us=active.due_us, started_us=report.started_us,
            finished_us=report.finished_us, outcome=outcome, exit_code=report.exit_code,
            manual=active.manual, reason=report.reason,
        )  # fmt: skip
        after = self.end(job, active, run, report.output)
        _log.debug("run.recorded", job=job.id, run=active.run, status=after.status.name,
                   outcome=outcome.value, reason=report.reason)  # fmt: skip

    def stop(self, job: Job) -> Job:
        """End every run of ``job`` under way as stopped (their holders are told to kill
        them); the job as it is afterwards."""
        for number in job.active:
            if (active := self._active.get(job.id, number)) is not None:
                run = _unreported(active, Outcome.STOPPED, "stopped", self._clock.now_us())
                job = self.end(job, active, run, b"")
        return job

    def forget(self, job: Job) -> None:
        """``job`` is deleted: its runs under way are dropped (their holders are told)."""
        for number in job.active:
            if (active := self._active.get(job.id, number)) is not None:
                self._active.delete(active)

    def end(self, job: Job, active: ActiveRun, run: Run, output: bytes) -> Job:
        """``active`` ended as ``run`` says: record it, plan what follows, tell the children.
        The job as it is afterwards."""
        now = self._clock.now_us()
        self._active.delete(active)
        self._history.add(job.id, run, output)
        plan, skipped = self._plan_after(job, active, run.outcome, now)
        after = lifecycle.ended(job, active.run, run.outcome, now, plan)
        if skipped is not None:
            after = self._record_skipped(after, skipped, now)
        self._jobs.save(after, job)
        if after.status is JobStatus.PLANNED:
            self._on_due(after.due_us)
        self._tell_children(job.id, run.outcome is Outcome.EXECUTED, now)
        return after

    def _plan_after(
        self, job: Job, active: ActiveRun, outcome: Outcome, now: int
    ) -> tuple[planning.Next | None, planning.Skipped | None]:
        if job.status is not JobStatus.TRIGGERED or len(job.active) > 1:
            return None, None  # the job is planned already (OVERLAP allow), or runs on
        if active.manual:
            return lifecycle.resumed(job), None
        if (retry := planning.retry(job.spec, active, outcome, now, self._rng)) is not None:
            return retry, None
        if job.spec.parents:
            return lifecycle.ready_again(job, now), None
        return planning.next_occurrence(job.spec, job.due_us, active.slot_us, active.after, now)

    def _claim(self, job: Job, now: int, owner: str) -> messages.Execute | None:
        after = planning.on_claim(job, now)
        if after == planning.SKIP:
            plan, skipped = planning.after_missed(job, now)
            passed = self._record_skipped(lifecycle.passed_over(job, plan, now), skipped, now)
            self._jobs.save(passed, job)
            if plan is not None:
                self._on_due(plan.due_us)
            return None
        if job.run >= limits.MAX_RUN:
            self._exhausted(job)
            return None
        number = job.run + 1
        active = ActiveRun(
            job_id=job.id, run=number, due_us=job.due_us, slot_us=job.slot_us,
            manual=job.manual, attempt=job.attempt, after=after,
            lease_until_us=now + self._lease_us, owner=owner,
        )  # fmt: skip
        then = self._next_beside(job, active, now)
        self._jobs.save(lifecycle.claimed(job, number, then), job)
        self._active.save(active, None)
        if then is not None:
            self._on_due(then.due_us)
        return self._execute(job, active, now)

    def _next_beside(self, job: Job, active: ActiveRun, now: int) -> planning.Next | None:
        """With OVERLAP allow, the occurrence after the one now claimed, planned at once."""
        if job.spec.overlap is not Overlap.ALLOW or active.manual:
            return None
        plan, _ = planning.next_occurrence(job.spec, job.due_us, active.slot_us, active.after,
                                           now)  # fmt: skip
        return plan

    def _run_again(self, job_id: str, number: int, now: int, owner: str) -> messages.Execute | None:
        """A lost run runs again, as the job's next run (its lost one is in the history)."""
        if self._quarantine.held(job_id):
            self._quarantine.drop_leases(job_id, number)
            return None
        active, job = self._active_run(job_id, number), self._jobs.get(job_id)
        if active is None or job is None:
            return None
        _log.warning("run.lost", job=job_id, run=number, owner=active.owner)
        if job.run >= limits.MAX_RUN:
            self._active.delete(active)
            others = tuple(run for run in job.active if run != number)
            self._exhausted(dataclasses.replace(job, active=others))
            return None
        self._history.add(job_id, _unreported(active, Outcome.LOST, LOST_REASON, now), b"")
        again = dataclasses.replace(active, run=job.run + 1, lease_until_us=now + self._lease_us,
                                    owner=owner)  # fmt: skip
        self._active.delete(active)
        self._active.save(again, None)
        active_runs = tuple(again.run if run == number else run for run in job.active)
        self._jobs.save(dataclasses.replace(job, run=again.run, active=active_runs), job)
        return self._execute(job, again, now)

    def _exhausted(self, job: Job) -> None:
        """No run number is left for the job (limits.MAX_RUN): it ends, Failed."""
        _log.warning("run.numbers_exhausted", job=job.id, run=job.run)
        stored = self._jobs.get(job.id)
        self._jobs.save(lifecycle.exhausted(job), stored)

    def _execute(self, job: Job, active: ActiveRun, now: int) -> messages.Execute | None:
        runner = self._runner_for(job)
        if runner is None:
            reason = (NO_RULE_REASON if not job.spec.rule_id
                      else f"the rule {job.spec.rule_id!r} it names does not exist")  # fmt: skip
            # Claimed up to a lookahead early: it ends at its due time, never before.
            none = _unreported(active, Outcome.NO_RULE, reason, max(now, active.due_us))
            self.end(self._jobs.get(job.id) or job, active, none, b"")
            _log.info("run.no_rule", job=job.id)
            return None
        rule_id, name, arguments = runner
        self._stats.ran(name)
        return messages.Execute(
            job_id=job.id, run=active.run, due_us=active.due_us, rule_id=rule_id,
            runner=name, arguments=arguments,
        )  # fmt: skip

    def _runner_for(self, job: Job) -> Runner | None:
        spec = job.spec
        if spec.runner:
            return "", spec.runner, spec.arguments
        rule = self._rules.find(spec.rule_id) if spec.rule_id else self._rules.rule_for(job.id)
        if rule is None:
            return None
        name, arguments = runner_arguments(rule.runner)
        return rule.id, name, arguments

    def _record_skipped(self, job: Job, skipped: planning.Skipped, now: int) -> Job:
        """Record occurrences that did not run as one run of their own, ``skipped`` (not
        when no run number is left: the next claim ends the job)."""
        if job.run >= limits.MAX_RUN:
            return job
        number = job.run + 1
        reason = (f"occurrences from {format_instant(skipped.first_us)} to "
                  f"{format_instant(skipped.until_us)} {skipped.reason}")  # fmt: skip
        record = Run(
            run=number, due_us=skipped.first_us, started_us=None, finished_us=now,
            outcome=Outcome.SKIPPED, exit_code=None, manual=False, reason=reason,
        )  # fmt: skip
        self._history.add(job.id, record, b"")
        return dataclasses.replace(job, run=number)

    def _tell_children(self, parent_id: str, succeeded: bool, now: int) -> None:
        for child_id in self._jobs.children(parent_id):
            child = self._jobs.get(child_id)
            if child is None:
                continue
            after = lifecycle.parent_ended(child, parent_id, succeeded, now)
            if after != child:
                self._jobs.save(after, child)
                if after.status is JobStatus.PLANNED:
                    self._on_due(after.due_us)

    def _complete_stopped(self, report: messages.RecordOutcome) -> None:
        """A report of a run already recorded as stopped fills in what storage could not
        know: when it started and ended, its exit, its output. Any other is a repeat or the
        report of a run given up on: it changes nothing."""
        recorded = self._history.get(report.job_id, report.run)
        if recorded is None or recorded.outcome is not Outcome.STOPPED or recorded.started_us:
            _log.debug("run.outcome_ignored", job=report.job_id, run=report.run)
            return
        completed = dataclasses.replace(
            recorded, started_us=report.started_us, finished_us=report.finished_us,
            exit_code=report.exit_code,
        )  # fmt: skip
        self._history.replace(report.job_id, completed, report.output)

    def _expire(self, held_by: Callable[[str], bool]) -> None:
        """End at once the leases whose owner ``held_by`` picks: their runs are lost."""
        now = self._clock.now_us()
        for run in self._leased_runs():
            if held_by(run.owner):
                self._active.save(dataclasses.replace(run, lease_until_us=now, owner=""), run)
                self._on_due(now)

    def _leased_runs(self) -> list[ActiveRun]:
        """Every run under way that has a lease (one that cannot be read is set aside)."""
        runs = (self._active_run(job_id, number) for job_id, number in self._active.leases.every())
        return [run for run in runs if run is not None]

    # Records that cannot be handled: set aside, each apart from the others.

    def _due_jobs(self, due: list[tuple[str, int]]) -> list[tuple[Job, bytes]]:
        """The jobs the due entries name, with their entries; an entry whose job cannot be
        read is quarantined."""
        ids = [job_id for job_id, _ in due]
        for position in reversed(self._quarantine.held_among(ids)):
            job_id, due_us = due.pop(position)  # its entry is taken out: not met again
            del ids[position]
            self._quarantine.set_aside(job_id, "", keys.timed(keys.DUE, due_us, job_id))
        try:
            found: list[Job | str | None] = list(self._jobs.get_many(ids))
        except CorruptRecord:
            found = [self._job_or_why(job_id) for job_id in ids]
        jobs = []
        for (job_id, due_us), job in zip(due, found, strict=True):
            entry = keys.timed(keys.DUE, due_us, job_id)
            if isinstance(job, Job):
                jobs.append((job, entry))
            else:
                self._quarantine.set_aside(job_id, job or NO_RECORD_REASON, entry)
        return jobs

    def _job_or_why(self, job_id: str) -> Job | str | None:
        try:
            return self._jobs.get(job_id)
        except CorruptRecord as exc:
            return exc.reason

    def _active_run(self, job_id: str, number: int) -> ActiveRun | None:
        """The run under way; None, and the job quarantined, when its record cannot be read."""
        try:
            return self._active.get(job_id, number)
        except CorruptRecord as exc:
            self._quarantine.set_aside(job_id, exc.reason)
            self._quarantine.drop_leases(job_id, number)
            return None

    def _apart(
        self,
        job_id: str,
        entry: bytes | None,
        claim: Callable[..., messages.Execute | None],
        *arguments: object,
    ) -> messages.Execute | None:
        """``claim(*arguments)`` of one job; when it raises, what it changed is taken back
        and the job is quarantined (it would fail every claim again), not the claim failed.
        ``entry``: the due-index entry it was claimed by (None: a lost run's)."""
        mark = self._savepoints.mark()
        try:
            return claim(*arguments)
        except Exception as exc:
            self._savepoints.roll_back(mark)
            if not failures.unhandleable(exc):
                raise  # the database cannot be read now: the whole claim fails, and is retried
            _log.error("storage.claim_failed", job=job_id, exc_info=exc)
            self._quarantine.set_aside(job_id, CLAIM_FAILED, entry)
            self._quarantine.set_aside_job(job_id, CLAIM_FAILED)
            return None


def _unreported(active: ActiveRun, outcome: Outcome, reason: str, now: int) -> Run:
    """The record of a run that ended without its runner's report (stopped, lost, or never
    started: no rule), at ``now``."""
    return Run(
        run=active.run, due_us=active.due_us, started_us=None, finished_us=now,
        outcome=outcome, exit_code=None, manual=active.manual, reason=reason,
    )  # fmt: skip


def _reported_outcome(word: str) -> Outcome:
    outcome = _REPORTED.get(word)
    if outcome is None:
        raise InvalidRequest(f"a runner reports {', '.join(_REPORTED)}, not {word!r}")
    return outcome
