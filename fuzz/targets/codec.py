"""The message codec: any bytes in, only MessageError out.

The input is the batch's body frame after a valid version frame (most inputs), or, when it
starts with 0xFF, frames split on 0xFE. Checked: ``decode`` raises nothing but MessageError;
what it accepts encodes back to a batch that decodes to the same items.
"""

from __future__ import annotations

from kairoi import messages
from kairoi.errors import MessageError

_RAW = 0xFF
_SPLIT = b"\xfe"


def TestOneInput(data: bytes) -> None:  # noqa: N802 (the name atheris and libFuzzer use)
    if data[:1] == bytes([_RAW]):
        frames = data[1:].split(_SPLIT)
    else:
        frames = [messages.PROTOCOL_VERSION, data]
    try:
        items = messages.decode(frames)
    except MessageError:
        return
    again = messages.decode(messages.encode(items))
    assert again == items, f"{items!r:.200} came back as {again!r:.200}"
