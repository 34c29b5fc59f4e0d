"""What storage shows of what it keeps: jobs, runs and rules as the replies carry them, and
listings paged by bytes as well as by count."""

from __future__ import annotations

from typing import Generic, TypeVar

from kairoi import messages
from kairoi.amqp.dsn import mask_dsn
from kairoi.domain import AmqpRunner, Job, JobSpec, Rule, Run, runner_arguments
from kairoi.schedule import format_duration
from kairoi.storage import lifecycle, planning
from kairoi.storage.quarantine import Quarantined

QUARANTINED = "quarantined"

T = TypeVar("T")


def job_state(job: Job | Quarantined) -> messages.JobState:
    if isinstance(job, Quarantined):  # its records cannot be read: only why
        return messages.JobState(
            job_id=job.id, status=QUARANTINED, next_due_us=None, run=0, last_outcome="",
            last_finished_us=None, when="", options=("REASON", job.reason),
        )  # fmt: skip
    return messages.JobState(
        job_id=job.id,
        status="triggered" if job.running else job.status.name.lower(),
        next_due_us=lifecycle.next_due_us(job),
        run=job.run,
        last_outcome="" if job.last_outcome is None else job.last_outcome.value,
        last_finished_us=job.last_finished_us,
        when=job.spec.when,
        options=tuple(options(job.spec)),
    )


def options(spec: JobSpec) -> list[str]:
    """The spec's options as SET's words, those that are not the defaults or that say how a
    recurring job behaves."""
    words = []
    if spec.zone:
        words += ["TZ", spec.zone]
    if planning.is_recurring(spec):
        words += ["MISSED", spec.missed.value, "OVERLAP", spec.overlap.value]
    if spec.retries:
        words += ["RETRIES", str(spec.retries), "BACKOFF", format_duration(spec.backoff_us)]
        if spec.max_backoff_us:
            words += ["MAXBACKOFF", format_duration(spec.max_backoff_us)]
    if spec.parents:
        words += ["AFTER", *spec.parents, "ALL" if spec.all_parents else "ANY"]
    if spec.rule_id:
        words += ["RULE", spec.rule_id]
    if spec.runner:
        words += ["RUNNER", spec.runner, *_masked(spec.runner, spec.arguments)]
    if spec.source:
        words += ["FILE", spec.source]
    return words


def _masked(runner: str, arguments: tuple[str, ...]) -> tuple[str, ...]:
    if runner == "amqp" and arguments:
        return (mask_dsn(arguments[0]), *arguments[1:])
    return arguments


def run_state(run: Run) -> messages.RunState:
    return messages.RunState(
        run=run.run,
        due_us=run.due_us,
        started_us=run.started_us,
        finished_us=run.finished_us,
        outcome=run.outcome.value,
        exit_code=run.exit_code,
        manual=run.manual,
        reason=run.reason,
    )


def rule_state(rule: Rule) -> messages.RuleState:
    """The rule as a client may see it: never an AMQP password."""
    runner, arguments = runner_arguments(rule.runner)
    if isinstance(rule.runner, AmqpRunner):
        arguments = (mask_dsn(rule.runner.dsn), *arguments[1:])
    return messages.RuleState(
        rule_id=rule.id, pattern=rule.pattern, runner=runner, arguments=arguments
    )


class Page(Generic[T]):
    """The items of one listing reply, up to a byte budget: it takes items while what they
    hold stays within ``budget`` (always at least one, so a listing always goes on), and says
    ``more`` once it refused one."""

    def __init__(self, budget: int, limit: int) -> None:
        self.items: list[T] = []
        self.size = 0
        self.more = False
        self._budget = budget
        self._limit = limit

    def take(self, item: T, size: int) -> bool:
        """Add ``item`` that holds about ``size`` bytes; False (and ``more``) if it does not
        fit, or the page is full."""
        if len(self.items) >= self._limit:
            return False
        if self.items and self.size + size > self._budget:
            self.more = True
            return False
        self.items.append(item)
        self.size += size
        return True


_ITEM_BYTES = 64
"""What an item's reply line holds besides its strings: the request id, words, instants."""


def job_bytes(job: messages.JobState) -> int:
    """About the bytes ``job``'s line of a LIST reply holds."""
    return _ITEM_BYTES + _text_bytes(job.job_id, job.when, *job.options)


def run_bytes(run: messages.RunState) -> int:
    return _ITEM_BYTES + _text_bytes(run.reason)


def rule_bytes(rule: messages.RuleState) -> int:
    return _ITEM_BYTES + _text_bytes(rule.rule_id, rule.pattern, rule.runner, *rule.arguments)


def _text_bytes(*texts: str) -> int:
    return sum(len(text.encode()) for text in texts)
