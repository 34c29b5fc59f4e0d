"""``make bench``: run every benchmark, print a table, keep the figures as JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import time
from pathlib import Path
from typing import Any

from benchmarks import accept, amqp, fire

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--sets", type=int, default=200_000, help="pipelined SETs (one connection)")
    parser.add_argument("--rtts", type=int, default=5_000, help="single-request round trips")
    parser.add_argument("--jobs", type=int, default=2_000, help="jobs per fire-path workload")
    parser.add_argument("--spread", type=float, default=10.0, help="seconds the spread jobs span")
    parser.add_argument("--volume", type=int, default=20_000, help="AMQP jobs for the rate")
    parser.add_argument("--only", choices=["accept", "fire", "amqp"], help="run one group only")
    options = parser.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    if options.only in (None, "accept"):
        figures = accept.run(sets=options.sets, rtts=options.rtts)
        _table("accept path (fsync on)", [
            ("pipelined SETs/s, one connection", f"{figures['sets_per_second']:,}",
             "reference ~5,000"),
            ("round trip p50 (ms)", figures["rtt_p50_ms"], "reference 7.9; target <= 1"),
            ("round trip p99 (ms)", figures["rtt_p99_ms"], "reference 8.0"),
        ])  # fmt: skip
        _keep("accept", stamp, figures)
    if options.only in (None, "fire"):
        figures = fire.run(jobs=options.jobs, spread_seconds=options.spread)
        jobs = figures["jobs"]
        _table(f"fire path (shell, concurrency {figures['concurrency']})", [
            (f"{jobs} spread over {options.spread:g} s: lateness p50 (ms)",
             figures["spread_p50_ms"], ""),
            ("  p99 (ms)", figures["spread_p99_ms"], "target <= 5; reference 9-13"),
            ("  max (ms)", figures["spread_max_ms"], ""),
            (f"{jobs} due at one instant: lateness p50 (ms)", figures["burst_p50_ms"], ""),
            ("  p99 (ms)", figures["burst_p99_ms"], ""),
            ("  max (ms)", figures["burst_max_ms"], ""),
            ("shell executions/s", f"{figures['executions_per_second']:,}", ""),
            ("  ceiling: same script from a Python loop", f"{figures['ceiling_per_second']:,}", ""),
            ("  ratio to the ceiling", figures["executions_vs_ceiling"], "target >= 0.8"),
        ])  # fmt: skip
        _keep("fire", stamp, figures)
    if options.only in (None, "amqp"):
        _amqp(options, stamp)


def _amqp(options: argparse.Namespace, stamp: str) -> None:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError as exc:
        print(f"\namqp runner: skipped, RabbitMQ is not reachable at 127.0.0.1:5672 ({exc})")
        return
    figures = amqp.run(jobs=options.jobs, spread_seconds=options.spread, volume=options.volume)
    jobs = figures["jobs"]
    _table("amqp runner (confirmed, persistent, mandatory)", [
        (f"confirmed publishes/s ({figures['volume']:,} due at once)",
         f"{figures['publishes_per_second']:,}", "target >= 10,000"),
        (f"{jobs} due at one instant: lateness p50 (ms)", figures["burst_p50_ms"], ""),
        ("  max (ms)", figures["burst_max_ms"], "target <= 300 (BullMQ: 335 p99)"),
        (f"{jobs} spread over {options.spread:g} s: lateness p50 (ms)",
         figures["spread_p50_ms"], ""),
        ("  p99 (ms)", figures["spread_p99_ms"], "target <= 5"),
    ])  # fmt: skip
    _keep("amqp", stamp, figures)


def _table(title: str, rows: list[tuple[str, Any, str]]) -> None:
    print(f"\n{title:<48} {'figure':>10}  notes")
    for label, value, note in rows:
        print(f"{label:<48} {value!s:>10}  {note}")


def _keep(name: str, stamp: str, figures: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    record = {"when": stamp, "machine": platform.node(), "cpus": os.cpu_count(), **figures}
    (RESULTS / f"{name}-{stamp}.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
