"""What every instruction's arguments must be, whatever the instruction."""

from __future__ import annotations

from collections.abc import Sequence

from kairoi import limits


def check_lengths(arguments: Sequence[str]) -> None:
    """Refuse an argument longer than the reference's u16 length allows."""
    limits.lengths(arguments, "an argument")
