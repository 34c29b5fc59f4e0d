"""Listings bounded by bytes as well as by count (issue 13, item 6): a page ends early at
MAX_PAGE_BYTES with a cursor to go on, and the listings of one batch share a budget, so a
few large reads cannot take storage's memory."""

from __future__ import annotations

import pytest

from kairoi import config, messages
from kairoi.clock import FakeClock
from kairoi.domain import MAX_LIST, MAX_PAGE_BYTES, MAX_STRING_BYTES
from kairoi.errors import ConfigError
from kairoi.frontend.replies import render
from kairoi.storage.engine import BATCH_REPLY_BYTES, Engine
from kairoi.storage.kv import KeyValueStore

NOW = 1_000_000_000
LONG = MAX_STRING_BYTES - 100  # a long id, still a legal one


def engine_with_long_jobs(kv: KeyValueStore, count: int) -> tuple[Engine, list[str]]:
    engine = Engine(kv, fsync=False, clock=FakeClock(NOW))
    ids = [f"{n:04}" + "x" * LONG for n in range(count)]
    assert engine.apply(messages.SetJobs(job_ids=tuple(ids), due_us=(NOW + 5,) * count)) == (
        messages.Ok()
    )
    engine.commit()
    return engine, ids


def list_jobs(engine: Engine, after: str | None) -> messages.Jobs:
    reply = engine.apply(messages.ListJobs(prefix="", after=after, limit=MAX_LIST))
    assert isinstance(reply, messages.Jobs), reply
    return reply


def test_a_page_of_long_ids_ends_early_and_the_cursor_lists_every_job_once(
    kv: KeyValueStore,
) -> None:
    engine, ids = engine_with_long_jobs(kv, 40)
    pages, after = [], None
    while True:
        page = list_jobs(engine, after)
        engine.commit()
        pages.append([job.job_id for job in page.jobs])
        if not page.more:
            break
        after = page.jobs[-1].job_id
    assert [job_id for page in pages for job_id in page] == ids
    assert len(pages) > 1 and all(
        sum(len(job_id) for job_id in page) <= MAX_PAGE_BYTES for page in pages
    )
    assert not page.more and len(pages[-1]) < len(pages[0])


def test_a_page_that_is_not_cut_says_no_more(kv: KeyValueStore) -> None:
    engine, ids = engine_with_long_jobs(kv, 3)
    page = list_jobs(engine, None)
    assert [job.job_id for job in page.jobs] == ids and not page.more
    limited = engine.apply(messages.ListJobs(prefix="", after=None, limit=2))
    assert isinstance(limited, messages.Jobs) and not limited.more  # the count ended it


def test_the_listings_of_one_batch_share_a_budget(kv: KeyValueStore) -> None:
    engine, _ = engine_with_long_jobs(kv, 40)
    pages = []
    while not engine.replies_full:
        pages.append(list_jobs(engine, None))
    late = list_jobs(engine, None)  # past the budget: one job, so a listing still goes on
    assert len(late.jobs) == 1 and late.more
    held = sum(len(job.job_id) for page in pages for job in page.jobs)
    assert BATCH_REPLY_BYTES <= held + len(pages) * 200 <= BATCH_REPLY_BYTES + MAX_PAGE_BYTES
    engine.commit()
    assert not engine.replies_full and len(list_jobs(engine, None).jobs) > 1


def test_runs_page_on_before_the_last_run(kv: KeyValueStore) -> None:
    engine = Engine(kv, fsync=False, clock=FakeClock(NOW), runs_kept=10)
    engine.apply(messages.SetShellRule(rule_id="r", pattern="", script="s.sh"))
    engine.apply(messages.SetJob(job_id="j", due_us=NOW))
    engine.commit()
    for _ in range(4):
        engine.apply(messages.TriggerJob(job_id="j"))
        engine.commit()
        claimed = engine.apply(messages.ClaimDue(dispatcher="d", lookahead_us=0, limit=10))
        assert isinstance(claimed, messages.Claimed)
        for run in claimed.runs:
            engine.apply(messages.RecordOutcome(
                job_id="j", run=run.run, outcome="failed", exit_code=1, reason="r" * LONG,
                started_us=NOW, finished_us=NOW, output=b"",
            ))  # fmt: skip
        engine.commit()
    every = engine.apply(messages.ListRuns(job_id="j", limit=100))
    assert isinstance(every, messages.Runs) and not every.more
    numbers = [run.run for run in every.runs]
    assert numbers == sorted(numbers, reverse=True) and len(numbers) >= 4
    older = engine.apply(messages.ListRuns(job_id="j", limit=100, before=numbers[1]))
    assert isinstance(older, messages.Runs)
    assert [run.run for run in older.runs] == numbers[2:]


def test_rule_list_goes_on_after_a_rule(kv: KeyValueStore) -> None:
    engine = Engine(kv, fsync=False, clock=FakeClock(NOW))
    for rule_id in ("c", "a", "b"):
        engine.apply(messages.SetShellRule(rule_id=rule_id, pattern="", script="s.sh"))
    engine.commit()
    reply = engine.apply(messages.ListRules(prefix="", after="a"))
    assert isinstance(reply, messages.Rules) and not reply.more
    assert [rule.rule_id for rule in reply.rules] == ["b", "c"]


def test_a_page_cut_short_ends_with_its_cursor() -> None:
    job = messages.JobState(
        job_id="a b", status="planned", next_due_us=None, run=0, last_outcome="",
        last_finished_us=None, when="", options=(),
    )  # fmt: skip
    assert render(b"1", messages.Jobs(jobs=(job,), more=True)).endswith(b'1 OK 1 AFTER "a b"\n')
    rule = messages.RuleState(rule_id="q", pattern="", runner="shell", arguments=("s.sh",))
    assert render(b"1", messages.Rules(rules=(rule,), more=True)).endswith(b"1 OK 1 AFTER q\n")
    run = messages.RunState(
        run=7, due_us=0, started_us=None, finished_us=None, outcome="lost", exit_code=None,
        manual=False, reason="",
    )  # fmt: skip
    assert render(b"1", messages.Runs(runs=(run,), more=True)).endswith(b"1 OK 1 BEFORE 7\n")
    assert render(b"1", messages.Runs(runs=(run,))).endswith(b"1 OK 1\n")


def test_a_run_output_is_kept_within_a_page() -> None:
    with pytest.raises(
        ConfigError, match=r"'runners\.shell\.output_bytes' must be at most 1048576"
    ):
        config.parse(f"[runners.shell]\noutput_bytes = {MAX_PAGE_BYTES + 1}\n")
    assert config.parse(f"[runners.shell]\noutput_bytes = {MAX_PAGE_BYTES}\n")
