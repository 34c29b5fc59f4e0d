"""How many jobs are in each status, and how many runs each kind of runner was given.

Counting 10 million jobs on demand would take seconds, so the counts are kept: every change
of a job's status moves them, and they are written in the same batch as the change (one
key, ``mstats``), so they always agree with the jobs on disk. A database written before
counts were kept, or whose counts cannot be read, is counted once, when storage opens it
(a job record that cannot be read is not counted: quarantine.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgpack

from kairoi import log
from kairoi.domain import JobStatus
from kairoi.errors import CorruptRecord
from kairoi.messages import RUNNER_KINDS
from kairoi.storage import codec, keys
from kairoi.storage.kv import KeyValueStore


class Stats:
    def __init__(self, kv: KeyValueStore) -> None:
        self._committed = _load(kv)
        self._pending = Counter(self._committed)

    def moved(self, before: JobStatus | None, after: JobStatus | None) -> None:
        """A job went from ``before`` to ``after`` (None: it did not exist, or no longer does)."""
        if before is not after:
            if before is not None:
                self._pending[_STATUS_KEYS[before]] -= 1
            if after is not None:
                self._pending[_STATUS_KEYS[after]] += 1

    def created(self, count: int) -> None:
        """``count`` new Planned jobs."""
        self._pending[_STATUS_KEYS[JobStatus.PLANNED]] += count

    def ran(self, runner: str) -> None:
        """A run was given to ``runner`` (shell, amqp)."""
        self._pending[f"runs.{runner}"] += 1

    def snapshot(self) -> dict[str, int]:
        """Every count, as the pending batch leaves them."""
        counts = {key: 0 for key in (*_STATUS_KEYS.values(), *_RUN_KEYS)}
        counts.update((key, value) for key, value in self._pending.items() if value)
        return counts

    def saved(self) -> dict[str, int]:
        """The pending counts, to ``restore`` if a request fails half-way."""
        return dict(self._pending)

    def restore(self, saved: dict[str, int]) -> None:
        self._pending = Counter(saved)

    def take_changes(self) -> bytes | None:
        """The record to write with the batch, if any count moved in it."""
        if self._pending == self._committed:
            return None
        data: bytes = _PACKER.pack(dict(self._pending))
        return data

    def committed(self, written: bool) -> None:
        """The batch was written (its counts hold) or not (they are what they were)."""
        if written:
            self._committed = Counter(self._pending)
        else:
            self._pending = Counter(self._committed)


_STATUS_KEYS = {status: status.name.lower() for status in JobStatus}
_RUN_KEYS = [f"runs.{kind}" for kind in RUNNER_KINDS]
_PACKER = msgpack.Packer()
_log = log.get("kairoi.storage")


def _load(kv: KeyValueStore) -> Counter[str]:
    data = kv.get(keys.STATS)
    if data is None:
        return _count(kv)
    try:
        record: Any = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises many kinds
        record = exc
    if isinstance(record, dict) and all(
        isinstance(k, str) and type(v) is int for k, v in record.items()
    ):
        return Counter(record)
    _log.error("storage.counts_unreadable", reason=f"{record!r:.80}", action="counted again")
    return _count(kv)


def _count(kv: KeyValueStore) -> Counter[str]:
    """Count the jobs of a database that holds no counts yet (one pass over every job)."""
    counts: Counter[str] = Counter()
    for key, value in kv.scan(keys.JOB, keys.prefix_end(keys.JOB)):
        try:
            job = codec.decode_job(key[len(keys.JOB) :].decode("utf-8", "replace"), value)
        except CorruptRecord:
            continue  # GET shows it quarantined; UNSET deletes it
        counts[_STATUS_KEYS[job.status]] += 1
    if counts:
        kv.write({keys.STATS: _PACKER.pack(dict(counts))}, sync=True)
    return counts
