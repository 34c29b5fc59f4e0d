"""The replies a connection owes: one per request, or one slot for a run of SETs."""

from __future__ import annotations

import pytest

from kairoi import limits, messages
from kairoi.errors import InvalidRequest
from kairoi.frontend.replies import SetsSlot, Slot, render, reserved_bytes
from kairoi.storage import views

UNAVAILABLE = b' ERROR unavailable "storage did not answer; the outcome is unknown"\n'


def test_a_slot_holds_one_reply() -> None:
    slot = Slot(b'"a b"')
    assert slot.line is None and slot.size == 1
    slot.answer(messages.Failed(code="conflict", reason='it "runs"'))
    assert slot.line == b'"a b" ERROR conflict "it \\"runs\\""\n'


def test_a_run_of_sets_answered_ok_gives_one_line_each() -> None:
    slot = SetsSlot(("1", "2", "3"), {})
    assert slot.line is None and slot.size == 3
    slot.answer(messages.Ok())
    assert slot.line == b"1 OK\n2 OK\n3 OK\n"


def test_lines_refused_early_keep_their_place() -> None:
    slot = SetsSlot(("1", "2", "3"), {1: InvalidRequest("bad date")})
    slot.answer(messages.Ok())
    assert slot.line == b'1 OK\n2 ERROR invalid "bad date"\n3 OK\n'


def test_storage_refusals_map_to_the_lines_it_was_sent() -> None:
    slot = SetsSlot(("1", "2", "3", "4"), {0: InvalidRequest("bad date")})
    slot.answer(messages.Refused(positions=(1,), codes=("conflict",), reasons=("running",)))
    assert slot.line == (b'1 ERROR invalid "bad date"\n2 OK\n3 ERROR conflict "running"\n4 OK\n')


def test_a_failed_batch_fails_every_line_sent() -> None:
    slot = SetsSlot(("1", "2"), {})
    slot.answer(messages.Failed(code="internal", reason="not saved: disk full"))
    assert slot.line == (
        b'1 ERROR internal "not saved: disk full"\n2 ERROR internal "not saved: disk full"\n'
    )


def test_an_expired_batch_is_unavailable_but_early_refusals_stand() -> None:
    slot = SetsSlot(("1", "2"), {0: InvalidRequest("bad date")})
    slot.expire()
    assert slot.line == b'1 ERROR invalid "bad date"\n2' + UNAVAILABLE


def test_a_run_refused_entirely_is_ready_at_once() -> None:
    slot = SetsSlot(("1",), {0: InvalidRequest("bad date")})
    assert slot.line == b'1 ERROR invalid "bad date"\n'


JOB = messages.JobState(
    job_id="app 1", status="planned", next_due_us=1_893_456_000_000_000, run=2,
    last_outcome="failed", last_finished_us=1_893_456_000_500_000, when="", options=(),
)  # fmt: skip


def test_get_shows_a_job_on_one_line() -> None:
    assert render(b"7", JOB) == (
        b"7 OK planned 2030-01-01T00:00:00Z 2 failed 2030-01-01T00:00:00.500000Z -\n"
    )
    never = messages.JobState(
        job_id="j", status="disabled", next_due_us=None, run=0, last_outcome="",
        last_finished_us=None, when="cron:0 3 * * *",
        options=("TZ", "Europe/Paris", "AFTER", "a b", "ALL"),
    )  # fmt: skip
    assert render(b"7", never) == (
        b'7 OK disabled - 0 - - "cron:0 3 * * *" TZ Europe/Paris AFTER "a b" ALL\n'
    )


def test_lists_are_a_line_per_item_then_ok_and_the_count() -> None:
    assert render(b'"a b"', messages.Jobs(jobs=(JOB, JOB))) == (
        b'"a b" JOB "app 1" planned 2030-01-01T00:00:00Z 2 failed 2030-01-01T00:00:00.500000Z -\n'
        * 2
        + b'"a b" OK 2\n'
    )
    assert render(b"x", messages.Jobs(jobs=())) == b"x OK 0\n"


def test_runs_show_when_how_and_why() -> None:
    run = messages.RunState(
        run=3, due_us=0, started_us=1_000, finished_us=None, outcome="stopped", exit_code=None,
        manual=True, reason='said "stop"',
    )  # fmt: skip
    assert render(b"r", messages.Runs(runs=(run,))) == (
        b"r RUN 3 1970-01-01T00:00:00Z 1970-01-01T00:00:00.001000Z - stopped - manual "
        b'"said \\"stop\\""\n'
        b"r OK 1\n"
    )


def test_rules_output_pong_and_stats() -> None:
    rule = messages.RuleState(
        rule_id="q", pattern="", runner="amqp", arguments=("amqp://u:***@h/", "x", "a key")
    )
    assert render(b"1", rule) == b'1 OK "" amqp amqp://u:***@h/ x "a key"\n'
    assert render(b"1", messages.Rules(rules=(rule,))) == (
        b'1 RULE q "" amqp amqp://u:***@h/ x "a key"\n1 OK 1\n'
    )
    output = messages.Output(run=4, output=b'line 1\nline "2"\n\xff')
    assert render(b"1", output) == b'1 OK 4 "line 1\nline \\"2\\"\n\xef\xbf\xbd"\n'
    assert render(b"1", messages.Pong()) == b"1 OK PONG\n"
    stats = messages.Stats(names=("failed", "planned"), values=(0, 3))
    assert render(b"1", stats) == b"1 OK failed=0 planned=3\n"


# What a connection is owed is bounded in the bytes written (attack report, finding 4): a
# reply is reserved, before it comes, at least the most its line can hold.
PREFIX = b'"' + b"i" * 200 + b'"'
BIG_RUN = 2**62


@pytest.mark.parametrize("byte", [b"\xff", b'"', b"\\", b"a"])
def test_an_output_line_is_never_longer_than_its_reservation(byte: bytes) -> None:
    output = messages.Output(run=BIG_RUN, output=byte * limits.MAX_OUTPUT_BYTES)
    request = messages.GetOutput(job_id="j", run=0)
    assert len(render(PREFIX, output)) <= reserved_bytes(request, PREFIX)


@pytest.mark.parametrize("reason", ["", '"' * 2_000, '"' * limits.MAX_REASON_BYTES])
def test_a_page_of_runs_is_never_longer_than_its_reservation(reason: str) -> None:
    run = messages.RunState(
        run=BIG_RUN, due_us=limits.MIN_INSTANT_US + 1, started_us=limits.MIN_INSTANT_US + 1,
        finished_us=limits.MIN_INSTANT_US + 1, outcome="timed_out", exit_code=-(2**31),
        manual=False, reason=reason,
    )  # fmt: skip
    page: views.Page[messages.RunState] = views.Page(limits.MAX_PAGE_BYTES, limits.MAX_LIST)
    while page.take(run, views.run_bytes(run)):
        pass
    reply = messages.Runs(runs=tuple(page.items), more=True)
    request = messages.ListRuns(job_id="j", limit=limits.MAX_LIST, before=0)
    assert len(render(PREFIX, reply)) <= reserved_bytes(request, PREFIX)


def test_a_page_of_rules_is_never_longer_than_its_reservation() -> None:
    rule = messages.RuleState(rule_id="r", pattern="", runner="shell", arguments=("/",))
    page: views.Page[messages.RuleState] = views.Page(limits.MAX_PAGE_BYTES, 1 << 62)
    while page.take(rule, views.rule_bytes(rule)):
        pass
    reply = messages.Rules(rules=tuple(page.items), more=True)
    request = messages.ListRules(prefix="", after=None)
    assert len(render(PREFIX, reply)) <= reserved_bytes(request, PREFIX)


@pytest.mark.parametrize("job_id", ["j", '"' * 3_000])
def test_a_page_of_jobs_is_never_longer_than_its_reservation(job_id: str) -> None:
    job = messages.JobState(
        job_id=job_id, status="triggered", next_due_us=limits.MIN_INSTANT_US + 1, run=BIG_RUN,
        last_outcome="timed_out", last_finished_us=limits.MIN_INSTANT_US + 1,
        when='"' * 100, options=("AFTER", '"' * 100),
    )  # fmt: skip
    page: views.Page[messages.JobState] = views.Page(limits.MAX_PAGE_BYTES, limits.MAX_LIST)
    while page.take(job, views.job_bytes(job)):
        pass
    reply = messages.Jobs(jobs=tuple(page.items), more=True)
    request = messages.ListJobs(prefix="", after=None, limit=limits.MAX_LIST)
    assert len(render(PREFIX, reply)) <= reserved_bytes(request, PREFIX)
