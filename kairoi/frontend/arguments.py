"""What every instruction's arguments must be, whatever the instruction."""

from __future__ import annotations

from collections.abc import Iterable

from kairoi.domain import MAX_STRING_BYTES
from kairoi.errors import InvalidRequest


def check_lengths(arguments: Iterable[str]) -> None:
    """Refuse an argument longer than the reference's u16 length allows."""
    for argument in arguments:
        # Four bytes per character at most: only a long argument is encoded to measure it.
        if len(argument) * 4 > MAX_STRING_BYTES and len(argument.encode()) > MAX_STRING_BYTES:
            raise InvalidRequest(f"an argument is longer than {MAX_STRING_BYTES} bytes")
