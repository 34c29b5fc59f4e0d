"""KCP instructions: the words after the request id, turned into typed requests.

Arity and argument rules are the reference server's (see docs/instructions.md); a refusal
raises a KairoiError whose code and reason become ``ID ERROR <code> "<reason>"``.
"""

from __future__ import annotations

import os

from wcmatch import glob

from kairoi import messages
from kairoi.amqp.dsn import mask_dsn, parse_dsn
from kairoi.domain import MAX_STRING_BYTES
from kairoi.errors import Forbidden, InvalidRequest, KairoiError
from kairoi.schedule import parse_reference_time

RULE_SET_USAGE = "RULE SET <rule> <pattern> shell <script> | amqp <dsn> <exchange> <routing key>"


class ScriptPolicy:
    """Which script paths a shell rule may name: ``runners.shell.allow``.

    Paths and patterns are made absolute against the working directory and normalised, so
    ``scripts/../../etc/x`` is judged as ``/etc/x``: a pattern never lets ``..`` escape.
    """

    def __init__(self, allow: tuple[str, ...], cwd: str | None = None) -> None:
        self._cwd = cwd or os.getcwd()
        self._patterns = [self._absolute(pattern) for pattern in allow]

    def check(self, script: str) -> None:
        if not script:
            raise InvalidRequest("the shell runner needs a script path")
        if "\0" in script or not glob.globmatch(
            self._absolute(script), self._patterns, flags=glob.GLOBSTAR | glob.DOTGLOB
        ):
            raise Forbidden(
                f"script {script!r} is not allowed by runners.shell.allow "
                f"({', '.join(self._patterns)})"
            )

    def _absolute(self, path: str) -> str:
        return os.path.normpath(os.path.join(self._cwd, path))


class InstructionReader:
    def __init__(self, scripts: ScriptPolicy) -> None:
        self._scripts = scripts

    def read(self, arguments: list[str]) -> messages.Request:
        """The request ``arguments`` ask for; raises KairoiError when they are wrong."""
        match arguments:
            case ["SET", *rest]:
                return _set_job(rest)
            case ["RULE", "SET", *rest]:
                return self._set_rule(rest)
            case [word, *_]:
                raise InvalidRequest(f"unknown instruction {word!r}")
            case _:
                raise InvalidRequest("missing instruction")

    def read_sets(
        self, job_ids: tuple[str, ...], whens: tuple[str, ...]
    ) -> tuple[messages.SetJobs | None, dict[int, KairoiError]]:
        """``read`` of ``SET <job> <when>`` for each pair, as one request: the SetJobs of the
        valid ones (None if none is), and the error of each other, by position."""
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
                valid.append(_set_job([job_id, when]))
            except KairoiError as exc:
                refused[position] = exc
        if not valid:
            return None, refused
        return messages.SetJobs(
            job_ids=tuple(set_job.job_id for set_job in valid),
            due_us=tuple(set_job.due_us for set_job in valid),
        ), refused

    def _set_rule(self, arguments: list[str]) -> messages.Request:
        _check_lengths(arguments)
        match arguments:
            case [rule_id, pattern, "shell", script]:
                self._scripts.check(script)
                return messages.SetShellRule(rule_id=rule_id, pattern=pattern, script=script)
            case [rule_id, pattern, "amqp", dsn, exchange, routing_key]:
                try:
                    parse_dsn(dsn)
                except ValueError as exc:
                    raise InvalidRequest(f"invalid AMQP DSN {mask_dsn(dsn)!r}: {exc}") from None
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


def _set_job(arguments: list[str]) -> messages.SetJob:
    if len(arguments) != 2:
        raise InvalidRequest(
            f'SET takes 2 arguments, got {len(arguments)}: SET <job> "YYYY-MM-DD HH:MM:SS"'
        )
    job_id, when = arguments
    _check_lengths([job_id])
    return messages.SetJob(job_id=job_id, due_us=parse_reference_time(when))


def _check_lengths(arguments: list[str]) -> None:
    for argument in arguments:
        if len(argument) * 4 > MAX_STRING_BYTES and len(argument.encode()) > MAX_STRING_BYTES:
            raise InvalidRequest(f"an argument is longer than {MAX_STRING_BYTES} bytes")
