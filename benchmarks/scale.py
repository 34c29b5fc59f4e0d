"""S1, scale: Kairoi holding many planned jobs — memory, schedule rate, start time, disk.

The jobs are loaded over 4 pipelined KCP connections (durably, as any SET), due at distinct
seconds of an hour in 2030. Then, with the store holding them: the resident memory of every
Kairoi process (the supervisor and its children, summed) right after the load and once at rest,
the rate of 100,000 more SETs on one connection, the database's size on disk, and the time from
starting ``kairoi serve`` again to its first answered request.

Memory is summed two ways: resident set sizes (RSS), which count each shared library once per
process that maps it, and proportional set sizes (PSS), which share each such page out among
the processes mapping it, so that the sum is what the processes take from the machine.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.accept import parallel_sets, pipelined_sets
from kairoi.client.kcp import KcpClient
from kairoi.client.server import ServerProcess

LOAD_CONNECTIONS = 4
BATCH = 250_000  # SETs per connection per round: bounds the request text held in memory
REST_SECONDS = 3
REST_CPU_SECONDS = 0.05
"""At rest: this many seconds in a row in each of which all processes together used less CPU
than this (each process gives memory back after one idle second)."""


def run(jobs: int = 1_000_000, probe: int = 100_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kairoi-bench-") as scratch:
        server = ServerProcess(Path(scratch)).start()
        try:
            port = server.wait_ready()
            load_started = time.perf_counter()
            _load(port, jobs)
            load_seconds = time.perf_counter() - load_started
            loaded = _memory_mb(server)
            at_rest = _memory_at_rest_mb(server)
            rate = pipelined_sets(port, probe, prefix="probe")  # at rest: no compaction under way
            after_probe = _memory_mb(server)
        finally:
            server.stop()
        disk_mb = _size_mb(server.data_dir)
        started = time.perf_counter()
        server.start()
        try:
            _first_answer(server.wait_ready(timeout=120, after=1))
            serving_seconds = time.perf_counter() - started
        finally:
            server.stop()
    return {
        "planned_jobs": jobs + probe,
        "load_sets_per_second": round(jobs / load_seconds),
        "rss_mb_loaded": loaded[0],
        "rss_mb": at_rest[0],
        "pss_mb": at_rest[1],
        "rss_mb_after_probe": after_probe[0],
        "probe_sets_per_second": round(rate),
        "disk_mb": disk_mb,
        "start_to_serving_s": round(serving_seconds, 3),
    }


def _load(port: int, jobs: int) -> None:
    loaded = 0
    while loaded < jobs:
        count = min(jobs - loaded, BATCH * LOAD_CONNECTIONS)
        parallel_sets(port, count, LOAD_CONNECTIONS, prefix=f"scale.{loaded}")
        loaded += count - count % LOAD_CONNECTIONS


def _first_answer(port: int) -> None:
    """Wait until a request is answered (storage serving, not only the port open)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            with KcpClient("127.0.0.1", port) as client:
                if client.call("SET", "scale.ready", "2030-01-01 00:00:00") == ["OK"]:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("kairoi did not answer within 120 s")
        time.sleep(0.01)


def _memory_mb(server: ServerProcess) -> tuple[float, float]:
    """(RSS, PSS) of ``kairoi serve`` and every process under it, summed, in MiB."""
    assert server.process is not None
    rss_kb = pss_kb = 0
    for pid in [server.process.pid, *_descendants(server.process.pid)]:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            name, _, value = line.partition(":")
            if name in ("Rss", "Pss"):
                kb = int(value.split()[0])
                rss_kb, pss_kb = (rss_kb + kb, pss_kb) if name == "Rss" else (rss_kb, pss_kb + kb)
    return round(rss_kb / 1024, 1), round(pss_kb / 1024, 1)


def _memory_at_rest_mb(server: ServerProcess, timeout: float = 300.0) -> tuple[float, float]:
    """``_memory_mb`` once every process is at rest: the processes give memory back when they
    turn idle, and storage is busy with RocksDB's compactions for a while after a large load."""
    deadline = time.monotonic() + timeout
    quiet = 0
    used = _cpu_seconds(server)
    while time.monotonic() < deadline and quiet < REST_SECONDS:
        time.sleep(1.0)
        used, before = _cpu_seconds(server), used
        quiet = quiet + 1 if used - before < REST_CPU_SECONDS else 0
    return _memory_mb(server)


def _cpu_seconds(server: ServerProcess) -> float:
    """CPU time used so far by ``kairoi serve`` and every process under it."""
    assert server.process is not None
    ticks = 0
    for pid in [server.process.pid, *_descendants(server.process.pid)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                children += [int(entry.name), *_descendants(int(entry.name))]
    return children


def _size_mb(directory: Path) -> float:
    total = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    return round(total / (1 << 20), 1)
