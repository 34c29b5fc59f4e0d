"""What every request must be before storage applies it, whoever sent it.

Storage's socket is a door like KCP: a process that can open it may send any well-typed
message (messages.decode checks only the types). ``check_request`` holds each field to the
ranges and sizes of kairoi/limits.py, the same functions the frontend's parsers call on what a
client wrote, so a crafted request is refused with ``Failed(code="invalid", …)`` before it can
reach a key (a u16 length, a u64 instant) or the calendar. Cheap on the SET path: a batch of
SETs is checked in a few C-level passes over its columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

from kairoi import limits, messages
from kairoi.amqp.dsn import parse_dsn
from kairoi.domain import runner_from
from kairoi.errors import InvalidRequest
from kairoi.schedule import parse_schedule

_JOB_ID_ONLY = (
    messages.GetJob, messages.UnsetJob, messages.DisableJob, messages.EnableJob,
    messages.StopJob, messages.TriggerJob,
)  # fmt: skip
_RULE_ID_ONLY = (messages.GetRule, messages.UnsetRule)


def check_request(request: messages.Message) -> None:
    """Raise InvalidRequest when a field of ``request`` is out of its range or too long."""
    match request:
        case messages.SetJob(job_id=job_id, due_us=due_us):
            limits.length(job_id, "the job id")
            limits.instant(due_us, "the due time")
        case messages.SetJobs(job_ids=job_ids, due_us=due_us):
            limits.lengths(job_ids, "a job id")
            limits.instants(due_us, "a due time")
        case messages.DefineJob():
            check_definition(request)
        case messages.LoadJobs(source=source, jobs=jobs):
            limits.length(source, "the job file")
            for job in jobs:
                check_definition(job)
        case messages.SetShellRule() | messages.SetAmqpRule():
            _check_rule(request)
        case messages.ClaimDue(dispatcher=dispatcher, lookahead_us=lookahead_us, limit=limit):
            limits.length(dispatcher, "the dispatcher")
            limits.duration_us(lookahead_us, "the lookahead")
            limits.CLAIM.check(limit)
        case messages.RunnerStarted(name=name, instance=instance):
            limits.lengths((name, instance), "the runner")
        case messages.RenewLeases(owner=owner, job_ids=job_ids, runs=runs):
            limits.length(owner, "the owner")
            limits.lengths(job_ids, "a job id")
            _run_numbers(runs)
        case messages.RecordOutcome():
            _check_outcome(request)
        case _:
            _check_read(request)


def check_definition(request: messages.DefineJob) -> None:
    """A job's definition: its strings, numbers and schedule (parsed as SET parses it)."""
    limits.lengths((request.job_id, request.when, request.runner, request.rule_id,
                    request.source), "a job's field")  # fmt: skip
    limits.length(request.zone, "TZ", limits.MAX_ZONE_BYTES)
    limits.lengths(request.parents, "a parent's id")
    limits.lengths(request.arguments, "a runner's argument")
    limits.RETRIES.check(request.retries)
    limits.duration_us(request.backoff_us, "BACKOFF")
    limits.duration_us(request.max_backoff_us, "MAXBACKOFF")
    if request.when:
        parse_schedule(request.when, request.zone or None)
    if request.runner and runner_from(request.runner, request.arguments) is None:
        raise InvalidRequest(f"a job's own runner is 'shell <script>' or 'amqp <dsn> <exchange> "
                             f"<routing key>', not {request.runner[:40]!r} with "
                             f"{len(request.arguments)} arguments")  # fmt: skip
    if request.runner == "amqp":
        _dsn(request.arguments[0])


def _check_rule(request: messages.SetShellRule | messages.SetAmqpRule) -> None:
    limits.lengths((request.rule_id, request.pattern), "the rule")
    match request:
        case messages.SetShellRule(script=script):
            limits.length(script, "the script")
        case messages.SetAmqpRule(dsn=dsn, exchange=exchange, routing_key=routing_key):
            limits.lengths((dsn, exchange, routing_key), "an AMQP argument")
            _dsn(dsn)
        case _:
            assert_never(request)


def _check_outcome(request: messages.RecordOutcome) -> None:
    limits.length(request.job_id, "the job id")
    limits.RUN.check(request.run)
    if request.exit_code is not None:
        limits.EXIT_CODE.check(request.exit_code)
    limits.instants((request.started_us, request.finished_us), "a run's start or end")
    limits.length(request.outcome, "the outcome")
    limits.length(request.reason, "the reason", limits.MAX_REASON_BYTES)
    if len(request.output) > limits.MAX_OUTPUT_BYTES:
        raise InvalidRequest(f"the output is longer than {limits.MAX_OUTPUT_BYTES} bytes")


def _check_read(request: messages.Message) -> None:
    """The requests that read, and the one-id actions (others need nothing checked)."""
    match request:
        case messages.ListJobs(prefix=prefix, after=after, limit=limit):
            limits.lengths((prefix, after or ""), "the prefix or cursor")
            limits.LIMIT.check(limit)
        case messages.ListRuns(job_id=job_id, limit=limit, before=before):
            limits.length(job_id, "the job id")
            limits.LIMIT.check(limit)
            if before:  # 0: from the latest
                limits.BEFORE.check(before)
        case messages.GetOutput(job_id=job_id, run=run):
            limits.length(job_id, "the job id")
            if run:  # 0: the latest
                limits.RUN.check(run)
        case messages.ListRules(prefix=prefix, after=after):
            limits.lengths((prefix, after or ""), "the prefix or cursor")
        case _ if isinstance(request, _JOB_ID_ONLY):
            limits.length(request.job_id, "the job id")
        case _ if isinstance(request, _RULE_ID_ONLY):
            limits.length(request.rule_id, "the rule id")
        case _:
            pass


def _run_numbers(runs: Sequence[int]) -> None:
    if runs:
        limits.RUN.check(min(runs))
        limits.RUN.check(max(runs))


def _dsn(dsn: str) -> None:
    try:
        parse_dsn(dsn)
    except ValueError as exc:
        raise InvalidRequest(f"invalid AMQP DSN: {exc}") from None
