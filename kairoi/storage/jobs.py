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

    def due_before(self, end_us: int, limit: int) -> list[str]:
        """Ids of Planned jobs due before ``end_us``, earliest first."""
        return self._ids(keys.DUE, end_us, limit)

    def leases_before(self, end_us: int, limit: int) -> list[str]:
        """Ids of Triggered jobs whose lease ends before ``end_us``, earliest first."""
        return self._ids(keys.LEASE, end_us, limit)

    def first_instant(self, index: bytes) -> int | None:
        """The earliest due time (keys.DUE) or lease expiry (keys.LEASE), if any."""
        found = self._writes.scan(index, keys.prefix_end(index), limit=1)
        return keys.parse_timed(found[0][0])[0] if found else None

    def _ids(self, index: bytes, end_us: int, limit: int) -> list[str]:
        found = self._writes.scan(index, keys.time_bound(index, end_us), limit)
        return [keys.parse_timed(key)[1] for key, _ in found]


def _index_entry(job: Job) -> bytes | None:
    if job.status is JobStatus.PLANNED:
        return keys.due(job.due_us, job.id)
    if job.status is JobStatus.TRIGGERED:
        return keys.lease(job.lease_until_us, job.id)
    return None
