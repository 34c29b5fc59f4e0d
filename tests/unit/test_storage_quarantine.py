"""Records storage cannot read or handle, and requests that fail half-way: the one request is
refused, what it changed is taken back, the record is quarantined, the rest goes on. On every
KeyValueStore (the memory twin and RocksDB on disk), with a fake clock."""

from __future__ import annotations

import dataclasses
import random
import struct

import msgpack
import pytest
from structlog.testing import capture_logs

from kairoi import messages
from kairoi.clock import FakeClock
from kairoi.domain import Job, JobSpec, JobStatus
from kairoi.storage import codec, keys
from kairoi.storage.engine import Engine
from kairoi.storage.kv import KeyValueStore
from kairoi.storage.writes import PendingWrites
from tests.support import do

NOW = 1_000_000_000
CORRUPT = b"\xc1 not msgpack"
"""0xc1 is the one byte msgpack never uses."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def open_engine(kv: KeyValueStore, clock: FakeClock) -> Engine:
    return Engine(kv, fsync=False, clock=clock, lease_us=10_000_000)


@pytest.fixture
def engine(kv: KeyValueStore, clock: FakeClock) -> Engine:
    engine = open_engine(kv, clock)
    do(engine, messages.SetShellRule(rule_id="r", pattern="app.", script="s.sh"))
    return engine


def claim(engine: Engine) -> list[messages.Execute]:
    reply = do(engine, messages.ClaimDue(dispatcher="d", lookahead_us=0, limit=100))
    assert isinstance(reply, messages.Claimed), reply
    return list(reply.runs)


def failed(run: messages.Execute) -> messages.RecordOutcome:
    return messages.RecordOutcome(
        job_id=run.job_id, run=run.run, outcome="failed", exit_code=1, reason="exit status 1",
        started_us=NOW, finished_us=NOW + 1, output=b"",
    )  # fmt: skip


def get(engine: Engine, job_id: str) -> messages.JobState:
    reply = do(engine, messages.GetJob(job_id=job_id))
    assert isinstance(reply, messages.JobState), reply
    return reply


class BrokenRandom(random.Random):
    """A retry's jitter raises: a stand-in for a bug met half-way through a request."""

    def uniform(self, a: float, b: float) -> float:
        raise RuntimeError("a bug")


def retried(kv: KeyValueStore, job_id: str) -> None:
    """A Planned job due now that is retried when it fails."""
    job = Job(id=job_id, due_us=NOW, status=JobStatus.PLANNED,
              spec=JobSpec(retries=1, backoff_us=1_000_000))  # fmt: skip
    kv.write({keys.job(job_id): codec.encode_job(job), keys.timed(keys.DUE, NOW, job_id): b""},
             sync=False)  # fmt: skip


def test_undo_takes_back_one_request_and_keeps_the_earlier_ones(kv: KeyValueStore) -> None:
    writes = PendingWrites(kv)
    writes.put(b"ja", b"1")
    position = writes.mark()
    writes.put(b"ja", b"2")
    writes.put_all(b"j", [b"jb", b"jc"], [b"3", b"4"])
    writes.delete(b"jd")
    assert writes.undo(position) == 3  # changes: put_all counts as one
    assert writes.changes == {b"ja": b"1"}
    assert writes.scan(b"j", b"k", 10) == [(b"ja", b"1")], "a walk skips what was taken back"


def test_a_request_that_raises_is_answered_internal_and_takes_nothing_with_it(
    kv: KeyValueStore, clock: FakeClock
) -> None:
    engine = Engine(kv, fsync=False, clock=clock, rng=BrokenRandom())
    do(engine, messages.SetShellRule(rule_id="r", pattern="app.", script="s.sh"))
    retried(kv, "app.poison")
    (run,) = claim(engine)
    engine.apply(messages.SetJob(job_id="app.before", due_us=NOW + 5))
    with capture_logs() as logs:
        reply = engine.apply(failed(run))
    engine.apply(messages.SetJob(job_id="app.after", due_us=NOW + 5))
    engine.commit()
    assert isinstance(reply, messages.Failed) and reply.code == "internal", reply
    assert reply.reason == (
        "storage could not apply RecordOutcome: RuntimeError (the server log has the details)"
    )
    event = next(e for e in logs if e["event"] == "storage.request_failed")
    assert event["request"] == "RecordOutcome" and isinstance(event["exc_info"], RuntimeError)
    assert engine.job("app.before") and engine.job("app.after"), "the batch went on"
    assert engine.active_run("app.poison", run.run) is not None, "its partial writes undone"
    assert not list(kv.scan(keys.runs_of(keys.RUN, "app.poison"), keys.prefix_end(
        keys.runs_of(keys.RUN, "app.poison"))))  # fmt: skip
    assert get(engine, "app.poison").status == "quarantined", "not run again and again"
    assert not list(kv.scan(keys.LEASE, keys.prefix_end(keys.LEASE)))


def test_a_fault_in_reading_a_readable_job_answers_internal_and_sets_nothing_aside(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    do(engine, messages.SetJob(job_id="app.1", due_us=NOW + 5))

    def broken(job: object) -> messages.JobState:
        raise RuntimeError("a bug in showing a job")

    with monkeypatch.context() as patched:
        patched.setattr("kairoi.storage.views.job_state", broken)
        refusal = do(engine, messages.GetJob(job_id="app.1"))
    assert isinstance(refusal, messages.Failed) and refusal.code == "internal", refusal
    assert get(engine, "app.1").status == "planned", "the job itself is sound: it still runs"


def test_a_job_that_cannot_be_claimed_is_quarantined_and_the_others_run(
    engine: Engine, kv: KeyValueStore
) -> None:
    for job_id in ("app.1", "app.3"):
        do(engine, messages.SetJob(job_id=job_id, due_us=NOW))
    # It reads well, but its due time makes no key: claiming it raises struct.error.
    unclaimable = {"s": 0, "d": 2**63 + 5, "n": 0}
    kv.write({keys.job("app.2"): msgpack.packb(unclaimable),
              keys.timed(keys.DUE, NOW, "app.2"): b""}, sync=False)  # fmt: skip
    with capture_logs() as logs:
        assert sorted(r.job_id for r in claim(engine)) == ["app.1", "app.3"]
    assert [e["job"] for e in logs if e["event"] == "storage.quarantined"] == ["app.2"]
    failure = next(e for e in logs if e["event"] == "storage.claim_failed")
    assert isinstance(failure["exc_info"], struct.error)
    with capture_logs() as logs:
        assert claim(engine) == []
    assert not [e for e in logs if e["event"] == "storage.quarantined"], "logged once"
    state = get(engine, "app.2")
    assert state.status == "quarantined" and state.options[0] == "REASON"


@pytest.mark.parametrize(
    "corrupt",
    [
        {keys.job("app.2"): CORRUPT},
        {keys.job("app.2"): msgpack.packb({"s": 1, "d": "soon", "n": 0})},
        {keys.job("app.2"): msgpack.packb([1, 2, 3])},
        {keys.job("app.2"): None},  # the due entry names no record
    ],
    ids=["not-msgpack", "wrong-type", "not-a-map", "missing"],
)
def test_a_due_entry_whose_job_cannot_be_read_is_set_aside_then_unset(
    engine: Engine, kv: KeyValueStore, corrupt: dict[bytes, bytes | None]
) -> None:
    for job_id in ("app.1", "app.2", "app.3"):
        do(engine, messages.SetJob(job_id=job_id, due_us=NOW))
    kv.write(corrupt, sync=False)
    assert sorted(r.job_id for r in claim(engine)) == ["app.1", "app.3"]
    assert claim(engine) == []
    assert get(engine, "app.2").status == "quarantined"
    listed = do(engine, messages.ListJobs(prefix="app.", after=None, limit=10))
    assert isinstance(listed, messages.Jobs)
    if corrupt[keys.job("app.2")] is not None:
        assert [j.status for j in listed.jobs if j.job_id == "app.2"] == ["quarantined"]
    refusal = do(engine, messages.DisableJob(job_id="app.2"))
    assert isinstance(refusal, messages.Failed) and refusal.code in ("conflict", "not_found")
    assert do(engine, messages.UnsetJob(job_id="app.2", cascade=False)) == messages.Ok()
    assert not [key for key, _ in kv.scan(b"", b"\xff") if key.endswith(b"app.2")]
    reply = do(engine, messages.GetJob(job_id="app.2"))
    assert isinstance(reply, messages.Failed) and reply.code == "not_found"
    assert do(engine, messages.SetJob(job_id="app.2", due_us=NOW)) == messages.Ok()
    assert [r.job_id for r in claim(engine)] == ["app.2"], "usable again"


def test_a_run_under_way_whose_record_cannot_be_read_is_not_claimed_again(
    engine: Engine, kv: KeyValueStore, clock: FakeClock
) -> None:
    do(engine, messages.SetJob(job_id="app.1", due_us=NOW))
    do(engine, messages.SetJob(job_id="app.2", due_us=NOW))
    runs = claim(engine)
    kv.write({keys.run_of(keys.ACTIVE, "app.1", runs[0].run): CORRUPT}, sync=False)
    clock.advance(60_000_000)  # both leases ended: app.2 is run again, app.1 set aside
    assert [r.job_id for r in claim(engine)] == ["app.2"]
    assert do(engine, messages.RunnerStarted(name="x", instance="y")) == messages.Ok()
    assert get(engine, "app.1").status == "quarantined"
    assert do(engine, messages.UnsetJob(job_id="app.1", cascade=False)) == messages.Ok()
    assert not [key for key, _ in kv.scan(b"", b"\xff") if b"app.1" in key]


def test_storage_opens_a_database_with_corrupt_rules_and_counts(
    kv: KeyValueStore, clock: FakeClock
) -> None:
    engine = open_engine(kv, clock)
    do(engine, messages.SetShellRule(rule_id="good", pattern="app.", script="s.sh"))
    do(engine, messages.SetJob(job_id="app.1", due_us=NOW + 5))
    do(engine, messages.SetJob(job_id="app.2", due_us=NOW + 5))
    kv.write({keys.rule("bad"): CORRUPT, keys.STATS: CORRUPT, keys.job("app.2"): CORRUPT},
             sync=False)  # fmt: skip
    with capture_logs() as logs:
        engine = open_engine(kv, clock)
    assert {e["event"] for e in logs} >= {"storage.quarantined", "storage.counts_unreadable"}
    assert list(engine.rules) == ["good"]
    stats = do(engine, messages.GetStats())
    assert isinstance(stats, messages.Stats)
    assert dict(zip(stats.names, stats.values, strict=True))["planned"] == 1
    refusal = do(engine, messages.GetRule(rule_id="bad"))
    assert isinstance(refusal, messages.Failed) and refusal.code == "conflict"
    assert do(engine, messages.UnsetRule(rule_id="bad")) == messages.Ok()
    assert kv.get(keys.rule("bad")) is None


def test_a_run_record_that_cannot_be_read_quarantines_its_job(
    engine: Engine, kv: KeyValueStore
) -> None:
    do(engine, messages.SetJob(job_id="app.1", due_us=NOW))
    (run,) = claim(engine)
    finished = dataclasses.replace(failed(run), outcome="executed", exit_code=0, reason="")
    assert do(engine, finished) == messages.Ok()
    kv.write({keys.run_of(keys.RUN, "app.1", 1): CORRUPT}, sync=False)
    refusal = do(engine, messages.ListRuns(job_id="app.1", limit=10))
    assert isinstance(refusal, messages.Failed) and refusal.code == "conflict", refusal
    assert "unreadable" in refusal.reason
    assert get(engine, "app.1").status == "quarantined"
    assert do(engine, messages.UnsetJob(job_id="app.1", cascade=False)) == messages.Ok()
    assert not [key for key, _ in kv.scan(b"", b"\xff") if b"app.1" in key]


def stats_of(engine: Engine) -> dict[str, int]:
    reply = do(engine, messages.GetStats())
    assert isinstance(reply, messages.Stats)
    return dict(zip(reply.names, reply.values, strict=True))


def define(job_id: str, *parents: str, when: str = "", source: str = "") -> messages.DefineJob:
    return messages.DefineJob(
        job_id=job_id, when=when, zone="", missed="once", overlap="skip", retries=0,
        backoff_us=0, max_backoff_us=0, parents=parents, all_parents=True, runner="",
        arguments=(), rule_id="", source=source,
    )  # fmt: skip


def quarantined_by_a_failing_request(kv: KeyValueStore, clock: FakeClock) -> Engine:
    """An engine holding app.poison, quarantined by a report whose handling raised (a retry
    whose jitter is a bug), with a run of it still under way and app.other planned."""
    engine = Engine(kv, fsync=False, clock=clock, rng=BrokenRandom(), lease_us=10_000_000)
    do(engine, messages.SetShellRule(rule_id="r", pattern="app.", script="s.sh"))
    retried(kv, "app.poison")
    (run,) = claim(engine)
    refusal = do(engine, failed(run))
    assert isinstance(refusal, messages.Failed) and refusal.code == "internal", refusal
    do(engine, messages.SetJob(job_id="app.other", due_us=NOW + 5))
    return engine


def refused_conflict(reply: messages.Reply) -> str:
    assert isinstance(reply, messages.Failed) and reply.code == "conflict", reply
    assert "quarantined; UNSET it" in reply.reason
    return reply.reason


def test_a_job_quarantined_by_a_failing_request_is_never_changed_nor_run(
    kv: KeyValueStore, clock: FakeClock
) -> None:
    """Finding: on such a job TRIGGER, DISABLE, ENABLE and SET answered OK, and a SET made
    it claimed and run while GET showed it quarantined."""
    engine = quarantined_by_a_failing_request(kv, clock)
    state = get(engine, "app.poison")
    assert state.status == "quarantined"
    assert state.options == ("REASON", "a request about it failed inside storage (see the log)")
    for change in (
        messages.SetJob(job_id="app.poison", due_us=NOW - 5),
        define("app.poison", when="2020-01-01T00:00:00Z"),
        messages.TriggerJob(job_id="app.poison"), messages.DisableJob(job_id="app.poison"),
        messages.EnableJob(job_id="app.poison"), messages.StopJob(job_id="app.poison"),
    ):  # fmt: skip
        assert "RuntimeError" not in refused_conflict(do(engine, change)), change
    sets = do(engine, messages.SetJobs(job_ids=("app.a", "app.poison", "app.b"),
                                       due_us=(NOW - 5, NOW - 5, NOW - 5)))  # fmt: skip
    assert isinstance(sets, messages.Refused) and sets.positions == (1,), sets
    assert sets.codes == ("conflict",)
    load = do(engine, messages.LoadJobs(source="/f.yaml", jobs=(
        define("app.f", when="2020-01-01T00:00:00Z", source="/f.yaml"),
        define("app.poison", when="2020-01-01T00:00:00Z", source="/f.yaml"),
    )))  # fmt: skip
    assert isinstance(load, messages.Refused) and load.positions == (1,), load
    assert engine.job("app.f") is None, "a job file is all or nothing"
    clock.advance(60_000_000)  # its old lease would have ended: it is not run again either
    assert do(engine, messages.RenewLeases(owner="runner:x:y", job_ids=("app.poison",),
                                           runs=(1,))) == messages.Ok()  # fmt: skip
    assert sorted(run.job_id for run in claim(engine)) == ["app.a", "app.b", "app.other"]
    assert get(engine, "app.poison").status == "quarantined"
    counts = stats_of(engine)
    assert counts["quarantined"] == 1 and counts["triggered"] == 3, counts
    assert do(engine, messages.UnsetJob(job_id="app.poison", cascade=False)) == messages.Ok()
    assert stats_of(engine)["quarantined"] == 0
    assert do(engine, messages.SetJob(job_id="app.poison", due_us=NOW)) == messages.Ok()
    assert [run.job_id for run in claim(engine)] == ["app.poison"], "usable again"


def test_a_report_of_a_quarantined_job_is_refused_and_changes_nothing(
    kv: KeyValueStore, clock: FakeClock
) -> None:
    engine = quarantined_by_a_failing_request(kv, clock)
    before = {key: value for key, value in kv.scan(b"", b"\xff") if b"app.poison" in key}
    report = failed(messages.Execute(job_id="app.poison", run=1, due_us=NOW, rule_id="r",
                                     runner="shell", arguments=("s.sh",)))  # fmt: skip
    refused_conflict(do(engine, report))  # a runner drops a report refused so
    after = {key: value for key, value in kv.scan(b"", b"\xff") if b"app.poison" in key}
    assert after == before


def test_a_job_whose_record_cannot_be_read_is_refused_among_sets_that_go_on(
    engine: Engine, kv: KeyValueStore
) -> None:
    do(engine, messages.SetJob(job_id="app.2", due_us=NOW + 5))
    kv.write({keys.job("app.2"): CORRUPT}, sync=False)
    sets = do(engine, messages.SetJobs(job_ids=("app.1", "app.2", "app.3"),
                                       due_us=(NOW, NOW, NOW)))  # fmt: skip
    assert isinstance(sets, messages.Refused) and sets.positions == (1,), sets
    assert sets.codes == ("conflict",) and "unreadable record" in sets.reasons[0]
    for change in (
        messages.SetJob(job_id="app.2", due_us=NOW),
        define("app.2", when="2030-01-01T00:00:00Z"),
        messages.TriggerJob(job_id="app.2"),
        messages.EnableJob(job_id="app.2"),
    ):
        refused_conflict(do(engine, change))
    assert sorted(run.job_id for run in claim(engine)) == ["app.1", "app.3"]


def test_a_job_that_cannot_be_claimed_shows_no_exception_text(
    engine: Engine, kv: KeyValueStore
) -> None:
    unclaimable = {"s": 0, "d": 2**63 + 5, "n": 0}  # its due time makes no key
    kv.write({keys.job("app.2"): msgpack.packb(unclaimable),
              keys.timed(keys.DUE, NOW, "app.2"): b""}, sync=False)  # fmt: skip
    with capture_logs() as logs:
        assert claim(engine) == []
    assert isinstance(next(e for e in logs if e["event"] == "storage.claim_failed")["exc_info"],
                      struct.error)  # fmt: skip
    state = get(engine, "app.2")
    assert state.options == ("REASON", "claiming it failed inside storage (see the log)")
    refused_conflict(do(engine, messages.SetJob(job_id="app.2", due_us=NOW)))
    assert claim(engine) == []
    assert stats_of(engine)["quarantined"] == 1


def test_unset_cascade_deletes_a_quarantined_job_among_the_children(
    kv: KeyValueStore, clock: FakeClock
) -> None:
    engine = quarantined_by_a_failing_request(kv, clock)
    do(engine, define("app.child", "app.other"))
    kv.write({keys.child("app.other", "app.poison"): b""}, sync=False)  # as if it ran after it
    assert do(engine, messages.UnsetJob(job_id="app.other", cascade=True)) == messages.Ok()
    assert kv.get(keys.quarantined("app.poison")) is None
    assert not [key for key, _ in kv.scan(b"", b"\xff") if b"app.poison" in key]
    assert stats_of(engine)["quarantined"] == 0


def test_a_job_file_that_no_longer_holds_a_quarantined_job_deletes_it(
    engine: Engine, kv: KeyValueStore
) -> None:
    jobs = (define("app.f1", when="2030-01-01T00:00:00Z", source="/f.yaml"),
            define("app.f2", when="2030-01-01T00:00:00Z", source="/f.yaml"))  # fmt: skip
    assert do(engine, messages.LoadJobs(source="/f.yaml", jobs=jobs)) == messages.Ok()
    due = engine.job("app.f2").due_us  # type: ignore[union-attr]
    kv.write({keys.job("app.f2"): msgpack.packb({"s": 0, "d": due, "n": "x"})}, sync=False)
    assert get(engine, "app.f2").status == "quarantined"
    assert do(engine, messages.LoadJobs(source="/f.yaml", jobs=jobs[:1])) == messages.Ok()
    assert not [key for key, _ in kv.scan(b"", b"\xff") if key.endswith(b"app.f2")]
    assert get(engine, "app.f1").status == "planned"
