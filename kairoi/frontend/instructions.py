"""KCP instructions: the words after the request id, turned into typed requests.

Arity and argument rules are the reference server's (see docs/instructions.md); a refusal
raises a KairoiError whose code and reason become ``ID ERROR <code> "<reason>"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kairoi import __version__, limits, messages
from kairoi.amqp.dsn import mask_dsn, parse_dsn
from kairoi.checks import check_request
from kairoi.domain import MAX_STRING_BYTES
from kairoi.errors import InvalidRequest, KairoiError
from kairoi.frontend.arguments import check_lengths
from kairoi.frontend.definitions import read_set
from kairoi.schedule import parse_reference_time
from kairoi.scripts import ScriptPolicy

JobAction = (
    messages.GetJob | messages.DisableJob | messages.EnableJob | messages.StopJob
    | messages.TriggerJob
)  # fmt: skip

RULE_SET_USAGE = "RULE SET <rule> <pattern> shell <script> | amqp <dsn> <exchange> <routing key>"
DEFAULT_LIST_LIMIT = 100
JOB_ACTIONS: dict[str, type[JobAction]] = {
    "GET": messages.GetJob,
    "DISABLE": messages.DisableJob,
    "ENABLE": messages.EnableJob,
    "STOP": messages.StopJob,
    "TRIGGER": messages.TriggerJob,
}
"""The instructions that take exactly one job id."""


@dataclass(frozen=True, slots=True)
class Local:
    """An instruction the frontend answers itself: what follows the id in its reply."""

    suffix: bytes


class InstructionReader:
    def __init__(self, scripts: ScriptPolicy) -> None:
        self._scripts = scripts

    def read(self, arguments: list[str]) -> messages.Request | Local:
        """The request ``arguments`` ask for; raises KairoiError when they are wrong, and
        InvalidRequest when a field is out of the range storage would refuse it for (the
        same check_request storage's entry makes: one set of checks for both doors)."""
        request = self._read(arguments)
        if not isinstance(request, Local):
            check_request(request)
        return request

    def _read(self, arguments: list[str]) -> messages.Request | Local:
        match arguments:
            case ["SET", *rest]:
                return read_set(rest)
            case ["UNSET", *rest]:
                return _unset(rest)
            case ["RULE", "SET", *rest]:
                return self._set_rule(rest)
            case ["RULE", *rest]:
                return _rule_request(rest)
            case [word, *rest] if word in JOB_ACTIONS:
                return _job_action(word, rest)
            case [word, *rest] if word in _OTHERS:
                return _OTHERS[word](rest)
            case [word, *_]:
                raise InvalidRequest(f"unknown instruction {word!r}")
            case _:
                raise InvalidRequest("missing instruction")

    def read_sets(
        self, job_ids: tuple[str, ...], whens: tuple[str, ...]
    ) -> tuple[messages.SetJobs | None, dict[int, KairoiError]] | None:
        """``read`` of ``SET <job> <when>`` for each pair, as one request: the SetJobs of the
        valid ones (None if none is), and the error of each other, by position. None when a
        ``<when>`` is another schedule than the reference time (the lines are then read one
        by one)."""
        if max(map(len, job_ids)) * 4 <= MAX_STRING_BYTES:  # no id can be too long
            try:  # the common case, in C-level passes: every date is valid
                due_us = tuple(map(parse_reference_time, whens))
                return messages.SetJobs(job_ids=job_ids, due_us=due_us), {}
            except KairoiError:
                pass
        valid: list[messages.SetJob] = []
        refused: dict[int, KairoiError] = {}
        for position, (job_id, when) in enumerate(zip(job_ids, whens, strict=True)):
            try:
                request = read_set([job_id, when])
            except KairoiError as exc:
                refused[position] = exc
                continue
            if not isinstance(request, messages.SetJob):
                return None
            valid.append(request)
        if not valid:
            return None, refused
        return messages.SetJobs(
            job_ids=tuple(set_job.job_id for set_job in valid),
            due_us=tuple(set_job.due_us for set_job in valid),
        ), refused

    def _set_rule(self, arguments: list[str]) -> messages.Request:
        check_lengths(arguments)
        match arguments:
            case [rule_id, pattern, "shell", script]:
                real_path = self._scripts.resolve(script)
                return messages.SetShellRule(rule_id=rule_id, pattern=pattern, script=real_path)
            case [rule_id, pattern, "amqp", dsn, exchange, routing_key]:
                try:
                    parse_dsn(dsn)
                except ValueError as exc:
                    shown = mask_dsn(dsn)[:200]  # a DSN may be 64 KB long: the start says which
                    raise InvalidRequest(f"invalid AMQP DSN {shown!r}: {exc}") from None
                return messages.SetAmqpRule(
                    rule_id=rule_id,
                    pattern=pattern,
                    dsn=dsn,
                    exchange=exchange,
                    routing_key=routing_key,
                )
            case [_, _, "shell" | "amqp" as runner, *_]:
                raise InvalidRequest(
                    f"wrong number of arguments for the {runner} runner: {RULE_SET_USAGE}"
                )
            case [_, _, runner, *_]:
                raise InvalidRequest(f"unknown runner {runner!r}: expected shell or amqp")
            case _:
                raise InvalidRequest(f"wrong number of arguments: {RULE_SET_USAGE}")


def _unset(arguments: list[str]) -> messages.UnsetJob:
    match arguments:
        case [job_id]:
            cascade = False
        case [job_id, "CASCADE"]:
            cascade = True
        case _:
            raise InvalidRequest("UNSET takes a job, and CASCADE to delete the jobs that run "
                                 "after it too: UNSET <job> [CASCADE]")  # fmt: skip
    check_lengths([job_id])
    return messages.UnsetJob(job_id=job_id, cascade=cascade)


def _job_action(word: str, arguments: list[str]) -> JobAction:
    if len(arguments) != 1:
        raise InvalidRequest(f"{word} takes 1 argument: {word} <job>")
    check_lengths(arguments)
    return JOB_ACTIONS[word](job_id=arguments[0])


def _no_argument(word: str, answer: Callable[[], messages.Request | Local]) -> Reader:
    def read(arguments: list[str]) -> messages.Request | Local:
        if arguments:
            raise InvalidRequest(f"{word} takes no argument")
        return answer()

    return read


def _rule_request(arguments: list[str]) -> messages.Request:
    check_lengths(arguments[1:])
    match arguments:
        case ["GET", rule_id]:
            return messages.GetRule(rule_id=rule_id)
        case ["UNSET", rule_id]:
            return messages.UnsetRule(rule_id=rule_id)
        case ["LIST"]:
            return messages.ListRules(prefix="")
        case ["LIST", prefix]:
            return messages.ListRules(prefix=prefix)
        case ["GET" | "UNSET" as word, *_]:
            raise InvalidRequest(f"RULE {word} takes 1 argument: RULE {word} <rule>")
        case ["LIST", *_]:
            raise InvalidRequest("RULE LIST takes at most 1 argument: RULE LIST [<prefix>]")
        case [word, *_]:
            raise InvalidRequest(f"unknown instruction 'RULE {word}': expected RULE SET, GET, "
                                 "LIST or UNSET")  # fmt: skip
        case _:
            raise InvalidRequest("RULE needs an instruction: RULE SET, GET, LIST or UNSET")


LIST_USAGE = "LIST [<prefix>] [LIMIT <n>] [AFTER <job>]"


def _list_jobs(arguments: list[str]) -> messages.ListJobs:
    """An odd number of arguments starts with the prefix; then keyword and value pairs (so a
    prefix may itself be the word LIMIT or AFTER)."""
    prefix = arguments[0] if len(arguments) % 2 else ""
    options = _options(arguments[len(arguments) % 2 :], ("LIMIT", "AFTER"), LIST_USAGE)
    check_lengths([prefix, *options.values()])
    return messages.ListJobs(
        prefix=prefix,
        after=options.get("AFTER"),
        limit=_count(options.get("LIMIT"), DEFAULT_LIST_LIMIT, LIST_USAGE),
    )


RUNS_USAGE = "RUNS <job> [LIMIT <n>]"


def _list_runs(arguments: list[str]) -> messages.ListRuns:
    if not arguments:
        raise InvalidRequest(f"RUNS needs a job: {RUNS_USAGE}")
    job_id, *rest = arguments
    options = _options(rest, ("LIMIT",), RUNS_USAGE)
    check_lengths([job_id])
    limit = _count(options.get("LIMIT"), DEFAULT_LIST_LIMIT, RUNS_USAGE)
    return messages.ListRuns(job_id=job_id, limit=limit)


def _output(arguments: list[str]) -> messages.GetOutput:
    match arguments:
        case [job_id]:
            run = 0
        case [job_id, run_text]:
            run = limits.RUN.parse(run_text)
        case _:
            raise InvalidRequest("OUTPUT takes 1 or 2 arguments: OUTPUT <job> [<run>]")
    check_lengths([job_id])
    return messages.GetOutput(job_id=job_id, run=run)


def _options(arguments: list[str], keywords: tuple[str, ...], usage: str) -> dict[str, str]:
    """``KEYWORD value`` pairs, each keyword at most once."""
    if len(arguments) % 2:
        raise InvalidRequest(f"wrong number of arguments: {usage}")
    options: dict[str, str] = {}
    for keyword, value in zip(arguments[::2], arguments[1::2], strict=True):
        if keyword not in keywords or keyword in options:
            raise InvalidRequest(f"unexpected {keyword!r}: {usage}")
        options[keyword] = value
    return options


def _count(text: str | None, default: int, usage: str) -> int:
    if text is None:
        return default
    try:
        return limits.LIMIT.parse(text)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{exc.reason}: {usage}") from None


Reader = Callable[[list[str]], messages.Request | Local]
_OTHERS: dict[str, Reader] = {
    "LIST": _list_jobs,
    "RUNS": _list_runs,
    "OUTPUT": _output,
    "PING": _no_argument("PING", messages.Ping),
    "STATS": _no_argument("STATS", messages.GetStats),
    "VERSION": _no_argument("VERSION", lambda: Local(f" OK {__version__}\n".encode())),
}
"""The other instructions the frontend reads (SET, RULE and the job actions aside)."""
