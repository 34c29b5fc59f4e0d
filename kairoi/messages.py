"""Every message between Kairoi processes, in one place.

On the wire a batch is two frames: the protocol version, then a msgpack array of items, each
``[correlation, tag, field…]``. The correlation number is the sender's, echoed in the reply.
Decoding is strict: an unknown version or tag, a wrong field count or a wrong field type is a
``MessageError``, and the receiver logs and drops the batch.
"""

from __future__ import annotations

import itertools
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Final, Union, get_args, get_origin, get_type_hints

import msgpack

from kairoi.errors import MessageError

PROTOCOL_VERSION: Final = b"KAIROI/1"
MAX_BATCH_ITEMS: Final = 100_000
"""The most items one message may hold: a sender splits a longer batch (kairoi/bus.py), a
receiver drops a message with more unread, before building a value of any (a 7 MB frame of
a million tiny items would take hundreds of MB). The frontend's batches, a read's parsed
lines (a run of SETs is one item), stay far below it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SetJob:
    """frontend → storage: plan ``job_id`` at ``due_us``, creating it when missing."""

    job_id: str
    due_us: int


@dataclass(frozen=True, kw_only=True, slots=True)
class SetJobs:
    """frontend → storage: ``SetJob`` for each ``job_ids[i]`` at ``due_us[i]``, in order, as
    one request (a run of pipelined SET lines). Answered ``Ok`` when every job was planned,
    else ``Refused``."""

    job_ids: tuple[str, ...]
    due_us: tuple[int, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class DefineJob:
    """frontend → storage: create or replace a job as SET with a schedule or options (or a
    job file) defines it: the fields of domain.JobSpec (durations in µs; ``zone`` "" for
    UTC, ``missed`` and ``overlap`` as words; ``runner`` "" to run it by a rule)."""

    job_id: str
    when: str
    zone: str
    missed: str
    overlap: str
    retries: int
    backoff_us: int
    max_backoff_us: int
    parents: tuple[str, ...]
    all_parents: bool
    runner: str
    arguments: tuple[str, ...]
    rule_id: str
    source: str


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadJobs:
    """frontend → storage: the jobs of the job file ``source``, as a whole: each is defined
    (replaced if it exists, its run going on), and the jobs the file defined before that it
    no longer holds are deleted. All or nothing: Refused names the first job that cannot be
    (by its position), Failed what is wrong with the whole."""

    source: str
    jobs: tuple[DefineJob, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class SetShellRule:
    """frontend → storage: create or replace a rule that runs ``sh <script> <job id>``."""

    rule_id: str
    pattern: str
    script: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SetAmqpRule:
    """frontend → storage: create or replace a rule that publishes job ids to a broker."""

    rule_id: str
    pattern: str
    dsn: str
    exchange: str
    routing_key: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Ok:
    """storage → requester: the request was applied and is durable."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Failed:
    """any → requester: the request was refused or could not be applied."""

    code: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Refused:
    """storage → frontend: the reply to a ``SetJobs`` some of whose jobs were not planned:
    their positions in it, each with its error code and reason. All the others were planned,
    durably."""

    positions: tuple[int, ...]
    codes: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ClaimDue:
    """dispatcher → storage: pair and mark Triggered up to ``limit`` runs due by now + lookahead."""

    dispatcher: str
    """The dispatcher's instance id; a new one means the previous dispatcher's runs are lost."""
    lookahead_us: int
    limit: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Execute:
    """storage → dispatcher (in Claimed), dispatcher → runner: run this job at ``due_us``."""

    job_id: str
    run: int
    due_us: int
    rule_id: str
    runner: str
    arguments: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Claimed:
    """storage → dispatcher: the runs claimed, and when the next one falls due (None: never)."""

    runs: tuple[Execute, ...]
    next_due_us: int | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Wakeup:
    """storage → dispatcher: a job is now due at ``due_us``, earlier than last announced."""

    due_us: int


RUNNER_KINDS: Final = ("shell", "amqp")
"""The kinds of run a runner takes, each with slots of its own; the order of the slot counts."""
_KIND_INDEX: Final = {kind: index for index, kind in enumerate(RUNNER_KINDS)}


def kind_index(runner: str) -> int:
    """Where the slots of ``runner``'s runs are counted (an unknown runner counts as shell:
    its run fails at once in the runner, which says why)."""
    return _KIND_INDEX.get(runner, 0)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunnerHello:
    """runner → dispatcher, every heartbeat: who it is and how many more runs of each kind
    (``RUNNER_KINDS``) it can take."""

    name: str
    instance: str
    capacity: tuple[int, ...]
    free: tuple[int, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class SlotsFreed:
    """runner → dispatcher: ``counts`` runs of each kind finished; send that many more."""

    counts: tuple[int, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunnerStarted:
    """runner → storage: runs held by earlier instances of this runner name are lost."""

    name: str
    instance: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RenewLeases:
    """runner → storage: these runs are still running; extend their leases."""

    owner: str
    job_ids: tuple[str, ...]
    runs: tuple[int, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordOutcome:
    """runner → storage: how a run ended (``outcome``: executed, failed, timed_out), with the
    tail of its output. Idempotent: only the job's current run counts."""

    job_id: str
    run: int
    outcome: str
    exit_code: int | None
    reason: str
    started_us: int
    finished_us: int
    output: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class StopRun:
    """storage → dispatcher and runners: run ``run`` of ``job_id`` is stopped; whoever holds
    it kills it (and everything it started), or drops it if it has not started."""

    job_id: str
    run: int


# Reading and changing jobs and rules: any door (KCP, the control bus) → storage.


@dataclass(frozen=True, kw_only=True, slots=True)
class GetJob:
    """door → storage: the job's state (JobState), or Failed not_found."""

    job_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ListJobs:
    """door → storage: up to ``limit`` jobs whose ids start with ``prefix``, in byte order of
    their ids, after the id ``after`` (None: from the first) (Jobs)."""

    prefix: str
    after: str | None
    limit: int


@dataclass(frozen=True, kw_only=True, slots=True)
class UnsetJob:
    """door → storage: delete the job and its history, stopping its runs; refused while
    jobs run after it, unless ``cascade`` (which deletes them too)."""

    job_id: str
    cascade: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class DisableJob:
    """door → storage: the job must not fire until enabled (its run, if any, goes on)."""

    job_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class EnableJob:
    """door → storage: undo DisableJob; a Planned job whose time has passed runs at once."""

    job_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class StopJob:
    """door → storage: kill the job's running run and record it stopped."""

    job_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TriggerJob:
    """door → storage: run the job now, once, by the usual path (a manual run)."""

    job_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ListRuns:
    """door → storage: up to ``limit`` of the job's recent runs, the newest first, those
    numbered below ``before`` (0: from the newest) (Runs)."""

    job_id: str
    limit: int
    before: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class GetOutput:
    """door → storage: the tail of a run's output (Output); ``run`` 0 means the latest."""

    job_id: str
    run: int


@dataclass(frozen=True, kw_only=True, slots=True)
class GetRule:
    """door → storage: the rule (RuleState), or Failed not_found."""

    rule_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ListRules:
    """door → storage: every rule whose id starts with ``prefix``, in byte order, after the
    id ``after`` (None: from the first) (Rules)."""

    prefix: str
    after: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class UnsetRule:
    """door → storage: delete the rule."""

    rule_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Ping:
    """door → storage: are you there? (Pong)"""


@dataclass(frozen=True, kw_only=True, slots=True)
class GetStats:
    """door → storage: the counts of jobs by status and of runs by runner (Stats)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class JobState:
    """storage → door: a job as GET shows it. ``status`` and ``last_outcome`` are words
    (``last_outcome`` "" before the first run); ``next_due_us`` None: nothing planned;
    ``when`` its schedule as written ("" for the reference SET's time, or after its parents),
    ``options`` the words of its options as SET takes them."""

    job_id: str
    status: str
    next_due_us: int | None
    run: int
    last_outcome: str
    last_finished_us: int | None
    when: str
    options: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Jobs:
    """storage → door: the jobs a ListJobs asked for; ``more`` when the page ended early, at
    MAX_PAGE_BYTES, before its limit (go on after the last job)."""

    jobs: tuple[JobState, ...]
    more: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class RunState:
    """storage → door (in Runs): one run of a job's history."""

    run: int
    due_us: int
    started_us: int | None
    finished_us: int | None
    outcome: str
    exit_code: int | None
    manual: bool
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Runs:
    """storage → door: the runs a ListRuns asked for, the newest first; ``more`` when the
    page ended early, at MAX_PAGE_BYTES (go on before the last run)."""

    runs: tuple[RunState, ...]
    more: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Output:
    """storage → door: the tail of run ``run``'s output."""

    run: int
    output: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleState:
    """storage → door: a rule; an AMQP DSN's password is masked."""

    rule_id: str
    pattern: str
    runner: str
    arguments: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Rules:
    """storage → door: the rules a ListRules asked for; ``more`` when the page ended early,
    at MAX_PAGE_BYTES (go on after the last rule)."""

    rules: tuple[RuleState, ...]
    more: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Pong:
    """storage → door: yes, and answering."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Stats:
    """storage → door: counts, each a name (planned, …, runs.shell) and its value."""

    names: tuple[str, ...]
    values: tuple[int, ...]


Request = (
    SetJob
    | SetJobs
    | DefineJob
    | LoadJobs
    | SetShellRule
    | SetAmqpRule
    | ClaimDue
    | RunnerStarted
    | RenewLeases
    | RecordOutcome
    | GetJob
    | ListJobs
    | UnsetJob
    | DisableJob
    | EnableJob
    | StopJob
    | TriggerJob
    | ListRuns
    | GetOutput
    | GetRule
    | ListRules
    | UnsetRule
    | Ping
    | GetStats
)
Reply = (
    Ok | Failed | Claimed | Refused | JobState | Jobs | RunState | Runs | Output | RuleState
    | Rules | Pong | Stats
)  # fmt: skip
Notice = Wakeup | RunnerHello | SlotsFreed | Execute | StopRun
"""One-way messages: no reply is expected."""
Message = Request | Reply | Notice

# Tags are part of the wire format: never reuse or renumber one.
TAGS: Final[dict[int, type[Message]]] = {
    1: SetJob,
    2: SetShellRule,
    3: SetAmqpRule,
    4: SetJobs,
    5: DefineJob,
    6: LoadJobs,
    10: ClaimDue,
    11: RunnerStarted,
    12: RenewLeases,
    14: RecordOutcome,  # 13 was RecordOutcome with ``succeeded`` and no output
    20: GetJob,
    21: ListJobs,
    22: UnsetJob,
    23: DisableJob,
    24: EnableJob,
    25: StopJob,
    26: TriggerJob,
    27: ListRuns,
    28: GetOutput,
    29: GetRule,
    30: ListRules,
    31: UnsetRule,
    32: Ping,
    33: GetStats,
    50: Execute,
    51: Wakeup,
    54: RunnerHello,  # 52 and 53 were RunnerHello and SlotsFreed with one pool of slots
    55: SlotsFreed,
    56: StopRun,
    100: Ok,
    101: Failed,
    102: Claimed,
    103: Refused,
    104: JobState,
    105: Jobs,
    106: RunState,
    107: Runs,
    108: Output,
    109: RuleState,
    110: Rules,
    111: Pong,
    112: Stats,
}
_TAG_OF: Final = {cls: tag for tag, cls in TAGS.items()}
_PACKER = msgpack.Packer(use_bin_type=True)  # reused: packb would build one per call

Item = tuple[int, Message]
Convert = Callable[[Any, str], Any]
"""Turns a decoded value into a field's value (e.g. a list into a tuple), or raises."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    accepted: tuple[type, ...]
    convert: Convert | None  # None: the value is the field, once its type is accepted
    record: bool  # holds messages, encoded as arrays of their fields


def _field(name: str, hint: Any) -> _Field:
    if get_origin(hint) is tuple:
        element = get_args(hint)[0]
        if is_dataclass(element):
            return _Field(name, (list,), _records_of(element), record=True)  # type: ignore[arg-type]
        return _Field(name, (list,), _elements_of(element), record=False)
    if get_origin(hint) in (Union, types.UnionType):
        return _Field(name, get_args(hint), None, record=False)
    return _Field(name, (hint,), None, record=False)


def _elements_of(element: type) -> Convert:
    only_element = {element}

    def convert(values: list[Any], where: str) -> tuple[Any, ...]:
        # One C-level pass: arrays of job ids can hold thousands of values.
        if values and set(map(type, values)) != only_element:
            raise MessageError(f"{where} must hold only {element.__name__} values")
        return tuple(values)

    return convert


def _records_of(cls: type[Message]) -> Convert:
    def convert(values: list[Any], where: str) -> tuple[Any, ...]:
        if any(not isinstance(value, list) for value in values):
            raise MessageError(f"{where} must hold {cls.__name__} arrays")
        return tuple(_build(cls, value) for value in values)

    return convert


_FIELDS: Final = {
    cls: tuple(_field(f.name, get_type_hints(cls)[f.name]) for f in fields(cls))
    for cls in TAGS.values()
}
_NAMES: Final = {cls: tuple(f.name for f in spec) for cls, spec in _FIELDS.items()}
_SIGNATURES: Final = {
    cls: frozenset(itertools.product(*(f.accepted for f in spec))) for cls, spec in _FIELDS.items()
}
"""For each message, every tuple of field types it accepts: one set lookup checks them all."""
_CONVERTED: Final = {
    cls: tuple(
        (index, f.convert, f"{cls.__name__}.{f.name}")
        for index, f in enumerate(spec)
        if f.convert is not None
    )
    for cls, spec in _FIELDS.items()
}
"""The fields whose values need more than a type check (arrays): position, conversion, name."""
_FIELDLESS: Final = {cls: cls() for cls, spec in _FIELDS.items() if not spec}  # type: ignore[call-arg]
"""Messages without fields are all alike: decoding shares one instance of each."""


def encode(items: Sequence[Item]) -> list[bytes]:
    """The frames of a batch of (correlation, message) items."""
    body = [
        [correlation, _TAG_OF[type(message)], *_values(message)] for correlation, message in items
    ]
    return [PROTOCOL_VERSION, _PACKER.pack(body)]


def _values(message: Message) -> list[Any]:
    spec = _FIELDS[type(message)]
    return [
        [_values(record) for record in getattr(message, f.name)]
        if f.record
        else getattr(message, f.name)
        for f in spec
    ]


def decode(frames: Sequence[bytes]) -> list[Item]:
    """The items of a batch; raises MessageError if anything about it is wrong."""
    if len(frames) != 2 or frames[0] != PROTOCOL_VERSION:
        head = bytes(frames[0][:16]) if frames else b""
        raise MessageError(
            f"expected [{PROTOCOL_VERSION!r}, body]; got {len(frames)} frames, {head!r}"
        )
    count = _array_length(frames[1])
    if count is not None and count > MAX_BATCH_ITEMS:
        raise MessageError(f"{count} items, over the {MAX_BATCH_ITEMS} a message may hold")
    try:
        body = msgpack.unpackb(frames[1], raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise MessageError(f"body is not msgpack: {exc!r}") from exc
    if not isinstance(body, list):
        raise MessageError("body must be an array of items")
    return [_decode_item(item) for item in body]


def _array_length(body: bytes) -> int | None:
    """The length a msgpack body's header gives its outer array (None: not an array)."""
    head = body[:1]
    if head and 0x90 <= head[0] <= 0x9F:
        return head[0] & 0x0F
    if head == b"\xdc" and len(body) >= 3:
        return int.from_bytes(body[1:3], "big")
    if head == b"\xdd" and len(body) >= 5:
        return int.from_bytes(body[1:5], "big")
    return None


def _decode_item(item: Any) -> Item:
    if not isinstance(item, list) or len(item) < 2:
        raise MessageError(f"item must be [correlation, tag, field...], got {item!r:.80}")
    correlation, tag, *values = item
    cls = TAGS.get(tag) if type(tag) is int else None
    if type(correlation) is not int or cls is None:
        raise MessageError(f"bad correlation or unknown tag in {item!r:.80}")
    return correlation, _build(cls, values)


def _build(cls: type[Message], values: list[Any]) -> Message:
    spec = _FIELDS[cls]
    if len(values) != len(spec):
        raise MessageError(f"{cls.__name__} takes {len(spec)} fields, got {len(values)}")
    if not values:
        return _FIELDLESS[cls]
    if tuple(map(type, values)) not in _SIGNATURES[cls]:
        values = [_check(cls, f, value) for f, value in zip(spec, values, strict=True)]
    else:
        for index, convert, where in _CONVERTED[cls]:
            values[index] = convert(values[index], where)
    return cls(**dict(zip(_NAMES[cls], values, strict=True)))


def _check(cls: type[Message], field: _Field, value: Any) -> Any:
    where = f"{cls.__name__}.{field.name}"
    if type(value) not in field.accepted:
        raise MessageError(f"{where} must be {field.accepted}, got {value!r:.40}")
    return value if field.convert is None else field.convert(value, where)
