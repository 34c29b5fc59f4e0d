"""Runs under way, as storage keeps them: each run's record and its lease-index entry,
always changed together."""

from __future__ import annotations

from kairoi.domain import ActiveRun
from kairoi.storage import codec, keys
from kairoi.storage.indexes import TimedIndex
from kairoi.storage.writes import PendingWrites


def _parse_lease(key: bytes) -> tuple[int, tuple[str, int]]:
    instant, job_id, run = keys.parse_lease(key)
    return instant, (job_id, run)


class ActiveRuns:
    def __init__(self, writes: PendingWrites) -> None:
        self._writes = writes
        self.leases: TimedIndex[tuple[str, int]] = TimedIndex(writes, keys.LEASE, _parse_lease)
        """The lease index: (job id, run) by the end of its lease."""

    def get(self, job_id: str, run: int) -> ActiveRun | None:
        data = self._writes.get(keys.run_of(keys.ACTIVE, job_id, run))
        return None if data is None else codec.decode_active(job_id, run, data)

    def save(self, run: ActiveRun, previous: ActiveRun | None) -> None:
        """Write ``run`` over ``previous`` (as read before), moving its lease entry."""
        if previous is not None:
            self._writes.delete(keys.lease(previous.lease_until_us, previous.job_id, previous.run))
        key = keys.run_of(keys.ACTIVE, run.job_id, run.run)
        self._writes.put(key, codec.encode_active(run))
        self._writes.put(keys.lease(run.lease_until_us, run.job_id, run.run), b"")
        self.leases.added(run.lease_until_us)

    def delete(self, run: ActiveRun) -> None:
        self._writes.delete(keys.run_of(keys.ACTIVE, run.job_id, run.run))
        self._writes.delete(keys.lease(run.lease_until_us, run.job_id, run.run))
