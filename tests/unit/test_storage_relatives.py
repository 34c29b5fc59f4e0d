"""Jobs that run after others (AFTER): a cycle is refused wherever it would be made (SET,
a job file), parents are kept once each, and UNSET CASCADE walks the jobs that run after a
job without recursion, bounded, before deleting anything. On every KeyValueStore."""

from __future__ import annotations

import pytest

from kairoi import messages
from kairoi.clock import FakeClock
from kairoi.storage import keys, relatives
from kairoi.storage.engine import Engine
from kairoi.storage.kv import KeyValueStore
from tests.support import do

START = 1_893_456_000_000_000  # 2030-01-01T00:00:00Z
WHEN = "2030-01-01T00:00:00Z"


@pytest.fixture
def engine(kv: KeyValueStore) -> Engine:
    return Engine(kv, fsync=False, clock=FakeClock(START - 3_600_000_000))


def definition(job_id: str, *parents: str, source: str = "") -> messages.DefineJob:
    return messages.DefineJob(
        job_id=job_id, when="" if parents else WHEN, zone="", missed="once", overlap="skip",
        retries=0, backoff_us=0, max_backoff_us=0, parents=parents, all_parents=True,
        runner="shell", arguments=("s.sh",), rule_id="", source=source,
    )  # fmt: skip


def refused(reply: messages.Reply, code: str = "invalid") -> str:
    assert isinstance(reply, messages.Failed) and reply.code == code, reply
    return reply.reason


def parents_of(engine: Engine, job_id: str) -> tuple[str, ...]:
    job = engine.job(job_id)
    assert job is not None
    return job.spec.parents


def chain(engine: Engine, length: int) -> None:
    """j0 on a schedule, each jN after j(N-1), in one batch."""
    engine.apply(definition("j0"))
    for n in range(1, length):
        assert engine.apply(definition(f"j{n}", f"j{n - 1}")) == messages.Ok()
    engine.commit()


def test_a_job_after_its_own_child_is_refused_and_nothing_changes(engine: Engine) -> None:
    do(engine, definition("b"))
    assert do(engine, definition("a", "b")) == messages.Ok()
    reason = refused(do(engine, definition("b", "a")))
    assert reason == "'b' running after 'a' would make a cycle: b → a → b"
    assert parents_of(engine, "b") == () and parents_of(engine, "a") == ("b",)
    assert do(engine, messages.TriggerJob(job_id="a")) == messages.Ok(), "the store still works"


def test_a_long_cycle_is_refused_with_its_ends_shown(engine: Engine) -> None:
    chain(engine, 12)
    reason = refused(do(engine, definition("j0", "j11")))
    assert reason.startswith("'j0' running after 'j11' would make a cycle: j0 → j11 → j10")
    assert reason.endswith("… (6 more) → j2 → j1 → j0"), reason
    assert refused(do(engine, definition("j3", "j7", "j1"))).endswith("j3 → j7 → j6 → j5 → j4 → j3")
    assert parents_of(engine, "j3") == ("j2",)
    # Parents that make no cycle are taken: a diamond, and a parent kept again.
    assert do(engine, definition("j5", "j4", "j2")) == messages.Ok()
    assert do(engine, definition("j5", "j4", "j2")) == messages.Ok()


def test_a_cycle_reason_is_bounded_whatever_the_ids(engine: Engine) -> None:
    long_a, long_b = "a" * 5_000, "b" * 5_000
    do(engine, definition(long_b))
    do(engine, definition(long_a, long_b))
    reason = refused(do(engine, definition(long_b, long_a)))
    assert "would make a cycle" in reason and len(reason) < 300, len(reason)


def test_a_job_file_whose_jobs_make_a_cycle_is_refused_as_a_whole(engine: Engine) -> None:
    source = "/jobs.yaml"
    reply = engine.apply(messages.LoadJobs(source=source, jobs=(
        definition("f.root", source=source), definition("f.a", "f.b", source=source),
        definition("f.b", "f.a", source=source),
    )))  # fmt: skip
    engine.commit()
    assert "would make a cycle: f.a → f.b → f.a" in refused(reply)
    assert engine.job("f.root") is None, "all or nothing"


def test_a_job_file_closing_a_cycle_through_a_job_outside_it_is_refused(engine: Engine) -> None:
    source = "/jobs.yaml"
    first = (definition("f.a", source=source), definition("f.b", "f.a", source=source))
    assert do(engine, messages.LoadJobs(source=source, jobs=first)) == messages.Ok()
    do(engine, definition("outside", "f.b"))
    again = (definition("f.a", "outside", source=source), definition("f.b", "f.a", source=source))
    reason = refused(do(engine, messages.LoadJobs(source=source, jobs=again)))
    assert reason.endswith("would make a cycle: f.a → outside → f.b → f.a"), reason
    assert parents_of(engine, "f.a") == ()


def test_a_job_with_too_many_relatives_to_rule_out_a_cycle_is_refused(
    kv: KeyValueStore, engine: Engine
) -> None:
    engine.apply(definition("root"))
    engine.apply(definition("other"))
    for n in range(relatives.MAX_RELATIVES + 1):
        engine.apply(definition(f"c{n}", "root"))
    engine.commit()
    reason = refused(do(engine, definition("root", "other")))
    assert reason.startswith("more than 10,000 jobs run after 'root'"), reason
    assert "cycle" in reason and parents_of(engine, "root") == ()


def test_parents_are_kept_once_each(engine: Engine) -> None:
    do(engine, definition("p"))
    do(engine, definition("q"))
    assert do(engine, definition("child", "p", "q", "p", "p", "q")) == messages.Ok()
    assert parents_of(engine, "child") == ("p", "q")


def test_unset_cascade_of_a_deep_chain_deletes_it_all_without_recursion(
    kv: KeyValueStore, engine: Engine
) -> None:
    chain(engine, 2_500)  # deeper than Python's recursion limit
    do(engine, definition("kept"))
    assert do(engine, messages.UnsetJob(job_id="j0", cascade=True)) == messages.Ok()
    assert engine.job("j2499") is None and engine.job("j1") is None
    assert engine.job("kept") is not None
    assert not list(kv.scan(keys.CHILD, keys.prefix_end(keys.CHILD))), "no link left"
    stats = do(engine, messages.GetStats())
    assert isinstance(stats, messages.Stats)
    assert dict(zip(stats.names, stats.values, strict=True))["planned"] == 1


def test_unset_cascade_of_a_fan_out_and_a_diamond(kv: KeyValueStore, engine: Engine) -> None:
    engine.apply(definition("fan"))
    engine.apply(definition("elsewhere"))
    for n in range(3_000):
        engine.apply(definition(f"fan.{n}", "fan"))
    engine.apply(definition("both", "fan.1", "elsewhere"))
    engine.commit()
    assert do(engine, messages.UnsetJob(job_id="fan", cascade=True)) == messages.Ok()
    assert engine.job("fan.2999") is None and engine.job("both") is None
    assert engine.job("elsewhere") is not None
    assert not list(kv.scan(keys.CHILD, keys.prefix_end(keys.CHILD)))


def test_unset_cascade_over_too_many_jobs_is_refused_before_deleting(engine: Engine) -> None:
    chain(engine, relatives.MAX_RELATIVES + 2)
    reason = refused(do(engine, messages.UnsetJob(job_id="j0", cascade=True)))
    assert reason.startswith("more than 10,000 jobs run after 'j0'"), reason
    assert "UNSET CASCADE the jobs furthest from it first" in reason
    assert engine.job("j0") is not None and engine.job(f"j{relatives.MAX_RELATIVES + 1}")
    assert do(engine, messages.UnsetJob(job_id="j2", cascade=True)) == messages.Ok()
    assert do(engine, messages.UnsetJob(job_id="j0", cascade=True)) == messages.Ok()
    assert engine.job("j1") is None
