"""Job and rule records as stored: msgpack maps with short keys.

Unknown keys are ignored and missing keys take their defaults, so a newer Kairoi can add
fields and still read what an older one wrote.
"""

from __future__ import annotations

from typing import Any

import msgpack

from kairoi.domain import AmqpRunner, Job, JobStatus, Rule, ShellRunner
from kairoi.errors import StoreError

_PACKER = msgpack.Packer()  # reused: packb would build one per call


def encode_job(job: Job) -> bytes:
    data: bytes = _PACKER.pack({"s": int(job.status), "d": job.due_us, "n": job.run})
    return data


def decode_job(job_id: str, data: bytes) -> Job:
    record = _unpack(data, f"job {job_id!r}")
    return Job(id=job_id, due_us=record["d"], status=JobStatus(record["s"]), run=record.get("n", 0))


def encode_rule(rule: Rule) -> bytes:
    runner = rule.runner
    match runner:
        case ShellRunner(script=script):
            arguments = ["shell", script]
        case AmqpRunner(dsn=dsn, exchange=exchange, routing_key=routing_key):
            arguments = ["amqp", dsn, exchange, routing_key]
    data: bytes = _PACKER.pack({"p": rule.pattern, "r": arguments})
    return data


def decode_rule(rule_id: str, data: bytes) -> Rule:
    record = _unpack(data, f"rule {rule_id!r}")
    match record["r"]:
        case ["shell", script]:
            runner: ShellRunner | AmqpRunner = ShellRunner(script=script)
        case ["amqp", dsn, exchange, routing_key]:
            runner = AmqpRunner(dsn=dsn, exchange=exchange, routing_key=routing_key)
        case other:
            raise StoreError(f"rule {rule_id!r}: unknown runner {other!r}")
    return Rule(id=rule_id, pattern=record["p"], runner=runner)


def _unpack(data: bytes, what: str) -> dict[str, Any]:
    try:
        record = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError) as exc:
        raise StoreError(f"{what}: unreadable record: {exc!r}") from exc
    if not isinstance(record, dict):
        raise StoreError(f"{what}: record is not a map")
    return record
