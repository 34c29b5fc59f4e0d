"""APScheduler 3: one workload, its figures as JSON on stdout.

``{"store": "memory" | "sqlite", "workload": "w1" | "w2" | "w3", "jobs": N, "spread": S,
"dir": PATH}``. The job body records its start instant; misfire_grace_time=None (the default
of 1 s silently drops late jobs) and coalesce=False, so every job runs.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from benchmarks.peers.drivers.common import (
    burst_instants,
    lateness_figures,
    now_us,
    options,
    report,
    spread_instants,
)

STARTED: dict[int, int] = {}
_LOCK = threading.Lock()


def record(index: int) -> None:
    start = now_us()
    with _LOCK:
        STARTED[index] = start


def scheduler(store: str, directory: Path) -> Any:
    jobstore = (
        SQLAlchemyJobStore(url=f"sqlite:///{directory / 'jobs.sqlite'}")
        if store == "sqlite"
        else MemoryJobStore()
    )
    started = BackgroundScheduler(
        jobstores={"default": jobstore},
        job_defaults={"misfire_grace_time": None, "coalesce": False},
    )
    started.start()
    return started


def add(sched: Any, index: int, due_us: int) -> None:
    when = datetime.fromtimestamp(due_us / 1e6, UTC)
    sched.add_job(record, "date", run_date=when, args=(index,), id=f"job.{index}")


def main() -> None:
    opts = options()
    sched = scheduler(opts["store"], Path(opts["dir"]))
    try:
        jobs = opts["jobs"]
        if opts["workload"] == "w1":
            due = now_us() + 3_600_000_000
            began = time.perf_counter()
            for i in range(jobs):
                add(sched, i, due)
            report({"per_second": round(jobs / (time.perf_counter() - began))})
            return
        instants = (
            burst_instants(jobs, lead_s=3)
            if opts["workload"] == "w2"
            else spread_instants(jobs, opts["spread"], lead_s=3)
        )
        for i, due in enumerate(instants):
            add(sched, i, due)
        report(lateness_figures(lambda: dict(STARTED), instants, timeout_s=120))
    finally:
        sched.shutdown(wait=False)


if __name__ == "__main__":
    main()
