"""Reading and changing jobs and rules, run history and counts: storage's logic on every
KeyValueStore (the memory twin and RocksDB on disk), with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from kairoi import messages
from kairoi.clock import FakeClock
from kairoi.domain import JobStatus
from kairoi.errors import StoreError
from kairoi.storage import keys
from kairoi.storage.engine import Engine
from kairoi.storage.kv import KeyValueStore, MemoryStore
from kairoi.storage.rocks import RocksStore
from tests.support import do

LEASE = 10_000_000
NOW = 1_000_000_000
DSN = "amqp://user:secret@broker:5672/vhost"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def engine(kv: KeyValueStore, clock: FakeClock) -> Engine:
    engine = Engine(kv, fsync=False, clock=clock, lease_us=LEASE, runs_kept=3)
    do(engine, messages.SetShellRule(rule_id="r", pattern="app.", script="s.sh"))
    return engine


def ok(engine: Engine, request: messages.Message) -> None:
    assert do(engine, request) == messages.Ok()


def refused(engine: Engine, request: messages.Message, code: str) -> str:
    reply = do(engine, request)
    assert isinstance(reply, messages.Failed) and reply.code == code, reply
    return reply.reason


def state(engine: Engine, job_id: str) -> messages.JobState:
    reply = do(engine, messages.GetJob(job_id=job_id))
    assert isinstance(reply, messages.JobState), reply
    return reply


def claim(engine: Engine) -> list[messages.Execute]:
    reply = do(engine, messages.ClaimDue(dispatcher="d", lookahead_us=0, limit=100))
    assert isinstance(reply, messages.Claimed)
    return list(reply.runs)


def finish(engine: Engine, run: messages.Execute, outcome: str = "executed") -> None:
    report = messages.RecordOutcome(
        job_id=run.job_id, run=run.run, outcome=outcome, exit_code=0 if outcome == "executed"
        else 1, reason="" if outcome == "executed" else "exit status 1", started_us=NOW + 1,
        finished_us=NOW + 2, output=f"out {run.run}".encode(),
    )  # fmt: skip
    ok(engine, report)


def runs(engine: Engine, job_id: str, limit: int = 100) -> list[messages.RunState]:
    reply = do(engine, messages.ListRuns(job_id=job_id, limit=limit))
    assert isinstance(reply, messages.Runs), reply
    return list(reply.runs)


def keys_of(kv: KeyValueStore, job_id: str) -> list[bytes]:
    """Every key that holds anything of ``job_id``."""
    found = []
    for key, _ in kv.scan(b"", b"\xff"):
        if (
            key == keys.job(job_id)
            or key.endswith(job_id.encode())
            or (
                key[:1] in (keys.RUN, keys.OUTPUT) and key.startswith(keys.runs_of(key[:1], job_id))
            )
        ):
            found.append(key)
    return found


def test_get_shows_a_job_and_refuses_an_unknown_one(engine: Engine) -> None:
    ok(engine, messages.SetJob(job_id="app.1", due_us=NOW + 5))
    assert state(engine, "app.1") == messages.JobState(
        job_id="app.1", status="planned", next_due_us=NOW + 5, run=0, last_outcome="",
        last_finished_us=None, when="", options=(),
    )  # fmt: skip
    assert "no job 'nope'" in refused(engine, messages.GetJob(job_id="nope"), "not_found")


def test_list_pages_through_a_prefix_in_id_order(engine: Engine) -> None:
    for job_id in ["app.b", "app.a", "app.c", "other", "app"]:
        ok(engine, messages.SetJob(job_id=job_id, due_us=NOW + 5))

    def listed(prefix: str, after: str | None, limit: int) -> list[str]:
        reply = do(engine, messages.ListJobs(prefix=prefix, after=after, limit=limit))
        assert isinstance(reply, messages.Jobs)
        return [job.job_id for job in reply.jobs]

    assert listed("app.", None, 2) == ["app.a", "app.b"]
    assert listed("app.", "app.b", 2) == ["app.c"]
    assert listed("app.", "app.c", 2) == []
    assert listed("", None, 10) == ["app", "app.a", "app.b", "app.c", "other"]
    assert listed("", "a", 1) == ["app"]
    assert listed("zzz", None, 5) == []
    refused(engine, messages.ListJobs(prefix="", after=None, limit=0), "invalid")


def test_a_disabled_job_never_fires_and_enabling_plans_it(engine: Engine, clock: FakeClock) -> None:
    ok(engine, messages.SetJob(job_id="app.1", due_us=NOW + 5))
    ok(engine, messages.DisableJob(job_id="app.1"))
    assert (state(engine, "app.1").status, state(engine, "app.1").next_due_us) == (
        "disabled", None,
    )  # fmt: skip
    clock.advance(10)
    assert claim(engine) == []
    ok(engine, messages.EnableJob(job_id="app.1"))
    assert engine.take_wakeup() == NOW + 5, "past due: the dispatcher is told at once"
    assert [run.job_id for run in claim(engine)] == ["app.1"]
    refused(engine, messages.DisableJob(job_id="nope"), "not_found")
    refused(engine, messages.EnableJob(job_id="nope"), "not_found")


def test_trigger_runs_a_job_now_as_a_manual_run_and_keeps_its_schedule(engine: Engine) -> None:
    ok(engine, messages.SetJob(job_id="app.1", due_us=NOW + 1_000))
    engine.take_wakeup()
    ok(engine, messages.TriggerJob(job_id="app.1"))
    assert engine.take_wakeup() == NOW
    (run,) = claim(engine)
    assert (run.run, run.due_us) == (1, NOW)
    refused(engine, messages.TriggerJob(job_id="app.1"), "conflict")
    finish(engine, run)
    job = state(engine, "app.1")
    assert (job.status, job.next_due_us, job.last_outcome) == ("planned", NOW + 1_000, "executed")
    (recorded,) = runs(engine, "app.1")
    assert (recorded.run, recorded.manual, recorded.outcome) == (1, True, "executed")


def test_stop_ends_the_run_as_stopped_and_tells_its_holder(engine: Engine) -> None:
    ok(engine, messages.SetJob(job_id="app.1", due_us=NOW))
    refused(engine, messages.StopJob(job_id="app.1"), "conflict")
    (run,) = claim(engine)
    ok(engine, messages.StopJob(job_id="app.1"))
    assert engine.take_stops() == [messages.StopRun(job_id="app.1", run=1)]
    assert engine.take_stops() == []
    job = state(engine, "app.1")
    assert (job.status, job.last_outcome) == ("failed", "stopped")
    finish(engine, run, "failed")  # the killed script's report comes after
    (stopped,) = runs(engine, "app.1")
    assert (stopped.outcome, stopped.started_us, stopped.exit_code) == ("stopped", NOW + 1, 1)
    assert state(engine, "app.1") == job, "the late report fills in the run, not the job"
    output = do(engine, messages.GetOutput(job_id="app.1", run=0))
    assert output == messages.Output(run=1, output=b"out 1")


def test_unset_deletes_the_job_and_its_history_and_stops_its_run(
    kv: KeyValueStore, engine: Engine
) -> None:
    ok(engine, messages.SetJob(job_id="app.1", due_us=NOW))
    finish(engine, claim(engine)[0])
    ok(engine, messages.SetJob(job_id="app.1", due_us=NOW))
    claim(engine)
    assert keys_of(kv, "app.1")
    ok(engine, messages.UnsetJob(job_id="app.1", cascade=False))
    assert engine.take_stops() == [messages.StopRun(job_id="app.1", run=2)]
    assert keys_of(kv, "app.1") == []
    refused(engine, messages.GetJob(job_id="app.1"), "not_found")
    refused(engine, messages.UnsetJob(job_id="app.1", cascade=False), "not_found")


def test_history_keeps_the_newest_runs_and_their_output(engine: Engine, kv: KeyValueStore) -> None:
    ok(engine, messages.SetJob(job_id="app.1", due_us=NOW))
    finish(engine, claim(engine)[0])
    for _ in range(4):
        ok(engine, messages.TriggerJob(job_id="app.1"))
        finish(engine, claim(engine)[0])
    assert [run.run for run in runs(engine, "app.1")] == [5, 4, 3], "3 kept"
    assert [run.run for run in runs(engine, "app.1", limit=2)] == [5, 4]
    assert len([k for k in keys_of(kv, "app.1") if k[:1] == keys.OUTPUT]) == 3
    assert do(engine, messages.GetOutput(job_id="app.1", run=4)) == messages.Output(
        run=4, output=b"out 4"
    )
    refused(engine, messages.GetOutput(job_id="app.1", run=1), "not_found")
    refused(engine, messages.ListRuns(job_id="nope", limit=5), "not_found")


def test_a_lost_run_and_a_job_without_a_rule_are_in_the_history(
    engine: Engine, clock: FakeClock
) -> None:
    ok(engine, messages.SetJob(job_id="app.1", due_us=NOW))
    ok(engine, messages.SetJob(job_id="none.1", due_us=NOW))
    claim(engine)
    clock.advance(LEASE)
    (again,) = claim(engine)
    assert again.run == 2
    assert [(run.run, run.outcome) for run in runs(engine, "app.1")] == [(1, "lost")]
    assert [(run.run, run.outcome) for run in runs(engine, "none.1")] == [(1, "no_rule")]
    assert state(engine, "none.1").status == "failed"


def test_a_run_with_no_rule_claimed_ahead_of_its_time_ends_at_its_due_time(
    engine: Engine,
) -> None:
    """Claimed a lookahead early, a run with no rule was recorded ended before it was due."""
    ok(engine, messages.SetJob(job_id="none.1", due_us=NOW + 20_000))
    reply = do(engine, messages.ClaimDue(dispatcher="d", lookahead_us=20_000, limit=100))
    assert isinstance(reply, messages.Claimed) and not reply.runs
    (run,) = runs(engine, "none.1")
    assert (run.outcome, run.finished_us) == ("no_rule", NOW + 20_000)


def test_rules_can_be_read_listed_and_deleted(engine: Engine) -> None:
    do(engine, messages.SetAmqpRule(rule_id="q", pattern="q.", dsn=DSN, exchange="x",
                                    routing_key="k"))  # fmt: skip
    rule = do(engine, messages.GetRule(rule_id="q"))
    assert rule == messages.RuleState(
        rule_id="q", pattern="q.", runner="amqp",
        arguments=("amqp://user:***@broker:5672/vhost", "x", "k"),
    )  # fmt: skip
    listed = do(engine, messages.ListRules(prefix=""))
    assert isinstance(listed, messages.Rules) and [r.rule_id for r in listed.rules] == ["q", "r"]
    ok(engine, messages.UnsetRule(rule_id="r"))
    refused(engine, messages.GetRule(rule_id="r"), "not_found")
    refused(engine, messages.UnsetRule(rule_id="r"), "not_found")
    ok(engine, messages.SetJob(job_id="app.1", due_us=NOW))
    assert claim(engine) == [], "no rule left for it"
    assert state(engine, "app.1").last_outcome == "no_rule"


def test_counts_follow_every_change(engine: Engine) -> None:
    def counts() -> dict[str, int]:
        reply = do(engine, messages.GetStats())
        assert isinstance(reply, messages.Stats)
        return dict(zip(reply.names, reply.values, strict=True))

    assert do(engine, messages.Ping()) == messages.Pong()
    do(engine, messages.SetJobs(job_ids=("app.1", "app.2", "app.3"), due_us=(NOW,) * 3))
    do(engine, messages.DisableJob(job_id="app.3"))
    assert counts() == {"planned": 2, "triggered": 0, "executed": 0, "failed": 0, "disabled": 1,
                        "waiting": 0, "quarantined": 0, "rules": 1, "runs.shell": 0, "runs.amqp": 0,
                        "write_errors": 0, "writable": 1}  # fmt: skip
    first, _ = claim(engine)
    finish(engine, first)
    do(engine, messages.UnsetJob(job_id="app.3", cascade=False))
    assert counts() == {"planned": 0, "triggered": 1, "executed": 1, "failed": 0, "disabled": 0,
                        "waiting": 0, "quarantined": 0, "rules": 1, "runs.shell": 2, "runs.amqp": 0,
                        "write_errors": 0, "writable": 1}  # fmt: skip


def test_counts_survive_a_restart_and_are_made_for_an_old_database(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = RocksStore(str(tmp_path / "db"))
    engine = Engine(store, fsync=True, clock=clock)
    do(engine, messages.SetJobs(job_ids=("a", "b"), due_us=(NOW, NOW)))
    store.write({keys.STATS: None}, sync=True)  # as a database written before counts
    store.close()
    for _ in range(2):
        store = RocksStore(str(tmp_path / "db"))
        reply = Engine(store, fsync=True, clock=clock).apply(messages.GetStats())
        store.close()
        assert isinstance(reply, messages.Stats)
        assert dict(zip(reply.names, reply.values, strict=True))["planned"] == 2


def test_a_failed_write_keeps_counts_and_stops_as_they_were(clock: FakeClock) -> None:
    kv = MemoryStore()
    engine = Engine(kv, fsync=False, clock=clock)
    do(engine, messages.SetShellRule(rule_id="r", pattern="", script="s.sh"))
    do(engine, messages.SetJob(job_id="j", due_us=NOW))
    claim(engine)
    kv.fail_writes = True
    engine.apply(messages.StopJob(job_id="j"))
    engine.apply(messages.SetJob(job_id="k", due_us=NOW))
    with pytest.raises(StoreError, match="fail_writes"):
        engine.commit()
    kv.fail_writes = False
    assert engine.take_stops() == []
    reply = do(engine, messages.GetStats())
    assert isinstance(reply, messages.Stats)
    assert dict(zip(reply.names, reply.values, strict=True))["triggered"] == 1
    job = engine.job("j")
    assert job is not None and job.status is JobStatus.TRIGGERED
