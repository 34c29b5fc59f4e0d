"""Celery with Redis as its broker: one workload, its figures as JSON on stdout.

``{"workload": "w1" | "w2" | "w3", "jobs": N, "spread": S, "dir": PATH}``. Jobs are
``apply_async`` calls with an ``eta``; a worker (``--pool threads``, 4 threads, its defaults
otherwise) runs in a process of its own on a queue of this run's own. The task body records
its start instant in Redis, where the driver reads it. This Redis keeps nothing on disk, so
Celery counts as not durable here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery

from benchmarks.peers.drivers import common

REDIS = "redis://127.0.0.1:6379/0"
# This run's queue; the worker, started with this environment, imports the same name.
QUEUE = os.environ.setdefault("KAIROI_BENCH_QUEUE", f"kairoi-bench-{uuid.uuid4().hex[:8]}")
STARTED_KEY = f"{QUEUE}:started"

app = Celery("kairoi_bench", broker=REDIS)
app.conf.task_default_queue = QUEUE
store = redis.Redis.from_url(REDIS)


@app.task(name="record")  # type: ignore[untyped-decorator]
def record(index: int) -> None:
    store.hset(STARTED_KEY, str(index), str(common.now_us()))


def started() -> dict[int, int]:
    return {int(k): int(v) for k, v in store.hgetall(STARTED_KEY).items()}


def schedule(index: int, due_us: int) -> None:
    record.apply_async(args=(index,), eta=datetime.fromtimestamp(due_us / 1e6, UTC))


def worker() -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "celery", "-A", "benchmarks.peers.drivers.celery_driver",
               "worker", "--pool", "threads", "--concurrency", "4", "--loglevel", "WARNING",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3)  # it connects and starts consuming
    return process


def main() -> None:
    opts: dict[str, Any] = common.options()
    process = None if opts["workload"] == "w1" else worker()
    try:
        common.run_workload(opts, schedule, started)
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        store.delete(STARTED_KEY, QUEUE, "unacked", "unacked_index")


if __name__ == "__main__":
    main()
