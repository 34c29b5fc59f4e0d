"""Huey (SqliteHuey) with its consumer in threads: one workload, its figures as JSON.

``{"workload": "w1" | "w2" | "w3", "jobs": N, "spread": S, "dir": PATH}``. Tasks are
scheduled with an ``eta``; the consumer runs with its defaults (the scheduler looks for due
tasks every second) and 4 worker threads. The task body records its start instant.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from huey import SqliteHuey

from benchmarks.peers.drivers import common

OPTIONS = common.options()
huey = SqliteHuey(filename=str(Path(OPTIONS["dir"]) / "huey.sqlite"), utc=True)
STARTED: dict[int, int] = {}
_LOCK = threading.Lock()


@huey.task()  # type: ignore[untyped-decorator]
def record(index: int) -> None:
    start = common.now_us()
    with _LOCK:
        STARTED[index] = start


def schedule(index: int, due_us: int) -> None:
    eta = datetime.fromtimestamp(due_us / 1e6, UTC).replace(tzinfo=None)
    record.schedule(args=(index,), eta=eta)


def main() -> None:
    if OPTIONS["workload"] == "w1":  # only storing: no consumer
        common.run_workload(OPTIONS, schedule, lambda: dict(STARTED))
        return
    consumer = huey.create_consumer(workers=4, worker_type="thread", periodic=False)
    consumer.start()
    try:
        common.run_workload(OPTIONS, schedule, lambda: dict(STARTED))
    finally:
        consumer.stop()


if __name__ == "__main__":
    main()
