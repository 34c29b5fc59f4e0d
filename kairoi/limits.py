"""The range of every number and the size of every string Kairoi takes, in one place.

Each bound is a named constant, documented in docs/instructions.md ("Ranges"). The checks
below are the only ones: the frontend's parsers call them on what a client wrote, and
storage's entry (kairoi/checks.py) on what arrives on its socket, so both doors refuse the
same values with the same words: ``<field> must be between X and Y``.

Pure code. A number is parsed only after its digits are counted, so a number of thousands of
digits is refused with its range instead of raising (Python refuses to convert more than
``sys.int_info.str_digits_check_threshold`` digits), and nothing stored or sent on the bus can
exceed a signed 64-bit integer (msgpack's and the key layout's limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kairoi.errors import InvalidRequest

MAX_STRING_BYTES = 65_535
"""The reference encodes every id, pattern and runner argument with a u16 length."""
MAX_LIST = 10_000
"""The most jobs or runs one request may list."""
MAX_PAGE_BYTES = 1_048_576
"""About the most one reply that lists things may hold: a page ends early (with a cursor to
go on) once its items pass it, so a reply never amplifies a short request into gigabytes."""
MAX_OUTPUT_BYTES = MAX_PAGE_BYTES
"""The most output one run keeps (the highest ``runners.shell.output_bytes``), so an OUTPUT
reply stays within a page."""
MAX_REASON_BYTES = MAX_STRING_BYTES
"""The longest reason a run's outcome carries (runners clip theirs to it)."""
MAX_RUNNER_SLOTS = 10_000
"""The most runs of one kind a runner may hold at once (``runners.*.concurrency``); the
dispatcher drops a runner's hello that claims more (and all it sends to one runner fits a
message of Kairoi's, messages.MAX_BATCH_ITEMS)."""
MIN_INSTANT_US = -62_135_596_800_000_000
"""The first representable instant, 0001-01-01T00:00:00Z (µs since the epoch)."""
MAX_INSTANT_US = 253_402_300_799_999_999
"""The last representable instant, 9999-12-31T23:59:59.999999Z: every instant Kairoi keeps
is within these two, whatever the zone or offset it was written in."""
MAX_DURATION_DAYS = 3_652_059
"""The longest fixed duration (an interval's step, a BACKOFF), in days: the whole calendar."""
MAX_DURATION_US = MAX_DURATION_DAYS * 86_400_000_000
MAX_DURATION_MONTHS = 9_999 * 12
"""The longest calendar duration, in months (years count 12)."""
MAX_REPEATS = 1_000_000_000
"""The most repetitions ``Rn`` of an interval may ask for."""
MAX_RETRIES = 1_000
"""The most retries (RETRIES n) of a failed occurrence."""
MAX_RUN = 2**63 - 1
"""The highest run number: a job whose runs reach it runs no more (it ends failed)."""
MAX_CATCH_UP = 1_000
"""With MISSED all, the most missed occurrences run one after the other; when more were
missed, the job catches up once (as MISSED once) instead."""
MAX_ZONE_BYTES = 255
"""The longest time zone name (IANA names are far shorter)."""
MAX_CLAIM = 1_000_000
"""The most runs one ClaimDue may ask for."""
MAX_EXIT_CODE = 2**31 - 1
"""Exit codes (and the negated signal numbers of killed scripts) are C ints."""
MAX_DIGITS = 40
"""A whole number is read only up to this many digits (after leading zeros): any longer
one is out of every range above."""


@dataclass(frozen=True, slots=True)
class Bound:
    """A field's range: ``parse`` reads it from a client's text, ``check`` holds a value
    from the bus to it; both say ``<field> must be … between <low> and <high>``."""

    field: str
    low: int
    high: int

    def parse(self, text: str) -> int:
        return whole_number(text, self.field, self.low, self.high)

    def check(self, value: int) -> int:
        return in_range(value, self.field, self.low, self.high)


RETRIES = Bound("RETRIES", 0, MAX_RETRIES)
REPEATS = Bound("Rn", 0, MAX_REPEATS)
LIMIT = Bound("LIMIT", 1, MAX_LIST)
RUN = Bound("a run number", 1, MAX_RUN)
BEFORE = Bound("BEFORE", 1, MAX_RUN)
CLAIM = Bound("the claim's limit", 0, MAX_CLAIM)
EXIT_CODE = Bound("the exit code", -MAX_EXIT_CODE - 1, MAX_EXIT_CODE)


def whole_number(text: str, field: str, low: int, high: int) -> int:
    """``text`` as a whole number (ASCII digits only) within ``low`` and ``high``."""
    significant = text.lstrip("0")
    if text.isascii() and text.isdigit() and len(significant) <= MAX_DIGITS:
        value = int(significant or "0")
        if low <= value <= high:
            return value
    shown = text if len(text) <= 40 else text[:20] + "…"
    raise InvalidRequest(f"{field} must be a whole number between {low} and {high}, "
                         f"not {shown!r}")  # fmt: skip


def in_range(value: int, field: str, low: int, high: int) -> int:
    """``value``, when it is within ``low`` and ``high``; else the reason in words."""
    if not low <= value <= high:
        raise InvalidRequest(f"{field} must be between {low} and {high}")
    return value


def instant(value_us: int, field: str) -> int:
    """An instant (µs since the epoch) that the calendar can show."""
    if not MIN_INSTANT_US <= value_us <= MAX_INSTANT_US:
        raise InvalidRequest(f"{field} must be between 0001-01-01T00:00:00Z and "
                             "9999-12-31T23:59:59.999999Z (UTC)")  # fmt: skip
    return value_us


def instants(values_us: Sequence[int], field: str) -> None:
    """Every instant of ``values_us`` (two C-level passes: a SET batch can be long)."""
    if values_us and (min(values_us) < MIN_INSTANT_US or max(values_us) > MAX_INSTANT_US):
        instant(max(values_us, key=_distance_out), field)


def _distance_out(value_us: int) -> int:
    return max(MIN_INSTANT_US - value_us, value_us - MAX_INSTANT_US)


def duration_us(value_us: int, field: str) -> int:
    """A fixed duration of zero or more, up to MAX_DURATION_US."""
    if not 0 <= value_us <= MAX_DURATION_US:
        raise InvalidRequest(f"{field} must be between PT0S and P{MAX_DURATION_DAYS}D")
    return value_us


def length(text: str, field: str, most: int = MAX_STRING_BYTES) -> str:
    """``text``, when its UTF-8 form is at most ``most`` bytes."""
    # Four bytes per character at most: only a long string is encoded to measure it.
    if len(text) * 4 > most and len(text.encode("utf-8", "surrogatepass")) > most:
        raise InvalidRequest(f"{field} is longer than {most} bytes")
    return text


def clipped(text: str, most: int) -> str:
    """``text``, cut to at most ``most`` UTF-8 bytes (at a character) when it is longer: for
    what a process writes itself, such as a run's reason, which must never be refused."""
    if len(text) * 4 <= most:
        return text
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= most:
        return text
    return encoded[: most - 3].decode("utf-8", "ignore") + "…"


def lengths(texts: Sequence[str], field: str) -> None:
    """Every string of ``texts`` (one C-level pass when none can be too long)."""
    if texts and max(map(len, texts)) * 4 > MAX_STRING_BYTES:
        for text in texts:
            length(text, field)
