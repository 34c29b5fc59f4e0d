"""The replies a connection owes: one per request, or one slot for a run of SETs."""

from __future__ import annotations

from kairoi import messages
from kairoi.errors import InvalidRequest
from kairoi.frontend.replies import SetsSlot, Slot

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
