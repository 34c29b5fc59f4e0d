"""Records on disk that storage cannot read or handle, set aside: never a crash loop.

A job is quarantined when its record (``j``) cannot be decoded or handled, when its due-index
entry names no record, or when the record of a run of it under way (``a``) cannot be decoded:
the index entry that led there is taken out, so claiming never meets it again; ``q<job id>``
keeps the reason, and ``storage.quarantined`` is logged once. A quarantined job is never
claimed (nor run again, nor its lease renewed); GET and LIST show it as ``quarantined`` with
the reason (words of storage's own: the exception behind it goes to the log only), every
change to it but UNSET is refused ``conflict``, STATS counts it as quarantined rather than by
its status, and UNSET deletes it with every key of it that can still be found. (A rule that
cannot be decoded is left out of the rules, rules.py; unreadable counts are counted again,
stats.py.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kairoi import log
from kairoi.domain import Job, JobStatus
from kairoi.errors import Conflict, CorruptRecord, NotFound
from kairoi.storage import codec, keys, relatives

if TYPE_CHECKING:
    from kairoi.storage.jobs import JobTable
    from kairoi.storage.stats import Stats
    from kairoi.storage.writes import PendingWrites

_log = log.get("kairoi.storage")
REQUEST_FAILED = "a request about it failed inside storage (see the log)"
CLAIM_FAILED = "claiming it failed inside storage (see the log)"


@dataclass(frozen=True)
class Quarantined:
    """A job as GET and LIST show it while it is quarantined."""

    id: str
    reason: str


class Quarantine:
    def __init__(self, writes: PendingWrites, jobs: JobTable, stats: Stats) -> None:
        self._writes = writes
        self._jobs = jobs
        self._stats = stats

    def set_aside(self, job_id: str, reason: str, entry: bytes | None = None) -> None:
        """Quarantine ``job_id`` for ``reason``; ``entry``: the index entry that led to it,
        taken out so that nothing meets it again."""
        if entry is not None:
            self._writes.delete(entry)
        key = keys.quarantined(job_id)
        if self._writes.get(key) is None:
            _log.error("storage.quarantined", job=job_id, reason=reason)
            self._writes.put(key, reason.encode())

    def set_aside_job(self, job_id: str, reason: str) -> None:
        """Quarantine a job that cannot be handled: its due-index entry and the lease-index
        entries of its runs under way are taken out."""
        status: int | None
        try:
            job = self._jobs.get(job_id)
            status, due_us = (int(job.status), job.due_us) if job else (None, None)
        except CorruptRecord:
            status, due_us = codec.partial_job(self._writes.get(keys.job(job_id)) or b"")
        entry = None
        if status == JobStatus.PLANNED and due_us is not None and keys.fits(due_us):
            entry = keys.timed(keys.DUE, due_us, job_id)
        self.set_aside(job_id, reason, entry)
        self.drop_leases(job_id)

    def set_aside_after(self, job_id: str, reason: str) -> None:
        """``set_aside_job`` after a request about the job raised (it would again), which
        never raises itself: the batch goes on."""
        try:
            self.set_aside_job(job_id, reason)
        except Exception as exc:
            _log.error("storage.quarantine_failed", job=job_id, exc_info=exc)

    def drop_leases(self, job_id: str, number: int | None = None) -> None:
        """Take the lease-index entries of the job's run ``number`` (None: of every run) out
        (the index holds only the runs under way: a short walk)."""
        for key, _ in self._writes.under(keys.LEASE):
            _, named, run = keys.parse_lease(key)
            if named == job_id and number in (None, run):
                self._writes.delete(key)

    def held(self, job_id: str) -> bool:
        """Whether ``job_id`` is quarantined (a ``q`` key: one point read)."""
        return self._writes.get(keys.quarantined(job_id)) is not None

    def held_among(self, job_ids: Sequence[str]) -> list[int]:
        """The positions of the quarantined jobs among ``job_ids``: one short walk when none
        is quarantined at all (the commonest case), else one multi-get."""
        if not self._writes.scan(keys.QUARANTINE, keys.prefix_end(keys.QUARANTINE), 1):
            return []
        held_keys = [keys.quarantined(job_id) for job_id in job_ids]
        changes = self._writes.changes
        stored = self._writes.kv.get_many(held_keys)
        return [
            position
            for position, (key, found) in enumerate(zip(held_keys, stored, strict=True))
            if changes.get(key, found) is not None
        ]

    def refuse_change(self, job_id: str) -> None:
        """Conflict when ``job_id`` is quarantined, or its record cannot be read: nothing but
        UNSET changes it."""
        reason = self.reason(job_id)
        if reason is not None:
            raise refusal(job_id, reason)

    def counted(self, counts: dict[str, int]) -> None:
        """STATS's ``counts`` with the quarantined jobs counted as such (``quarantined``),
        not by the status their records hold (a walk over the few ``q`` keys)."""
        counts["quarantined"] = 0
        for key, _ in self._writes.under(keys.QUARANTINE):
            counts["quarantined"] += 1
            job_id = key[len(keys.QUARANTINE) :].decode("utf-8", "replace")
            try:
                job = self._jobs.get(job_id)
            except CorruptRecord:
                continue  # an unreadable record is not counted by its status (stats.py)
            status = None if job is None else job.status.name.lower()
            if status is not None and counts.get(status, 0) > 0:
                counts[status] -= 1

    def reason(self, job_id: str) -> str | None:
        """Why the job is quarantined (None: it is not, and its record reads well)."""
        data = self._writes.get(keys.quarantined(job_id))
        if data is not None:
            return data.decode("utf-8", "replace")
        try:
            self._jobs.get(job_id)
        except CorruptRecord as exc:
            return exc.reason
        return None

    def job(self, job_id: str) -> Job | Quarantined | None:
        """The job, or what GET shows of it while it is quarantined (None: no such job)."""
        reason = self.reason(job_id)
        if reason is not None:
            return Quarantined(job_id, reason)
        return self._jobs.get(job_id)

    def over(
        self, listed: Iterable[tuple[str, Job | Quarantined]], prefix: str
    ) -> Iterable[tuple[str, Job | Quarantined]]:
        """LIST's jobs, those quarantined shown so (one walk over the few ``q`` keys)."""
        start = keys.quarantined(prefix)
        held = {
            key[len(keys.QUARANTINE) :].decode("utf-8", "replace"): value
            for key, value in self._writes.under(start)
        }
        if not held:
            return listed
        return (
            (job_id, Quarantined(job_id, held[job_id].decode("utf-8", "replace")))
            if job_id in held
            else (job_id, job)
            for job_id, job in listed
        )

    def shown(self, job_id: str) -> Job | Quarantined:
        """What GET shows: the job, or why it is quarantined; NotFound when there is none."""
        job = self.job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def purge(self, job_id: str) -> bool:
        """UNSET of a quarantined job: delete it, its runs, and the index entries that can
        still be found. False when the job is not quarantined (nothing is done)."""
        reason = self.reason(job_id)
        if reason is None:
            return False
        self._writes.delete(keys.quarantined(job_id))
        try:
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs.delete(job)
        except Exception:  # unreadable, or its fields make no keys: delete what can be
            self._drop_unreadable(job_id)
        for kind in (keys.RUN, keys.OUTPUT):
            for key, _ in self._writes.under(keys.runs_of(kind, job_id)):
                self._writes.delete(key)
        self._drop_runs_under_way(job_id)
        _log.info("storage.quarantine_removed", job=job_id, reason=reason)
        return True

    def _drop_unreadable(self, job_id: str) -> None:
        """Delete a job record that cannot be decoded, and what of its index entries its
        readable parts name."""
        key = keys.job(job_id)
        status, due_us = codec.partial_job(self._writes.get(key) or b"")
        if status is not None:
            self._stats.moved(JobStatus(status), None)
            if status == JobStatus.PLANNED and due_us is not None and keys.fits(due_us):
                self._writes.delete(keys.timed(keys.DUE, due_us, job_id))
        self._writes.delete(key)
        for child_key, _ in self._writes.under(keys.runs_of(keys.CHILD, job_id)):
            self._writes.delete(child_key)

    def _drop_runs_under_way(self, job_id: str) -> None:
        for key, value in self._writes.under(keys.runs_of(keys.ACTIVE, job_id)):
            self._writes.delete(key)
            number = keys.run_number(key)
            try:
                run = codec.decode_active(job_id, number, value)
            except CorruptRecord:  # its lease end is unknown: look through the lease index
                self.drop_leases(job_id, number)
            else:
                self._writes.delete(keys.lease(run.lease_until_us, job_id, number))


def refusal(job_id: str, reason: str) -> Conflict:
    """What a change to a quarantined job is answered."""
    return Conflict(f"{reason}: the job {relatives.shown(job_id)} is quarantined; UNSET it")
