"""Runs: claiming due jobs for the dispatcher, leases, and recording how runs end.

A claimed job becomes Triggered with a new run number and a lease owned by the dispatcher;
its runner takes the lease over by renewing it. A lease that runs out, or whose owner is known
to have restarted, makes the job claimable again: that is how a run whose runner or
dispatcher died is run again (at least once). Outcomes count only for the job's current run,
so a report sent twice, or a late report of a run given up on, changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from kairoi import log, messages
from kairoi.clock import Clock
from kairoi.domain import Job, JobStatus, Outcome, Rule, Run, runner_arguments
from kairoi.errors import InvalidRequest
from kairoi.storage import keys, lifecycle
from kairoi.storage.history import History
from kairoi.storage.jobs import JobTable
from kairoi.storage.stats import Stats

_log = log.get("kairoi.storage")
_EVERY_LEASE = 1 << 62  # a limit above the number of leases: scan the whole lease index


_REPORTED = {outcome.value: outcome for outcome in (Outcome.EXECUTED, Outcome.FAILED,
                                                    Outcome.TIMED_OUT)}  # fmt: skip
"""The outcomes a runner reports, by their words; the others are storage's own."""
LOST_REASON = "its runner or dispatcher was lost (the lease ended); the job was run again"
NO_RULE_REASON = "no rule's pattern is a prefix of the job's id"


class Runs:
    def __init__(
        self,
        jobs: JobTable,
        history: History,
        *,
        stats: Stats,
        rule_for: Callable[[str], Rule | None],
        clock: Clock,
        lease_us: int,
        on_due: Callable[[int], None],
    ) -> None:
        self._jobs = jobs
        self._history = history
        self._stats = stats
        self._rule_for = rule_for
        self._clock = clock
        self._lease_us = lease_us
        self._on_due = on_due
        self._dispatcher: str | None = None

    def claim(self, request: messages.ClaimDue) -> messages.Claimed:
        if request.lookahead_us < 0 or request.limit < 0:
            raise InvalidRequest("lookahead_us and limit must not be negative")
        now = self._clock.now_us()
        owner = f"dispatcher:{request.dispatcher}"
        if request.dispatcher != self._dispatcher:
            self._dispatcher = request.dispatcher
            self._expire(lambda held_by: held_by.startswith("dispatcher:") and held_by != owner)
        # Besides what it takes, the first entry left over tells when to claim next.
        lost, next_lost = self._jobs.due_by(keys.LEASE, now, request.limit)
        room = request.limit - len(lost)
        due, next_due = self._jobs.due_by(keys.DUE, now + request.lookahead_us, room)
        runs = []
        for job in self._jobs.get_many([*lost, *due]):
            if job is not None and (run := self._trigger(job, now, owner)) is not None:
                runs.append(run)
        if runs:  # the leases this claim starts end after any older one, but they end
            next_lost = min(next_lost or now + self._lease_us, now + self._lease_us)
        instants = [instant for instant in (next_lost, next_due) if instant is not None]
        return messages.Claimed(runs=tuple(runs), next_due_us=min(instants, default=None))

    def runner_started(self, name: str, instance: str) -> None:
        current = f"runner:{name}:{instance}"
        self._expire(lambda held_by: held_by.startswith(f"runner:{name}:") and held_by != current)

    def renew(self, request: messages.RenewLeases) -> None:
        if len(request.job_ids) != len(request.runs):
            raise InvalidRequest("job_ids and runs must have the same length")
        until = self._clock.now_us() + self._lease_us
        for job, run in zip(self._jobs.get_many(request.job_ids), request.runs, strict=True):
            if job is not None and job.status is JobStatus.TRIGGERED and job.run == run:
                self._jobs.save(lifecycle.held(job, until, request.owner), job)

    def record(self, report: messages.RecordOutcome) -> None:
        outcome = _reported_outcome(report.outcome)
        job = self._jobs.get(report.job_id)
        if job is None or job.status is not JobStatus.TRIGGERED or job.run != report.run:
            self._complete_stopped(report)
            return
        run = Run(
            run=job.run, due_us=job.due_us, started_us=report.started_us,
            finished_us=report.finished_us, outcome=outcome, exit_code=report.exit_code,
            manual=job.manual, reason=report.reason,
        )  # fmt: skip
        after = self._end(job, job, run, report.output)
        _log.debug("run.recorded", job=job.id, run=job.run, status=after.status.name,
                   outcome=outcome.value, reason=report.reason)  # fmt: skip

    def stop(self, job: Job) -> None:
        """End ``job``'s current run as stopped (its holder is told to kill it)."""
        run = Run(
            run=job.run, due_us=job.due_us, started_us=None, finished_us=self._clock.now_us(),
            outcome=Outcome.STOPPED, exit_code=None, manual=job.manual, reason="stopped",
        )  # fmt: skip
        self._end(job, job, run, b"")

    def _end(self, previous: Job, job: Job, run: Run, output: bytes) -> Job:
        """``job``'s current run ended as ``run`` says; ``previous`` is what is stored."""
        after = lifecycle.ended(job, run.outcome, self._clock.now_us())
        self._jobs.save(after, previous)
        self._history.add(job.id, run, output)
        if after.status is JobStatus.PLANNED:  # the schedule goes on after a manual run
            self._on_due(after.due_us)
        return after

    def _complete_stopped(self, report: messages.RecordOutcome) -> None:
        """A report of a run already recorded as stopped fills in what storage could not
        know: when it started and ended, its exit, its output. Any other is a repeat or the
        report of a run given up on: it changes nothing."""
        recorded = self._history.get(report.job_id, report.run)
        if recorded is None or recorded.outcome is not Outcome.STOPPED or recorded.started_us:
            _log.debug("run.outcome_ignored", job=report.job_id, run=report.run)
            return
        completed = Run(
            run=recorded.run, due_us=recorded.due_us, started_us=report.started_us,
            finished_us=report.finished_us, outcome=Outcome.STOPPED,
            exit_code=report.exit_code, manual=recorded.manual, reason=recorded.reason,
        )  # fmt: skip
        self._history.replace(report.job_id, completed, report.output)

    def _trigger(self, job: Job, now: int, owner: str) -> messages.Execute | None:
        if job.status is JobStatus.TRIGGERED:
            _log.warning("run.lost", job=job.id, run=job.run, owner=job.owner)
            lost = Run(
                run=job.run, due_us=job.due_us, started_us=None, finished_us=now,
                outcome=Outcome.LOST, exit_code=None, manual=job.manual, reason=LOST_REASON,
            )  # fmt: skip
            self._history.add(job.id, lost, b"")
        rule = self._rule_for(job.id)
        triggered = lifecycle.claimed(job, now, self._lease_us, owner)
        if rule is None:
            none = Run(
                run=triggered.run, due_us=job.due_us, started_us=None, finished_us=now,
                outcome=Outcome.NO_RULE, exit_code=None, manual=job.manual,
                reason=NO_RULE_REASON,
            )  # fmt: skip
            self._end(job, triggered, none, b"")
            _log.info("run.no_rule", job=job.id)
            return None
        self._jobs.save(triggered, job)
        runner, arguments = runner_arguments(rule.runner)
        self._stats.ran(runner)
        return messages.Execute(
            job_id=job.id,
            run=triggered.run,
            due_us=job.due_us,
            rule_id=rule.id,
            runner=runner,
            arguments=arguments,
        )

    def _expire(self, held_by: Callable[[str], bool]) -> None:
        """End at once the leases whose owner ``held_by`` picks: their runs are lost."""
        now = self._clock.now_us()
        for _, job_id in self._jobs.earliest(keys.LEASE, limit=_EVERY_LEASE):
            job = self._jobs.get(job_id)
            if job is not None and held_by(job.owner):
                self._jobs.save(lifecycle.held(job, now, ""), job)
                self._on_due(now)


def _reported_outcome(word: str) -> Outcome:
    outcome = _REPORTED.get(word)
    if outcome is None:
        raise InvalidRequest(f"a runner reports {', '.join(_REPORTED)}, not {word!r}")
    return outcome
