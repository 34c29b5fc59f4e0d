"""APScheduler 3: one workload, its figures as JSON on stdout.

``{"store": "memory" | "sqlite", "workload": "w1" | "w2" | "w3", "jobs": N, "spread": S,
"dir": PATH}``. The job body records its start instant; misfire_grace_time=None (the default
of 1 s silently drops late jobs) and coalesce=False, so every job runs.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from benchmarks.peers.drivers import common

STARTED: dict[int, int] = {}
_LOCK = threading.Lock()


def record(index: int) -> None:
    start = common.now_us()
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
    opts = common.options()
    sched = scheduler(opts["store"], Path(opts["dir"]))
    try:
        common.run_workload(opts, lambda i, due: add(sched, i, due), lambda: dict(STARTED))
    finally:
        sched.shutdown(wait=False)


if __name__ == "__main__":
    main()
