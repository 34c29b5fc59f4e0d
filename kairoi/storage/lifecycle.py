"""A job's life: what each event makes of it. Pure functions from a Job to the next Job.

    (none) ──SET──▶ Planned ──falls due, claimed──▶ Triggered ──run ends──▶ Executed / Failed
                    ▲   │  ▲                          │    │                      │
                    │   │  └───────next occurrence────┘    └──(after its parents)─▶ Waiting
                    │   └──DISABLE──▶ Disabled ◀─── DISABLE during a run: at its end
                    └──────ENABLE───────┘

A job that runs after its parents (AFTER) is Waiting until they succeed, then Planned at
once. TRIGGER plans a manual run now and keeps the job's planned run aside (``resume_us``),
planned again once the manual run ends. STOP ends a run as ``stopped``; the job then goes on
as after any other end. With OVERLAP allow a job stays Planned at its next occurrence while
its runs go on. Refusals raise ``KairoiError``s with the reason a client is shown.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kairoi.domain import DEFAULT_SPEC, Job, JobSpec, JobStatus, Outcome
from kairoi.errors import Conflict
from kairoi.storage.planning import GRID, Next

_ENDS = {Outcome.EXECUTED: JobStatus.EXECUTED}  # every other way a run ends is a failure


def planned(job_id: str, due_us: int) -> Job:
    return Job(id=job_id, due_us=due_us, status=JobStatus.PLANNED)


def set_due(job: Job, due_us: int) -> Job:
    """The reference SET: plan the job once, at ``due_us``, by the rule that matches it. A
    disabled job stays disabled, with its new time; a pending manual run stays pending, and
    the new time is the one planned after it."""
    _refuse_running(job, "set it again once its run ends")
    match job.status:
        case JobStatus.DISABLED:
            return _with(job, spec=DEFAULT_SPEC, due_us=due_us, restore=JobStatus.PLANNED)
        case JobStatus.PLANNED if job.manual:
            return _with(job, spec=DEFAULT_SPEC, resume_us=due_us, resume_slot_us=None)
        case _:
            return _with(job, spec=DEFAULT_SPEC, status=JobStatus.PLANNED, due_us=due_us,
                         slot_us=None, attempt=0, late="")  # fmt: skip


def defined(job: Job | None, job_id: str, spec: JobSpec, plan: Next | None) -> Job:
    """SET with a schedule or options, or a job file's entry: the job as ``spec`` says,
    planned at ``plan`` (None: it waits for its parents). A disabled job stays disabled."""
    status = JobStatus.PLANNED if plan is not None else JobStatus.WAITING
    due = plan.due_us if plan is not None else 0
    slot = plan.slot_us if plan is not None else None
    if job is None:
        return Job(id=job_id, due_us=due, status=status, spec=spec, slot_us=slot)
    if job.status is JobStatus.DISABLED:
        return _with(job, spec=spec, due_us=due, slot_us=slot, restore=status, satisfied=())
    return _with(job, spec=spec, status=status, due_us=due, slot_us=slot, attempt=0,
                 late="", manual=False, resume_us=None, resume_slot_us=None,
                 satisfied=())  # fmt: skip


def redefined_while_running(job: Job, spec: JobSpec) -> Job:
    """A job file changed a job whose run goes on: the new spec plans what follows it."""
    return _with(job, spec=spec)


def claimed(job: Job, run: int, then: Next | None) -> Job:
    """Run ``run`` of the job is claimed. ``then``: with OVERLAP allow, the next occurrence,
    planned at once (None: the job waits for the run's end)."""
    active = (*job.active, run)
    if then is not None:
        return Job(
            id=job.id, due_us=then.due_us, status=JobStatus.PLANNED, run=run, spec=job.spec,
            slot_us=then.slot_us, late=then.late, active=active,
            last_outcome=job.last_outcome, last_finished_us=job.last_finished_us,
        )  # fmt: skip
    return Job(
        id=job.id, due_us=job.due_us, status=JobStatus.TRIGGERED, run=run, spec=job.spec,
        slot_us=job.slot_us, attempt=job.attempt, active=active, manual=job.manual,
        resume_us=job.resume_us, resume_slot_us=job.resume_slot_us,
        disable_after_run=job.disable_after_run, last_outcome=job.last_outcome,
        last_finished_us=job.last_finished_us,
    )  # fmt: skip


def ended(job: Job, run: int, outcome: Outcome, now_us: int, plan: Next | None) -> Job:
    """Run ``run`` ended (``no_rule``: could not start). When it was the job's last run under
    way and the job waited for it, ``plan`` is what it does next (None: nothing, so it is
    Executed or Failed, or Waiting for its parents)."""
    active = tuple(number for number in job.active if number != run)
    if job.status is not JobStatus.TRIGGERED or active:  # planned already (allow), or not last
        return Job(
            id=job.id, due_us=job.due_us, status=job.status, run=job.run, spec=job.spec,
            slot_us=job.slot_us, attempt=job.attempt, late=job.late, active=active,
            manual=job.manual, resume_us=job.resume_us, resume_slot_us=job.resume_slot_us,
            restore=job.restore, disable_after_run=job.disable_after_run,
            last_outcome=outcome, last_finished_us=now_us, satisfied=job.satisfied,
        )  # fmt: skip
    status = JobStatus.WAITING if job.spec.parents else _ENDS.get(outcome, JobStatus.FAILED)
    due_us, slot_us, attempt, late = job.due_us, None, 0, ""
    if plan is not None:
        status, due_us, slot_us = JobStatus.PLANNED, plan.due_us, plan.slot_us
        attempt, late = plan.attempt, plan.late
    restore = None
    if job.disable_after_run:
        status, restore = JobStatus.DISABLED, status
    return Job(
        id=job.id, due_us=due_us, status=status, run=job.run, spec=job.spec, slot_us=slot_us,
        attempt=attempt, late=late, restore=restore, last_outcome=outcome,
        last_finished_us=now_us, satisfied=job.satisfied,
    )  # fmt: skip


def passed_over(job: Job, plan: Next | None, now_us: int) -> Job:
    """MISSED skip: the job's planned occurrence (and those after it, up to now) will not
    run; ``plan`` is its next one (None: it has no more)."""
    running = _with(job, status=JobStatus.TRIGGERED, active=(0,))
    return ended(running, 0, Outcome.SKIPPED, now_us, plan)


def exhausted(job: Job) -> Job:
    """The job's run numbers reached limits.MAX_RUN: it runs no more (Failed, nothing
    planned); UNSET, or SET again under another id, is what is left to do."""
    return _with(job, status=JobStatus.FAILED, manual=False, late="", resume_us=None,
                 resume_slot_us=None, last_outcome=Outcome.FAILED)  # fmt: skip


def resumed(job: Job) -> Next | None:
    """What a manual run's end plans: the run TRIGGER put aside, if any."""
    if job.resume_us is None:
        return None
    return Next(job.resume_us, job.resume_slot_us)


def triggered_manually(job: Job, now_us: int) -> Job:
    """TRIGGER: run it now, once, keeping its planned run for after."""
    _refuse_running(job, "STOP it or wait for its end")
    match job.status:
        case JobStatus.DISABLED:
            raise Conflict(f"job {job.id!r} is disabled; ENABLE it first")
        case JobStatus.PLANNED if job.manual:
            raise Conflict(f"job {job.id!r} already has a manual run waiting to start")
        case JobStatus.PLANNED:
            return _with(job, due_us=now_us, manual=True, resume_us=job.due_us,
                         resume_slot_us=job.slot_us, slot_us=None, late="")  # fmt: skip
        case _:
            return _with(job, status=JobStatus.PLANNED, due_us=now_us, manual=True,
                         slot_us=None, late="")  # fmt: skip


def disabled(job: Job) -> Job:
    """DISABLE: it never fires until enabled; a run under way goes on to its end."""
    match job.status:
        case JobStatus.DISABLED:
            return job
        case JobStatus.TRIGGERED:
            return _with(job, disable_after_run=True)
        case JobStatus.PLANNED if job.manual:  # the manual run is dropped, the plan kept
            if job.resume_us is not None:
                return _with(job, status=JobStatus.DISABLED, due_us=job.resume_us,
                             slot_us=job.resume_slot_us, manual=False, resume_us=None,
                             resume_slot_us=None, restore=JobStatus.PLANNED)  # fmt: skip
            return _with(job, status=JobStatus.DISABLED, manual=False, restore=_finished(job))
        case status:
            return _with(job, status=JobStatus.DISABLED, restore=status, satisfied=())


def enabled(job: Job) -> Job:
    """ENABLE: back to what DISABLE found; a Planned job whose time has passed runs at once."""
    match job.status:
        case JobStatus.DISABLED:
            return _with(job, status=job.restore or JobStatus.PLANNED, restore=None)
        case JobStatus.TRIGGERED if job.disable_after_run:
            return _with(job, disable_after_run=False)
        case _:
            return job


def parent_ended(child: Job, parent_id: str, succeeded: bool, now_us: int) -> Job:
    """A parent of ``child`` ended its run: a success counts towards running it (now, once
    every parent, or any one, has succeeded); a failure takes the parent's back."""
    if child.status is JobStatus.DISABLED:
        return child  # a disabled job ignores its parents
    satisfied = tuple(p for p in child.satisfied if p != parent_id)
    if succeeded:
        satisfied = (*satisfied, parent_id)
    if _parents_done(child.spec, satisfied) and child.status in (
        JobStatus.WAITING,
        JobStatus.EXECUTED,
        JobStatus.FAILED,
    ):
        return _with(child, status=JobStatus.PLANNED, due_us=now_us, slot_us=None,
                     late=GRID, satisfied=())  # fmt: skip
    return _with(child, satisfied=satisfied)


def ready_again(job: Job, now_us: int) -> Next | None:
    """A job that runs after its parents, at its run's end: run again at once if they all
    (or any) succeeded again meanwhile."""
    if not job.spec.parents or not _parents_done(job.spec, job.satisfied):
        return None
    return Next(now_us, late=GRID)


def _parents_done(spec: JobSpec, satisfied: tuple[str, ...]) -> bool:
    """Whether the parents that succeeded are enough to run the child: all, or any one."""
    if not satisfied:
        return False
    return not spec.all_parents or set(spec.parents) <= set(satisfied)


def next_due_us(job: Job) -> int | None:
    """When the job runs next as things stand (None: nothing planned, or disabled)."""
    return job.due_us if job.status is JobStatus.PLANNED else job.resume_us


def _refuse_running(job: Job, what_to_do: str) -> None:
    if job.running:
        raise Conflict(f"job {job.id!r} is running (Triggered); {what_to_do}")


def _finished(job: Job) -> JobStatus:
    """What a job that has run is, judging by how its last run ended."""
    if job.last_outcome is None:
        return JobStatus.PLANNED
    return _ENDS.get(job.last_outcome, JobStatus.FAILED)


def _with(job: Job, **changes: Any) -> Job:
    """``job`` with some fields changed: for the operator's actions, which are rare."""
    return dataclasses.replace(job, **changes)
