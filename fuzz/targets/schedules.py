"""The schedule parser: a ``<when>`` (and a TZ) in, occurrences out.

Checked: parsing, the schedule's text (a one-shot formats its instant), stepping through the
next occurrences from several instants and formatting each as a reply would raise nothing but
KairoiError (InvalidRequest: the client's mistake); occurrences only move forward.
The input is ``<when>`` alone, or ``<when>\\0<zone>``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from kairoi.errors import KairoiError
from kairoi.schedule import (
    Schedule,
    format_duration,
    format_instant,
    parse_duration,
    parse_reference_time,
    parse_schedule,
)

STEPS = 4
"""Occurrences stepped through from each starting instant."""
FIRST_US, LAST_US = -62_135_596_800_000_000, 253_402_300_799_000_000
"""0001-01-01 00:00:00 and 9999-12-31 23:59:59 UTC: the instants Kairoi can represent."""
FROM_US = (0, 1_798_761_600_000_000, FIRST_US)
"""Where stepping starts: the epoch, 2027-01-01, the first instant, and one the input chooses
up to the last (the fuzzer finds the end of time by itself, not at every seed)."""


def TestOneInput(data: bytes) -> None:  # noqa: N802 (the name atheris and libFuzzer use)
    text = data.decode("utf-8", "replace")
    when, _, zone = text.partition("\0")
    _quietly(parse_reference_time, when)
    _quietly(lambda: format_duration(parse_duration(when).fixed_us))
    try:
        schedule = parse_schedule(when, zone or None)
    except KairoiError:
        return
    assert schedule.text, f"{schedule!r} has no text"  # what GET shows: a OneShot formats itself
    chosen = int.from_bytes(data[:8].ljust(8, b"\0"), "little") % (LAST_US - FIRST_US)
    for start in (*FROM_US, FIRST_US + chosen):
        _step(schedule, start)


def _step(schedule: Schedule, instant_us: int) -> None:
    for _ in range(STEPS):
        try:
            following = schedule.next_after(instant_us)
        except KairoiError:
            return
        if following is None:
            return
        assert following > instant_us, f"{schedule!r}: {following} after {instant_us}"
        format_instant(following)
        instant_us = following


def _quietly(parse: Callable[..., object], *arguments: str) -> None:
    with contextlib.suppress(KairoiError):
        parse(*arguments)
