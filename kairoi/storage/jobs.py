"""Jobs as storage keeps them: the record and its due-index entry, always changed together,
and the children index (which jobs run after which).

A Planned job has an entry in the due index at its due time; other statuses have none (a
run under way has its lease-index entry: see active.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from kairoi.domain import DEFAULT_SPEC, Job, JobSpec, JobStatus
from kairoi.errors import Conflict, CorruptRecord, KairoiError
from kairoi.storage import codec, keys, lifecycle
from kairoi.storage.indexes import TimedIndex
from kairoi.storage.quarantine import Quarantined
from kairoi.storage.stats import Stats
from kairoi.storage.writes import PendingWrites


class JobTable:
    def __init__(self, writes: PendingWrites, stats: Stats) -> None:
        self._writes = writes
        self._stats = stats
        self.due: TimedIndex[tuple[str, int]] = TimedIndex(writes, keys.DUE, _parse_due)
        """The due index: Planned jobs (id, due time) by due time."""

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
        """Write ``job`` over ``previous`` (as read before), moving its due-index entry."""
        if previous is not None and previous.status is JobStatus.PLANNED:
            self._writes.delete(keys.timed(keys.DUE, previous.due_us, previous.id))
        self._writes.put(keys.job(job.id), codec.encode_job(job))
        if job.status is JobStatus.PLANNED:
            self._writes.put(keys.timed(keys.DUE, job.due_us, job.id), b"")
            self.due.added(job.due_us)
        self._stats.moved(None if previous is None else previous.status, job.status)
        if previous is None or previous.spec is not job.spec:
            self._relink(job.id, previous.spec if previous else DEFAULT_SPEC, job.spec)

    def delete(self, job: Job) -> None:
        """Remove ``job`` (as read before), its due-index entry and the children-index and
        files-index entries that name it."""
        if job.status is JobStatus.PLANNED:
            self._writes.delete(keys.timed(keys.DUE, job.due_us, job.id))
        self._writes.delete(keys.job(job.id))
        self._stats.moved(job.status, None)
        self._relink(job.id, job.spec, DEFAULT_SPEC)
        for child_id in self.children(job.id):
            self._writes.delete(keys.child(job.id, child_id))

    def _relink(self, job_id: str, before: JobSpec, after: JobSpec) -> None:
        """Keep the children index and the files index as the job's spec says."""
        for parent_id in set(before.parents) - set(after.parents):
            self._writes.delete(keys.child(parent_id, job_id))
        for parent_id in set(after.parents) - set(before.parents):
            self._writes.put(keys.child(parent_id, job_id), b"")
        if before.source != after.source:
            if before.source:
                self._writes.delete(keys.from_file(before.source, job_id))
            if after.source:
                self._writes.put(keys.from_file(after.source, job_id), b"")

    def children(self, parent_id: str) -> list[str]:
        """The jobs that run after ``parent_id``, in byte order of their ids."""
        return self._ids_under(keys.runs_of(keys.CHILD, parent_id))

    def walk(self, prefix: str, after: str | None) -> Iterator[tuple[str, Job | Quarantined]]:
        """The jobs whose ids start with ``prefix``, in byte order of their ids, from the
        first after ``after``, read as walked (the batch must not change meanwhile); a job
        whose record cannot be read is walked as Quarantined."""
        first = keys.job(prefix)
        if after is not None:
            first = max(first, keys.job(after) + b"\0")  # the next id after ``after``
        for key, value in self._writes.walk(first, keys.prefix_end(keys.job(prefix))):
            job_id = key[len(keys.JOB) :].decode()
            yield job_id, _readable(job_id, value)

    def from_file(self, source: str) -> list[str]:
        """The jobs the job file ``source`` defined, in byte order of their ids."""
        return self._ids_under(keys.runs_of(keys.FILE, source))

    def unlink_file(self, source: str, job_id: str) -> None:
        """Take ``job_id`` out of the files index of ``source``."""
        self._writes.delete(keys.from_file(source, job_id))

    def _ids_under(self, prefix: bytes) -> list[str]:
        """The job ids that end the index keys starting with ``prefix``."""
        return [key[len(prefix) :].decode() for key, _ in self._writes.under(prefix)]

    def plan(
        self, job_ids: Sequence[str], due_us: Sequence[int]
    ) -> tuple[dict[int, KairoiError], int | None]:
        """Plan each job at its due time, in order, as ``lifecycle.set_due`` does, creating
        the missing ones, for a whole batch at once (one multi-get; when every job is new, no
        Job is built). A job that cannot be planned (a running one) is left as it is. The
        error of each such job, by position, and the earliest due time planned (None: none
        was)."""
        job_keys = keys.jobs(job_ids)
        stored = self._writes.kv.get_many(job_keys)
        changes = self._writes.changes
        if any(stored) or not changes.keys().isdisjoint(job_keys) or _repeats(job_keys):
            refused = self._plan_one_by_one(job_ids, due_us, job_keys, stored)
        else:  # the commonest batch, all new jobs: C-level passes only
            refused = {}
            self._writes.put_all(keys.JOB, job_keys, map(codec.encode_new, due_us))
            due_keys = list(map(keys.due_of_job_key, job_keys, due_us))
            self._writes.put_all(keys.DUE, due_keys, [b""] * len(due_keys))
            self._stats.created(len(job_keys))
        if len(refused) == len(due_us):
            return refused, None
        planned = due_us if not refused else [due_us[p] for p in _others(due_us, refused)]
        earliest = min(planned)
        self.due.added(earliest)
        return refused, earliest

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
            try:
                job = codec.decode_job(job_ids[position], data)
                self.save(lifecycle.set_due(job, due), job)
            except CorruptRecord as exc:  # the others of the batch are planned
                refused[position] = Conflict(f"{exc.reason}: the job is quarantined; UNSET it")
            except KairoiError as exc:
                refused[position] = exc
        return refused


def _parse_due(key: bytes) -> tuple[int, tuple[str, int]]:
    instant, job_id = keys.parse_timed(key)
    return instant, (job_id, instant)


def _readable(job_id: str, data: bytes) -> Job | Quarantined:
    """The job, or what LIST shows of it when its record cannot be read."""
    try:
        return codec.decode_job(job_id, data)
    except CorruptRecord as exc:
        return Quarantined(job_id, exc.reason)


def _repeats(items: list[bytes]) -> bool:
    return len(set(items)) != len(items)


def _others(items: Sequence[object], positions: Iterable[int]) -> list[int]:
    """The positions in ``items`` that are not in ``positions``."""
    return sorted(set(range(len(items))).difference(positions))
