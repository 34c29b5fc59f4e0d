"""What an operator does to a job, by any door: disable, enable, trigger, stop, delete.

Stopping and deleting a running job also tell whoever holds its run to kill it: the actor
sends those notices (``take_stops``) once the change is durable.
"""

from __future__ import annotations

from collections.abc import Callable

from kairoi import messages
from kairoi.clock import Clock
from kairoi.domain import Job, JobStatus
from kairoi.errors import Conflict, NotFound
from kairoi.storage import lifecycle
from kairoi.storage.claims import Runs
from kairoi.storage.history import History
from kairoi.storage.jobs import JobTable


class JobActions:
    def __init__(
        self,
        jobs: JobTable,
        history: History,
        runs: Runs,
        clock: Clock,
        on_due: Callable[[int], None],
    ) -> None:
        self._jobs = jobs
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

    def disable(self, job_id: str) -> None:
        job = self.existing(job_id)
        self._save(lifecycle.disabled(job), job)

    def enable(self, job_id: str) -> None:
        job = self.existing(job_id)
        self._save(lifecycle.enabled(job), job)

    def trigger(self, job_id: str) -> None:
        job = self.existing(job_id)
        self._save(lifecycle.triggered_manually(job, self._clock.now_us()), job)

    def stop(self, job_id: str) -> None:
        job = self.existing(job_id)
        if job.status is not JobStatus.TRIGGERED:
            raise Conflict(f"job {job_id!r} is not running ({job.status.name.capitalize()})")
        self._runs.stop(job)
        self._stops.append(messages.StopRun(job_id=job.id, run=job.run))

    def unset(self, job_id: str) -> None:
        job = self.existing(job_id)
        if job.status is JobStatus.TRIGGERED:
            self._stops.append(messages.StopRun(job_id=job.id, run=job.run))
        self._jobs.delete(job)
        self._history.forget(job_id)

    def take_stops(self) -> list[messages.StopRun]:
        """After a commit: the runs to stop, to tell their holders."""
        stops, self._stops = self._stops, []
        return stops

    def forget_stops(self) -> None:
        """The commit failed: nothing was stopped."""
        self._stops = []

    def _save(self, job: Job, previous: Job) -> None:
        if job != previous:
            self._jobs.save(job, previous)
            if job.status is JobStatus.PLANNED:
                self._on_due(job.due_us)
