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
from kairoi.domain import Job, JobStatus, Rule, runner_arguments
from kairoi.errors import InvalidRequest
from kairoi.storage import keys
from kairoi.storage.jobs import JobTable

_log = log.get("kairoi.storage")
_EVERY_LEASE = 1 << 62  # a limit above the number of leases: scan the whole lease index


class Runs:
    def __init__(
        self,
        jobs: JobTable,
        rule_for: Callable[[str], Rule | None],
        clock: Clock,
        lease_us: int,
        on_due: Callable[[int], None],
    ) -> None:
        self._jobs = jobs
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
        for job_id in [*lost, *due]:
            job = self._jobs.get(job_id)
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
        for job_id, run in zip(request.job_ids, request.runs, strict=True):
            job = self._jobs.get(job_id)
            if job is not None and job.status is JobStatus.TRIGGERED and job.run == run:
                self._jobs.save(_held(job, until, request.owner), job)

    def record(self, outcome: messages.RecordOutcome) -> None:
        job = self._jobs.get(outcome.job_id)
        if job is None or job.status is not JobStatus.TRIGGERED or job.run != outcome.run:
            _log.debug("run.outcome_ignored", job=outcome.job_id, run=outcome.run)
            return
        status = JobStatus.EXECUTED if outcome.succeeded else JobStatus.FAILED
        self._jobs.save(_ended(job, status), job)
        _log.debug(
            "run.recorded", job=job.id, run=job.run, status=status.name, reason=outcome.reason
        )

    def _trigger(self, job: Job, now: int, owner: str) -> messages.Execute | None:
        if job.status is JobStatus.TRIGGERED:
            _log.warning("run.lost", job=job.id, run=job.run, owner=job.owner)
        rule = self._rule_for(job.id)
        if rule is None:
            self._jobs.save(_ended(job, JobStatus.FAILED), job)
            _log.info("run.no_rule", job=job.id)
            return None
        triggered = Job(
            id=job.id,
            due_us=job.due_us,
            status=JobStatus.TRIGGERED,
            run=job.run + 1,
            lease_until_us=now + self._lease_us,
            owner=owner,
        )
        self._jobs.save(triggered, job)
        runner, arguments = runner_arguments(rule.runner)
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
                self._jobs.save(_held(job, now, ""), job)
                self._on_due(now)


# Jobs are rebuilt field by field: dataclasses.replace costs several times more, per run.


def _held(job: Job, lease_until_us: int, owner: str) -> Job:
    return Job(
        id=job.id, due_us=job.due_us, status=job.status, run=job.run,
        lease_until_us=lease_until_us, owner=owner,
    )  # fmt: skip


def _ended(job: Job, status: JobStatus) -> Job:
    return Job(id=job.id, due_us=job.due_us, status=status, run=job.run)
