"""The values Kairoi schedules: jobs, rules and the runners rules name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum

MAX_STRING_BYTES = 65_535
"""The reference encodes every id, pattern and runner argument with a u16 length."""
MAX_LIST = 10_000
"""The most jobs or runs one request may list."""


class JobStatus(IntEnum):
    """A job's place in its life; the numbers are stored on disk and never change."""

    PLANNED = 0
    TRIGGERED = 1
    EXECUTED = 2
    FAILED = 3
    DISABLED = 4


class Outcome(StrEnum):
    """How a run ended; the words are stored, shown in replies and never change."""

    EXECUTED = "executed"
    """The script exited 0, or the broker confirmed the message."""
    FAILED = "failed"
    """The script exited non-zero or could not start, or the message was not delivered."""
    TIMED_OUT = "timed_out"
    """The script ran past ``runners.shell.timeout`` and was killed."""
    STOPPED = "stopped"
    """STOP (or UNSET) ended it; its process group was killed."""
    LOST = "lost"
    """Its runner or dispatcher was lost (its lease ended); the job was run again."""
    NO_RULE = "no_rule"
    """No rule matched the job when it fell due: nothing ran."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    id: str
    due_us: int
    """Planned: when it runs. Triggered: the instant its current run was due. Disabled: when
    it runs once enabled (if ``restore`` is Planned). Executed, Failed: when its last run was
    due."""
    status: JobStatus
    run: int = 0
    """The number of the latest run; 0 until the job first fires."""
    lease_until_us: int = 0
    """While Triggered: when the run is presumed lost unless its runner renews the lease."""
    owner: str = ""
    """While Triggered: who holds the run (``dispatcher:<id>`` or ``runner:<name>:<id>``)."""
    manual: bool = False
    """Planned: the pending run was asked for by TRIGGER. Triggered: the current run was."""
    resume_us: int | None = None
    """Planned or Triggered by TRIGGER: the scheduled due time to plan once the manual run
    ends (None: nothing to plan)."""
    restore: JobStatus | None = None
    """Disabled: the status ENABLE gives back (Planned at ``due_us``, Executed or Failed)."""
    disable_after_run: bool = False
    """Triggered: DISABLE came while the run went on; the job is Disabled when it ends."""
    last_outcome: Outcome | None = None
    last_finished_us: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Run:
    """One run of a job, as its history keeps it."""

    run: int
    due_us: int
    """When it was due (for a manual run: when TRIGGER asked for it)."""
    started_us: int | None
    finished_us: int | None
    outcome: Outcome
    exit_code: int | None
    manual: bool
    reason: str
    """Why it failed, in words ("" when it did not)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ShellRunner:
    """Runs ``sh <script> <job id>``."""

    script: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AmqpRunner:
    """Publishes the job id to an exchange of an AMQP broker."""

    dsn: str
    exchange: str
    routing_key: str


Runner = ShellRunner | AmqpRunner


@dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    id: str
    pattern: str
    """A byte-exact, case-sensitive prefix of the job ids this rule runs."""
    runner: Runner


def runner_arguments(runner: Runner) -> tuple[str, tuple[str, ...]]:
    """A runner as its name and its arguments, as KCP and the bus carry it."""
    match runner:
        case ShellRunner(script=script):
            return "shell", (script,)
        case AmqpRunner(dsn=dsn, exchange=exchange, routing_key=routing_key):
            return "amqp", (dsn, exchange, routing_key)


def runner_from(name: str, arguments: tuple[str, ...] | list[str]) -> Runner | None:
    """The inverse of ``runner_arguments``; None when they do not name a runner."""
    match name, list(arguments):
        case "shell", [script]:
            return ShellRunner(script=script)
        case "amqp", [dsn, exchange, routing_key]:
            return AmqpRunner(dsn=dsn, exchange=exchange, routing_key=routing_key)
        case _:
            return None


def rule_precedence(rule: Rule) -> tuple[int, bytes]:
    """Sort key: the better rule sorts first.

    The longest pattern (in UTF-8 bytes) wins. Two patterns of equal length that both match a
    job are the same string, so the only ties are rules with identical patterns: the rule whose
    id is smallest in byte order wins, on every run and every host.
    """
    return (-len(rule.pattern.encode()), rule.id.encode())


def match_rule(rules: Iterable[Rule], job_id: str) -> Rule | None:
    """The rule that runs ``job_id``, or None when no pattern is a prefix of it."""
    matching = [rule for rule in rules if job_id.startswith(rule.pattern)]
    return min(matching, key=rule_precedence, default=None)
