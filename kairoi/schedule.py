"""Schedule arithmetic: turning what a client wrote into instants (UTC microseconds)."""

from __future__ import annotations

import functools
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
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@functools.lru_cache(maxsize=4096)  # jobs are often set for the same second
def parse_reference_time(text: str) -> int:
    """Parse the reference form ``Y-m-d H:i:s`` (UTC) into microseconds since the epoch.

    The grammar is the reference server's, byte for byte: one- or two-digit fields, any run of
    whitespace before a number, a leap second ``:60`` counted as the next second. Unlike the
    reference, a year outside 0001-9999 is refused instead of being stored corrupted.
    """
    match = _REFERENCE_TIME.match(text)
    if match is None:
        raise InvalidRequest(f"invalid date {text!r}: expected 'YYYY-MM-DD HH:MM:SS' (UTC)")
    fields = year, month, day, hour, minute, second = tuple(map(int, match.groups()))
    if not 1 <= year <= 9999:
        raise InvalidRequest(f"invalid date {text!r}: the year must be within 0001-9999")
    problem = _out_of_range(fields)
    if problem:
        raise InvalidRequest(f"invalid date {text!r}: {problem}")
    days = _days_from_civil(year, month, day)
    instant = ((days * 24 + hour) * 60 + minute) * 60 + second
    if instant > _LAST_SECOND:  # 9999-12-31 23:59:60 is the year 10000
        raise InvalidRequest(f"invalid date {text!r}: the year must be within 0001-9999")
    return instant * 1_000_000


def _out_of_range(fields: tuple[int, ...]) -> str:
    """What is wrong with a date's fields, or "" when they name a real instant."""
    year, month, day, hour, minute, second = fields
    if not 1 <= month <= 12:
        return "month must be in 1..12"
    leap_day = month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS_IN_MONTH[month] + leap_day:
        return "day is out of range for month"
    if hour > 23:
        return "hour must be in 0..23"
    if minute > 59:
        return "minute must be in 0..59"
    if second > 60:
        return "second must be in 0..60"
    return ""


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


_LAST_SECOND = _days_from_civil(9999, 12, 31) * 86_400 + 86_399


def format_instant(instant_us: int) -> str:
    """An instant as ISO 8601 UTC (``2030-01-01T00:00:00Z``), with microseconds when it has
    any (for logs and replies)."""
    instant = _EPOCH + timedelta(microseconds=instant_us)
    timespec = "microseconds" if instant_us % 1_000_000 else "seconds"
    return instant.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"
