"""When a job runs next: its first run, what a late claim means, what follows a run's end.

Pure: a job's spec, its schedule, the time and (for retries) a random source in; instants
out. Arithmetic saturates instead of raising: a retry whose time would pass the calendar's
end is not planned (the job ends as its run did), a schedule with no occurrence left within
the calendar has no more. A recurring job's runs stand for occurrences of its schedule
(``slot_us``); its next occurrence is always counted from the last one's, so the grid never
drifts, and the policies decide what happens to occurrences that pass while it cannot run:

- MISSED (checked when a run is claimed and the next occurrence has passed too, i.e.
  Kairoi was down): skip them all, run one catch-up then resume the grid, or run each (up
  to limits.MAX_CATCH_UP of them; after a longer gap, one catch-up, as with once).
- OVERLAP (checked when a run ends and occurrences passed during it): skip them, run each
  in turn (queue), or, with allow, nothing to check: each ran at its time beside the others.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kairoi import limits
from kairoi.domain import ActiveRun, Job, JobSpec, Missed, Outcome, Overlap
from kairoi.errors import InvalidRequest
from kairoi.schedule import Cron, Interval, OneShot, Schedule, parse_schedule

GRID, NOW, BACKLOG = "grid", "now", "backlog"
"""How a claimed run's end plans the next occurrence: see domain.ActiveRun.after."""
SKIP = "skip"
"""A claim finds the occurrence missed and MISSED skip: it does not run."""
JITTER = 0.25
"""A retry waits up to this much longer than its backoff (never less)."""
_RETRIED = frozenset({Outcome.FAILED, Outcome.TIMED_OUT})


@dataclass(frozen=True, slots=True)
class Next:
    """A run to plan: when, the occurrence it stands for, its attempt, and, when it is due
    after its occurrence on purpose, how it is claimed (GRID or BACKLOG; "" when on time)."""

    due_us: int
    slot_us: int | None = None
    attempt: int = 0
    late: str = ""


@dataclass(frozen=True, slots=True)
class Skipped:
    """Occurrences that do not run: from ``first_us`` up to ``until_us``, and why."""

    first_us: int
    until_us: int
    reason: str


def schedule_of(spec: JobSpec, due_us: int) -> Schedule:
    """A stored job's schedule (the reference SET's one-shot is at ``due_us``). One stored
    before its ranges were checked, which no longer parses, is taken as a one-shot at its
    due time: it runs once more, then ends, instead of failing every claim that meets it."""
    if not spec.when:
        return OneShot(due_us)
    try:
        return parse_schedule(spec.when, spec.zone)
    except InvalidRequest:
        return OneShot(due_us)


def is_recurring(spec: JobSpec) -> bool:
    return bool(spec.when) and isinstance(schedule_of(spec, 0), Interval | Cron)


def first(spec: JobSpec, due_us: int, now_us: int) -> Next | None:
    """A job's first run once (re)defined; None when it waits for its parents. A one-shot
    time in the past is due at once; a recurring schedule starts at its first occurrence
    from now (nothing was missed before it existed)."""
    if spec.parents:
        return None
    schedule = parse_schedule(spec.when, spec.zone) if spec.when else OneShot(due_us)
    if isinstance(schedule, OneShot):
        return Next(schedule.at_us)
    occurrence = schedule.next_after(now_us - 1)
    if occurrence is None and isinstance(schedule, Interval) and schedule.repeated_by(now_us - 1):
        raise InvalidRequest(f"every occurrence of {spec.when!r} is in the past")
    if occurrence is None:  # the next one is after 9999-12-31T23:59:59.999999Z
        raise InvalidRequest(f"the next occurrence of {spec.when!r} is past the calendar's end "
                             "(year 9999)")  # fmt: skip
    return Next(occurrence, occurrence)


def on_claim(job: Job, now_us: int) -> str:
    """How a due run is claimed: GRID (on time), or, when its next occurrence has passed
    too (Kairoi was down), as MISSED says: SKIP, NOW (one catch-up) or BACKLOG (each)."""
    if job.late:  # a retry, a queued or a missed occurrence: late on purpose
        return job.late
    if job.manual or job.slot_us is None:
        return GRID
    schedule = schedule_of(job.spec, job.due_us)
    following = schedule.next_after(job.slot_us)
    if following is None or following > now_us:
        return GRID
    if job.spec.missed is Missed.ALL and _passed_more_than(schedule, following, now_us):
        return NOW  # too long a backlog to run each: one catch-up, as MISSED once
    return {Missed.SKIP: SKIP, Missed.ONCE: NOW, Missed.ALL: BACKLOG}[job.spec.missed]


def _passed_more_than(schedule: Schedule, first_us: int, now_us: int) -> bool:
    """Whether more than MAX_CATCH_UP occurrences from ``first_us`` are due by ``now_us``
    (as many steps as there are missed occurrences, at most MAX_CATCH_UP)."""
    occurrence: int | None = first_us
    for _ in range(limits.MAX_CATCH_UP):
        occurrence = schedule.next_after(occurrence) if occurrence is not None else None
        if occurrence is None or occurrence > now_us:
            return False
    return True


def after_missed(job: Job, now_us: int) -> tuple[Next | None, Skipped]:
    """MISSED skip: the occurrences from the job's planned one up to now do not run."""
    assert job.slot_us is not None
    skipped = Skipped(job.slot_us, now_us, "missed while Kairoi was not running (MISSED skip)")
    return _following(job.spec, job.due_us, now_us), skipped


def next_occurrence(
    spec: JobSpec, due_us: int, slot_us: int | None, after: str, now_us: int
) -> tuple[Next | None, Skipped | None]:
    """The occurrence to plan after a run that stood for ``slot_us`` and was claimed with
    ``after`` (GRID, NOW or BACKLOG), at ``now_us``; with the occurrences that will not run."""
    if not is_recurring(spec) or slot_us is None:
        return None, None
    if after == NOW:
        return _following(spec, due_us, now_us), None
    schedule = schedule_of(spec, due_us)
    occurrence = schedule.next_after(slot_us)
    if occurrence is None:
        return None, None
    if occurrence > now_us:
        return Next(occurrence, occurrence), None
    if after == BACKLOG:
        return Next(occurrence, occurrence, late=BACKLOG), None
    if spec.overlap is not Overlap.SKIP:
        return Next(occurrence, occurrence, late=GRID), None
    reason = "came while the run before was still running (OVERLAP skip)"
    return _following(spec, due_us, now_us), Skipped(occurrence, now_us, reason)


def retry(
    spec: JobSpec, run: ActiveRun, outcome: Outcome, now_us: int, rng: random.Random
) -> Next | None:
    """The retry of a failed run, if RETRIES leaves one and it comes before the job's next
    regular occurrence would. A manual run is not retried."""
    slot_us, attempt = run.slot_us, run.attempt
    if outcome not in _RETRIED or attempt >= spec.retries or run.manual:
        return None
    base = min(spec.backoff_us * (1 << min(attempt, 62)), limits.MAX_DURATION_US)
    if spec.max_backoff_us:
        base = min(base, spec.max_backoff_us)
    due_us = now_us + base + int(rng.uniform(0, base * JITTER))
    if due_us > limits.MAX_INSTANT_US:
        return None  # past the calendar's end: no retry, the run's failure stands
    if slot_us is not None and is_recurring(spec):
        regular = schedule_of(spec, due_us).next_after(slot_us)
        if regular is not None and regular <= due_us:
            return None  # the next occurrence comes first: it is the next try
    return Next(due_us, slot_us, attempt + 1, late=GRID)


def _following(spec: JobSpec, due_us: int, now_us: int) -> Next | None:
    occurrence = schedule_of(spec, due_us).next_after(now_us)
    return None if occurrence is None else Next(occurrence, occurrence)
