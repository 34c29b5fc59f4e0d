"""Messages between processes: round trips, and strict refusal of anything else."""

from __future__ import annotations

import msgpack
import pytest

from kairoi import messages
from kairoi.errors import MessageError

SAMPLES: list[messages.Message] = [
    messages.SetJob(job_id="app.1", due_us=-5),
    messages.SetJobs(job_ids=("a", "é b"), due_us=(1, -2)),
    messages.SetJobs(job_ids=(), due_us=()),
    messages.Refused(positions=(0, 3), codes=("conflict", "invalid"), reasons=("x", "y")),
    messages.SetShellRule(rule_id="r", pattern="", script="s.sh"),
    messages.SetAmqpRule(rule_id="r", pattern="a", dsn="amqp://x", exchange="", routing_key="k"),
    messages.Ok(),
    messages.Failed(code="invalid", reason="why"),
]


def test_every_message_round_trips() -> None:
    items = list(enumerate(SAMPLES))
    assert messages.decode(messages.encode(items)) == items


def test_every_message_class_has_a_tag_and_a_docstring() -> None:
    for cls in messages.TAGS.values():
        assert cls.__doc__ and "→" in cls.__doc__


def body(*items: object) -> list[bytes]:
    return [messages.PROTOCOL_VERSION, msgpack.packb(list(items))]


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([b"KAIROI/0", msgpack.packb([])], "expected"),
        ([messages.PROTOCOL_VERSION], "expected"),
        ([messages.PROTOCOL_VERSION, b"\xc1"], "not msgpack"),
        ([messages.PROTOCOL_VERSION, msgpack.packb([]) + b"x"], "not msgpack"),
        ([messages.PROTOCOL_VERSION, msgpack.packb({"a": 1})], "array of items"),
        (body([1]), "item must be"),
        (body([1, 999]), "unknown tag"),
        (body(["1", 1, "j", 5]), "bad correlation"),
        (body([1, 1, "j"]), "takes 2 fields"),
        (body([1, 1, "j", "5"]), "SetJob.due_us"),
        (body([1, 1, b"j", 5]), "SetJob.job_id"),
        (body([1, 1, "j", True]), "SetJob.due_us"),
        (body([1, 4, ["a", b"b"], [1, 2]]), "SetJobs.job_ids must hold only str"),
        (body([1, 4, ["a", "b"], [1, True]]), "SetJobs.due_us must hold only int"),
        (body([1, 4, ["a"], 5]), "SetJobs.due_us"),
    ],
)
def test_malformed_batches_are_refused(frames: list[bytes], reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        messages.decode(frames)


@pytest.mark.parametrize("count", [messages.MAX_BATCH_ITEMS + 1, 1_000_000])
def test_a_message_of_too_many_items_is_refused_before_it_is_read(count: int) -> None:
    """Attack report, finding 4: a 7 MB frame of a million Pings took storage to 309 MB."""
    frames = messages.encode([(n, messages.Ping()) for n in range(count)])
    with pytest.raises(MessageError, match=f"{count} items, over the"):
        messages.decode(frames)


@pytest.mark.parametrize("count", [0, 15, 16, 65_535, 65_536, messages.MAX_BATCH_ITEMS])
def test_a_message_of_up_to_the_bound_of_items_is_read(count: int) -> None:
    items = [(n, messages.Ping()) for n in range(count)]
    assert messages.decode(messages.encode(items)) == items
