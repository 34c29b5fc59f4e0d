"""The reference date grammar `%F %T` (reference §4), with years outside 0001-9999 refused."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from kairoi.errors import InvalidRequest
from kairoi.schedule import format_instant, parse_reference_time


def micros(*fields: int) -> int:
    year, month, day, hour, minute, second = (*fields, 0, 0, 0)[:6]
    instant = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return int(instant.timestamp()) * 1_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-5-6 1:2:3", micros(2020, 5, 6, 1, 2, 3)),
        ("2030-1-1 0:0:0", micros(2030, 1, 1)),
        ("2020-05-2622:26:18", micros(2020, 5, 26, 22, 26, 18)),
        ("2030-12-31\t23:59:59", micros(2030, 12, 31, 23, 59, 59)),
        ("2030-12-31   23:59:59", micros(2030, 12, 31, 23, 59, 59)),
        (" 2020-05-26 22:26:18", micros(2020, 5, 26, 22, 26, 18)),
        ("+2030-12-31 23:59:59", micros(2030, 12, 31, 23, 59, 59)),
        ("2030-12-31 23:59:60", micros(2031, 1, 1)),
        ("2030-\u3000 1-1 0:0:0", micros(2030, 1, 1)),
        ("0001-01-01 00:00:00", micros(1, 1, 1)),
        ("9999-12-31 23:59:59", micros(9999, 12, 31, 23, 59, 59)),
        ("1969-12-31 23:59:59", -1_000_000),
    ],
)
def test_reference_accepts(text: str, expected: int) -> None:
    assert parse_reference_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2020-02-30 00:00:00",
        "2020-05-26 22:26:18 ",
        "2020-05-26T22:26:18",
        "2030-12-31 24:00:00",
        "02030-12-31 23:59:59",
        "2030-12-31 23:59:59.5",
        "2030-12-31 23:59",
        "2030-01-01 0 0:00:00",
        "2030-01-01 00:60:00",
        "2030-01-01 00:00:61",
        "2030-01-01 00:00:00\n",
        "٢٠٣٠-01-01 00:00:00",
        "",
    ],
)
def test_reference_rejects(text: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid date"):
        parse_reference_time(text)


@pytest.mark.parametrize(
    "text",
    [
        "-0001-12-31 23:59:59",
        "0000-01-01 00:00:00",
        "+10000-01-01 00:00:00",
        "3000000-01-01 00:00:00",
        "9999-12-31 23:59:60",
    ],
)
def test_years_outside_the_representable_range_are_refused(text: str) -> None:
    """Reference fault 9: such dates got OK, then wrapped around on disk."""
    with pytest.raises(InvalidRequest):
        parse_reference_time(text)


def test_format_instant() -> None:
    assert format_instant(micros(2030, 1, 1)) == "2030-01-01T00:00:00Z"
    assert format_instant(micros(2030, 1, 1) + 5) == "2030-01-01T00:00:00.000005Z"
    assert format_instant(-1) == "1969-12-31T23:59:59.999999Z"


def test_arithmetic_agrees_with_datetime_across_the_range() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        fields = (
            rng.randint(1, 9999),
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
        )
        text = "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format(*fields)
        assert parse_reference_time(text) == micros(*fields)
    for year in (1, 1600, 1900, 2000, 2024, 2100, 9999):
        for month, day in ((2, 28), (2, 29), (12, 31)):
            text = f"{year:04d}-{month:02d}-{day:02d} 00:00:00"
            try:
                expected = micros(year, month, day)
            except ValueError:
                with pytest.raises(InvalidRequest):
                    parse_reference_time(text)
            else:
                assert parse_reference_time(text) == expected
