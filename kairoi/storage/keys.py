"""The whole RocksDB key layout, in one place.

    j<job id>                    → job record (codec.encode_job)
    d<due:8><job id>             → b""  due index: every Planned job, by due time
    r<rule id>                   → rule record (codec.encode_rule)
    m<name>                      → metadata (schema version)

``<due:8>`` is the due instant in microseconds plus 2**63, big-endian, so byte order is time
order for every instant before and after the epoch. Ids are UTF-8 bytes.
"""

from __future__ import annotations

import struct

JOB = b"j"
DUE = b"d"
RULE = b"r"
META = b"m"
SCHEMA_VERSION = META + b"schema"
SCHEMA = b"1"

_DUE_TIME = struct.Struct(">Q")
_OFFSET = 1 << 63


def job(job_id: str) -> bytes:
    return JOB + job_id.encode()


def rule(rule_id: str) -> bytes:
    return RULE + rule_id.encode()


def due(due_us: int, job_id: str) -> bytes:
    return DUE + _DUE_TIME.pack(due_us + _OFFSET) + job_id.encode()


def parse_due(key: bytes) -> tuple[int, str]:
    """(due_us, job_id) of a due-index key."""
    (stamp,) = _DUE_TIME.unpack_from(key, 1)
    return stamp - _OFFSET, key[1 + _DUE_TIME.size :].decode()


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with ``prefix``."""
    return prefix[:-1] + bytes([prefix[-1] + 1])
