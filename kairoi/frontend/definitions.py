"""SET's words: the reference two-argument form, or a schedule with options, or AFTER.

    SET <job> "<YYYY-MM-DD HH:MM:SS>"                     the reference form, unchanged
    SET <job> <when> [<OPTION> <value> …]                 ISO 8601 instant or interval, cron:…
    SET <job> AFTER <parent> … [ALL|ANY] [<OPTION> <value> …]

Options: TZ <zone>, MISSED skip|once|all, OVERLAP skip|queue|allow, RETRIES <n> BACKOFF
<duration> [MAXBACKOFF <duration>], AFTER <parent> … [ALL|ANY]. AFTER's parents run to the
next option word or to ALL / ANY.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kairoi import limits, messages
from kairoi.domain import Missed, Overlap
from kairoi.errors import InvalidRequest
from kairoi.frontend.arguments import check_lengths
from kairoi.schedule import parse_duration, parse_reference_time, parse_schedule

SET_USAGE = 'SET <job> "YYYY-MM-DD HH:MM:SS" | <when> [<OPTION> <value> …] | AFTER <parent> …'
OPTIONS = ("TZ", "MISSED", "OVERLAP", "RETRIES", "BACKOFF", "MAXBACKOFF", "AFTER")
_BARE_DATE = re.compile(r"[+-]?[0-9]{1,4}-[0-9]{1,2}-[0-9]{1,2}")


@dataclass
class _Options:
    values: dict[str, str] = field(default_factory=dict)
    parents: list[str] = field(default_factory=list)
    all_parents: bool = True


def read_set(arguments: list[str]) -> messages.SetJob | messages.DefineJob:
    """The request SET's ``arguments`` (after the word SET) ask for."""
    if len(arguments) < 2:
        raise InvalidRequest(f"SET takes a job and when it runs: {SET_USAGE}")
    job_id, when, *rest = arguments
    check_lengths([job_id])
    if not rest and when != "AFTER":
        try:
            return messages.SetJob(job_id=job_id, due_us=parse_reference_time(when))
        except InvalidRequest:
            if not _looks_like_another_schedule(when):
                raise
    if rest and _BARE_DATE.fullmatch(when) and rest[0] not in OPTIONS:
        raise InvalidRequest(f'quote the date and time: SET <job> "YYYY-MM-DD HH:MM:SS" '
                             f"(got {len(arguments)} arguments)")  # fmt: skip
    return define(job_id, [when, *rest])


def define(job_id: str, words: list[str]) -> messages.DefineJob:
    """The DefineJob that ``<when> [<OPTION> <value> …]`` or ``AFTER <parent> … [ALL|ANY]
    [<OPTION> <value> …]`` make for ``job_id``."""
    when, rest = (words[0], words[1:]) if words[0] != "AFTER" else ("", words)
    return _define(job_id, when, _options(rest))


def _looks_like_another_schedule(when: str) -> bool:
    return when.startswith(("cron:", "R")) or "T" in when or when.count("/") == 2


def _define(job_id: str, when: str, options: _Options) -> messages.DefineJob:
    values = options.values
    zone = values.get("TZ", "")
    if when:
        parse_schedule(when, zone or None)  # refused here, with its reason, if wrong
    retries = _retries(values.get("RETRIES"))
    backoff, max_backoff = _duration(values, "BACKOFF"), _duration(values, "MAXBACKOFF")
    if retries and not backoff:
        raise InvalidRequest("RETRIES needs BACKOFF: RETRIES <n> BACKOFF <duration>")
    if not retries and (backoff or max_backoff):
        raise InvalidRequest("BACKOFF and MAXBACKOFF go with RETRIES <n>")
    check_lengths(options.parents)
    return messages.DefineJob(
        job_id=job_id, when=when, zone=zone,
        missed=_word(values, "MISSED", Missed, Missed.ONCE),
        overlap=_word(values, "OVERLAP", Overlap, Overlap.SKIP),
        retries=retries, backoff_us=backoff, max_backoff_us=max_backoff,
        parents=tuple(options.parents), all_parents=options.all_parents, runner="",
        arguments=(), rule_id="", source="",
    )  # fmt: skip


def _options(words: list[str]) -> _Options:
    options = _Options()
    position = 0
    while position < len(words):
        word = words[position]
        if word not in OPTIONS:
            raise InvalidRequest(f"unknown option {word!r}: expected one of {', '.join(OPTIONS)}")
        if word in options.values or (word == "AFTER" and options.parents):
            raise InvalidRequest(f"{word} is given twice")
        if word == "AFTER":
            position = _after(words, position + 1, options)
            continue
        if position + 1 == len(words):
            raise InvalidRequest(f"{word} needs a value")
        options.values[word] = words[position + 1]
        position += 2
    return options


def _after(words: list[str], position: int, options: _Options) -> int:
    """AFTER's parents, then ALL or ANY; where the next option starts."""
    while position < len(words) and words[position] not in (*OPTIONS, "ALL", "ANY"):
        options.parents.append(words[position])
        position += 1
    if not options.parents:
        raise InvalidRequest("AFTER needs at least one parent: AFTER <parent> … [ALL|ANY]")
    if position < len(words) and words[position] in ("ALL", "ANY"):
        options.all_parents = words[position] == "ALL"
        position += 1
    return position


def _word(values: dict[str, str], option: str, words: type[Missed | Overlap], default: str) -> str:
    value = values.get(option, default)
    if value not in {word.value for word in words}:
        expected = ", ".join(word.value for word in words)
        raise InvalidRequest(f"{option} is one of {expected}, not {value!r}")
    return value


def _retries(text: str | None) -> int:
    if text is None:
        return 0
    return limits.RETRIES.parse(text)


def _duration(values: dict[str, str], option: str) -> int:
    if option not in values:
        return 0
    duration = parse_duration(values[option], option)
    if duration.calendar:
        raise InvalidRequest(f"{option} must be a fixed duration (weeks, days, hours, minutes, "
                             f"seconds), not {values[option]!r}")  # fmt: skip
    return duration.fixed_us
