"""Job and rule records as stored: msgpack maps with short keys.

Unknown keys are ignored and missing keys take their defaults, so a newer Kairoi can add
fields and still read what an older one wrote.
"""

from __future__ import annotations

from typing import Any

import msgpack

from kairoi.domain import Job, JobStatus, Outcome, Rule, Run, runner_arguments, runner_from
from kairoi.errors import StoreError

_PACKER = msgpack.Packer()  # reused: packb would build one per call
_STATUSES = {int(status): status for status in JobStatus}
_OUTCOMES = {outcome.value: outcome for outcome in Outcome}
_PLANNED_DUE = b"\x83\xa1s" + _PACKER.pack(int(JobStatus.PLANNED)) + b"\xa1d"
"""A map of three entries, its first "s" (status): Planned, then the key "d" (due time)."""
_RUN = b"\xa1n"
_NEVER_RUN = _RUN + _PACKER.pack(0)


def encode_job(job: Job) -> bytes:
    """Only what differs from a field's default is written (a new job: three numbers)."""
    record: dict[str, Any] = {"s": int(job.status), "d": job.due_us, "n": job.run}
    if job.status is JobStatus.TRIGGERED:
        record["l"], record["o"] = job.lease_until_us, job.owner
    if job.manual:
        record["m"] = True
    if job.resume_us is not None:
        record["r"] = job.resume_us
    if job.restore is not None:
        record["e"] = int(job.restore)
    if job.disable_after_run:
        record["x"] = True
    if job.last_outcome is not None:
        record["u"] = job.last_outcome.value
    if job.last_finished_us is not None:
        record["f"] = job.last_finished_us
    data: bytes = _PACKER.pack(record)
    return data


def encode_planned(due_us: int, run: int) -> bytes:
    """``encode_job`` of a Planned job, without building the Job (a batch of SETs makes
    thousands): the map's bytes, with the two numbers packed into their places."""
    data: bytes = _PLANNED_DUE + _PACKER.pack(due_us) + _RUN + _PACKER.pack(run)
    return data


def encode_new(due_us: int) -> bytes:
    """``encode_planned`` of a job that has never run."""
    data: bytes = _PLANNED_DUE + _PACKER.pack(due_us) + _NEVER_RUN
    return data


def decode_job(job_id: str, data: bytes) -> Job:
    record = _unpack(data, "job", job_id)
    status = _STATUSES.get(record.get("s"))  # type: ignore[arg-type]
    if status is None:
        raise StoreError(f"job {job_id!r}: unknown status {record.get('s')!r}")
    if len(record) == 3:  # status, due time, run: every job until it first runs
        return Job(id=job_id, due_us=record["d"], status=status, run=record.get("n", 0))
    restore = record.get("e")
    outcome = record.get("u")
    return Job(
        id=job_id,
        due_us=record["d"],
        status=status,
        run=record.get("n", 0),
        lease_until_us=record.get("l", 0),
        owner=record.get("o", ""),
        manual=record.get("m", False),
        resume_us=record.get("r"),
        restore=None if restore is None else _STATUSES.get(restore),
        disable_after_run=record.get("x", False),
        last_outcome=_OUTCOMES.get(outcome) if outcome is not None else None,
        last_finished_us=record.get("f"),
    )


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
        raise StoreError(f"run {job_id!r}:{number}: unknown outcome {record.get('u')!r}")
    return Run(
        run=number,
        due_us=record["d"],
        started_us=record.get("s"),
        finished_us=record.get("f"),
        outcome=outcome,
        exit_code=record.get("x"),
        manual=record.get("m", False),
        reason=record.get("w", ""),
    )


def encode_rule(rule: Rule) -> bytes:
    name, arguments = runner_arguments(rule.runner)
    data: bytes = _PACKER.pack({"p": rule.pattern, "r": [name, *arguments]})
    return data


def decode_rule(rule_id: str, data: bytes) -> Rule:
    record = _unpack(data, "rule", rule_id)
    name, *arguments = record["r"]
    runner = runner_from(name, arguments)
    if runner is None:
        raise StoreError(f"rule {rule_id!r}: unknown runner {record['r']!r}")
    return Rule(id=rule_id, pattern=record["p"], runner=runner)


def _unpack(data: bytes, kind: str, name: str) -> dict[str, Any]:
    try:
        record = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError) as exc:
        raise StoreError(f"{kind} {name!r}: unreadable record: {exc!r}") from exc
    if not isinstance(record, dict):
        raise StoreError(f"{kind} {name!r}: record is not a map")
    return record
