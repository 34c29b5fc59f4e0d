"""Schedule kinds and their occurrences: one-shot, ISO 8601 intervals, cron with time zones.

Table tests: month ends, leap years, DST in America/Los_Angeles and Europe/Paris, and the
cases Kala's own tests pin down (its faults refused, kala.md §4, §9-10).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kairoi.errors import InvalidRequest
from kairoi.schedule import (
    Cron,
    Interval,
    OneShot,
    Schedule,
    format_duration,
    format_instant,
    parse_duration,
    parse_schedule,
)


def at(text: str) -> int:
    """An ISO 8601 instant (with its offset) in µs."""
    instant = datetime.fromisoformat(text)
    return int(instant.timestamp()) * 1_000_000 + instant.microsecond


def occurrences(schedule: Schedule, after: str, count: int) -> list[str]:
    found, instant = [], at(after)
    for _ in range(count):
        following = schedule.next_after(instant)
        if following is None:
            break
        found.append(format_instant(following))
        instant = following
    return found


def test_one_shot_forms() -> None:
    assert parse_schedule("2030-01-01 10:00:00") == OneShot(at("2030-01-01T10:00:00Z"))
    assert parse_schedule("2030-01-01T11:00:00+01:00") == OneShot(at("2030-01-01T10:00:00Z"))
    assert parse_schedule("2030-01-01T10:00:00.25Z") == OneShot(at("2030-01-01T10:00:00.250Z"))
    shot = parse_schedule("2030-01-01T10:00:00Z")
    assert occurrences(shot, "2029-12-31T00:00:00Z", 3) == ["2030-01-01T10:00:00Z"]
    assert shot.next_after(at("2030-01-01T10:00:00Z")) is None


@pytest.mark.parametrize(
    ("when", "after", "expected"),
    [
        # Kala's meaning of R: R0 runs once, Rn n more times, R for ever.
        ("R0/2030-01-01T00:00:00Z/PT1S", "2029-01-01T00:00:00Z", ["2030-01-01T00:00:00Z"]),
        ("R2/2030-01-01T00:00:00Z/PT1S", "2029-01-01T00:00:00Z",
         ["2030-01-01T00:00:00Z", "2030-01-01T00:00:01Z", "2030-01-01T00:00:02Z"]),
        ("R/2030-01-01T00:00:00Z/PT10S", "2030-01-01T00:00:05Z",
         ["2030-01-01T00:00:10Z", "2030-01-01T00:00:20Z"]),
        # Counted on the start's grid: no drift, wherever one looks from.
        ("R/2030-01-01T00:00:00Z/PT7S", "2030-01-01T01:00:00.5Z",
         ["2030-01-01T01:00:05Z", "2030-01-01T01:00:12Z"]),
        # Month ends: the start's day when the month has it, else the month's last.
        ("R3/2030-01-31T10:00:00Z/P1M", "2030-01-01T00:00:00Z",
         ["2030-01-31T10:00:00Z", "2030-02-28T10:00:00Z", "2030-03-31T10:00:00Z",
          "2030-04-30T10:00:00Z"]),
        # Leap years (Kala: 2020-01-20 + P1Y = 2021-01-20; Feb 29 in a leap year only).
        ("R2/2020-02-29T00:00:00Z/P1Y", "2019-01-01T00:00:00Z",
         ["2020-02-29T00:00:00Z", "2021-02-28T00:00:00Z", "2022-02-28T00:00:00Z"]),
        ("R/2024-01-31T00:00:00Z/P1M", "2024-02-01T00:00:00Z", ["2024-02-29T00:00:00Z"]),
        # Kala: P1DT10M10S is 1 day + 10 min + 10 s; P1W a week.
        ("R1/2030-01-01T00:00:00Z/P1DT10M10S", "2030-01-01T00:00:00Z",
         ["2030-01-02T00:10:10Z"]),
        ("R/2030-01-01T00:00:00Z/P1W", "2030-01-01T00:00:00Z", ["2030-01-08T00:00:00Z"]),
        # The start's offset is kept: a daily step is the same local hour there.
        ("R/2030-01-01T09:00:00+01:00/P1D", "2030-01-01T08:00:00Z",
         ["2030-01-02T08:00:00Z"]),
        # A start without offset is UTC (as Kala reads it).
        ("R0/2030-01-01T00:00:00/PT1S", "2029-01-01T00:00:00Z", ["2030-01-01T00:00:00Z"]),
    ],
)  # fmt: skip
def test_intervals(when: str, after: str, expected: list[str]) -> None:
    schedule = parse_schedule(when)
    assert isinstance(schedule, Interval)
    found = occurrences(schedule, after, 10)
    assert found[: len(expected)] == expected
    if schedule.repeats is not None:
        assert len(found) == len(expected), "no more than Rn allows"


@pytest.mark.parametrize(
    ("when", "why"),
    [
        ("R/2030-01-01T00:00:00Z/PT0S", "must not be zero"),  # Kala loops tightly on it
        ("R/2030-01-01T00:00:00Z/P0D", "must not be zero"),
        ("2/2030-01-01T00:00:00Z/PT1S", "the repeat part must be R"),  # Kala: a 500 and a crash
        ("r2/2030-01-01T00:00:00Z/PT1S", "the repeat part must be R"),
        ("R-1/2030-01-01T00:00:00Z/PT1S", "the repeat part must be R"),
        ("RR5/2030-01-01T00:00:00Z/PT1S", "the repeat part must be R"),
        ("R2x/2030-01-01T00:00:00Z/PT1S", "the repeat part must be R"),
        ("R/hfhgasyuweu123/PT10S", "invalid instant"),
        ("R/2030-01-01T00:00:00Z/PT10S garbage", "invalid duration"),  # Kala accepts junk
        ("R/2030-01-01T00:00:00Z/xP1D", "invalid duration"),
        ("R/2030-01-01T00:00:00Z/P1Y2W", "invalid duration"),  # Kala drops the weeks
        ("R/2030-01-01T00:00:00Z/PT", "invalid duration"),
        ("R/2030-01-01T00:00:00Z/P1DT", "invalid duration"),
        ("R/2030-01-01T00:00:00Z", "expected R"),
        ("2030-01-01T10:00:00", "needs an offset"),
        ("2030-02-30T10:00:00Z", "invalid instant"),
    ],
)
def test_bad_schedules_are_refused_saying_why(when: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        parse_schedule(when)


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        ("0/30 * * * * *", "UTC", "2030-01-01T00:00:10Z",
         ["2030-01-01T00:00:30Z", "2030-01-01T00:01:00Z"]),  # Kronii's: seconds first
        ("* * * * * *", "UTC", "2030-01-01T00:00:00.5Z",
         ["2030-01-01T00:00:01Z", "2030-01-01T00:00:02Z"]),
        ("0 3 * * *", "UTC", "2030-01-01T03:00:00Z", ["2030-01-02T03:00:00Z"]),
        ("0 0 3 * * *", "Europe/Paris", "2030-01-01T00:00:00Z",
         ["2030-01-01T02:00:00Z", "2030-01-02T02:00:00Z"]),
        ("0 0 L * *", "UTC", "2030-02-01T00:00:00Z",
         ["2030-02-28T00:00:00Z", "2030-03-31T00:00:00Z"]),
        # Spring forward: 02:30 does not exist that day; it runs at the next valid instant.
        ("30 2 * * *", "America/Los_Angeles", "2030-03-09T12:00:00Z",
         ["2030-03-10T10:00:00Z", "2030-03-11T09:30:00Z"]),
        ("0 0 2 * * *", "Europe/Paris", "2030-03-30T12:00:00Z",
         ["2030-03-31T01:00:00Z", "2030-04-01T00:00:00Z"]),
        # Fall back: 01:30 happens twice that day; it runs once, the first time.
        ("30 1 * * *", "America/Los_Angeles", "2030-11-03T00:00:00Z",
         ["2030-11-03T08:30:00Z", "2030-11-04T09:30:00Z"]),
        ("*/20 1 * * *", "America/Los_Angeles", "2030-11-03T07:50:00Z",
         ["2030-11-03T08:00:00Z", "2030-11-03T08:20:00Z", "2030-11-03T08:40:00Z",
          "2030-11-04T09:00:00Z"]),
        ("30 2 * * *", "Europe/Paris", "2030-10-26T12:00:00Z",
         ["2030-10-27T00:30:00Z", "2030-10-28T01:30:00Z"]),
    ],
)  # fmt: skip
def test_cron(expression: str, zone: str, after: str, expected: list[str]) -> None:
    schedule = parse_schedule(f"cron:{expression}", zone if zone != "UTC" else None)
    assert schedule == Cron(expression, zone)
    assert occurrences(schedule, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("when", "zone", "why"),
    [
        ("cron:* * * *", None, "expected 5 fields"),
        ("cron:* * * * * * *", None, "expected 5 fields"),
        ("cron:61 * * * *", None, "invalid cron expression"),
        ("cron:* * * * *", "Mars/Olympus", "unknown time zone"),
        ("2030-01-01 00:00:00", "Europe/Paris", "TZ applies to cron schedules only"),
    ],
)
def test_bad_cron_is_refused_saying_why(when: str, zone: str | None, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        parse_schedule(when, zone)


def test_a_zone_that_is_not_utc_keeps_local_hours_across_dst() -> None:
    paris = parse_schedule("cron:0 0 9 * * *", "Europe/Paris")
    before, after = occurrences(paris, "2030-03-30T12:00:00Z", 2)
    assert (before, after) == ("2030-03-31T07:00:00Z", "2030-04-01T07:00:00Z")
    local = datetime.fromisoformat(after).astimezone(ZoneInfo("Europe/Paris"))
    assert local.hour == 9


@pytest.mark.parametrize(
    ("text", "months", "seconds"),
    [("PT30S", 0, 30), ("PT1H30M", 0, 5400), ("P2W", 0, 14 * 86400), ("P1Y2M", 14, 0),
     ("P1DT1S", 0, 86401)],
)  # fmt: skip
def test_durations(text: str, months: int, seconds: int) -> None:
    duration = parse_duration(text)
    assert (duration.months, duration.fixed_us) == (months, seconds * 1_000_000)
    if not months:
        assert parse_duration(format_duration(duration.fixed_us)).fixed_us == duration.fixed_us


def test_the_last_occurrence_of_a_finite_interval_is_the_last() -> None:
    schedule = parse_schedule("R1/2030-01-01T00:00:00Z/PT1H")
    assert schedule.next_after(at("2030-01-01T01:00:00Z")) is None
    assert schedule.next_after(at("2030-01-01T00:59:59.999999Z")) == at("2030-01-01T01:00:00Z")
    assert datetime.fromtimestamp(0, UTC).year == 1970
