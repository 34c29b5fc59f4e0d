"""Claiming due runs, leases and outcomes, on every KeyValueStore, with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from kairoi import messages
from kairoi.clock import FakeClock
from kairoi.domain import JobStatus
from kairoi.errors import StoreError
from kairoi.storage.engine import Engine
from kairoi.storage.kv import KeyValueStore, MemoryStore
from kairoi.storage.rocks import RocksStore
from tests.support import do

LEASE = 10_000_000
NOW = 1_000_000_000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def engine(kv: KeyValueStore, clock: FakeClock) -> Engine:
    engine = Engine(kv, fsync=False, clock=clock, lease_us=LEASE)
    engine.apply(messages.SetShellRule(rule_id="r", pattern="app.", script="s.sh"))
    engine.commit()
    return engine


def set_job(engine: Engine, job_id: str, due_us: int) -> None:
    assert do(engine, messages.SetJob(job_id=job_id, due_us=due_us)) == messages.Ok()


def claim(
    engine: Engine, dispatcher: str = "d1", lookahead: int = 0, limit: int = 100
) -> messages.Claimed:
    reply = do(
        engine, messages.ClaimDue(dispatcher=dispatcher, lookahead_us=lookahead, limit=limit)
    )
    assert isinstance(reply, messages.Claimed)
    return reply


def outcome(
    job_id: str, run: int, succeeded: bool = True, output: bytes = b""
) -> messages.RecordOutcome:
    return messages.RecordOutcome(
        job_id=job_id,
        run=run,
        outcome="executed" if succeeded else "failed",
        exit_code=0 if succeeded else 1,
        reason="" if succeeded else "exit status 1",
        started_us=1,
        finished_us=2,
        output=output,
    )


def test_due_jobs_are_claimed_in_due_order_and_triggered(engine: Engine) -> None:
    set_job(engine, "app.b", NOW - 5)
    set_job(engine, "app.a", NOW - 10)
    set_job(engine, "app.later", NOW + 1)
    claimed = claim(engine)
    assert [(run.job_id, run.run, run.due_us) for run in claimed.runs] == [
        ("app.a", 1, NOW - 10),
        ("app.b", 1, NOW - 5),
    ]
    assert claimed.runs[0].runner == "shell" and claimed.runs[0].arguments == ("s.sh",)
    assert claimed.next_due_us == NOW + 1
    job = engine.job("app.a")
    assert job is not None and job.status is JobStatus.TRIGGERED and job.active == (1,)
    active = engine.active_run("app.a", 1)
    assert active is not None
    assert (active.lease_until_us, active.owner) == (NOW + LEASE, "dispatcher:d1")


def test_the_next_due_time_includes_the_lease_a_claim_starts(engine: Engine) -> None:
    """Else a run whose runner dies before renewing its lease would never be claimed again."""
    set_job(engine, "app.1", NOW)
    assert claim(engine).next_due_us == NOW + LEASE
    set_job(engine, "app.2", NOW + 5)
    assert claim(engine).next_due_us == NOW + 5


def test_due_time_is_inclusive_and_lookahead_claims_early(engine: Engine) -> None:
    set_job(engine, "app.now", NOW)
    set_job(engine, "app.soon", NOW + 20_000)
    assert [run.job_id for run in claim(engine).runs] == ["app.now"]
    assert [run.job_id for run in claim(engine, lookahead=20_000).runs] == ["app.soon"]


def test_limit_bounds_a_claim(engine: Engine) -> None:
    for i in range(5):
        set_job(engine, f"app.{i}", NOW - 10 + i)
    first = claim(engine, limit=3)
    assert len(first.runs) == 3
    assert first.next_due_us is not None and first.next_due_us <= NOW, "more is due at once"
    assert len(claim(engine, limit=3).runs) == 2


def test_a_job_without_a_rule_fails_when_due(engine: Engine) -> None:
    set_job(engine, "other.1", NOW)
    assert claim(engine).runs == ()
    job = engine.job("other.1")
    assert job is not None and job.status is JobStatus.FAILED


def test_a_rule_set_in_the_same_batch_pairs_the_job(engine: Engine) -> None:
    set_job(engine, "new.1", NOW)
    engine.apply(messages.SetShellRule(rule_id="n", pattern="new.", script="n.sh"))
    claimed = engine.apply(messages.ClaimDue(dispatcher="d1", lookahead_us=0, limit=10))
    assert isinstance(claimed, messages.Claimed) and claimed.runs[0].rule_id == "n"


def test_outcome_finishes_the_current_run_only_once(engine: Engine) -> None:
    set_job(engine, "app.1", NOW)
    (run,) = claim(engine).runs
    assert do(engine, outcome("app.1", run.run, succeeded=False)) == messages.Ok()
    job = engine.job("app.1")
    assert job is not None and job.status is JobStatus.FAILED
    set_job(engine, "app.1", NOW)
    assert do(engine, outcome("app.1", run.run, succeeded=True)) == messages.Ok()
    job = engine.job("app.1")
    assert job is not None and job.status is JobStatus.PLANNED, "a stale report changes nothing"


def test_an_expired_lease_is_claimed_again_with_a_new_run(engine: Engine, clock: FakeClock) -> None:
    set_job(engine, "app.1", NOW)
    (first,) = claim(engine).runs
    clock.advance(LEASE - 1)
    assert claim(engine).runs == ()
    clock.advance(1)
    (second,) = claim(engine).runs
    assert (second.job_id, second.run) == ("app.1", first.run + 1)
    do(engine, outcome("app.1", first.run))
    job = engine.job("app.1")
    assert job is not None and job.status is JobStatus.TRIGGERED, "the lost run's report is ignored"


def test_renewal_keeps_the_run_and_takes_the_lease(engine: Engine, clock: FakeClock) -> None:
    set_job(engine, "app.1", NOW)
    (run,) = claim(engine).runs
    clock.advance(LEASE - 1)
    renew = messages.RenewLeases(owner="runner:r0:i1", job_ids=("app.1",), runs=(run.run,))
    assert do(engine, renew) == messages.Ok()
    clock.advance(LEASE - 1)
    assert claim(engine).runs == ()
    active = engine.active_run("app.1", run.run)
    assert active is not None and active.owner == "runner:r0:i1"


def test_a_restarted_runner_gives_up_its_predecessors_runs(engine: Engine) -> None:
    set_job(engine, "app.1", NOW)
    (run,) = claim(engine).runs
    do(engine, messages.RenewLeases(owner="runner:r0:old", job_ids=("app.1",), runs=(run.run,)))
    do(engine, messages.RunnerStarted(name="r1", instance="x"))
    assert claim(engine).runs == (), "another runner's restart changes nothing"
    do(engine, messages.RunnerStarted(name="r0", instance="new"))
    assert engine.take_wakeup() == NOW
    (again,) = claim(engine).runs
    assert again.run == run.run + 1


def test_a_new_dispatcher_takes_back_the_runs_its_predecessor_held(engine: Engine) -> None:
    set_job(engine, "app.1", NOW)
    set_job(engine, "app.2", NOW)
    _, second = claim(engine, dispatcher="d1").runs
    renew = messages.RenewLeases(owner="runner:r0:i", job_ids=("app.2",), runs=(second.run,))
    do(engine, renew)
    assert [run.job_id for run in claim(engine, dispatcher="d2").runs] == ["app.1"]


def test_wakeup_only_for_a_due_time_earlier_than_announced(engine: Engine) -> None:
    set_job(engine, "app.1", NOW + 100)
    assert engine.take_wakeup() == NOW + 100
    set_job(engine, "app.2", NOW + 200)
    assert engine.take_wakeup() is None
    assert claim(engine).next_due_us == NOW + 100
    set_job(engine, "app.3", NOW + 50)
    assert engine.take_wakeup() == NOW + 50


def test_set_on_a_claimed_job_is_a_conflict(engine: Engine) -> None:
    set_job(engine, "app.1", NOW)
    claim(engine)
    reply = do(engine, messages.SetJob(job_id="app.1", due_us=NOW + 5))
    assert isinstance(reply, messages.Failed) and reply.code == "conflict"


def test_bad_claims_and_renewals_are_invalid(engine: Engine) -> None:
    for request in (
        messages.ClaimDue(dispatcher="d", lookahead_us=-1, limit=1),
        messages.RenewLeases(owner="o", job_ids=("a",), runs=()),
    ):
        reply = do(engine, request)
        assert isinstance(reply, messages.Failed) and reply.code == "invalid"


def test_claims_survive_a_reopened_database(tmp_path: Path, clock: FakeClock) -> None:
    store = RocksStore(str(tmp_path / "db"))
    engine = Engine(store, fsync=True, clock=clock, lease_us=LEASE)
    do(engine, messages.SetShellRule(rule_id="r", pattern="", script="s.sh"))
    set_job(engine, "j", NOW)
    claim(engine)
    store.close()
    store = RocksStore(str(tmp_path / "db"))
    try:
        reopened = Engine(store, fsync=True, clock=clock, lease_us=LEASE)
        clock.advance(LEASE)
        assert [run.run for run in claim(reopened).runs] == [2]
    finally:
        store.close()


def test_lost_runs_beyond_the_limit_wait_for_the_next_claim(
    engine: Engine, clock: FakeClock
) -> None:
    for i in range(5):
        set_job(engine, f"app.{i}", NOW)
    assert len(claim(engine).runs) == 5
    clock.advance(LEASE)
    first = claim(engine, limit=3)
    assert len(first.runs) == 3
    assert first.next_due_us is not None and first.next_due_us <= clock.now_us()
    assert len(claim(engine, limit=3).runs) == 2


def test_a_job_set_earlier_than_everything_claimed_so_far_is_still_found(
    engine: Engine, clock: FakeClock
) -> None:
    """Claims start reading the index where the last one stopped (past the deleted entries);
    a job set earlier than that point, or a lease renewed or lost, must not be skipped."""
    for i in range(5):
        set_job(engine, f"app.{i}", NOW - 100 + i)
    assert len(claim(engine).runs) == 5
    assert claim(engine).runs == ()
    set_job(engine, "app.early", NOW - 1_000)  # before every entry the last claim read
    assert [run.job_id for run in claim(engine, limit=1).runs] == ["app.early"]
    clock.advance(LEASE + 1)  # every lease ends: the runs are lost and claimed again
    claimed = claim(engine)
    assert sorted(run.job_id for run in claimed.runs) == sorted(
        ["app.early", *(f"app.{i}" for i in range(5))]
    )
    assert {run.run for run in claimed.runs} == {2}


def test_a_claim_limited_to_fewer_than_are_due_leaves_the_rest_for_the_next(
    engine: Engine,
) -> None:
    for i in range(5):
        set_job(engine, f"app.{i}", NOW - 100 + i)
    first = claim(engine, limit=2)
    assert [run.job_id for run in first.runs] == ["app.0", "app.1"]
    assert first.next_due_us == NOW - 98
    assert [run.job_id for run in claim(engine, limit=10).runs] == ["app.2", "app.3", "app.4"]


def test_runs_of_a_claim_whose_write_failed_are_claimed_by_the_next() -> None:
    kv = MemoryStore()
    engine = Engine(kv, fsync=False, clock=FakeClock(NOW), lease_us=LEASE)
    engine.apply(messages.SetShellRule(rule_id="r", pattern="app.", script="s.sh"))
    set_job(engine, "app.1", NOW - 1)
    kv.fail_writes = True
    engine.apply(messages.ClaimDue(dispatcher="d1", lookahead_us=0, limit=10))
    with pytest.raises(StoreError):
        engine.commit()
    kv.fail_writes = False
    assert [run.job_id for run in claim(engine).runs] == ["app.1"]


def test_a_lease_does_not_end_while_storage_was_away(kv: KeyValueStore, clock: FakeClock) -> None:
    """Fault: runs that ended while storage was down for longer than the lease ran again,
    though their runner held the outcome."""
    engine = Engine(kv, fsync=True, clock=clock, lease_us=LEASE)
    do(engine, messages.SetShellRule(rule_id="r", pattern="", script="s.sh"))
    for job_id in ("held", "renewed", "gone"):
        set_job(engine, job_id, NOW)
    assert len(claim(engine).runs) == 3
    renew = messages.RenewLeases(owner="runner:r:old", job_ids=("held", "renewed", "gone"),
                                 runs=(1, 1, 1))  # fmt: skip
    assert do(engine, renew) == messages.Ok()
    clock.advance(3 * LEASE)  # storage is down for three leases, then opens
    engine = Engine(kv, fsync=True, clock=clock, lease_us=LEASE)
    assert do(engine, messages.RunnerStarted(name="other", instance="1")) == messages.Ok()
    claimed = claim(engine)
    assert claimed.runs == () and claimed.next_due_us == clock.now_us() + LEASE
    assert do(engine, outcome("held", 1)) == messages.Ok()
    assert engine.job("held").last_outcome.value == "executed"  # type: ignore[union-attr]
    clock.advance(LEASE // 2)
    renewed = messages.RenewLeases(owner="runner:r:old", job_ids=("renewed",), runs=(1,))
    assert do(engine, renewed) == messages.Ok()
    clock.advance(LEASE // 2)  # the grace is one lease: "gone" renewed nothing, it is lost now
    assert [run.job_id for run in claim(engine).runs] == ["gone"]
    assert do(engine, messages.RunnerStarted(name="r", instance="new")) == messages.Ok()
    assert [run.job_id for run in claim(engine).runs] == ["renewed"], "ended on purpose"
    engine.grant_grace()  # a restarted runner's leases stay ended, grace or not
    assert engine.active_run("renewed", 2) is not None
