"""Recurring, retried and dependent jobs in storage: what each claim and each end of a run
plans next, on every KeyValueStore, with a fake clock."""

from __future__ import annotations

import random

import pytest

from kairoi import messages
from kairoi.clock import FakeClock
from kairoi.storage.engine import Engine
from kairoi.storage.kv import KeyValueStore

S = 1_000_000
START = 1_893_456_000 * S  # 2030-01-01T00:00:00Z
EVERY_SECOND = "R/2030-01-01T00:00:00Z/PT1S"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START - 10 * S)


@pytest.fixture
def engine(kv: KeyValueStore, clock: FakeClock) -> Engine:
    engine = Engine(kv, fsync=False, clock=clock, lease_us=60 * S, rng=random.Random(5))
    reply = engine.apply(messages.SetShellRule(rule_id="r", pattern="", script="s.sh"))
    engine.commit()
    assert reply == messages.Ok()
    return engine


def define(engine: Engine, job_id: str, when: str = "", **options: object) -> messages.Reply:
    fields: dict[str, object] = {
        "job_id": job_id, "when": when, "zone": "", "missed": "once", "overlap": "skip",
        "retries": 0, "backoff_us": 0, "max_backoff_us": 0, "parents": (),
        "all_parents": True, "runner": "", "arguments": (), "rule_id": "", "source": "",
    }  # fmt: skip
    fields.update(options)
    reply = engine.apply(messages.DefineJob(**fields))  # type: ignore[arg-type]
    engine.commit()
    return reply


def claim(engine: Engine) -> list[messages.Execute]:
    reply = engine.apply(messages.ClaimDue(dispatcher="d", lookahead_us=0, limit=100))
    engine.commit()
    assert isinstance(reply, messages.Claimed)
    return list(reply.runs)


def finish(engine: Engine, run: messages.Execute, outcome: str = "executed") -> None:
    report = messages.RecordOutcome(
        job_id=run.job_id, run=run.run, outcome=outcome, exit_code=0, reason="",
        started_us=run.due_us, finished_us=run.due_us, output=b"",
    )  # fmt: skip
    assert engine.apply(report) == messages.Ok()
    engine.commit()


def state(engine: Engine, job_id: str) -> messages.JobState:
    reply = engine.apply(messages.GetJob(job_id=job_id))
    assert isinstance(reply, messages.JobState), reply
    return reply


def outcomes(engine: Engine, job_id: str) -> list[tuple[int, str]]:
    reply = engine.apply(messages.ListRuns(job_id=job_id, limit=100))
    assert isinstance(reply, messages.Runs)
    return [(run.run, run.outcome) for run in reversed(reply.runs)]


def test_an_interval_runs_on_its_grid_then_stops(engine: Engine, clock: FakeClock) -> None:
    assert define(engine, "j", "R2/2030-01-01T00:00:00Z/PT1S") == messages.Ok()
    assert state(engine, "j").next_due_us == START
    for k in range(3):
        clock.set(START + k * S + 3_000)  # a little late, as real claims are
        (run,) = claim(engine)
        assert run.due_us == START + k * S
        finish(engine, run)
    job = state(engine, "j")
    assert (job.status, job.next_due_us, job.run) == ("executed", None, 3)
    assert job.options == ("MISSED", "once", "OVERLAP", "skip")


def test_a_cron_job_is_planned_at_its_first_occurrence(engine: Engine) -> None:
    assert define(engine, "c", "cron:0 0 3 * * *", zone="Europe/Paris") == messages.Ok()
    job = state(engine, "c")
    assert job.next_due_us == START + 2 * 3600 * S  # 03:00 in Paris is 02:00Z in January
    assert (job.when, job.options[:2]) == ("cron:0 0 3 * * *", ("TZ", "Europe/Paris"))


def test_an_interval_wholly_in_the_past_is_refused(engine: Engine, clock: FakeClock) -> None:
    clock.set(START + 10 * S)
    reply = define(engine, "j", "R2/2030-01-01T00:00:00Z/PT1S")
    assert isinstance(reply, messages.Failed) and "every occurrence" in reply.reason


@pytest.mark.parametrize(
    ("missed", "runs", "next_due"),
    [
        ("once", [(1, "executed")], START + 6 * S),  # one catch-up now, then the grid
        ("skip", [(1, "skipped")], START + 6 * S),  # nothing runs until the next
        ("all", [(1, "executed"), (2, "executed"), (3, "executed"), (4, "executed"),
                 (5, "executed"), (6, "executed")], START + 6 * S),  # each, in turn
    ],
)  # fmt: skip
def test_occurrences_missed_while_down_follow_the_missed_policy(
    engine: Engine, clock: FakeClock, missed: str, runs: list[tuple[int, str]], next_due: int
) -> None:
    define(engine, "j", EVERY_SECOND, missed=missed)
    clock.set(START + 5 * S + 500_000)  # the server was down across 6 occurrences
    while claimed := claim(engine):
        for run in claimed:
            finish(engine, run)
    assert outcomes(engine, "j") == runs
    assert state(engine, "j").next_due_us == next_due


@pytest.mark.parametrize(
    ("overlap", "after_end"),
    [
        ("skip", [(1, "executed"), (2, "skipped")]),
        ("queue", [(1, "executed")]),
    ],
)
def test_occurrences_during_a_long_run_follow_the_overlap_policy(
    engine: Engine, clock: FakeClock, overlap: str, after_end: list[tuple[int, str]]
) -> None:
    define(engine, "j", EVERY_SECOND, overlap=overlap)
    clock.set(START)
    (run,) = claim(engine)
    clock.set(START + 3 * S + 500_000)  # three more occurrences pass while it runs
    assert claim(engine) == [], "one run at a time"
    finish(engine, run)
    assert outcomes(engine, "j") == after_end
    if overlap == "skip":
        assert state(engine, "j").next_due_us == START + 4 * S
    else:  # each passed occurrence runs in turn
        queued = [claim(engine)[0].due_us for _ in range(1)]
        assert queued == [START + 1 * S]


def test_with_overlap_allow_runs_go_on_beside_each_other(engine: Engine, clock: FakeClock) -> None:
    define(engine, "j", EVERY_SECOND, overlap="allow")
    clock.set(START)
    (first,) = claim(engine)
    assert state(engine, "j").next_due_us == START + S, "planned at once"
    clock.set(START + S)
    (second,) = claim(engine)
    assert (first.run, second.run) == (1, 2)
    assert state(engine, "j").status == "triggered"
    finish(engine, second)
    finish(engine, first)
    assert state(engine, "j").status == "planned"
    reply = define(engine, "k", EVERY_SECOND, overlap="allow", retries=1, backoff_us=S)
    assert (
        isinstance(reply, messages.Failed)
        and "RETRIES cannot be used with OVERLAP allow" in reply.reason
    )


def test_a_failed_run_is_retried_with_backoff_then_gives_up(
    engine: Engine, clock: FakeClock
) -> None:
    define(engine, "j", "2030-01-01T00:00:00Z", retries=2, backoff_us=10 * S)
    clock.set(START)
    (run,) = claim(engine)
    finish(engine, run, "failed")
    retry_at = state(engine, "j").next_due_us
    assert retry_at is not None and START + 10 * S <= retry_at <= START + 12_500_000
    clock.set(retry_at)
    (second,) = claim(engine)
    finish(engine, second, "timed_out")
    retry_at = state(engine, "j").next_due_us
    assert retry_at is not None and retry_at >= START + 10 * S + 20 * S, "doubled"
    clock.set(retry_at)
    (third,) = claim(engine)
    finish(engine, third, "failed")
    job = state(engine, "j")
    assert (job.status, job.run) == ("failed", 3)
    assert outcomes(engine, "j") == [(1, "failed"), (2, "timed_out"), (3, "failed")]


def test_a_retry_never_runs_after_the_next_occurrence_would(
    engine: Engine, clock: FakeClock
) -> None:
    define(engine, "j", EVERY_SECOND, retries=3, backoff_us=5 * S)
    clock.set(START)
    (run,) = claim(engine)
    finish(engine, run, "failed")
    assert state(engine, "j").next_due_us == START + S, "the next occurrence is the next try"


def test_max_backoff_bounds_the_wait(engine: Engine, clock: FakeClock) -> None:
    define(engine, "j", "2030-01-01T00:00:00Z", retries=5, backoff_us=10 * S,
           max_backoff_us=15 * S)  # fmt: skip
    clock.set(START)
    for _ in range(3):
        (run,) = claim(engine)
        finish(engine, run, "failed")
        retry_at = state(engine, "j").next_due_us
        assert retry_at is not None
        assert retry_at - clock.now_us() <= 15 * S * 1.25
        clock.set(retry_at)


def test_a_child_runs_once_after_all_its_parents(engine: Engine, clock: FakeClock) -> None:
    define(engine, "a", "2030-01-01T00:00:00Z")
    define(engine, "b", "2030-01-01T00:00:01Z")
    assert define(engine, "c", parents=("a", "b")) == messages.Ok()
    assert state(engine, "c").status == "waiting"
    clock.set(START)
    (a,) = claim(engine)
    finish(engine, a)
    assert state(engine, "c").status == "waiting", "b has not run yet"
    clock.set(START + S)
    (b,) = claim(engine)
    finish(engine, b)
    (c,) = claim(engine)
    assert c.job_id == "c"
    finish(engine, c)
    assert (state(engine, "c").status, state(engine, "c").run) == ("waiting", 1)


def test_a_failed_parent_does_not_start_its_children(engine: Engine, clock: FakeClock) -> None:
    define(engine, "a", "2030-01-01T00:00:00Z")
    define(engine, "c", parents=("a",))
    clock.set(START)
    (a,) = claim(engine)
    finish(engine, a, "failed")
    assert claim(engine) == []
    assert state(engine, "c").status == "waiting"


def test_any_parent_is_enough_with_any(engine: Engine, clock: FakeClock) -> None:
    define(engine, "a", "2030-01-01T00:00:00Z")
    define(engine, "b", "2031-01-01T00:00:00Z")
    define(engine, "c", parents=("a", "b"), all_parents=False)
    assert state(engine, "c").options == ("AFTER", "a", "b", "ANY")
    clock.set(START)
    finish(engine, claim(engine)[0])
    assert [run.job_id for run in claim(engine)] == ["c"]


def test_parents_must_exist_and_deleting_one_needs_cascade(engine: Engine) -> None:
    reply = define(engine, "c", parents=("ghost",))
    assert isinstance(reply, messages.Failed) and reply.code == "not_found"
    assert engine.job("c") is None, "nothing half-linked"
    define(engine, "a", "2030-01-01T00:00:00Z")
    define(engine, "c", parents=("a",))
    define(engine, "d", parents=("c",))
    refused = engine.apply(messages.UnsetJob(job_id="a", cascade=False))
    assert isinstance(refused, messages.Failed) and refused.code == "conflict"
    assert "'c'" in refused.reason and "CASCADE" in refused.reason
    assert engine.apply(messages.UnsetJob(job_id="a", cascade=True)) == messages.Ok()
    engine.commit()
    assert [engine.job(job_id) for job_id in "acd"] == [None, None, None]


def test_a_job_is_on_a_schedule_or_after_parents_not_both(engine: Engine) -> None:
    define(engine, "a", "2030-01-01T00:00:00Z")
    for reply, why in [
        (define(engine, "c", EVERY_SECOND, parents=("a",)), "not both"),
        (define(engine, "c", parents=("c",)), "after itself"),
        (define(engine, "c"), "needs a schedule or parents"),
        (define(engine, "c", EVERY_SECOND, retries=1), "needs a BACKOFF"),
        (define(engine, "c", EVERY_SECOND, missed="sometimes"), "MISSED is skip"),
    ]:
        assert isinstance(reply, messages.Failed) and why in reply.reason, reply


def test_set_of_the_reference_form_replaces_a_schedule_and_its_links(engine: Engine) -> None:
    define(engine, "a", "2030-01-01T00:00:00Z")
    define(engine, "c", parents=("a",))
    assert engine.apply(messages.SetJob(job_id="c", due_us=START + 5)) == messages.Ok()
    engine.commit()
    assert engine.apply(messages.UnsetJob(job_id="a", cascade=False)) == messages.Ok()
    job = state(engine, "c")
    assert (job.status, job.next_due_us, job.options) == ("planned", START + 5, ())


def test_a_manual_run_of_a_recurring_job_keeps_its_occurrence(
    engine: Engine, clock: FakeClock
) -> None:
    define(engine, "j", EVERY_SECOND)
    clock.set(START - 5 * S)
    assert engine.apply(messages.TriggerJob(job_id="j")) == messages.Ok()
    engine.commit()
    (manual,) = claim(engine)
    finish(engine, manual)
    assert state(engine, "j").next_due_us == START


def job_of_file(job_id: str, when: str = "", **options: object) -> messages.DefineJob:
    fields: dict[str, object] = {
        "job_id": job_id, "when": when, "zone": "", "missed": "once", "overlap": "skip",
        "retries": 0, "backoff_us": 0, "max_backoff_us": 0, "parents": (),
        "all_parents": True, "runner": "shell", "arguments": ("s.sh",), "rule_id": "",
        "source": "/jobs.yaml",
    }  # fmt: skip
    fields.update(options)
    return messages.DefineJob(**fields)  # type: ignore[arg-type]


def load(engine: Engine, *jobs: messages.DefineJob) -> messages.Reply:
    reply = engine.apply(messages.LoadJobs(source="/jobs.yaml", jobs=jobs))
    engine.commit()
    return reply


def test_a_job_file_defines_its_jobs_and_removes_those_it_dropped(
    engine: Engine, clock: FakeClock
) -> None:
    child = job_of_file("child", parents=("parent",))  # before its parent in the file
    assert load(engine, child, job_of_file("parent", EVERY_SECOND),
                job_of_file("other", EVERY_SECOND)) == messages.Ok()  # fmt: skip
    assert state(engine, "child").options[-2:] == ("FILE", "/jobs.yaml")
    define(engine, "mine", EVERY_SECOND)  # not the file's: never removed by it
    assert load(engine, child, job_of_file("parent", EVERY_SECOND)) == messages.Ok()
    assert engine.job("other") is None and engine.job("mine") is not None
    assert load(engine) == messages.Ok()
    assert [engine.job(job_id) for job_id in ("child", "parent")] == [None, None]


def test_a_job_file_redefines_a_running_job_for_after_its_run(
    engine: Engine, clock: FakeClock
) -> None:
    load(engine, job_of_file("j", EVERY_SECOND))
    clock.set(START)
    (run,) = claim(engine)
    assert load(engine, job_of_file("j", "R/2030-01-01T00:00:00Z/PT10S")) == messages.Ok()
    finish(engine, run)
    assert state(engine, "j").next_due_us == START + 10 * S


def test_a_bad_job_file_is_refused_as_a_whole(engine: Engine) -> None:
    load(engine, job_of_file("kept", EVERY_SECOND))
    reply = load(engine, job_of_file("new", EVERY_SECOND),
                 job_of_file("orphan", parents=("ghost",)))  # fmt: skip
    assert reply == messages.Refused(
        positions=(1,), codes=("not_found",), reasons=("no job 'ghost', which 'orphan' runs after",)
    )
    assert engine.job("new") is None and engine.job("kept") is not None, "nothing changed"
    define(engine, "mine", parents=("kept",))
    reply = load(engine)
    assert isinstance(reply, messages.Failed) and "'mine' runs after 'kept'" in reply.reason
    assert engine.job("kept") is not None
    circle = load(engine, job_of_file("kept", EVERY_SECOND), job_of_file("a", parents=("b",)),
                  job_of_file("b", parents=("a",)))  # fmt: skip
    assert isinstance(circle, messages.Failed) and "would make a cycle: a → b → a" in circle.reason
