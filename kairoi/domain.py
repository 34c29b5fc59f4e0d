"""The values Kairoi schedules: jobs, rules and the runners rules name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from kairoi import limits

MAX_STRING_BYTES = limits.MAX_STRING_BYTES  # every bound is in kairoi/limits.py
MAX_LIST = limits.MAX_LIST


class JobStatus(IntEnum):
    """A job's place in its life; the numbers are stored on disk and never change."""

    PLANNED = 0
    TRIGGERED = 1
    EXECUTED = 2
    FAILED = 3
    DISABLED = 4
    WAITING = 5
    """Runs after its parents (AFTER), and they have not all succeeded yet."""


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
    SKIPPED = "skipped"
    """Occurrences that did not run: they came while a run was still running (OVERLAP
    skip) or while Kairoi was down (MISSED skip)."""


class Missed(StrEnum):
    """What a recurring job does about occurrences that passed while Kairoi was down."""

    SKIP = "skip"
    """None of them runs; the job goes on at its next occurrence."""
    ONCE = "once"
    """One catch-up run at once, then the job goes on at its next occurrence."""
    ALL = "all"
    """Each of them runs, one after the other, then the regular occurrences."""


class Overlap(StrEnum):
    """What a recurring job does when an occurrence comes while its last run still runs."""

    SKIP = "skip"
    """The occurrences that come during the run do not run (recorded as skipped)."""
    QUEUE = "queue"
    """They run once it ends, one after the other."""
    ALLOW = "allow"
    """They run at their time, beside it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class JobSpec:
    """How a job is to run, as SET or a job file defined it. The defaults are the reference
    SET's: once, at the time it gave, by the rule whose pattern matches."""

    when: str = ""
    """The schedule as written (schedule.parse_schedule), or "": once, at the job's time."""
    zone: str | None = None
    """A cron schedule's IANA time zone (None: UTC)."""
    missed: Missed = Missed.ONCE
    overlap: Overlap = Overlap.SKIP
    retries: int = 0
    """Runs of an occurrence after the first, when it fails."""
    backoff_us: int = 0
    """Before the first retry; each next waits twice as long, up to ``max_backoff_us``."""
    max_backoff_us: int = 0
    """0: no bound."""
    parents: tuple[str, ...] = ()
    """The jobs it runs after (then it has no schedule of its own)."""
    all_parents: bool = True
    """After each parent's current run succeeded (False: after any one's)."""
    runner: str = ""
    """A runner of its own ("shell", "amqp") with ``arguments``; "" runs it by a rule."""
    arguments: tuple[str, ...] = ()
    rule_id: str = ""
    """The rule that runs it; "" means the one whose pattern matches best."""
    source: str = ""
    """The job file that defined it ("" : a client did, over KCP)."""


DEFAULT_SPEC = JobSpec()


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
    spec: JobSpec = DEFAULT_SPEC
    slot_us: int | None = None
    """Planned by a recurring schedule: the occurrence the planned run stands for (a retry
    or a catch-up runs later than its occurrence)."""
    attempt: int = 0
    """Planned: 0 for an occurrence's first run, n for its n-th retry."""
    late: str = ""
    """Planned after its occurrence on purpose, and how it is claimed: "grid" (a retry, a
    queued occurrence, a child's run) or "backlog" (one of the occurrences missed while
    Kairoi was down, with MISSED all); "" when on time (a late claim checks MISSED)."""
    active: tuple[int, ...] = ()
    """The numbers of its runs under way (claimed, not ended)."""
    manual: bool = False
    """Planned: the pending run was asked for by TRIGGER."""
    resume_us: int | None = None
    """Planned by TRIGGER: the due time to plan again once the manual run ends (None:
    nothing)."""
    resume_slot_us: int | None = None
    """With ``resume_us``: the occurrence it stands for."""
    restore: JobStatus | None = None
    """Disabled: the status ENABLE gives back (Planned at ``due_us``, Executed or Failed)."""
    disable_after_run: bool = False
    """Triggered: DISABLE came while the run went on; the job is Disabled when it ends."""
    last_outcome: Outcome | None = None
    last_finished_us: int | None = None
    satisfied: tuple[str, ...] = ()
    """Of its parents, those whose run succeeded since it last ran."""

    @property
    def running(self) -> bool:
        return bool(self.active)


@dataclass(frozen=True, kw_only=True, slots=True)
class ActiveRun:
    """A run under way: claimed for a runner, not ended. Its lease is renewed by whoever
    holds it; once the lease ends, the run is lost and the job runs again."""

    job_id: str
    run: int
    due_us: int
    slot_us: int | None
    """The occurrence of the schedule it stands for (None: not a scheduled occurrence)."""
    manual: bool
    attempt: int
    after: str
    """How to plan the job's next occurrence once it ends: "grid" (the first occurrence
    after this one's), "now" (the first after its end: a catch-up run) or "backlog" (the
    first after this one's, even if past: the missed occurrences each run)."""
    lease_until_us: int
    owner: str
    """``dispatcher:<id>`` or ``runner:<name>:<id>``."""


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
