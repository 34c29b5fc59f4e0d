"""Storage logic, run against every KeyValueStore: the memory twin and RocksDB on disk."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from kairoi import messages
from kairoi.domain import AmqpRunner, Job, JobStatus, ShellRunner
from kairoi.errors import StoreError
from kairoi.storage import codec, keys
from kairoi.storage.engine import Engine
from kairoi.storage.kv import KeyValueStore, MemoryStore
from kairoi.storage.rocks import RocksStore


def set_job(job_id: str, due_us: int) -> messages.SetJob:
    return messages.SetJob(job_id=job_id, due_us=due_us)


def due_index(kv: KeyValueStore) -> list[tuple[int, str]]:
    return [keys.parse_timed(key) for key, _ in kv.scan(keys.DUE, keys.prefix_end(keys.DUE))]


def test_set_creates_a_planned_job_and_its_due_entry(kv: KeyValueStore) -> None:
    engine = Engine(kv, fsync=True)
    assert engine.apply(set_job("app.1", 5_000_000)) == messages.Ok()
    engine.commit()
    assert engine.job("app.1") == Job(id="app.1", due_us=5_000_000, status=JobStatus.PLANNED)
    assert due_index(kv) == [(5_000_000, "app.1")]


def test_nothing_is_written_before_commit(kv: KeyValueStore) -> None:
    engine = Engine(kv, fsync=False)
    engine.apply(set_job("app.1", 1))
    assert kv.get(keys.job("app.1")) is None
    assert engine.job("app.1") is not None, "later requests of the batch see earlier ones"


def test_set_again_moves_the_due_entry(kv: KeyValueStore) -> None:
    engine = Engine(kv, fsync=True)
    engine.apply(set_job("j", 30))
    engine.commit()
    engine.apply(set_job("j", 10))
    engine.apply(set_job("j", 20))
    engine.commit()
    assert due_index(kv) == [(20, "j")]


def test_due_index_is_in_time_order_across_the_epoch(kv: KeyValueStore) -> None:
    engine = Engine(kv, fsync=True)
    for job_id, due in [("b", 10), ("a", -10), ("c", 0), ("d", 10)]:
        engine.apply(set_job(job_id, due))
    engine.commit()
    assert due_index(kv) == [(-10, "a"), (0, "c"), (10, "b"), (10, "d")]


@pytest.mark.parametrize("status", [JobStatus.EXECUTED, JobStatus.FAILED])
def test_set_replans_a_finished_job(kv: KeyValueStore, status: JobStatus) -> None:
    kv.write(
        {keys.job("j"): codec.encode_job(Job(id="j", due_us=1, status=status, run=3))}, sync=True
    )
    engine = Engine(kv, fsync=True)
    assert engine.apply(set_job("j", 50)) == messages.Ok()
    engine.commit()
    assert engine.job("j") == Job(id="j", due_us=50, status=JobStatus.PLANNED, run=3)
    assert due_index(kv) == [(50, "j")]


def test_set_on_a_triggered_job_is_a_conflict_and_changes_nothing(kv: KeyValueStore) -> None:
    running = Job(id="j", due_us=1, status=JobStatus.TRIGGERED, run=1, active=(1,))
    kv.write({keys.job("j"): codec.encode_job(running)}, sync=True)
    engine = Engine(kv, fsync=True)
    reply = engine.apply(set_job("j", 50))
    assert isinstance(reply, messages.Failed) and reply.code == "conflict"
    engine.commit()
    assert engine.job("j") == running
    assert due_index(kv) == []


def test_rules_are_stored_replaced_and_reloaded(kv: KeyValueStore) -> None:
    engine = Engine(kv, fsync=True)
    engine.apply(messages.SetShellRule(rule_id="r", pattern="app.", script="a.sh"))
    engine.apply(
        messages.SetAmqpRule(rule_id="q", pattern="", dsn="amqp://h", exchange="x", routing_key="k")
    )
    engine.commit()
    engine.apply(messages.SetShellRule(rule_id="r", pattern="app.x.", script="b.sh"))
    engine.commit()
    reloaded = Engine(kv, fsync=True)
    assert reloaded.rules == engine.rules
    assert reloaded.rules["r"].runner == ShellRunner(script="b.sh")
    assert reloaded.rules["r"].pattern == "app.x."
    assert reloaded.rules["q"].runner == AmqpRunner(dsn="amqp://h", exchange="x", routing_key="k")
    assert reloaded.rule_for("app.x.1") == reloaded.rules["r"]
    assert reloaded.rule_for("zzz") == reloaded.rules["q"]


def test_replies_are_not_requests() -> None:
    reply = Engine(MemoryStore(), fsync=True).apply(messages.Ok())
    assert isinstance(reply, messages.Failed) and reply.code == "invalid"


def test_a_failed_commit_keeps_nothing() -> None:
    kv = MemoryStore()
    engine = Engine(kv, fsync=True)
    before = dict(kv.data)
    engine.apply(set_job("j", 1))
    engine.apply(messages.SetShellRule(rule_id="r", pattern="", script="a.sh"))
    kv.fail_writes = True
    with pytest.raises(StoreError):
        engine.commit()
    assert kv.data == before
    assert engine.rules == {}
    kv.fail_writes = False
    engine.commit()
    assert engine.job("j") is None, "the refused batch is not written later either"


def test_a_database_with_another_schema_is_refused() -> None:
    kv = MemoryStore()
    kv.data[keys.SCHEMA_VERSION] = b"99"
    with pytest.raises(StoreError, match="schema"):
        Engine(kv, fsync=True)


def test_a_locked_database_cannot_be_opened_twice(tmp_path: Path) -> None:
    first = RocksStore(str(tmp_path / "db"))
    try:
        with pytest.raises(StoreError, match="cannot open the database"):
            RocksStore(str(tmp_path / "db"))
    finally:
        first.close()


def test_unreadable_records_are_store_errors() -> None:
    with pytest.raises(StoreError, match="unreadable"):
        codec.decode_job("j", b"\xc1")
    with pytest.raises(StoreError, match="unknown runner"):
        codec.decode_rule("r", msgpack.packb({"p": "", "r": ["x"]}))


def set_jobs(*pairs: tuple[str, int]) -> messages.SetJobs:
    return messages.SetJobs(
        job_ids=tuple(job_id for job_id, _ in pairs), due_us=tuple(due for _, due in pairs)
    )


def test_a_batch_of_sets_plans_every_job_as_single_sets_would(kv: KeyValueStore) -> None:
    kv.write(
        {
            keys.job("old"): codec.encode_job(
                Job(id="old", due_us=1, status=JobStatus.EXECUTED, run=2)
            )
        },
        sync=True,
    )
    engine = Engine(kv, fsync=True)
    assert engine.apply(set_jobs(("a", 30), ("old", 10), ("b", -5))) == messages.Ok()
    engine.commit()
    assert due_index(kv) == [(-5, "b"), (10, "old"), (30, "a")]
    assert engine.job("old") == Job(id="old", due_us=10, status=JobStatus.PLANNED, run=2)
    assert engine.job("a") == Job(id="a", due_us=30, status=JobStatus.PLANNED)


def test_a_batch_that_sets_a_job_twice_keeps_the_last(kv: KeyValueStore) -> None:
    engine = Engine(kv, fsync=True)
    engine.apply(set_job("a", 99))
    assert engine.apply(set_jobs(("a", 30), ("b", 5), ("a", 20))) == messages.Ok()
    engine.commit()
    assert due_index(kv) == [(5, "b"), (20, "a")]


def test_a_batch_refuses_only_its_running_jobs(kv: KeyValueStore) -> None:
    running = Job(id="r", due_us=1, status=JobStatus.TRIGGERED, run=1, active=(1,))
    kv.write({keys.job("r"): codec.encode_job(running)}, sync=True)
    engine = Engine(kv, fsync=True)
    reply = engine.apply(set_jobs(("a", 30), ("r", 10), ("b", 5), ("r", 7)))
    assert isinstance(reply, messages.Refused)
    assert reply.positions == (1, 3) and reply.codes == ("conflict", "conflict")
    assert "'r' is running" in reply.reasons[0]
    engine.commit()
    assert engine.job("r") == running
    assert due_index(kv) == [(5, "b"), (30, "a")]


def test_a_batch_wakes_the_dispatcher_for_its_earliest_planned_job(kv: KeyValueStore) -> None:
    kv.write(
        {
            keys.job("r"): codec.encode_job(
                Job(id="r", due_us=1, status=JobStatus.TRIGGERED, active=(1,))
            )
        },
        sync=True,
    )
    engine = Engine(kv, fsync=True)
    engine.apply(set_jobs(("r", 1), ("a", 30), ("b", 20)))
    engine.commit()
    assert engine.take_wakeup() == 20


def test_a_batch_with_columns_of_different_lengths_is_invalid(kv: KeyValueStore) -> None:
    engine = Engine(kv, fsync=True)
    reply = engine.apply(messages.SetJobs(job_ids=("a", "b"), due_us=(1,)))
    assert isinstance(reply, messages.Failed) and reply.code == "invalid"
    engine.commit()
    assert due_index(kv) == []


def test_an_idle_rocksdb_writes_a_large_memtable_out_and_keeps_everything(
    tmp_path: Path,
) -> None:
    store = RocksStore(str(tmp_path / "db"))
    store.write({b"small": b"x"}, sync=True)
    store.release_memory()
    assert not list((tmp_path / "db").glob("*.sst")), "a small memtable stays"
    store.write({b"k%d" % i: b"v" * 100 for i in range(20_000)}, sync=True)
    store.release_memory()
    assert list((tmp_path / "db").glob("*.sst")), "a large one is written to a table file"
    store.close()
    reopened = RocksStore(str(tmp_path / "db"))
    assert reopened.get(b"k19999") == b"v" * 100 and reopened.get(b"small") == b"x"
    reopened.close()
