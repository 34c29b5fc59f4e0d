"""Huey (SqliteHuey) with its consumer in threads: one workload, its figures as JSON.

``{"workload": "w1" | "w2" | "w3", "jobs": N, "spread": S, "dir": PATH}``. Tasks are
scheduled with an ``eta``; the consumer runs with its defaults (the scheduler looks for due
tasks every second) and 4 worker threads. The task body records its start instant.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from huey import SqliteHuey

from benchmarks.peers.drivers.common import (
    burst_instants,
    lateness_figures,
    now_us,
    options,
    report,
    spread_instants,
)

OPTIONS = options()
huey = SqliteHuey(filename=str(Path(OPTIONS["dir"]) / "huey.sqlite"), utc=True)
STARTED: dict[int, int] = {}
_LOCK = threading.Lock()


@huey.task()  # type: ignore[untyped-decorator]
def record(index: int) -> None:
    start = now_us()
    with _LOCK:
        STARTED[index] = start


def schedule(index: int, due_us: int) -> None:
    eta = datetime.fromtimestamp(due_us / 1e6, UTC).replace(tzinfo=None)
    record.schedule(args=(index,), eta=eta)


def main() -> None:
    jobs = OPTIONS["jobs"]
    if OPTIONS["workload"] == "w1":
        due = now_us() + 3_600_000_000
        began = time.perf_counter()
        for i in range(jobs):
            schedule(i, due)
        report({"per_second": round(jobs / (time.perf_counter() - began))})
        return
    consumer = huey.create_consumer(workers=4, worker_type="thread", periodic=False)
    consumer.start()
    try:
        instants = (
            burst_instants(jobs, lead_s=3)
            if OPTIONS["workload"] == "w2"
            else spread_instants(jobs, OPTIONS["spread"], lead_s=3)
        )
        for i, due in enumerate(instants):
            schedule(i, due)
        report(lateness_figures(lambda: dict(STARTED), instants, timeout_s=120))
    finally:
        consumer.stop()


if __name__ == "__main__":
    main()
