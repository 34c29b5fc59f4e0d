"""What a client or operator does to a job, by any door: define it, disable, enable,
trigger, stop, delete.

Stopping and deleting a running job also tell whoever holds its runs to kill them: the actor
sends those notices (``take_stops``) once the change is durable.
"""

from __future__ import annotations

from collections.abc import Callable

from kairoi import messages
from kairoi.clock import Clock
from kairoi.domain import Job, JobSpec, JobStatus, Overlap
from kairoi.errors import Conflict, InvalidRequest, KairoiError, NotFound, TooManyRelatives
from kairoi.storage import lifecycle, planning, relatives
from kairoi.storage.claims import Runs
from kairoi.storage.history import History
from kairoi.storage.jobs import JobTable
from kairoi.storage.quarantine import Quarantine


class JobActions:
    def __init__(
        self,
        jobs: JobTable,
        history: History,
        runs: Runs,
        clock: Clock,
        on_due: Callable[[int], None],
        *,
        quarantine: Quarantine,
    ) -> None:
        self._jobs = jobs
        self._quarantine = quarantine
        self._history = history
        self._runs = runs
        self._clock = clock
        self._on_due = on_due
        self._stops: list[messages.StopRun] = []

    def existing(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def changeable(self, job_id: str) -> Job:
        """The job, to change: NotFound when there is none, Conflict when it is
        quarantined (only UNSET changes it)."""
        self._quarantine.refuse_change(job_id)
        return self.existing(job_id)

    def define(self, job_id: str, spec: JobSpec, *, while_running: bool = False) -> None:
        """Create or replace ``job_id`` as ``spec`` says. A running job is refused, unless
        ``while_running`` (a job file): then its new spec plans what follows its run."""
        _check(job_id, spec)
        for parent_id in spec.parents:
            self.existing(parent_id)
        self._quarantine.refuse_change(job_id)
        job = self._jobs.get(job_id)
        if job is not None:  # a new job has no children: it makes no cycle
            new_parents = set(spec.parents).difference(job.spec.parents)
            relatives.refuse_cycle(self._jobs.children, job_id, new_parents)
        if job is not None and job.running:
            if not while_running:
                raise Conflict(f"job {job_id!r} is running (Triggered); set it again once "
                               "its run ends")  # fmt: skip
            self._save(lifecycle.redefined_while_running(job, spec), job)
            return
        plan = planning.first(spec, 0, self._clock.now_us())
        self._save(lifecycle.defined(job, job_id, spec, plan), job)

    def load(self, source: str, jobs: list[tuple[str, JobSpec]]) -> list[str]:
        """Define every job of the job file ``source``, and delete the jobs it defined before
        that it no longer holds: all or nothing. A ``RefusedJob`` names the first job that
        cannot be defined; a KairoiError what is wrong with the whole. The ids deleted."""
        in_file = {job_id for job_id, _ in jobs}
        removed = [job_id for job_id in self._jobs.from_file(source) if job_id not in in_file]
        for position, (job_id, spec) in enumerate(jobs):
            try:
                self._check_loaded(job_id, spec, in_file, set(removed))
            except KairoiError as exc:
                raise RefusedJob(position, exc) from None
        for job_id in removed:
            for child_id in self._jobs.children(job_id):
                if child_id not in in_file and child_id not in removed:
                    raise Conflict(f"job {child_id!r} runs after {job_id!r}, which the file no "
                                   "longer holds: change or delete it first")  # fmt: skip
        for job_id, spec in _parents_first(jobs):
            self.define(job_id, spec, while_running=True)
        for job_id in removed:  # quarantined ones too: UNSET deletes them
            if self._quarantine.reason(job_id) is not None or self._jobs.get(job_id):
                self.unset(job_id, cascade=True)
            self._jobs.unlink_file(source, job_id)  # an unreadable record did not say it
        return removed

    def _check_loaded(
        self, job_id: str, spec: JobSpec, in_file: set[str], removed: set[str]
    ) -> None:
        _check(job_id, spec)
        self._quarantine.refuse_change(job_id)
        for parent_id in spec.parents:
            if parent_id not in in_file and (parent_id in removed or not self._jobs.get(parent_id)):
                raise NotFound(f"no job {parent_id!r}, which {job_id!r} runs after")
        current = self._jobs.get(job_id)
        if current is None or not current.running:
            planning.first(spec, 0, self._clock.now_us())

    def disable(self, job_id: str) -> None:
        job = self.changeable(job_id)
        self._save(lifecycle.disabled(job), job)

    def enable(self, job_id: str) -> None:
        job = self.changeable(job_id)
        self._save(lifecycle.enabled(job), job)

    def trigger(self, job_id: str) -> None:
        job = self.changeable(job_id)
        self._save(lifecycle.triggered_manually(job, self._clock.now_us()), job)

    def stop(self, job_id: str) -> None:
        job = self.changeable(job_id)
        if not job.running:
            raise Conflict(f"job {job_id!r} is not running ({job.status.name.capitalize()})")
        self._stops += [messages.StopRun(job_id=job.id, run=run) for run in job.active]
        self._runs.stop(job)

    def unset(self, job_id: str, cascade: bool) -> None:
        """Delete the job; with ``cascade``, every job that runs after it, directly or not,
        too (refused, before anything is deleted, past relatives.MAX_RELATIVES of them). A
        quarantined job is deleted with whatever of its keys can be found."""
        if self._quarantine.purge(job_id):
            return
        job = self.existing(job_id)
        children = self._jobs.children(job_id)
        if children and not cascade:
            shown = ", ".join(map(relatives.shown, children[:5])) + (
                ", …" if len(children) > 5 else ""
            )
            raise Conflict(f"jobs run after {relatives.shown(job_id)} ({shown}); UNSET it with "
                           "CASCADE to delete them too")  # fmt: skip
        try:
            doomed = relatives.descendants(self._jobs.children, job_id) if children else {}
        except TooManyRelatives as exc:
            raise TooManyRelatives(
                f"{exc.reason}: UNSET CASCADE deletes at most {relatives.MAX_RELATIVES:,} "
                "jobs at once; UNSET CASCADE the jobs furthest from it first, then it"
            ) from None
        self._delete(job)
        for descendant_id in doomed:
            if self._quarantine.purge(descendant_id):
                continue
            if (descendant := self._jobs.get(descendant_id)) is not None:
                self._delete(descendant)

    def take_stops(self) -> list[messages.StopRun]:
        """After a commit: the runs to stop, to tell their holders."""
        stops, self._stops = self._stops, []
        return stops

    def stops_pending(self) -> int:
        """How many stop notices wait for the commit (``forget_stops`` keeps that many)."""
        return len(self._stops)

    def forget_stops(self, keep: int = 0) -> None:
        """The batch was not written (or the request that made them failed): no notices."""
        del self._stops[keep:]

    def _delete(self, job: Job) -> None:
        self._stops += [messages.StopRun(job_id=job.id, run=run) for run in job.active]
        self._runs.forget(job)
        self._jobs.delete(job)
        self._history.forget(job.id)

    def _save(self, job: Job, previous: Job | None) -> None:
        if job == previous:
            return
        self._jobs.save(job, previous)
        if job.status is JobStatus.PLANNED:
            self._on_due(job.due_us)


def _check(job_id: str, spec: JobSpec) -> None:
    if job_id in spec.parents:
        raise InvalidRequest(f"job {job_id!r} cannot run after itself")
    if spec.parents and spec.when:
        raise InvalidRequest("a job runs on a schedule or after its parents, not both")
    if not spec.parents and not spec.when:
        raise InvalidRequest("a job needs a schedule or parents to run after")
    if spec.retries and spec.overlap is Overlap.ALLOW:
        raise InvalidRequest("RETRIES cannot be used with OVERLAP allow: a retry would wait "
                             "for nothing while the next occurrences run")  # fmt: skip
    if spec.retries and not spec.backoff_us:
        raise InvalidRequest("RETRIES needs a BACKOFF (the wait before the first retry)")


class RefusedJob(Exception):
    """A job of a job file cannot be defined: its position in the file's list, and why."""

    def __init__(self, position: int, error: KairoiError) -> None:
        super().__init__(error.reason)
        self.position = position
        self.error = error


def _parents_first(jobs: list[tuple[str, JobSpec]]) -> list[tuple[str, JobSpec]]:
    """The jobs, each after the parents it has among them; InvalidRequest on a cycle."""
    pending = dict(jobs)
    ordered: list[tuple[str, JobSpec]] = []
    while pending:
        ready = [
            (job_id, spec) for job_id, spec in pending.items()
            if not any(parent in pending for parent in spec.parents)
        ]  # fmt: skip
        if not ready:
            parents = {job_id: spec.parents for job_id, spec in pending.items()}
            raise InvalidRequest(
                "jobs of the file would make a cycle: "
                + relatives.cycle_text(relatives.cycle_among(parents))
            )
        for job_id, spec in ready:
            ordered.append((job_id, spec))
            del pending[job_id]
    return ordered
