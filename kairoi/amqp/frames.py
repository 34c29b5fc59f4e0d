"""AMQP 0-9-1 frames: the publish path encoded by hand, everything else through pamqp.

A confirmed publish is three frames out (method, content header, body) and, in time, one
``Basic.Ack`` in; at tens of thousands a second pamqp's general marshalling would be most of
the cost, so those four are done here with ``struct`` (tests check them against pamqp's bytes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pamqp import frame as pamqp_frame
from pamqp.base import Frame
from pamqp.commands import Basic

FRAME_END = 0xCE
HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
_FRAME_HEADER = struct.Struct(">BHI")  # type, channel, payload size
_CONTENT_HEADER = struct.Struct(">BHIHHQHB")  # frame header, class, weight, size, flags, mode
_BASIC_ACK = b"\x00\x3c\x00\x50"  # class 60 (basic), method 80 (ack)
_BASIC_NACK = b"\x00\x3c\x00\x78"  # method 120 (nack)
_TAG_AND_BITS = struct.Struct(">QB")
_DELIVERY_MODE_AND_MESSAGE_ID = 0x1000 | 0x0080  # property flags
PERSISTENT = 2
METHOD, CONTENT_HEADER, CONTENT_BODY, HEARTBEAT_FRAME = 1, 2, 3, 8


class FrameError(Exception):
    """The peer sent bytes that are not AMQP frames: the connection cannot go on."""


@dataclass(frozen=True, slots=True)
class Confirm:
    """A ``Basic.Ack`` (or, when ``refused``, a ``Basic.Nack``) for publisher confirms."""

    delivery_tag: int
    multiple: bool
    refused: bool


def method(channel: int, value: Frame) -> bytes:
    return pamqp_frame.marshal(value, channel)


def publish_method(channel: int, exchange: str, routing_key: str) -> bytes:
    """The ``Basic.Publish`` frame (mandatory): the same for every message to one target."""
    publish = Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True)
    return pamqp_frame.marshal(publish, channel)


def content(channel: int, body: bytes, message_id: bytes, frame_max: int) -> bytes:
    """The content header (persistent, with ``message_id``) and body frames of a message."""
    header = _CONTENT_HEADER.pack(
        CONTENT_HEADER, channel, 16 + len(message_id), 60, 0, len(body),
        _DELIVERY_MODE_AND_MESSAGE_ID, PERSISTENT,
    )  # fmt: skip
    parts = [header, bytes((len(message_id),)), message_id, b"\xce"]
    step = frame_max - 8
    for start in range(0, len(body), step):
        chunk = body[start : start + step]
        parts += [_FRAME_HEADER.pack(CONTENT_BODY, channel, len(chunk)), chunk, b"\xce"]
    return b"".join(parts)


def split(buffer: bytearray) -> list[tuple[int, int, bytes]]:
    """Take every whole frame off the start of ``buffer``, as (type, channel, payload)."""
    frames, offset, end = [], 0, len(buffer)
    while end - offset >= 8:
        kind, channel, size = _FRAME_HEADER.unpack_from(buffer, offset)
        frame_end = offset + 8 + size
        if frame_end > end:
            break
        if buffer[frame_end - 1] != FRAME_END:
            raise FrameError(f"a frame of type {kind} does not end with 0xCE")
        frames.append((kind, channel, bytes(buffer[offset + 7 : frame_end - 1])))
        offset = frame_end
    del buffer[:offset]
    return frames


def decode_method(payload: bytes) -> Frame | Confirm:
    """A method frame's payload: confirms quickly, anything else through pamqp."""
    if payload[:4] in (_BASIC_ACK, _BASIC_NACK) and len(payload) == 13:
        tag, bits = _TAG_AND_BITS.unpack_from(payload, 4)
        return Confirm(tag, bool(bits & 1), payload[:4] == _BASIC_NACK)
    return _pamqp_decode(METHOD, payload)


def decode_content_header(payload: bytes) -> Frame:
    return _pamqp_decode(CONTENT_HEADER, payload)


def _pamqp_decode(kind: int, payload: bytes) -> Frame:
    whole = _FRAME_HEADER.pack(kind, 0, len(payload)) + payload + b"\xce"
    try:
        _, _, value = pamqp_frame.unmarshal(whole)
    except Exception as exc:  # pamqp raises several kinds for malformed frames
        raise FrameError(f"cannot decode a frame: {exc}") from exc
    return value  # type: ignore[return-value]
