"""A job's life: what each event makes of it. Pure functions from a Job to the next Job.

    (none) ──SET──▶ Planned ──falls due, claimed──▶ Triggered ──run ends──▶ Executed / Failed
                      ▲  │                              │                         │
                      │  └──DISABLE──▶ Disabled ◀───────┘ (DISABLE during a run:  │
                      │                   │              Disabled when it ends)   │
                      └──────ENABLE───────┘                                       │
                      ▲                                                           │
                      └───────────────────────SET / TRIGGER───────────────────────┘

TRIGGER plans a manual run now and keeps the job's scheduled due time aside
(``resume_us``): once the manual run ends, the job is Planned at that time again. STOP ends
the current run as ``stopped``; the job then goes on as after any other end of a run.
Refusals raise ``KairoiError``s with the reason a client is shown.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kairoi.domain import Job, JobStatus, Outcome
from kairoi.errors import Conflict

_ENDS = {Outcome.EXECUTED: JobStatus.EXECUTED}  # every other way a run ends is a failure


def planned(job_id: str, due_us: int) -> Job:
    return Job(id=job_id, due_us=due_us, status=JobStatus.PLANNED)


def set_due(job: Job, due_us: int) -> Job:
    """SET: plan the job at ``due_us``. A disabled job stays disabled, with its new time; a
    pending manual run stays pending, and the new time is the one planned after it."""
    match job.status:
        case JobStatus.TRIGGERED:
            raise Conflict(f"job {job.id!r} is running (Triggered); set it again once its run ends")
        case JobStatus.DISABLED:
            return _with(job, due_us=due_us, restore=JobStatus.PLANNED)
        case JobStatus.PLANNED if job.manual:
            return _with(job, resume_us=due_us)
        case _:
            return _with(job, status=JobStatus.PLANNED, due_us=due_us)


def claimed(job: Job, now_us: int, lease_us: int, owner: str) -> Job:
    """The job's due run (or, when its lease ended, its lost run once more) is claimed."""
    return _hot(job, JobStatus.TRIGGERED, job.run + 1, now_us + lease_us, owner)


def held(job: Job, lease_until_us: int, owner: str) -> Job:
    """A Triggered job's lease, renewed or taken over."""
    return _hot(job, job.status, job.run, lease_until_us, owner)


def ended(job: Job, outcome: Outcome, now_us: int) -> Job:
    """The current run ended (or, for ``no_rule``, the due run could not start)."""
    status = _ENDS.get(outcome, JobStatus.FAILED)
    due_us = job.due_us
    if job.resume_us is not None:  # a manual run: the schedule goes on where it was
        status, due_us = JobStatus.PLANNED, job.resume_us
    restore = None
    if job.disable_after_run:
        status, restore = JobStatus.DISABLED, status
    return Job(
        id=job.id,
        due_us=due_us,
        status=status,
        run=job.run,
        restore=restore,
        last_outcome=outcome,
        last_finished_us=now_us,
    )


def triggered_manually(job: Job, now_us: int) -> Job:
    """TRIGGER: run it now, once, keeping its schedule for after."""
    match job.status:
        case JobStatus.TRIGGERED:
            raise Conflict(f"job {job.id!r} is running (Triggered); STOP it or wait for its end")
        case JobStatus.DISABLED:
            raise Conflict(f"job {job.id!r} is disabled; ENABLE it first")
        case JobStatus.PLANNED if job.manual:
            raise Conflict(f"job {job.id!r} already has a manual run waiting to start")
        case JobStatus.PLANNED:
            return _with(job, due_us=now_us, manual=True, resume_us=job.due_us)
        case _:
            return _with(job, status=JobStatus.PLANNED, due_us=now_us, manual=True)


def disabled(job: Job) -> Job:
    """DISABLE: it never fires until enabled; a run under way goes on to its end."""
    match job.status:
        case JobStatus.DISABLED:
            return job
        case JobStatus.TRIGGERED:
            return _with(job, disable_after_run=True)
        case JobStatus.PLANNED if job.manual:  # the manual run is dropped, the schedule kept
            if job.resume_us is not None:
                return _with(job, status=JobStatus.DISABLED, due_us=job.resume_us,
                             manual=False, resume_us=None, restore=JobStatus.PLANNED)  # fmt: skip
            return _with(job, status=JobStatus.DISABLED, manual=False, restore=_finished(job))
        case status:
            return _with(job, status=JobStatus.DISABLED, restore=status)


def enabled(job: Job) -> Job:
    """ENABLE: back to what DISABLE found; a Planned job whose time has passed runs at once."""
    match job.status:
        case JobStatus.DISABLED:
            return _with(job, status=job.restore or JobStatus.PLANNED, restore=None)
        case JobStatus.TRIGGERED if job.disable_after_run:
            return _with(job, disable_after_run=False)
        case _:
            return job


def next_due_us(job: Job) -> int | None:
    """When the job runs next as things stand (None: nothing planned, or disabled)."""
    return job.due_us if job.status is JobStatus.PLANNED else job.resume_us


def _finished(job: Job) -> JobStatus:
    """What a job that has run is, judging by how its last run ended."""
    if job.last_outcome is None:
        return JobStatus.PLANNED
    return _ENDS.get(job.last_outcome, JobStatus.FAILED)


def _with(job: Job, **changes: Any) -> Job:
    """``job`` with some fields changed: for the operator's actions, which are rare."""
    return dataclasses.replace(job, **changes)


def _hot(job: Job, status: JobStatus, run: int, lease_until_us: int, owner: str) -> Job:
    """``job`` with its state and lease changed, field by field: claims and renewals make
    one per run, and dataclasses.replace costs several times more."""
    return Job(
        id=job.id, due_us=job.due_us, status=status, run=run, lease_until_us=lease_until_us,
        owner=owner, manual=job.manual, resume_us=job.resume_us,
        disable_after_run=job.disable_after_run, last_outcome=job.last_outcome,
        last_finished_us=job.last_finished_us,
    )  # fmt: skip
