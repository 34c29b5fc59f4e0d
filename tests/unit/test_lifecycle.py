"""A job's life, event by event: pure transitions."""

from __future__ import annotations

import pytest

from kairoi.domain import Job, JobSpec, JobStatus, Outcome, Overlap
from kairoi.errors import Conflict
from kairoi.storage import lifecycle
from kairoi.storage.planning import GRID, Next

NOW = 1_000_000
LATER = 5_000_000


def planned(due_us: int = LATER) -> Job:
    return lifecycle.planned("j", due_us)


def running(job: Job | None = None) -> Job:
    job = job or planned()
    return lifecycle.claimed(job, job.run + 1, None)


def ended(job: Job, outcome: Outcome, plan: Next | None = None) -> Job:
    return lifecycle.ended(job, job.run, outcome, NOW + 1, plan)


def test_a_run_ends_executed_or_failed_and_says_how() -> None:
    job = ended(running(), Outcome.EXECUTED)
    assert (job.status, job.run, job.last_outcome, job.last_finished_us, job.active) == (
        JobStatus.EXECUTED, 1, Outcome.EXECUTED, NOW + 1, (),
    )  # fmt: skip
    for outcome in (Outcome.FAILED, Outcome.TIMED_OUT, Outcome.STOPPED, Outcome.NO_RULE):
        assert ended(running(), outcome).status is JobStatus.FAILED


def test_a_run_that_ends_with_a_plan_leaves_the_job_planned() -> None:
    job = ended(running(), Outcome.FAILED, Next(LATER + 9, LATER + 9, attempt=1, late=GRID))
    assert (job.status, job.due_us, job.slot_us, job.attempt, job.late) == (
        JobStatus.PLANNED, LATER + 9, LATER + 9, 1, GRID,
    )  # fmt: skip
    assert job.last_outcome is Outcome.FAILED


def test_with_overlap_allow_the_job_is_planned_beside_its_run() -> None:
    spec = JobSpec(when="R/2030-01-01T00:00:00Z/PT1S", overlap=Overlap.ALLOW)
    job = lifecycle.defined(None, "j", spec, Next(NOW, NOW))
    beside = lifecycle.claimed(job, 1, Next(NOW + 1, NOW + 1))
    assert (beside.status, beside.due_us, beside.active) == (JobStatus.PLANNED, NOW + 1, (1,))
    again = lifecycle.claimed(beside, 2, Next(NOW + 2, NOW + 2))
    assert again.active == (1, 2)
    first_done = lifecycle.ended(again, 1, Outcome.EXECUTED, NOW + 3, None)
    assert (first_done.status, first_done.active, first_done.due_us) == (
        JobStatus.PLANNED, (2,), NOW + 2,
    )  # fmt: skip


def test_set_plans_again_but_never_a_running_job() -> None:
    done = ended(running(), Outcome.FAILED)
    again = lifecycle.set_due(done, 7)
    assert (again.status, again.due_us, again.run) == (JobStatus.PLANNED, 7, 1)
    with pytest.raises(Conflict, match="running"):
        lifecycle.set_due(running(), 7)


def test_the_reference_set_replaces_a_schedule() -> None:
    job = lifecycle.defined(None, "j", JobSpec(when="cron:* * * * *"), Next(NOW, NOW))
    again = lifecycle.set_due(job, 7)
    assert (again.spec, again.slot_us, again.due_us) == (JobSpec(), None, 7)


def test_a_job_after_parents_waits_then_runs_when_they_succeed() -> None:
    spec = JobSpec(parents=("a", "b"))
    job = lifecycle.defined(None, "c", spec, None)
    assert job.status is JobStatus.WAITING and lifecycle.next_due_us(job) is None
    job = lifecycle.parent_ended(job, "a", True, NOW)
    assert (job.status, job.satisfied) == (JobStatus.WAITING, ("a",))
    assert lifecycle.parent_ended(job, "a", False, NOW).satisfied == (), "a failure takes it back"
    job = lifecycle.parent_ended(job, "b", True, NOW)
    assert (job.status, job.due_us, job.satisfied) == (JobStatus.PLANNED, NOW, ())
    done = ended(running(job), Outcome.EXECUTED)
    assert done.status is JobStatus.WAITING, "it waits for its parents again"


def test_any_parent_is_enough_with_any() -> None:
    job = lifecycle.defined(None, "c", JobSpec(parents=("a", "b"), all_parents=False), None)
    assert lifecycle.parent_ended(job, "b", True, NOW).status is JobStatus.PLANNED


def test_a_disabled_child_ignores_its_parents() -> None:
    job = lifecycle.disabled(lifecycle.defined(None, "c", JobSpec(parents=("a",)), None))
    assert lifecycle.parent_ended(job, "a", True, NOW) == job
    assert lifecycle.enabled(job).status is JobStatus.WAITING


def test_a_manual_run_keeps_the_planned_run_for_after() -> None:
    job = lifecycle.triggered_manually(planned(), NOW)
    assert (job.status, job.due_us, job.manual, job.resume_us) == (
        JobStatus.PLANNED, NOW, True, LATER,
    )  # fmt: skip
    assert lifecycle.next_due_us(job) == NOW
    run = running(job)
    after = ended(run, Outcome.EXECUTED, lifecycle.resumed(run))
    assert (after.status, after.due_us, after.manual, after.resume_us) == (
        JobStatus.PLANNED, LATER, False, None,
    )  # fmt: skip


def test_a_manual_run_of_a_finished_job_finishes_it_again() -> None:
    done = ended(running(), Outcome.EXECUTED)
    job = lifecycle.triggered_manually(done, NOW + 5)
    assert (job.status, job.due_us, job.resume_us) == (JobStatus.PLANNED, NOW + 5, None)
    assert lifecycle.resumed(job) is None
    assert ended(running(job), Outcome.FAILED).status is JobStatus.FAILED


def test_set_while_a_manual_run_waits_moves_the_schedule_not_the_run() -> None:
    job = lifecycle.set_due(lifecycle.triggered_manually(planned(), NOW), 9)
    assert (job.due_us, job.manual, job.resume_us) == (NOW, True, 9)


@pytest.mark.parametrize(
    ("job", "why"),
    [
        (running(), "running"),
        (lifecycle.disabled(planned()), "disabled"),
        (lifecycle.triggered_manually(planned(), NOW), "already has a manual run"),
    ],
)
def test_trigger_refuses_what_cannot_run_now(job: Job, why: str) -> None:
    with pytest.raises(Conflict, match=why):
        lifecycle.triggered_manually(job, NOW)


def test_disable_and_enable_give_back_what_they_took() -> None:
    job = lifecycle.disabled(planned())
    assert (job.status, job.restore, lifecycle.next_due_us(job)) == (
        JobStatus.DISABLED, JobStatus.PLANNED, None,
    )  # fmt: skip
    assert lifecycle.disabled(job) == job, "idempotent"
    assert lifecycle.enabled(job) == planned()
    assert lifecycle.enabled(planned()) == planned(), "enabling an enabled job changes nothing"
    done = ended(running(), Outcome.FAILED)
    assert lifecycle.enabled(lifecycle.disabled(done)) == done


def test_set_on_a_disabled_job_keeps_it_disabled_with_its_new_time() -> None:
    job = lifecycle.set_due(lifecycle.disabled(planned()), 9)
    assert (job.status, job.due_us) == (JobStatus.DISABLED, 9)
    assert lifecycle.enabled(job) == planned(9)


def test_disable_during_a_run_takes_effect_when_it_ends() -> None:
    job = lifecycle.disabled(running())
    assert job.status is JobStatus.TRIGGERED and job.disable_after_run
    done = ended(job, Outcome.EXECUTED)
    assert (done.status, done.restore) == (JobStatus.DISABLED, JobStatus.EXECUTED)
    assert not lifecycle.enabled(job).disable_after_run


def test_disabling_a_waiting_manual_run_drops_it_and_keeps_the_schedule() -> None:
    job = lifecycle.disabled(lifecycle.triggered_manually(planned(), NOW))
    assert (job.status, job.due_us, job.manual, job.resume_us) == (
        JobStatus.DISABLED, LATER, False, None,
    )  # fmt: skip
    assert lifecycle.enabled(job) == planned()


def test_missed_occurrences_passed_over_leave_the_job_at_its_next() -> None:
    job = lifecycle.defined(None, "j", JobSpec(when="cron:* * * * *"), Next(NOW, NOW))
    after = lifecycle.passed_over(job, Next(LATER, LATER), NOW + 9)
    assert (after.status, after.due_us, after.last_outcome, after.active) == (
        JobStatus.PLANNED, LATER, Outcome.SKIPPED, (),
    )  # fmt: skip
