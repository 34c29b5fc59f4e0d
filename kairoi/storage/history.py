"""Each job's runs, newest kept: the record of every run and the tail of its output.

A run is recorded once, when it ends (or is found lost). Recording run ``n`` deletes run
``n - keep`` in the same batch: run numbers have no gaps, so a job never holds more than
``keep`` runs and nothing has to be read to find the one to drop.
"""

from __future__ import annotations

from kairoi.domain import Run
from kairoi.storage import codec, keys
from kairoi.storage.writes import EVERY, PendingWrites


class History:
    def __init__(self, writes: PendingWrites, keep: int) -> None:
        self._writes = writes
        self._keep = keep

    def add(self, job_id: str, run: Run, output: bytes) -> None:
        self.replace(job_id, run, output)
        dropped = run.run - self._keep
        if dropped >= 1:
            self._writes.delete(keys.run_of(keys.RUN, job_id, dropped))
            self._writes.delete(keys.run_of(keys.OUTPUT, job_id, dropped))

    def get(self, job_id: str, run: int) -> Run | None:
        data = self._writes.get(keys.run_of(keys.RUN, job_id, run))
        return None if data is None else codec.decode_run(job_id, run, data)

    def replace(self, job_id: str, run: Run, output: bytes) -> None:
        """Write the run's record and output (over what was recorded of it, if anything)."""
        self._writes.put(keys.run_of(keys.RUN, job_id, run.run), codec.encode_run(run))
        if output:
            self._writes.put(keys.run_of(keys.OUTPUT, job_id, run.run), output)

    def recent(self, job_id: str, limit: int, before: int = 0) -> list[Run]:
        """Up to ``limit`` of the job's runs, the newest first, numbered below ``before``
        (0: from the newest)."""
        prefix = keys.runs_of(keys.RUN, job_id)
        end = keys.prefix_end(prefix)
        if 0 < before <= keys.MAX_RUN:
            end = keys.run_of(keys.RUN, job_id, before)
        found = self._writes.scan(prefix, end, EVERY)
        return [
            codec.decode_run(job_id, keys.run_number(key), value)
            for key, value in reversed(found[-limit:])
        ]

    def output(self, job_id: str, run: int) -> bytes | None:
        """The tail of a run's output: b"" when it printed nothing, None when the run is not
        in the history."""
        if self._writes.get(keys.run_of(keys.RUN, job_id, run)) is None:
            return None
        return self._writes.get(keys.run_of(keys.OUTPUT, job_id, run)) or b""

    def forget(self, job_id: str) -> None:
        """Delete every run of the job and its output."""
        for kind in (keys.RUN, keys.OUTPUT):
            for key, _ in self._writes.under(keys.runs_of(kind, job_id)):
                self._writes.delete(key)
