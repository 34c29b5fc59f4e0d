"""Jobs as storage keeps them: the record and its one index entry, always changed together.

A Planned job has an entry in the due index at its due time; a Triggered job has one in the
lease index at its lease expiry; other statuses have none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kairoi.domain import Job, JobStatus
from kairoi.errors import KairoiError
from kairoi.storage import codec, keys, lifecycle
from kairoi.storage.stats import Stats
from kairoi.storage.writes import PendingWrites

_EMPTY = 1 << 62
"""A floor above every instant: the index part holds nothing."""


class JobTable:
    def __init__(self, writes: PendingWrites, stats: Stats) -> None:
        self._writes = writes
        self._stats = stats
        self._floors: dict[bytes, int | None] = {keys.DUE: None, keys.LEASE: None}
        """Per index, an instant no live entry is earlier than (None: not known yet). Walks
        start there: deleted entries stay in RocksDB as tombstones until compaction, and a
        walk from the start of an index would step over every one of them."""

    def get(self, job_id: str) -> Job | None:
        data = self._writes.get(keys.job(job_id))
        return None if data is None else codec.decode_job(job_id, data)

    def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        """``get`` of each job, with one multi-get for those the batch has not changed."""
        job_keys = keys.jobs(job_ids)
        changes = self._writes.changes
        stored = self._writes.kv.get_many(job_keys)
        return [
            None if data is None else codec.decode_job(job_id, data)
            for job_id, data in zip(
                job_ids,
                (changes.get(k, v) for k, v in zip(job_keys, stored, strict=True)),
                strict=True,
            )
        ]

    def save(self, job: Job, previous: Job | None) -> None:
        """Write ``job`` over ``previous`` (as read before), moving its index entry."""
        if previous is not None and (old_entry := _index_entry(previous)) is not None:
            self._writes.delete(keys.timed(*old_entry, previous.id))
        self._writes.put(keys.job(job.id), codec.encode_job(job))
        if (entry := _index_entry(job)) is not None:
            index, instant = entry
            self._writes.put(keys.timed(index, instant, job.id), b"")
            self._lower_floor(index, instant)
        self._stats.moved(None if previous is None else previous.status, job.status)

    def delete(self, job: Job) -> None:
        """Remove ``job`` (as read before) and its index entry."""
        if (entry := _index_entry(job)) is not None:
            self._writes.delete(keys.timed(*entry, job.id))
        self._writes.delete(keys.job(job.id))
        self._stats.moved(job.status, None)

    def ids(self, prefix: str, after: str | None, limit: int) -> list[tuple[str, Job]]:
        """Up to ``limit`` jobs whose ids start with ``prefix``, in byte order of their ids,
        from the first after ``after`` (None: from the first)."""
        first = keys.job(prefix)
        if after is not None:
            first = max(first, keys.job(after) + b"\0")  # the next id after ``after``
        found = self._writes.scan(first, keys.prefix_end(keys.job(prefix)), limit)
        return [
            (job_id, codec.decode_job(job_id, value))
            for job_id, value in ((key[len(keys.JOB) :].decode(), value) for key, value in found)
        ]

    def _lower_floor(self, index: bytes, instant: int) -> None:
        floor = self._floors[index]
        if floor is not None and instant < floor:
            self._floors[index] = instant

    def plan(self, job_ids: Sequence[str], due_us: Sequence[int]) -> dict[int, KairoiError]:
        """Plan each job at its due time, in order, as ``lifecycle.set_due`` does, creating
        the missing ones, for a whole batch at once (one multi-get; when every job is new, no
        Job is built). A job that cannot be planned (a running one) is left as it is; the
        error of each, by position."""
        job_keys = keys.jobs(job_ids)
        stored = self._writes.kv.get_many(job_keys)
        changes = self._writes.changes
        if any(stored) or not changes.keys().isdisjoint(job_keys) or _repeats(job_keys):
            refused = self._plan_one_by_one(job_ids, due_us, job_keys, stored)
        else:  # the commonest batch, all new jobs: C-level passes only
            refused = {}
            changes.update(zip(job_keys, map(codec.encode_new, due_us), strict=True))
            changes.update(dict.fromkeys(map(keys.due_of_job_key, job_keys, due_us), b""))
            self._stats.created(len(job_keys))
        if len(refused) < len(due_us):
            planned = due_us if not refused else [due_us[p] for p in _others(due_us, refused)]
            self._lower_floor(keys.DUE, min(planned))
        return refused

    def _plan_one_by_one(
        self,
        job_ids: Sequence[str],
        due_us: Sequence[int],
        job_keys: list[bytes],
        stored: list[bytes | None],
    ) -> dict[int, KairoiError]:
        changes = self._writes.changes
        refused: dict[int, KairoiError] = {}
        for position, (key, due, found) in enumerate(zip(job_keys, due_us, stored, strict=True)):
            # Changed earlier in this batch: that is its current state.
            data = changes.get(key, found)
            if data is None:
                self.save(lifecycle.planned(job_ids[position], due), None)
                continue
            job = codec.decode_job(job_ids[position], data)
            try:
                self.save(lifecycle.set_due(job, due), job)
            except KairoiError as exc:
                refused[position] = exc
        return refused

    def earliest(self, index: bytes, limit: int) -> list[tuple[int, str]]:
        """The first ``limit`` entries of the due index (keys.DUE: Planned jobs by due time)
        or the lease index (keys.LEASE: Triggered jobs by lease expiry): (instant, job id)."""
        found = self._writes.scan(index, keys.prefix_end(index), limit)
        return [keys.parse_timed(key) for key, _ in found]

    def forget_floors(self) -> None:
        """After a failed write: walk the indexes from their start again."""
        self._floors = dict.fromkeys(self._floors)

    def due_by(self, index: bytes, until_us: int, limit: int) -> tuple[list[str], int | None]:
        """Up to ``limit`` job ids of ``index`` at or before ``until_us``, in time order, and
        the instant of the first entry left (None: the index holds no other). Reads only what
        it takes, and one entry more. The caller moves every job taken out of this part of
        the index (claiming does), so the next walk starts at the first entry left."""
        floor = self._floors[index]
        start = index if floor is None else keys.timed_bound(index, floor)
        taken: list[str] = []
        next_instant = None
        for key, _ in self._writes.walk(start, keys.prefix_end(index)):
            instant, job_id = keys.parse_timed(key)
            if len(taken) == limit or instant > until_us:
                next_instant = instant
                break
            taken.append(job_id)
        self._floors[index] = _EMPTY if next_instant is None else next_instant
        return taken, next_instant


def _index_entry(job: Job) -> tuple[bytes, int] | None:
    """The index ``job`` has an entry in, and the entry's instant (None: no entry)."""
    if job.status is JobStatus.PLANNED:
        return keys.DUE, job.due_us
    if job.status is JobStatus.TRIGGERED:
        return keys.LEASE, job.lease_until_us
    return None


def _repeats(items: list[bytes]) -> bool:
    return len(set(items)) != len(items)


def _others(items: Sequence[object], positions: Iterable[int]) -> list[int]:
    """The positions in ``items`` that are not in ``positions``."""
    return sorted(set(range(len(items))).difference(positions))
