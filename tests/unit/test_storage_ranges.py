"""Storage holds what arrives on its socket to the frontend's ranges and sizes, and its
arithmetic on what it keeps saturates or refuses instead of raising (issue 13, items 2 and 5).

The requests here are built as a process that can open the storage socket could build them,
bypassing the frontend's parser; each must get ``Failed(code="invalid")`` and store nothing.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from kairoi import limits, messages
from kairoi.clock import FakeClock
from kairoi.domain import ActiveRun, JobSpec, JobStatus, Missed, Outcome
from kairoi.errors import InvalidRequest
from kairoi.frontend.definitions import read_set
from kairoi.frontend.replies import render
from kairoi.storage import codec, keys, planning
from kairoi.storage.engine import Engine
from kairoi.storage.kv import KeyValueStore
from tests.support import do

NOW = 1_000_000_000_000  # 1970-01-12, on a whole second
MB_ID = "x" * 1_048_576


def define(job_id: str, when: str, **changes: object) -> messages.DefineJob:
    request = messages.DefineJob(
        job_id=job_id, when=when, zone="", missed="once", overlap="skip", retries=0,
        backoff_us=0, max_backoff_us=0, parents=(), all_parents=True, runner="",
        arguments=(), rule_id="", source="",
    )  # fmt: skip
    return dataclasses.replace(request, **changes)  # type: ignore[arg-type]


def failed_run(job_id: str, run: int) -> messages.RecordOutcome:
    return messages.RecordOutcome(
        job_id=job_id, run=run, outcome="failed", exit_code=1, reason="exit status 1",
        started_us=NOW, finished_us=NOW, output=b"",
    )  # fmt: skip


LONG_REASON = "r" * (limits.MAX_REASON_BYTES + 1)
LONG_OUTPUT = b"o" * (limits.MAX_OUTPUT_BYTES + 1)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def engine(kv: KeyValueStore, clock: FakeClock) -> Engine:
    engine = Engine(kv, fsync=False, clock=clock, rng=random.Random(7))
    do(engine, messages.SetShellRule(rule_id="r", pattern="", script="s.sh"))
    return engine


def claim(engine: Engine) -> messages.Claimed:
    reply = do(engine, messages.ClaimDue(dispatcher="d", lookahead_us=0, limit=100))
    assert isinstance(reply, messages.Claimed)
    return reply


CRAFTED = [
    (define("j", "2030-01-01T00:00:00Z", runner="bogus", arguments=("x",)), "a job's own runner"),
    (define("j", "2030-01-01T00:00:00Z", runner="shell", arguments=("a", "b")), "2 arguments"),
    (define("j", "2030-01-01T00:00:00Z", runner="amqp", arguments=("amqp://h",)), "own runner"),
    (messages.SetJob(job_id=MB_ID, due_us=NOW), "the job id is longer than 65535 bytes"),
    (messages.SetJob(job_id="j", due_us=limits.MAX_INSTANT_US + 1), "due time must be between"),
    (messages.SetJob(job_id="j", due_us=-(2**63)), "the due time must be between"),
    (messages.SetJobs(job_ids=("a", "b"), due_us=(NOW, 2**64 - 1)), "a due time must be between"),
    (messages.SetJobs(job_ids=("a", MB_ID), due_us=(NOW, NOW)), "a job id is longer than"),
    (messages.ListJobs(prefix="", after=None, limit=-1), "LIMIT must be between 1 and 10000"),
    (messages.ListJobs(prefix="", after=None, limit=10**9), "LIMIT must be between 1 and 10000"),
    (messages.ListJobs(prefix="", after=MB_ID, limit=1), "the prefix or cursor is longer"),
    (messages.ListRuns(job_id="j", limit=0), "LIMIT must be between 1 and 10000"),
    (messages.GetOutput(job_id="j", run=-1), "a run number must be between 1 and"),
    (messages.GetJob(job_id=MB_ID), "the job id is longer than 65535 bytes"),
    (messages.UnsetJob(job_id=MB_ID, cascade=False), "the job id is longer than 65535 bytes"),
    (define("j", "cron:* * * * *", retries=10**6, backoff_us=1), "RETRIES must be between 0"),
    (define("j", "cron:* * * * *", retries=1, backoff_us=2**63 - 1), "BACKOFF must be between"),
    (define("j", "cron:* * * * *", retries=1, backoff_us=-1), "BACKOFF must be between"),
    (define("j", "cron:* * * * *", zone="Europe/" + "x" * 300), "TZ is longer than 255 bytes"),
    (define("j", "0001-01-01T00:00:00+14:00"), "the instant must be between"),
    (define("j", "R/2030-01-01T00:00:00Z/P9999999D"), "interval's step must be between"),
    (define("j", "cron:* * * * *", runner="amqp", arguments=("amqp://[::1", "x", "k")), "DSN"),
    (
        messages.LoadJobs(source="f.yaml", jobs=(define("j", "", retries=-5, source="f.yaml"),)),
        "RETRIES must be between 0 and 1000",
    ),
    (
        messages.SetAmqpRule(
            rule_id="a", pattern="", dsn="amqp://[zz]:99999/", exchange="x", routing_key="k"
        ),
        "invalid AMQP DSN",
    ),
    (messages.SetShellRule(rule_id=MB_ID, pattern="", script="s.sh"), "the rule is longer"),
    (messages.ClaimDue(dispatcher="d", lookahead_us=0, limit=-1), "claim's limit must be"),
    (messages.ClaimDue(dispatcher="d", lookahead_us=-1, limit=1), "lookahead must be between"),
    (messages.RenewLeases(owner="o", job_ids=("j",), runs=(-1,)), "a run number must be"),
    (failed_run("j", 0), "a run number must be between 1 and"),
    (dataclasses.replace(failed_run("j", 1), exit_code=2**40), "the exit code must be between"),
    (dataclasses.replace(failed_run("j", 1), finished_us=2**63), "a run's start or end must be"),
    # A local process's outcome of any size was kept, to be shown by RUNS and OUTPUT
    # (attack report, finding 4): the runners never send more than these bounds.
    (dataclasses.replace(failed_run("j", 1), reason=LONG_REASON), "the reason is longer than"),
    (dataclasses.replace(failed_run("j", 1), output=LONG_OUTPUT), "the output is longer than"),
    (dataclasses.replace(failed_run("j", 1), outcome="o" * 70_000), "the outcome is longer"),
]


@pytest.mark.parametrize(("request_", "why"), CRAFTED)
def test_a_crafted_request_is_refused_invalid_and_stores_nothing(
    kv: KeyValueStore, engine: Engine, request_: messages.Message, why: str
) -> None:
    """Item 5: such a request crashed storage (a u16 key length, a u64 instant) or was
    stored, to crash the first reply that showed it."""
    before = dict(kv.scan(b"", b"\xff"))
    reply = do(engine, request_)
    assert isinstance(reply, messages.Failed), reply
    assert (reply.code, why in reply.reason) == ("invalid", True), reply.reason
    assert dict(kv.scan(b"", b"\xff")) == before
    assert do(engine, messages.SetJob(job_id="after", due_us=NOW)) == messages.Ok()
    assert engine.job("after") is not None


def test_the_frontend_and_storage_refuse_with_the_same_words(engine: Engine) -> None:
    with pytest.raises(InvalidRequest, match="RETRIES must be a whole number between 0 and 1000"):
        read_set(["j", "cron:* * * * *", "RETRIES", "1000000", "BACKOFF", "PT1S"])
    reply = do(engine, define("j", "cron:* * * * *", retries=10**6, backoff_us=1))
    assert isinstance(reply, messages.Failed)
    assert reply.reason == "RETRIES must be between 0 and 1000"


SPECS = st.builds(
    JobSpec,
    retries=st.just(limits.MAX_RETRIES),
    backoff_us=st.integers(1, limits.MAX_DURATION_US),
    max_backoff_us=st.integers(0, limits.MAX_DURATION_US),
)


@given(
    SPECS,
    st.integers(0, limits.MAX_RETRIES - 1),
    st.integers(limits.MIN_INSTANT_US, limits.MAX_INSTANT_US),
)
def test_a_retry_is_planned_within_the_calendar_or_not_at_all(
    spec: JobSpec, attempt: int, now_us: int
) -> None:
    """Item 2: backoff × 2ⁿ overflowed the key layout, and storage crash-looped."""
    run = ActiveRun(
        job_id="j", run=1, due_us=now_us, slot_us=None, manual=False, attempt=attempt,
        after=planning.GRID, lease_until_us=now_us, owner="o",
    )  # fmt: skip
    retry = planning.retry(spec, run, Outcome.FAILED, now_us, random.Random(attempt))
    assert retry is None or now_us <= retry.due_us <= limits.MAX_INSTANT_US


def test_a_job_whose_next_retry_passes_the_calendar_ends_failed(
    engine: Engine, clock: FakeClock
) -> None:
    backoff = 1_000_000 * 86_400_000_000  # P1000000D: the second retry is past year 9999
    request = define("j", "1970-01-12T13:46:40Z", retries=1000, backoff_us=backoff)
    assert do(engine, request) == messages.Ok()
    for run in (1, 2):
        (execute,) = claim(engine).runs
        assert execute.run == run
        assert do(engine, failed_run("j", run)) == messages.Ok()
        job = engine.job("j")
        assert job is not None
        clock.set(job.due_us)
    job = engine.job("j")
    assert job is not None and job.status is JobStatus.FAILED
    state = do(engine, messages.GetJob(job_id="j"))
    assert isinstance(state, messages.JobState) and state.status == "failed"
    assert do(engine, messages.UnsetJob(job_id="j", cascade=False)) == messages.Ok()


@pytest.mark.parametrize(("gap_s", "late"), [(10, planning.BACKLOG), (7_200, "")])
def test_missed_all_catches_up_each_occurrence_only_up_to_the_bound(
    engine: Engine, clock: FakeClock, gap_s: int, late: str
) -> None:
    """A gap of 7,200 missed occurrences would have run 7,200 times one after the other:
    past MAX_CATCH_UP it catches up once, then goes on at its next occurrence."""
    assert do(engine, define("j", "R/1970-01-01T00:00:00Z/PT1S", missed="all")) == messages.Ok()
    clock.advance(gap_s * 1_000_000)  # Kairoi was down: the next claim comes late
    (caught_up,) = claim(engine).runs
    assert do(engine, dataclasses.replace(failed_run("j", caught_up.run), outcome="executed"))
    job = engine.job("j")
    assert job is not None and job.status is JobStatus.PLANNED
    assert job.late == late
    assert (job.due_us > clock.now_us()) == (late == "")
    assert job.spec.missed is Missed.ALL


def test_a_job_at_the_last_run_number_ends_failed_instead_of_overflowing(
    kv: KeyValueStore, engine: Engine
) -> None:
    assert do(engine, messages.SetJob(job_id="j", due_us=NOW)) == messages.Ok()
    job = engine.job("j")
    assert job is not None
    kv.write({keys.job("j"): codec.encode_job(dataclasses.replace(job, run=limits.MAX_RUN))},
             sync=False)  # fmt: skip
    with capture_logs() as logs:
        assert claim(engine).runs == ()
    job = engine.job("j")
    assert job is not None and job.status is JobStatus.FAILED and job.run == limits.MAX_RUN
    assert [log["event"] for log in logs if log["log_level"] == "warning"] == [
        "run.numbers_exhausted"
    ]
    assert do(engine, messages.UnsetJob(job_id="j", cascade=False)) == messages.Ok()


def test_a_record_stored_before_the_checks_is_claimed_run_and_shown(
    kv: KeyValueStore, engine: Engine
) -> None:
    """Defence in depth: an instant out of range, stored before it was refused, neither
    fails the claims that meet it nor the replies that show it."""
    early = limits.MIN_INSTANT_US - 14 * 3_600_000_000  # 0001-01-01T00:00:00+14:00
    assert do(engine, messages.SetJob(job_id="old", due_us=NOW)) == messages.Ok()
    job = engine.job("old")
    assert job is not None
    spec = JobSpec(when="0001-01-01T00:00:00+14:00")
    poisoned = dataclasses.replace(job, due_us=early, spec=spec)
    kv.write({
        keys.timed(keys.DUE, NOW, "old"): None,
        keys.timed(keys.DUE, early, "old"): b"",
        keys.job("old"): codec.encode_job(poisoned),
    }, sync=False)  # fmt: skip
    state = do(engine, messages.GetJob(job_id="old"))
    assert isinstance(state, messages.JobState) and state.next_due_us == early
    assert b" planned 0000-12-31T10:00:00Z 0 " in render(b"1", state)
    (execute,) = claim(engine).runs
    finished = dataclasses.replace(failed_run("old", execute.run), outcome="executed")
    assert do(engine, finished) == messages.Ok()
    job = engine.job("old")
    assert job is not None and job.status is JobStatus.EXECUTED
    runs = do(engine, messages.ListRuns(job_id="old", limit=10))
    assert isinstance(runs, messages.Runs) and render(b"2", runs).count(b"\n") == 2


Y2026 = 1_767_225_600_000_000


@pytest.mark.parametrize(
    ("when", "now_us", "why"),
    [
        ("R/2020-01-01T00:00:00Z/P3652058D", Y2026, "is past the calendar's end (year 9999)"),
        ("R2/2020-01-01T00:00:00Z/P3652058D", Y2026, "is past the calendar's end (year 9999)"),
        ("R2/1970-01-01T00:00:00Z/P1D", NOW, "every occurrence of"),
        ("R/9999-12-31T00:00:00Z/PT12H", limits.MAX_INSTANT_US - 1, "past the calendar's end"),
        ("cron:0 0 1 1 *", limits.MAX_INSTANT_US - 86_400_000_000, "past the calendar's end"),
    ],
)
def test_a_schedule_with_no_next_occurrence_says_whether_it_is_past_or_beyond_9999(
    kv: KeyValueStore, when: str, now_us: int, why: str
) -> None:
    """Attack report: ``R/2020-01-01T00:00:00Z/P3652058D`` was refused as having every
    occurrence in the past, when its next one is after year 9999."""
    engine = Engine(kv, fsync=False, clock=FakeClock(now_us), rng=random.Random(7))
    reply = do(engine, define("j", when))
    assert isinstance(reply, messages.Failed) and reply.code == "invalid", reply
    assert why in reply.reason
    assert engine.job("j") is None
