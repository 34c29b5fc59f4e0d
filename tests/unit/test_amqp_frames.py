"""The hand-encoded publish frames are byte for byte what pamqp makes; frames split whole."""

from __future__ import annotations

import pytest
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from kairoi.amqp import frames


@pytest.mark.parametrize("body", [b"job.1", b"", "é".encode() * 300])
def test_content_frames_match_pamqp(body: bytes) -> None:
    properties = spec.Basic.Properties(delivery_mode=2, message_id="job.1:7")
    expected = pamqp_frame.marshal(ContentHeader(0, len(body), properties), 3)
    frame_max = 200
    for start in range(0, len(body), frame_max - 8):
        expected += pamqp_frame.marshal(ContentBody(body[start : start + frame_max - 8]), 3)
    assert frames.content(3, body, b"job.1:7", frame_max) == expected


def test_confirms_are_decoded_like_pamqp() -> None:
    ack = spec.Basic.Ack(delivery_tag=2**40 + 3, multiple=True)
    nack = spec.Basic.Nack(delivery_tag=9, multiple=False, requeue=True)
    assert frames.decode_method(pamqp_frame.marshal(ack, 1)[7:-1]) == frames.Confirm(
        2**40 + 3, multiple=True, refused=False
    )
    assert frames.decode_method(pamqp_frame.marshal(nack, 1)[7:-1]) == frames.Confirm(
        9, multiple=False, refused=True
    )


def test_other_methods_go_through_pamqp() -> None:
    payload = pamqp_frame.marshal(spec.Channel.Close(404, "NOT_FOUND", 40, 10), 1)[7:-1]
    decoded = frames.decode_method(payload)
    assert isinstance(decoded, spec.Channel.Close) and decoded.reply_code == 404


def test_split_takes_whole_frames_and_leaves_the_rest() -> None:
    ack = pamqp_frame.marshal(spec.Basic.Ack(delivery_tag=1), 1)
    buffer = bytearray(ack + frames.HEARTBEAT + ack[:5])
    taken = frames.split(buffer)
    assert [(kind, channel) for kind, channel, _ in taken] == [(1, 1), (8, 0)]
    assert buffer == ack[:5]
    buffer += ack[5:]
    assert len(frames.split(buffer)) == 1 and not buffer


def test_a_frame_without_its_end_octet_is_refused() -> None:
    broken = bytearray(frames.HEARTBEAT[:-1] + b"\x00")
    with pytest.raises(frames.FrameError, match="does not end with 0xCE"):
        frames.split(broken)
