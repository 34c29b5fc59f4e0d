"""Job, run and rule records as stored: msgpack maps with short keys.

Unknown keys are ignored and missing keys take their defaults, so a newer Kairoi can add
fields and still read what an older one wrote. A record that cannot be decoded, whatever is
wrong with it, raises CorruptRecord naming it (storage quarantines it: quarantine.py).
"""

from __future__ import annotations

from typing import Any

import msgpack

from kairoi.domain import (
    DEFAULT_SPEC,
    ActiveRun,
    Job,
    JobSpec,
    JobStatus,
    Missed,
    Outcome,
    Overlap,
    Rule,
    Run,
    runner_arguments,
    runner_from,
)
from kairoi.errors import CorruptRecord

_PACKER = msgpack.Packer()  # reused: packb would build one per call
_STATUSES = {int(status): status for status in JobStatus}
_OUTCOMES = {outcome.value: outcome for outcome in Outcome}
_PLANNED_DUE = b"\x83\xa1s" + _PACKER.pack(int(JobStatus.PLANNED)) + b"\xa1d"
"""A map of three entries, its first "s" (status): Planned, then the key "d" (due time)."""
_NEVER_RUN = b"\xa1n" + _PACKER.pack(0)
"""The key "n" (run) and 0."""


_JOB_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("g", "slot_us", None),
    ("t", "attempt", 0),
    ("k", "late", ""),
    ("a", "active", ()),
    ("m", "manual", False),
    ("r", "resume_us", None),
    ("rs", "resume_slot_us", None),
    ("x", "disable_after_run", False),
    ("f", "last_finished_us", None),
    ("p", "satisfied", ()),
)
"""The job record's other keys: (key, Job field, the default, which is not written)."""
_SPEC_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("w", "when", ""),
    ("z", "zone", None),
    ("mi", "missed", Missed.ONCE),
    ("ov", "overlap", Overlap.SKIP),
    ("rt", "retries", 0),
    ("rb", "backoff_us", 0),
    ("rx", "max_backoff_us", 0),
    ("pa", "parents", ()),
    ("al", "all_parents", True),
    ("rn", "runner", ""),
    ("ra", "arguments", ()),
    ("ru", "rule_id", ""),
    ("so", "source", ""),
)
"""The spec's keys, in the job record's "w" map (absent for the reference SET's spec)."""
_ENUMS: dict[str, Any] = {"missed": Missed, "overlap": Overlap}
_NONE = type(None)
_ELEMENTS: dict[str, type] = {"active": int, "satisfied": str, "parents": str, "arguments": str}
"""The tuple fields, by the type of their elements."""
_TYPES: dict[str, tuple[type, ...]] = {
    "slot_us": (int, _NONE), "attempt": (int,), "late": (str,), "manual": (bool,),
    "resume_us": (int, _NONE), "resume_slot_us": (int, _NONE), "disable_after_run": (bool,),
    "last_finished_us": (int, _NONE), "when": (str,), "zone": (str, _NONE),
    "retries": (int,), "backoff_us": (int,), "max_backoff_us": (int,),
    "all_parents": (bool,), "runner": (str,), "rule_id": (str,), "source": (str,),
}  # fmt: skip
"""The types each other field may hold: a record that holds anything else is corrupt (what
it holds goes into replies and arithmetic)."""


def encode_job(job: Job) -> bytes:
    """Only what differs from a field's default is written (a new job: three numbers)."""
    record: dict[str, Any] = {"s": int(job.status), "d": job.due_us, "n": job.run}
    for key, name, default in _JOB_FIELDS:
        if (value := getattr(job, name)) != default:
            record[key] = value
    if job.restore is not None:
        record["e"] = int(job.restore)
    if job.last_outcome is not None:
        record["u"] = job.last_outcome.value
    if job.spec != DEFAULT_SPEC:
        record["w"] = _spec_record(job.spec)
    data: bytes = _PACKER.pack(record)
    return data


def _spec_record(spec: JobSpec) -> dict[str, Any]:
    return {
        key: getattr(spec, name)
        for key, name, default in _SPEC_FIELDS
        if getattr(spec, name) != default
    }


def encode_new(due_us: int) -> bytes:
    """``encode_job`` of a new Planned job, without building the Job (a batch of SETs makes
    thousands): the map's bytes, with the due time packed into its place."""
    data: bytes = _PLANNED_DUE + _PACKER.pack(due_us) + _NEVER_RUN
    return data


def decode_job(job_id: str, data: bytes) -> Job:
    record = _unpack(data, "job", job_id)
    try:
        status = _STATUSES.get(record.get("s"))  # type: ignore[arg-type]
        if status is None:
            raise CorruptRecord(f"unknown status {record.get('s')!r:.40}")
        if len(record) == 3:  # status, due time, run: every job until it first runs
            return Job(id=job_id, due_us=_int(record["d"]), status=status,
                       run=_int(record.get("n", 0)))  # fmt: skip
        fields = _fields(record, _JOB_FIELDS)
        if "e" in record:
            fields["restore"] = _STATUSES.get(record["e"])
        if "u" in record:
            fields["last_outcome"] = _OUTCOMES.get(record["u"])
        if "w" in record:
            fields["spec"] = JobSpec(**_fields(record["w"], _SPEC_FIELDS))
        return Job(id=job_id, due_us=_int(record["d"]), status=status,
                   run=_int(record.get("n", 0)), **fields)  # fmt: skip
    except Exception as exc:  # any field of any type: a wrong one is corruption
        raise CorruptRecord(f"job {job_id!r}: unreadable record: {_why(exc)}") from exc


def partial_job(data: bytes) -> tuple[int | None, int | None]:
    """(status, due time) of a job record that ``decode_job`` refused, where still readable:
    enough to find its due-index entry and count it out."""
    try:
        record = msgpack.unpackb(data, raw=False)
    except Exception:  # nothing of it is readable
        return None, None
    if not isinstance(record, dict):
        return None, None
    status, due_us = record.get("s"), record.get("d")
    return (status if status in _STATUSES else None,
            due_us if isinstance(due_us, int) else None)  # fmt: skip


def _int(value: Any) -> int:
    """A stored number; CorruptRecord when the record holds anything else there."""
    if type(value) is not int:
        raise CorruptRecord(f"a number was expected, not {value!r:.40}")
    return value


def _fields(record: dict[str, Any], known: tuple[tuple[str, str, Any], ...]) -> dict[str, Any]:
    """The dataclass fields a record's keys give (lists made tuples, words made enums)."""
    fields = {}
    for key, name, _ in known:
        if key in record:
            value = record[key]
            if name in _ELEMENTS:
                value = tuple(value)
                if value and set(map(type, value)) != {_ELEMENTS[name]}:
                    raise CorruptRecord(f"{name} must hold {_ELEMENTS[name].__name__} values")
            elif name in _ENUMS:
                value = _ENUMS[name](value)
            else:
                value = _typed(value, _TYPES[name], name)
            fields[name] = value
    return fields


def _typed(value: Any, types: tuple[type, ...], name: str) -> Any:
    if type(value) not in types:
        raise CorruptRecord(f"{name} holds {value!r:.40}")
    return value


def encode_active(run: ActiveRun) -> bytes:
    record = {
        "d": run.due_us, "g": run.slot_us, "m": run.manual, "t": run.attempt, "b": run.after,
        "l": run.lease_until_us, "o": run.owner,
    }  # fmt: skip
    data: bytes = _PACKER.pack(record)
    return data


def decode_active(job_id: str, number: int, data: bytes) -> ActiveRun:
    record = _unpack(data, "active run", f"{job_id}:{number}")
    try:
        return ActiveRun(
            job_id=job_id, run=number, due_us=_int(record["d"]),
            slot_us=_typed(record.get("g"), (int, _NONE), "slot"),
            manual=_typed(record.get("m", False), (bool,), "manual"),
            attempt=_int(record.get("t", 0)), after=_typed(record.get("b", ""), (str,), "after"),
            lease_until_us=_int(record["l"]), owner=_typed(record.get("o", ""), (str,), "owner"),
        )  # fmt: skip
    except Exception as exc:
        raise CorruptRecord(f"active run {job_id!r}:{number}: unreadable: {_why(exc)}") from exc


def encode_run(run: Run) -> bytes:
    record: dict[str, Any] = {"d": run.due_us, "u": run.outcome.value}
    for key, value in (("s", run.started_us), ("f", run.finished_us), ("x", run.exit_code)):
        if value is not None:
            record[key] = value
    if run.manual:
        record["m"] = True
    if run.reason:
        record["w"] = run.reason
    data: bytes = _PACKER.pack(record)
    return data


def decode_run(job_id: str, number: int, data: bytes) -> Run:
    record = _unpack(data, "run", f"{job_id}:{number}")
    outcome = _OUTCOMES.get(record.get("u"))  # type: ignore[arg-type]
    if outcome is None:
        raise CorruptRecord(f"run {job_id!r}:{number}: unknown outcome {record.get('u')!r:.40}")
    try:
        return Run(
            run=number, due_us=_int(record["d"]),
            started_us=_typed(record.get("s"), (int, _NONE), "started"),
            finished_us=_typed(record.get("f"), (int, _NONE), "finished"), outcome=outcome,
            exit_code=_typed(record.get("x"), (int, _NONE), "exit code"),
            manual=_typed(record.get("m", False), (bool,), "manual"),
            reason=_typed(record.get("w", ""), (str,), "reason"),
        )  # fmt: skip
    except Exception as exc:
        raise CorruptRecord(f"run {job_id!r}:{number}: unreadable: {_why(exc)}") from exc


def encode_rule(rule: Rule) -> bytes:
    name, arguments = runner_arguments(rule.runner)
    data: bytes = _PACKER.pack({"p": rule.pattern, "r": [name, *arguments]})
    return data


def decode_rule(rule_id: str, data: bytes) -> Rule:
    record = _unpack(data, "rule", rule_id)
    try:
        name, *arguments = record["r"]
        if not isinstance(name, str) or any(type(word) is not str for word in arguments):
            raise CorruptRecord(f"runner {record['r']!r:.80}")
        runner = runner_from(name, arguments)
        pattern = record["p"]
    except Exception as exc:
        raise CorruptRecord(f"rule {rule_id!r}: unreadable: {_why(exc)}") from exc
    if runner is None or not isinstance(pattern, str):
        raise CorruptRecord(f"rule {rule_id!r}: unknown runner {record['r']!r:.80}")
    return Rule(id=rule_id, pattern=pattern, runner=runner)


def _unpack(data: bytes, kind: str, name: str) -> dict[str, Any]:
    try:
        record = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises many kinds (ValueError, StackError, …)
        raise CorruptRecord(f"{kind} {name!r}: unreadable record: {_why(exc)}") from exc
    if not isinstance(record, dict):
        raise CorruptRecord(f"{kind} {name!r}: record is not a map")
    return record


def _why(exc: Exception) -> str:
    """What is wrong with a record, short (a corrupt record can make long messages)."""
    return exc.reason if isinstance(exc, CorruptRecord) else "not a record of the expected shape"
