"""Schedule arithmetic: turning what a client wrote into instants (UTC microseconds)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from kairoi.errors import InvalidRequest

# Unicode White_Space, which the reference's date parser skips (Python's str.isspace also
# counts the ASCII separators 0x1C-0x1F, which the reference does not).
_WS = "[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*"
_2 = "([0-9]{1,2}+)"  # possessive: like the reference, take two digits when there are two
_REFERENCE_TIME = re.compile(
    rf"{_WS}([+-][0-9]++|[0-9]{{1,4}}+)-{_WS}{_2}-{_WS}{_2}{_WS}{_2}:{_WS}{_2}:{_WS}{_2}\Z"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICRO = timedelta(microseconds=1)


def parse_reference_time(text: str) -> int:
    """Parse the reference form ``Y-m-d H:i:s`` (UTC) into microseconds since the epoch.

    The grammar is the reference server's, byte for byte: one- or two-digit fields, any run of
    whitespace before a number, a leap second ``:60`` counted as the next second. Unlike the
    reference, a year outside 0001–9999 is refused instead of being stored corrupted.
    """
    match = _REFERENCE_TIME.match(text)
    if match is None:
        raise InvalidRequest(f"invalid date {text!r}: expected 'YYYY-MM-DD HH:MM:SS' (UTC)")
    year, month, day, hour, minute, second = (int(group) for group in match.groups())
    if not 1 <= year <= 9999:
        raise InvalidRequest(f"invalid date {text!r}: the year must be within 0001-9999")
    leap = second == 60
    try:
        instant = datetime(year, month, day, hour, minute, 59 if leap else second, tzinfo=UTC)
        if leap:
            instant += timedelta(seconds=1)
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(f"invalid date {text!r}: {exc}") from exc
    return (instant - _EPOCH) // _ONE_MICRO


def format_instant(instant_us: int) -> str:
    """An instant as ISO 8601 UTC with microseconds when it has any (for logs and replies)."""
    instant = _EPOCH + timedelta(microseconds=instant_us)
    return instant.isoformat(timespec="microseconds" if instant_us % 1_000_000 else "seconds")
