"""Job and rule records as stored: msgpack maps with short keys.

Unknown keys are ignored and missing keys take their defaults, so a newer Kairoi can add
fields and still read what an older one wrote.
"""

from __future__ import annotations

from typing import Any

import msgpack

from kairoi.domain import Job, JobStatus, Rule, runner_arguments, runner_from
from kairoi.errors import StoreError

_PACKER = msgpack.Packer()  # reused: packb would build one per call
_STATUSES = {int(status): status for status in JobStatus}
_PLANNED_DUE = b"\x83\xa1s" + _PACKER.pack(int(JobStatus.PLANNED)) + b"\xa1d"
"""A map of three entries, its first "s" (status): Planned, then the key "d" (due time)."""
_RUN = b"\xa1n"
_NEVER_RUN = _RUN + _PACKER.pack(0)


def encode_job(job: Job) -> bytes:
    record: dict[str, Any] = {"s": int(job.status), "d": job.due_us, "n": job.run}
    if job.status is JobStatus.TRIGGERED:
        record["l"], record["o"] = job.lease_until_us, job.owner
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
    return Job(
        id=job_id,
        due_us=record["d"],
        status=status,
        run=record.get("n", 0),
        lease_until_us=record.get("l", 0),
        owner=record.get("o", ""),
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
