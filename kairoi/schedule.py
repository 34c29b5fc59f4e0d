"""Schedule arithmetic: turning what a client wrote into instants (UTC microseconds).

Pure code. A schedule is a value whose ``next_after(instant)`` is its first occurrence after
that instant (None: it has no more); cron expressions are parsed and stepped by cronsim.

Every instant is kept within years 0001-9999 UTC (kairoi/limits.py), whatever the zone or
offset it was written in: one outside is refused when parsed, and an occurrence that would
fall outside means the schedule has no more. Formatting is total: even an instant outside
the range (a record written before these checks) formats, it never raises.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from kairoi import limits
from kairoi.errors import InvalidRequest
from kairoi.limits import MAX_INSTANT_US, MIN_INSTANT_US

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
    if len(match[1]) > 6:  # a signed year of thousands of digits: not worth converting
        raise InvalidRequest(f"invalid date {text[:40]!r}: the year must be within 0001-9999")
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


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """The proleptic Gregorian (year, month, day) ``days`` after 1970-01-01, for any year
    (the inverse of ``_days_from_civil``)."""
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524
                   - day_of_era // 146_096) // 365  # fmt: skip
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    return year_of_era + era * 400 + (month <= 2), month, day


_LAST_SECOND = _days_from_civil(9999, 12, 31) * 86_400 + 86_399
_DAY_US = 86_400_000_000
assert (_LAST_SECOND + 1) * 1_000_000 - 1 == MAX_INSTANT_US
assert _days_from_civil(1, 1, 1) * _DAY_US == MIN_INSTANT_US


def format_instant(instant_us: int) -> str:
    """An instant as ISO 8601 UTC (``2030-01-01T00:00:00Z``), with microseconds when it has
    any (for logs and replies). Total: an instant outside years 0001-9999 is written with
    its year as it is (``10000-01-01T00:00:00Z``, ``-0001-12-31T00:00:00Z``)."""
    timespec = "microseconds" if instant_us % 1_000_000 else "seconds"
    if MIN_INSTANT_US <= instant_us <= MAX_INSTANT_US:
        instant = _EPOCH + timedelta(microseconds=instant_us)
        return instant.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"
    days, time_us = divmod(instant_us, _DAY_US)
    year, month, day = _civil_from_days(days)
    wall = datetime(2000, month, day) + timedelta(microseconds=time_us)
    year_text = f"{year:04d}" if year >= 0 else f"-{-year:04d}"
    return year_text + wall.isoformat(timespec=timespec)[4:] + "Z"


# Schedules: what a job's ``<when>`` says, as a value that tells its next occurrence.
_DURATION = re.compile(
    r"P(?:(?P<weeks>[0-9]+)W|(?:(?P<years>[0-9]+)Y)?(?:(?P<months>[0-9]+)M)?"
    r"(?:(?P<days>[0-9]+)D)?(?:T(?=[0-9])(?:(?P<hours>[0-9]+)H)?(?:(?P<minutes>[0-9]+)M)?"
    r"(?:(?P<seconds>[0-9]+)S)?)?)"
)
_INTERVAL_REPEAT = re.compile(r"R([0-9]*)")
_CRON_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Duration:
    """An ISO 8601 duration: calendar months (years count 12), and a fixed part in µs
    (weeks and days count whole days: the schedules they step are in a fixed UTC offset)."""

    months: int
    fixed_us: int
    text: str

    @property
    def calendar(self) -> bool:
        return self.months != 0


def parse_duration(text: str, field: str = "a duration") -> Duration:
    """``PnW`` or ``P[nY][nM][nD][T[nH][nM][nS]]``, whole numbers, the whole string; no
    longer than the calendar (limits.MAX_DURATION_US, limits.MAX_DURATION_MONTHS)."""
    match = _DURATION.fullmatch(text)
    if match is None or text in ("P", "PT"):
        raise InvalidRequest(
            f"invalid duration {text[:40]!r}: expected ISO 8601 such as PT30S, PT10M, P1D, P1M "
            "or P2W"
        )
    parts = {name: _part(value) for name, value in match.groupdict().items()}
    days = parts["weeks"] * 7 + parts["days"]
    seconds = ((days * 24 + parts["hours"]) * 60 + parts["minutes"]) * 60 + parts["seconds"]
    months = parts["years"] * 12 + parts["months"]
    if months > limits.MAX_DURATION_MONTHS:
        raise InvalidRequest(f"{field} must be between P0M and P{limits.MAX_DURATION_MONTHS}M "
                             f"in years and months, not {text[:40]!r}")  # fmt: skip
    duration = Duration(months, limits.duration_us(seconds * 1_000_000, field), text)
    if duration.months == 0 and duration.fixed_us == 0:
        raise InvalidRequest(f"invalid duration {text!r}: it must not be zero")
    return duration


def _part(digits: str | None) -> int:
    """A duration's number; one too long to convert is past every bound anyway."""
    significant = (digits or "0").lstrip("0")
    return (
        int(significant or "0") if len(significant) <= limits.MAX_DIGITS else 10**limits.MAX_DIGITS
    )


def format_duration(duration_us: int) -> str:
    """A fixed duration as ISO 8601 (``PT1H30M``, ``P2D``, ``PT0.5S``)."""
    seconds, micros = divmod(duration_us, 1_000_000)
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    time = "".join(f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M")) if value)
    if seconds or micros:
        time += f"{seconds}.{micros:06d}".rstrip("0").rstrip(".") + "S"
    text = "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return text if text != "P" else "PT0S"


@dataclass(frozen=True, slots=True)
class OneShot:
    """Once, at ``at_us``."""

    at_us: int

    @property
    def text(self) -> str:
        return format_instant(self.at_us)

    def next_after(self, instant_us: int) -> int | None:
        return self.at_us if self.at_us > instant_us else None


@dataclass(frozen=True, slots=True)
class Interval:
    """ISO 8601 ``R[n]/<start>/<duration>``: at ``start + k × duration`` for k = 0, 1, …
    up to ``repeats`` (None: for ever), so ``R0`` runs once and ``R2`` three times. Each
    occurrence is counted from the start, so the grid never drifts; calendar steps keep the
    start's day of the month where the month has it (Jan 31, Feb 28, Mar 31, …)."""

    repeats: int | None
    start_us: int
    offset_s: int
    """The start's UTC offset: calendar steps are taken in it."""
    step: Duration
    text: str

    def occurrence(self, k: int) -> int:
        """The instant of occurrence number ``k`` (0: the start), in whole numbers: it may be
        past the calendar's end (``next_after`` says there is none then), it never raises."""
        if not self.step.calendar:
            return self.start_us + k * self.step.fixed_us
        offset_us = self.offset_s * 1_000_000
        local_days, time_us = divmod(self.start_us + offset_us, _DAY_US)
        moved = _add_months(_civil_from_days(local_days), k * self.step.months)
        return moved * _DAY_US + time_us - offset_us + k * self.step.fixed_us

    def next_after(self, instant_us: int) -> int | None:
        k = self._first_after(instant_us)
        if self.repeats is not None and k > self.repeats:
            return None
        occurrence = self.occurrence(k)
        return occurrence if occurrence <= MAX_INSTANT_US else None  # the calendar ends

    def repeated_by(self, instant_us: int) -> bool:
        """Whether its every repetition is at or before ``instant_us`` (when it is not and
        ``next_after`` says None, the calendar ends before its next occurrence)."""
        return self.repeats is not None and self._first_after(instant_us) > self.repeats

    def _first_after(self, instant_us: int) -> int:
        """The number of its first occurrence after ``instant_us``, repeats or not."""
        k = max(0, self._estimate(instant_us))
        while k > 0 and self.occurrence(k - 1) > instant_us:
            k -= 1
        while self.occurrence(k) <= instant_us:
            k += 1
        return k

    def _estimate(self, instant_us: int) -> int:
        """An occurrence number near the first after ``instant_us``."""
        length_us = self.step.fixed_us + self.step.months * 30 * 86_400_000_000
        return (instant_us - self.start_us) // length_us


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression, 5 fields (minute first) or 6 (second first), in an IANA time zone.

    Occurrences are found in the zone's wall-clock time, then placed on the time line: a
    local time skipped by a clock change runs once, at the first instant after the jump; a
    local time that occurs twice (when clocks go back) runs once, the first time."""

    expression: str
    zone: str

    @property
    def text(self) -> str:
        return f"cron:{self.expression}"

    def next_after(self, instant_us: int) -> int | None:
        zone = ZoneInfo(self.zone)
        try:
            instant = _EPOCH + timedelta(microseconds=instant_us)
            wall = instant.astimezone(zone).replace(tzinfo=None)
            for candidate in CronSim(self.expression, wall):
                moment = _placed(candidate, zone)
                if moment > instant:  # else a second pass over a repeated hour: it ran already
                    return _to_us(moment)
        except (OverflowError, ValueError):  # the next wall time or instant is past year 9999
            return None  # (datetime raises either, by the operation: "year 10000 is out of range")
        return None


def _placed(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a local wall-clock time happens: its first, when it happens twice; the
    first instant after the jump, when a clock change skips it."""
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return first.astimezone(UTC)
    low = int(wall.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())  # before the jump
    high = int(first.astimezone(UTC).timestamp())  # after it
    while low + 1 < high:  # the jump is at the first second whose local time is past ``wall``
        middle = (low + high) // 2
        local = datetime.fromtimestamp(middle, zone).replace(tzinfo=None)
        low, high = (low, middle) if local >= wall else (middle, high)
    return datetime.fromtimestamp(high, UTC)


Schedule = OneShot | Interval | Cron


@functools.lru_cache(maxsize=1024)
def parse_schedule(when: str, zone: str | None = None) -> Schedule:
    """A job's ``<when>``: the reference ``Y-m-d H:i:s`` (UTC), an ISO 8601 instant with its
    offset, an ISO 8601 repeating interval ``R[n]/<start>/<duration>``, or ``cron:<fields>``.
    ``zone`` (an IANA name) is the time zone of a cron expression, UTC by default."""
    if zone is not None and not when.startswith("cron:"):
        raise InvalidRequest("TZ applies to cron schedules only")
    if when.startswith("cron:"):
        return _cron(when[len("cron:") :].strip(), zone or "UTC")
    if when.startswith("R") or when.count("/") == 2:
        return _interval(when)
    if "T" in when:
        return OneShot(limits.instant(_to_us(_iso_datetime(when, need_offset=True)), "the instant"))
    return OneShot(parse_reference_time(when))


def _cron(expression: str, zone: str) -> Cron:
    limits.length(zone, "TZ", limits.MAX_ZONE_BYTES)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory, unreadable
        raise InvalidRequest(f"unknown time zone {zone!r}: expected an IANA name such as "
                             "Europe/Paris or UTC") from None  # fmt: skip
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise InvalidRequest(f"invalid cron expression {expression!r}: expected 5 fields "
                             "(minute first) or 6 (second first)")  # fmt: skip
    shown = expression if len(expression) <= 80 else expression[:60] + "…"
    if any(len(number) > limits.MAX_DIGITS for number in _CRON_NUMBER.findall(expression)):
        raise InvalidRequest(f"invalid cron expression {shown!r}: a number has more than "
                             f"{limits.MAX_DIGITS} digits")  # fmt: skip
    try:
        CronSim(" ".join(fields), datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError, IndexError, KeyError, OverflowError) as exc:
        # cronsim's own errors say which field is bad; the others are its parser meeting
        # text it did not expect (a number Python will not convert, a lone '#'): still the
        # client's expression at fault, never the server's.
        reason = str(exc) if isinstance(exc, CronSimError) else "it cannot be read"
        raise InvalidRequest(f"invalid cron expression {shown!r}: {reason}") from None
    return Cron(" ".join(fields), zone)


def _interval(text: str) -> Interval:
    parts = text.split("/")
    if len(parts) != 3:
        raise InvalidRequest(f"invalid interval {text!r}: expected R[n]/<start>/<duration>")
    repeat, start, step = parts
    match = _INTERVAL_REPEAT.fullmatch(repeat)
    if match is None:
        raise InvalidRequest(f"invalid interval {text!r}: the repeat part must be R (for ever) "
                             f"or Rn (n more times), not {repeat!r}")  # fmt: skip
    repeats = limits.REPEATS.parse(match[1]) if match[1] else None
    start_at = _iso_datetime(start, need_offset=False)
    start_us = limits.instant(_to_us(start_at), "the interval's start")
    offset = start_at.utcoffset()
    offset_s = 0 if offset is None else int(offset.total_seconds())
    return Interval(repeats, start_us, offset_s, parse_duration(step, "the interval's step"), text)


def _iso_datetime(text: str, need_offset: bool) -> datetime:
    """An ISO 8601 date and time with its offset (UTC when it has none and needs none)."""
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        example = "2030-01-01T10:00:00Z or 2030-01-01T11:00:00+01:00"
        raise InvalidRequest(
            f"invalid instant {text!r}: expected ISO 8601 such as {example}"
        ) from None
    if instant.tzinfo is None:
        if need_offset:
            raise InvalidRequest(f"invalid instant {text!r}: it needs an offset (Z or ±hh:mm)")
        instant = instant.replace(tzinfo=UTC)  # as Kala reads an interval's start
    return instant


def _to_us(instant: datetime) -> int:
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _add_months(date: tuple[int, int, int], months: int) -> int:
    """The day (since 1970-01-01) ``months`` after the (year, month, day) ``date`` on the
    calendar, its day kept or the month's last; for any year."""
    year, month, day = date
    year, month = divmod(year * 12 + month - 1 + months, 12)
    month += 1
    leap = month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return _days_from_civil(year, month, min(day, _DAYS_IN_MONTH[month] + leap))
