"""The replies a connection owes: one per request, or one slot for a run of SETs."""

from __future__ import annotations

from kairoi import messages
from kairoi.errors import InvalidRequest
from kairoi.frontend.replies import SetsSlot, Slot, render

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
