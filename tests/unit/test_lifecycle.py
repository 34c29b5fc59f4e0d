"""A job's life, event by event: pure transitions."""

from __future__ import annotations

import pytest

from kairoi.domain import Job, JobStatus, Outcome
from kairoi.errors import Conflict
from kairoi.storage import lifecycle

NOW = 1_000_000
LATER = 5_000_000


def planned(due_us: int = LATER) -> Job:
    return lifecycle.planned("j", due_us)


def running(job: Job | None = None) -> Job:
    return lifecycle.claimed(job or planned(), NOW, 10, "dispatcher:d")


def test_a_run_ends_executed_or_failed_and_says_how() -> None:
    job = lifecycle.ended(running(), Outcome.EXECUTED, NOW + 1)
    assert (job.status, job.run, job.last_outcome, job.last_finished_us) == (
        JobStatus.EXECUTED, 1, Outcome.EXECUTED, NOW + 1,
    )  # fmt: skip
    for outcome in (Outcome.FAILED, Outcome.TIMED_OUT, Outcome.STOPPED, Outcome.NO_RULE):
        assert lifecycle.ended(running(), outcome, NOW).status is JobStatus.FAILED
    assert lifecycle.ended(running(), Outcome.EXECUTED, NOW).lease_until_us == 0


def test_set_plans_again_but_never_a_running_job() -> None:
    done = lifecycle.ended(running(), Outcome.FAILED, NOW)
    again = lifecycle.set_due(done, 7)
    assert (again.status, again.due_us, again.run) == (JobStatus.PLANNED, 7, 1)
    with pytest.raises(Conflict, match="running"):
        lifecycle.set_due(running(), 7)


def test_a_manual_run_keeps_the_schedule_for_after() -> None:
    job = lifecycle.triggered_manually(planned(), NOW)
    assert (job.status, job.due_us, job.manual, job.resume_us) == (
        JobStatus.PLANNED, NOW, True, LATER,
    )  # fmt: skip
    assert lifecycle.next_due_us(job) == NOW
    after = lifecycle.ended(running(job), Outcome.EXECUTED, NOW + 1)
    assert (after.status, after.due_us, after.manual, after.resume_us) == (
        JobStatus.PLANNED, LATER, False, None,
    )  # fmt: skip
    assert after.last_outcome is Outcome.EXECUTED


def test_a_manual_run_of_a_finished_job_finishes_it_again() -> None:
    done = lifecycle.ended(running(), Outcome.EXECUTED, NOW)
    job = lifecycle.triggered_manually(done, NOW + 5)
    assert (job.status, job.due_us, job.resume_us) == (JobStatus.PLANNED, NOW + 5, None)
    assert lifecycle.ended(running(job), Outcome.FAILED, NOW).status is JobStatus.FAILED


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
    done = lifecycle.ended(running(), Outcome.FAILED, NOW)
    assert lifecycle.enabled(lifecycle.disabled(done)) == done


def test_set_on_a_disabled_job_keeps_it_disabled_with_its_new_time() -> None:
    job = lifecycle.set_due(lifecycle.disabled(planned()), 9)
    assert (job.status, job.due_us) == (JobStatus.DISABLED, 9)
    assert lifecycle.enabled(job) == planned(9)


def test_disable_during_a_run_takes_effect_when_it_ends() -> None:
    job = lifecycle.disabled(running())
    assert job.status is JobStatus.TRIGGERED and job.disable_after_run
    ended = lifecycle.ended(job, Outcome.EXECUTED, NOW)
    assert (ended.status, ended.restore) == (JobStatus.DISABLED, JobStatus.EXECUTED)
    assert lifecycle.enabled(lifecycle.enabled(job)) == lifecycle.enabled(job)
    assert not lifecycle.enabled(job).disable_after_run


def test_disabling_a_waiting_manual_run_drops_it_and_keeps_the_schedule() -> None:
    job = lifecycle.disabled(lifecycle.triggered_manually(planned(), NOW))
    assert (job.status, job.due_us, job.manual, job.resume_us) == (
        JobStatus.DISABLED, LATER, False, None,
    )  # fmt: skip
    assert lifecycle.enabled(job) == planned()


def test_a_lost_run_is_claimed_again_as_the_next_run() -> None:
    job = lifecycle.claimed(running(), NOW + 20, 10, "dispatcher:e")
    assert (job.run, job.owner, job.lease_until_us) == (2, "dispatcher:e", NOW + 30)
