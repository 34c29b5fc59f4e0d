"""What every driver shares: the workloads' instants and the figures, standard library only
(a driver runs in its peer's virtual environment, without Kairoi)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

WORKLOADS = ("w1", "w2", "w3")


def now_us() -> int:
    return time.time_ns() // 1000


def options() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(sys.argv[1])
    return parsed


def report(figures: dict[str, Any]) -> None:
    print(json.dumps(figures), flush=True)


def pct(values: list[float], percentile: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * percentile / 100))], 3)


def burst_instants(jobs: int, lead_s: float) -> list[int]:
    due = ((now_us() // 1_000_000) + int(lead_s) + 1) * 1_000_000
    return [due] * jobs


def spread_instants(jobs: int, seconds: float, lead_s: float) -> list[int]:
    start = now_us() + int(lead_s * 1_000_000)
    step = int(seconds * 1_000_000 / jobs)
    return [start + i * step for i in range(jobs)]


def lateness_figures(
    started: Callable[[], dict[int, int]], due: list[int], timeout_s: float
) -> dict[str, float]:
    """Wait for every job's start (job index -> start µs), then its lateness figures (ms)."""
    deadline = time.monotonic() + timeout_s
    while len(started()) < len(due) and time.monotonic() < deadline:
        time.sleep(0.05)
    starts = started()
    if len(starts) < len(due):
        raise SystemExit(f"{len(due) - len(starts)} of {len(due)} jobs never ran")
    lateness = [(starts[i] - due[i]) / 1000 for i in range(len(due))]
    return {"p50_ms": pct(lateness, 50), "p99_ms": pct(lateness, 99),
            "max_ms": round(max(lateness), 3), "min_ms": round(min(lateness), 3)}  # fmt: skip


def run_workload(
    opts: dict[str, Any],
    schedule: Callable[[int, int], None],
    started: Callable[[], dict[int, int]],
) -> None:
    """Run ``opts["workload"]``: ``schedule(index, due_us)`` plans one job; ``started()`` tells
    which have started, and when. Reports the figures."""
    jobs = opts["jobs"]
    if opts["workload"] == "w1":  # due in an hour: only how fast they are taken matters
        due = now_us() + 3_600_000_000
        began = time.perf_counter()
        for index in range(jobs):
            schedule(index, due)
        report({"per_second": round(jobs / (time.perf_counter() - began))})
        return
    instants = (
        burst_instants(jobs, lead_s=3)
        if opts["workload"] == "w2"
        else spread_instants(jobs, opts["spread"], lead_s=3)
    )
    for index, due in enumerate(instants):
        schedule(index, due)
    report(lateness_figures(started, instants, timeout_s=120))
