"""Every number and instant a client writes is held to its range where it is parsed, and the
schedule arithmetic on what is kept never raises (issue 13, item 2): extremes by hypothesis."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kairoi import limits
from kairoi.amqp.dsn import mask_dsn, parse_dsn
from kairoi.errors import InvalidRequest
from kairoi.frontend.instructions import InstructionReader
from kairoi.runner.actor import _reason as runner_reason
from kairoi.runner.shell import ScriptResult
from kairoi.schedule import (
    Cron,
    Interval,
    OneShot,
    format_instant,
    parse_duration,
    parse_reference_time,
    parse_schedule,
)

HUGE = "9" * 5000
"""More digits than Python converts (sys.int_info.str_digits_check_threshold)."""
assert len(HUGE) > sys.int_info.default_max_str_digits
OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
WALL_TIMES = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59))


class NoScripts:
    """No shell rule is set here: whatever judges scripts is not asked."""

    def check(self, script: str) -> None:
        raise AssertionError(script)


@pytest.fixture
def reader() -> InstructionReader:
    return InstructionReader(NoScripts())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+23:59"]
)
def test_an_instant_outside_the_calendar_in_utc_is_refused_naming_the_range(when: str) -> None:
    """Item 2: such an instant was stored, and the first reply formatting it killed the
    frontend's reply routing."""
    with pytest.raises(InvalidRequest, match="the instant must be between 0001-01-01T00:00:00Z"):
        parse_schedule(when)
    with pytest.raises(InvalidRequest, match="interval's start must be between"):
        parse_schedule(f"R/{when}/PT1H")


@settings(max_examples=300)
@given(WALL_TIMES, OFFSETS)
def test_every_iso_instant_is_either_refused_or_kept_in_range(
    wall: datetime, offset: timezone
) -> None:
    text = wall.replace(tzinfo=offset).isoformat()
    try:
        schedule = parse_schedule(text)
    except InvalidRequest as exc:
        assert "must be between" in exc.reason
        return
    assert isinstance(schedule, OneShot)
    assert limits.MIN_INSTANT_US <= schedule.at_us <= limits.MAX_INSTANT_US
    assert format_instant(schedule.at_us).endswith("Z")


@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_formatting_an_instant_never_raises(instant_us: int) -> None:
    """Defence in depth: a stored instant out of range (written before the checks) still
    formats, so a reply that shows it is written."""
    text = format_instant(instant_us)
    assert text.endswith("Z")
    if limits.MIN_INSTANT_US <= instant_us <= limits.MAX_INSTANT_US:
        assert datetime.fromisoformat(text) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            microseconds=instant_us
        )


def test_formatting_just_outside_the_calendar() -> None:
    assert format_instant(limits.MAX_INSTANT_US + 1) == "10000-01-01T00:00:00Z"
    assert format_instant(limits.MIN_INSTANT_US - 1) == "0000-12-31T23:59:59.999999Z"
    assert format_instant(limits.MIN_INSTANT_US) == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (f"PT{HUGE}S", "must be between PT0S and P3652059D"),
        ("P3652060D", "must be between PT0S and P3652059D"),
        ("P10000Y", "between P0M and P119988M"),
        (f"P{HUGE}M", "between P0M and P119988M"),
    ],
)
def test_a_duration_longer_than_the_calendar_is_refused(text: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        parse_duration(text)
    assert parse_duration("P3652059D").fixed_us == limits.MAX_DURATION_US


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        (["LIST", "LIMIT", HUGE], "LIMIT must be a whole number between 1 and 10000"),
        (["LIST", "LIMIT", "1000000000"], "LIMIT must be a whole number between 1 and 10000"),
        (["RUNS", "j", "LIMIT", "-1"], "LIMIT must be a whole number between 1 and 10000"),
        (["OUTPUT", "j", HUGE], "a run number must be a whole number between 1 and"),
        (["OUTPUT", "j", str(2**63)], "a run number must be a whole number between 1 and"),
        (["SET", "j", "cron:* * * * *", "RETRIES", HUGE, "BACKOFF", "PT1S"], "RETRIES must be"),
        (["SET", "j", "cron:* * * * *", "RETRIES", "1001", "BACKOFF", "PT1S"], "and 1000"),
        (["SET", "j", "cron:* * * * *", "RETRIES", "1", "BACKOFF", f"PT{HUGE}S"], "BACKOFF must"),
        (
            [
                "SET",
                "j",
                "cron:* * * * *",
                "RETRIES",
                "1",
                "BACKOFF",
                "PT1S",
                "MAXBACKOFF",
                "P9999999D",
            ],
            "MAXBACKOFF must be between PT0S and P3652059D",
        ),
        (["SET", "j", f"R{HUGE}/2030-01-01T00:00:00Z/PT1S"], "Rn must be a whole number"),
        (["SET", "j", "R1000000001/2030-01-01T00:00:00Z/PT1S"], "and 1000000000"),
        (["SET", "j", f"R/2030-01-01T00:00:00Z/PT{HUGE}S"], "interval's step must be between"),
        (["SET", "j", f"+{HUGE}-01-01 00:00:00"], "the year must be within 0001-9999"),
        (["SET", "j", "cron:* * * * *", "TZ", "Europe/" + "x" * 300], "TZ is longer than 255"),
        (["SET", "j", "cron:* * * * *", "TZ", "Europe"], "unknown time zone"),
        (["RULE", "SET", "r", "p", "amqp", "amqp://[::1", "x", "k"], "invalid AMQP DSN"),
        (["RULE", "SET", "r", "p", "amqp", "amqp://u:pw@[zz]:99999/", "x", "k"], "u:***@"),
        (["RULE", "SET", "r", "p", "amqp", f"amqp://h:{HUGE}/", "x", "k"], "port must be"),
    ],
)
def test_every_number_is_range_checked_where_it_is_parsed(
    reader: InstructionReader, arguments: list[str], why: str
) -> None:
    """Item 2: thousands of digits raised ValueError (Python's str-digits limit) and a
    malformed IPv6 DSN raised while its error was worded; either closed the connection."""
    with pytest.raises(InvalidRequest, match=why.replace("*", r"\*").replace("[", r"\[")) as exc:
        reader.read(arguments)
    assert exc.value.code == "invalid"
    assert len(exc.value.reason) < 400, "an echoed number is shortened"


@given(st.text(max_size=60) | st.from_regex(r"\Aamqps?://[\[\]:@a-z0-9/%?=&]*\Z"))
def test_a_dsn_is_parsed_or_refused_with_value_error_and_always_masks(dsn: str) -> None:
    masked = mask_dsn(dsn)
    assert isinstance(masked, str)
    try:
        endpoint = parse_dsn(dsn)
    except ValueError:
        return
    assert 0 <= endpoint.port <= 65535
    # Where the password stood, not anywhere: it may also be the host, a port or a user.
    assert endpoint.password in ("guest", "") or f":{endpoint.password}@" not in masked


@given(st.text(alphabet="0123456789", min_size=1, max_size=60), st.integers(0, 2**64))
def test_whole_number_returns_in_range_or_refuses(text: str, high: int) -> None:
    try:
        value = limits.whole_number(text, "n", 0, high)
    except InvalidRequest as exc:
        assert "n must be a whole number between 0 and" in exc.reason
        assert int(text) > high
        return
    assert value == int(text) <= high


STEPS = st.sampled_from(["PT1S", "PT1H", "P1D", "P1M", "P1Y", "P1M1D", "P13M", "P9999Y"])


@settings(max_examples=300)
@given(
    st.integers(min_value=limits.MIN_INSTANT_US, max_value=limits.MAX_INSTANT_US),
    st.integers(min_value=-50_400, max_value=50_400),
    STEPS,
    st.integers(min_value=limits.MIN_INSTANT_US - 10**15, max_value=limits.MAX_INSTANT_US + 10**15),
)
def test_an_interval_next_occurrence_stays_in_the_calendar_or_is_none(
    start_us: int, offset_s: int, step: str, after_us: int
) -> None:
    interval = Interval(None, start_us, offset_s, parse_duration(step), "R/…")
    occurrence = interval.next_after(after_us)
    assert occurrence is None or after_us < occurrence <= limits.MAX_INSTANT_US


def test_an_interval_has_no_more_occurrences_past_the_calendar() -> None:
    last = parse_schedule("R/9999-12-31T23:00:00Z/PT1H")
    assert last.next_after(0) == limits.MAX_INSTANT_US - 3_599_999_999
    assert last.next_after(limits.MAX_INSTANT_US - 3_599_999_999) is None
    monthly = parse_schedule("R/9999-11-30T23:30:00-14:00/P1M")
    december = parse_reference_time("9999-12-31 13:30:00")  # 9999-12-30T23:30:00-14:00
    assert monthly.next_after(limits.MAX_INSTANT_US - 10**12) == december
    assert monthly.next_after(december) is None


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(
        ["Pacific/Kiritimati", "Etc/GMT+12", "Europe/Paris", "America/New_York", "UTC"]
    ),
    st.sampled_from(["0 0 31 12 *", "59 23 31 12 *", "* * * * *", "0 0 29 2 *"]),
    st.integers(min_value=limits.MAX_INSTANT_US - 400 * 86_400_000_000, max_value=2**63),
)
def test_cron_near_the_calendar_end_in_any_zone_has_no_more_instead_of_raising(
    zone: str, expression: str, after_us: int
) -> None:
    cron = parse_schedule(f"cron:{expression}", zone)
    assert isinstance(cron, Cron)
    occurrence = cron.next_after(after_us)
    assert occurrence is None or after_us < occurrence <= limits.MAX_INSTANT_US


def test_cron_whose_local_time_passes_year_9999_in_utc_has_no_more() -> None:
    late = parse_schedule("cron:59 23 31 12 *", "Etc/GMT+12")  # 9999-12-31 23:59 at -12:00
    assert late.next_after(limits.MAX_INSTANT_US - 5 * 86_400_000_000) is None
    early = parse_schedule("cron:0 0 31 12 *", "Pacific/Kiritimati")  # 9999-12-30T10:00Z
    assert early.next_after(limits.MAX_INSTANT_US - 5 * 86_400_000_000) == (
        parse_reference_time("9999-12-30 10:00:00")
    )


# Cron text goes to cronsim, whose parser raises more than its own CronSimError on text it
# does not expect (ValueError for a number of over 4,300 digits): every one must come back
# as the client's error, never as the server's (attack report, finding 3).
CRON_PIECES = st.sampled_from(
    ["*", "L", "W", "LW", "#", "/", "-", ",", "?", "5L", "0", "59", "60", "MON", "JAN", "²", "٣"]
)
CRON_PIECES |= st.sampled_from(["9" * 41, "0" * 4_400 + "5", "1" * 4_400])
CRON_FIELDS = st.lists(CRON_PIECES, max_size=5).map("".join) | st.text(max_size=6)


BAD_CRONS = ["9" * 5_000 + " * * * * *", "*/" + "1" * 4_400 + " * * * *", "* * * * 1#"]
BAD_CRONS += ["0 0 1#" + "2" * 4_400 + " * *", "0" * 41 + "5 * * * *", "* * * * #"]


@pytest.mark.parametrize("expression", BAD_CRONS)
def test_a_cron_expression_with_any_number_is_refused_as_invalid(expression: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid cron expression"):
        parse_schedule(f"cron:{expression}")


@settings(max_examples=500)
@given(st.lists(CRON_FIELDS, min_size=5, max_size=6).map(" ".join))
def test_any_cron_text_is_refused_as_invalid_or_steps_without_raising(expression: str) -> None:
    try:
        schedule = parse_schedule(f"cron:{expression}")
    except InvalidRequest:
        return
    schedule.next_after(0)
    schedule.next_after(limits.MAX_INSTANT_US - 1)


@pytest.mark.parametrize("text", ["", "short", "é" * 40_000, "x" * 70_000, "𝄞" * 20_000])
def test_a_clipped_text_fits_its_bytes_and_keeps_a_short_one_whole(text: str) -> None:
    clipped = limits.clipped(text, limits.MAX_REASON_BYTES)
    assert len(clipped.encode()) <= limits.MAX_REASON_BYTES
    assert clipped == text or (clipped.endswith("…") and text.startswith(clipped[:-1]))
    limits.length(clipped, "the reason", limits.MAX_REASON_BYTES)  # storage takes it


def test_a_runner_reason_of_any_length_is_one_storage_takes() -> None:
    """A run's reason can name its script (up to 64 KiB) and add the output's last line: the
    runner clips it, so its report is never refused (attack report, finding 4)."""
    result = ScriptResult(None, "not run: " + "/s" * 40_000, b"x" * 300 + b"\n" + b"y" * 300)
    reason = runner_reason(result)
    assert reason.startswith("not run: /s/s") and len(reason.encode()) <= limits.MAX_REASON_BYTES
