"""Jobs as storage keeps them: the record and its one index entry, always changed together.

A Planned job has an entry in the due index at its due time; a Triggered job has one in the
lease index at its lease expiry; other statuses have none.
"""

from __future__ import annotations

from kairoi.domain import Job, JobStatus
from kairoi.storage import codec, keys
from kairoi.storage.writes import PendingWrites


class JobTable:
    def __init__(self, writes: PendingWrites) -> None:
        self._writes = writes

    def get(self, job_id: str) -> Job | None:
        data = self._writes.get(keys.job(job_id))
        return None if data is None else codec.decode_job(job_id, data)

    def save(self, job: Job, previous: Job | None) -> None:
        """Write ``job`` over ``previous`` (as read before), moving its index entry."""
        if previous is not None and (old_entry := _index_entry(previous)) is not None:
            self._writes.delete(old_entry)
        self._writes.put(keys.job(job.id), codec.encode_job(job))
        if (entry := _index_entry(job)) is not None:
            self._writes.put(entry, b"")

    def earliest(self, index: bytes, limit: int) -> list[tuple[int, str]]:
        """The first ``limit`` entries of the due index (keys.DUE: Planned jobs by due time)
        or the lease index (keys.LEASE: Triggered jobs by lease expiry): (instant, job id)."""
        found = self._writes.scan(index, keys.prefix_end(index), limit)
        return [keys.parse_timed(key) for key, _ in found]

    def due_by(self, index: bytes, until_us: int, limit: int) -> tuple[list[str], int | None]:
        """Up to ``limit`` job ids of ``index`` at or before ``until_us``, in time order, and
        the instant of the first entry left (None: the index holds no other). Reads only what
        it takes, and one entry more."""
        taken: list[str] = []
        for key, _ in self._writes.walk(index, keys.prefix_end(index)):
            instant, job_id = keys.parse_timed(key)
            if len(taken) == limit or instant > until_us:
                return taken, instant
            taken.append(job_id)
        return taken, None


def _index_entry(job: Job) -> bytes | None:
    if job.status is JobStatus.PLANNED:
        return keys.due(job.due_us, job.id)
    if job.status is JobStatus.TRIGGERED:
        return keys.lease(job.lease_until_us, job.id)
    return None
