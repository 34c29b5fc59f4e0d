"""The fire path: lateness from due time to script start, and shell executions per second.

Each script records its job id and start instant (``date +%s%N``, its first line) in a file.
Lateness is that instant minus the due time. Jobs with sub-second due times are set through
storage's bus endpoint (KCP's reference SET has whole seconds); the rest through KCP.
The ceiling is the same script spawned by a plain asyncio loop at the same concurrency.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from kairoi import messages
from kairoi.bus import RequestClient
from kairoi.client.kcp import KcpClient
from kairoi.client.server import ServerProcess, Settings

ROUNDS = 3
STAMP = 'echo "$1 $(date +%s%N)" >> {out}\n'


def run(jobs: int = 2000, spread_seconds: float = 10.0, concurrency: int = 16) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kairoi-bench-") as scratch:
        workdir = Path(scratch)
        (workdir / "scripts").mkdir()
        (workdir / "scripts" / "stamp.sh").write_text(STAMP.format(out=workdir / "stamps.txt"))
        settings: Settings = {
            "runners.shell": {"concurrency": concurrency},
            "log": {"level": "info"},  # as in production: no line per run
        }
        server = ServerProcess(workdir, settings)
        server.start()
        try:
            port = server.wait_ready()
            server.wait_event("runner.joined", "dispatcher")
            with KcpClient("127.0.0.1", port) as client:
                client.call("RULE", "SET", "bench", "bench.", "shell", "scripts/stamp.sh")
            figures = {**_spread(server, jobs, spread_seconds), **_burst(server, jobs)}
            # Throughput and ceiling in turns, medians of three: this machine's speed drifts
            # by a quarter from one minute to the next.
            rates, ceilings = [], []
            for attempt in range(ROUNDS):
                ceilings.append(asyncio.run(_ceiling(workdir, jobs, concurrency, attempt)))
                rates.append(_throughput(server, jobs, attempt))
        finally:
            server.stop()
    figures["executions_per_second"] = round(statistics.median(rates))
    figures["ceiling_per_second"] = round(statistics.median(ceilings))
    figures["executions_vs_ceiling"] = round(
        figures["executions_per_second"] / figures["ceiling_per_second"], 3
    )
    return {"jobs": jobs, "concurrency": concurrency, **figures}


def _spread(server: ServerProcess, jobs: int, seconds: float) -> dict[str, float]:
    start_us = (time.time_ns() // 1000) + 2_000_000
    step_us = int(seconds * 1_000_000 / jobs)
    due = {f"bench.spread.{i}": start_us + i * step_us for i in range(jobs)}
    asyncio.run(_set_over_bus(server, due))
    lateness = _lateness(server, due, wait=seconds + 30)
    return {"spread_p50_ms": _pct(lateness, 50), "spread_p99_ms": _pct(lateness, 99),
            "spread_max_ms": max(lateness)}  # fmt: skip


def _burst(server: ServerProcess, jobs: int) -> dict[str, float]:
    due_us = ((time.time_ns() // 1000) // 1_000_000 + 3) * 1_000_000
    due = {f"bench.burst.{i}": due_us for i in range(jobs)}
    asyncio.run(_set_over_bus(server, due))
    lateness = _lateness(server, due, wait=60)
    return {"burst_p50_ms": _pct(lateness, 50), "burst_p99_ms": _pct(lateness, 99),
            "burst_max_ms": max(lateness)}  # fmt: skip


def _throughput(server: ServerProcess, jobs: int, attempt: int) -> float:
    """Executions per second, first start to last start, of ``jobs`` jobs all due already."""
    due = {f"bench.now.{attempt}.{i}": 0 for i in range(jobs)}
    asyncio.run(_set_over_bus(server, due))
    starts = sorted(_wait_for_stamps(server, due, wait=60).values())
    return (len(starts) - 1) / ((starts[-1] - starts[0]) / 1e6)


async def _set_over_bus(server: ServerProcess, due: dict[str, int]) -> None:
    client = RequestClient(f"ipc://{server.runtime_dir}/storage.sock")
    try:
        items = [
            (i, messages.SetJob(job_id=job_id, due_us=due_us))
            for i, (job_id, due_us) in enumerate(due.items())
        ]
        while not client.try_send(items):
            await asyncio.sleep(0.01)
        replies: list[messages.Item] = []
        while len(replies) < len(items):
            replies += await asyncio.wait_for(client.receive(), 10)
        if any(not isinstance(reply, messages.Ok) for _, reply in replies):
            raise RuntimeError("a SET was refused")
    finally:
        client.close()


def _wait_for_stamps(server: ServerProcess, due: dict[str, int], wait: float) -> dict[str, int]:
    """The start instant (µs) of the first run of every job in ``due``."""
    out = server.workdir / "stamps.txt"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        starts: dict[str, int] = {}
        if out.exists():
            for line in out.read_text().splitlines():
                job_id, _, nanos = line.partition(" ")
                if job_id in due and nanos:
                    starts.setdefault(job_id, int(nanos) // 1000)
        if len(starts) == len(due):
            return starts
        time.sleep(0.2)
    raise TimeoutError(f"only {len(starts)} of {len(due)} jobs ran")


def _lateness(server: ServerProcess, due: dict[str, int], wait: float) -> list[float]:
    starts = _wait_for_stamps(server, due, wait)
    lateness = [(starts[job_id] - due_us) / 1000 for job_id, due_us in due.items()]
    if min(lateness) < 0:
        raise RuntimeError(f"a job started {-min(lateness):.3f} ms early")
    return lateness


def _pct(values: list[float], percentile: int) -> float:
    ordered = sorted(values)
    if percentile == 50:
        return round(statistics.median(ordered), 3)
    return round(ordered[max(0, int(len(ordered) * percentile / 100) - 1)], 3)


def _watch_children_with_pidfd() -> None:
    """Learn of child exits through pidfds, not a thread per child (Python 3.11's default;
    3.12 and later choose pidfds by themselves)."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())
        asyncio.set_child_watcher(watcher)


async def _ceiling(workdir: Path, jobs: int, concurrency: int, attempt: int) -> float:
    """Executions per second of the same script, spawned by a plain asyncio loop and
    measured the same way (first start to last start)."""
    out = workdir / f"ceiling-{attempt}.txt"
    script = workdir / "scripts" / f"ceiling-{attempt}.sh"
    script.write_text(STAMP.format(out=out))
    slots = asyncio.Semaphore(concurrency)
    _watch_children_with_pidfd()  # the fastest a Python loop can be
    devnull = os.open(os.devnull, os.O_RDONLY)

    async def one(i: int) -> None:
        async with slots:
            process = await asyncio.create_subprocess_exec(
                "sh", str(script), str(i), stdin=devnull, process_group=0
            )
            await process.wait()

    await asyncio.gather(*(one(i) for i in range(jobs)))
    os.close(devnull)
    starts = sorted(int(line.split()[1]) for line in out.read_text().splitlines())
    return (len(starts) - 1) / ((starts[-1] - starts[0]) / 1e9)
