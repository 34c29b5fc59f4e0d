"""The whole RocksDB key layout, in one place.

    j<job id>                    → job record (codec.encode_job)
    d<due:8><job id>             → b""  due index: every Planned job, by due time
    a<id size:2><job id><run:8>  → active run record (codec.encode_active): a run under way
    t<lease:8><id size:2><job id><run:8> → b""  lease index: every active run, by lease end
    c<id size:2><parent id><child id>    → b""  children index: the jobs that run after it
    f<size:2><job file path><job id>     → b""  the jobs each job file defined
    h<id size:2><job id><run:8>  → run record (codec.encode_run): a job's history, by run
    o<id size:2><job id><run:8>  → the tail of that run's output, when it had any
    r<rule id>                   → rule record (codec.encode_rule)
    q<job id>                    → why the job is quarantined (UTF-8): a record of it could
                                   not be read or handled (quarantine.py)
    m<name>                      → metadata: schema version, counts (mstats)

``<due:8>`` and ``<lease:8>`` are instants in microseconds plus 2**63, big-endian, so byte
order is time order for every instant before and after the epoch. Ids are UTF-8 bytes; in
history keys the id's size comes first (2 bytes, big-endian), so that one job's runs are one
range of keys that no other job's share, whatever the ids, and ``<run:8>`` (big-endian) puts
them in run order.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

JOB = b"j"
DUE = b"d"
LEASE = b"t"
RULE = b"r"
RUN = b"h"
OUTPUT = b"o"
META = b"m"
SCHEMA_VERSION = META + b"schema"
SCHEMA = b"2"
"""1: leases were in job records, with lease-index entries ``t<lease:8><job id>``."""
ACTIVE = b"a"
CHILD = b"c"
FILE = b"f"
STATS = META + b"stats"
QUARANTINE = b"q"

_TIME = struct.Struct(">Q")
_OFFSET = 1 << 63
_SIZE = struct.Struct(">H")
_RUN = struct.Struct(">Q")
MAX_RUN = (1 << 64) - 1
"""The largest run number a key can hold."""


def job(job_id: str) -> bytes:
    return JOB + job_id.encode()


def jobs(job_ids: Iterable[str]) -> list[bytes]:
    """``job(id)`` of each id, in one pass (a batch of SETs reads thousands)."""
    return [JOB + job_id.encode() for job_id in job_ids]


def quarantined(job_id: str) -> bytes:
    return QUARANTINE + job_id.encode()


def rule(rule_id: str) -> bytes:
    return RULE + rule_id.encode()


def runs_of(kind: bytes, job_id: str) -> bytes:
    """The prefix of every ``kind`` (RUN, OUTPUT, ACTIVE, CHILD) key of ``job_id``."""
    encoded = job_id.encode()
    return kind + _SIZE.pack(len(encoded)) + encoded


def run_of(kind: bytes, job_id: str, run: int) -> bytes:
    """The ``kind`` (RUN, OUTPUT or ACTIVE) key of run number ``run`` of ``job_id``."""
    return runs_of(kind, job_id) + _RUN.pack(run)


def run_number(key: bytes) -> int:
    """The run number at the end of a RUN or OUTPUT key."""
    (run,) = _RUN.unpack_from(key, len(key) - _RUN.size)
    return int(run)


def timed(index: bytes, instant_us: int, job_id: str) -> bytes:
    """The due-index entry of ``job_id`` at ``instant_us`` (``index`` is DUE)."""
    return timed_bound(index, instant_us) + job_id.encode()


def lease(instant_us: int, job_id: str, run: int) -> bytes:
    """The lease-index entry of run ``run`` of ``job_id``, whose lease ends at ``instant_us``."""
    return timed_bound(LEASE, instant_us) + run_of(b"", job_id, run)


def parse_lease(key: bytes) -> tuple[int, str, int]:
    """(lease end, job id, run) of a lease-index key."""
    (stamp,) = _TIME.unpack_from(key, 1)
    (size,) = _SIZE.unpack_from(key, 1 + _TIME.size)
    start = 1 + _TIME.size + _SIZE.size
    return stamp - _OFFSET, key[start : start + size].decode(), run_number(key)


def from_file(source: str, job_id: str) -> bytes:
    """The files-index entry saying the job file ``source`` defined ``job_id``."""
    return runs_of(FILE, source) + job_id.encode()


def child(parent_id: str, child_id: str) -> bytes:
    """The children-index entry saying ``child_id`` runs after ``parent_id``."""
    return runs_of(CHILD, parent_id) + child_id.encode()


def due_of_job_key(job_key: bytes, due_us: int) -> bytes:
    """``timed(DUE, due_us, id)`` from the job's record key ``job(id)``, not its id: the id
    is encoded once for both keys."""
    return DUE + _TIME.pack(due_us + _OFFSET) + job_key[len(JOB) :]


def fits(instant_us: int) -> bool:
    """Whether an instant can be in a key (a record may hold one that cannot: quarantine)."""
    return -_OFFSET <= instant_us < _OFFSET


def timed_bound(index: bytes, instant_us: int) -> bytes:
    """The first key of ``index`` (DUE or LEASE) at ``instant_us``: every key before it in the
    index is earlier."""
    return index + _TIME.pack(instant_us + _OFFSET)


def parse_timed(key: bytes) -> tuple[int, str]:
    """(instant_us, job_id) of a due-index key."""
    (stamp,) = _TIME.unpack_from(key, 1)
    return stamp - _OFFSET, key[1 + _TIME.size :].decode()


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with ``prefix``."""
    return prefix[:-1] + bytes([prefix[-1] + 1])
