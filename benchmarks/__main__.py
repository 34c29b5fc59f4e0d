"""``make bench``: run every benchmark, print a table, keep the figures as JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks import accept, amqp, compare, fire, scale
from benchmarks.peers.run import unreachable

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--sets", type=int, default=100_000, help="W1: SETs due within an hour")
    parser.add_argument("--rtts", type=int, default=5_000, help="single-request round trips")
    parser.add_argument("--jobs", type=int, default=2_000, help="jobs per fire-path workload")
    parser.add_argument("--spread", type=float, default=10.0, help="seconds the spread jobs span")
    parser.add_argument("--volume", type=int, default=20_000, help="AMQP jobs for the rate")
    parser.add_argument("--scale", type=int, default=1_000_000, help="S1: planned jobs held")
    parser.add_argument("--peer-sets", type=int, default=10_000, help="W1 jobs for each peer")
    parser.add_argument(
        "--only", choices=["accept", "fire", "amqp", "scale", "peers"], help="run one group only"
    )
    options = parser.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    speed = _machine_speed()
    print(f"machine: {os.cpu_count()} cores; a pure-Python loop of 10 million additions: "
          f"{speed} s (to compare figures taken on different days)")  # fmt: skip
    _keep("machine", stamp, {"python_loop_seconds": speed})
    kairoi: dict[str, dict[str, Any]] = {}
    if options.only in (None, "accept"):
        figures = kairoi["accept"] = accept.run(sets=options.sets, rtts=options.rtts)
        _table(f"accept path (fsync on; {options.sets:,} SETs due within an hour)", [
            ("pipelined SETs/s, one connection", f"{figures['sets_per_second']:,}",
             "reference ~5,000"),
            (f"  over {figures['connections']} connections",
             f"{figures['parallel_sets_per_second']:,}", ""),
            ("W4 round trip p50 (ms)", figures["rtt_p50_ms"], "reference 7.9; target <= 0.5"),
            ("  floor: durable write + bus + TCP round trips", figures["floor_p50_ms"],
             f"{figures['durable_write_p50_ms']} + {figures['bus_round_trip_p50_ms']} + "
             f"{figures['tcp_round_trip_p50_ms']}, each alone"),
            ("W4 round trip p99 (ms)", figures["rtt_p99_ms"], "reference 8.0"),
        ])  # fmt: skip
        _keep("accept", stamp, figures)
    if options.only in (None, "fire"):
        figures = kairoi["fire"] = fire.run(jobs=options.jobs, spread_seconds=options.spread)
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
    if options.only in (None, "amqp") and (published := _amqp(options, stamp)) is not None:
        kairoi["amqp"] = published
    if options.only in (None, "scale"):
        _scale(options, stamp)
    if options.only in (None, "peers"):
        _peers(options, stamp, kairoi)


def _amqp(options: argparse.Namespace, stamp: str) -> dict[str, Any] | None:
    if reason := unreachable("the AMQP runner's benchmark (RabbitMQ)", "127.0.0.1", 5672):
        print(f"\nskipped: {reason}")
        return None
    figures = amqp.run(jobs=options.jobs, spread_seconds=options.spread, volume=options.volume)
    jobs = figures["jobs"]
    _table("amqp runner (confirmed, persistent, mandatory)", [
        (f"confirmed publishes/s ({figures['volume']:,} due at once)",
         f"{figures['publishes_per_second']:,}", "target >= 10,000"),
        (f"W2 {jobs} due at one instant: lateness p50 (ms)", figures["burst_p50_ms"], ""),
        ("  max (ms)", figures["burst_max_ms"], "target <= 100"),
        ("  RabbitMQ alone: all published at once, max (ms)", figures["broker_burst_max_ms"],
         "the same messages from a plain client"),
        (f"W3 {jobs} spread over {options.spread:g} s: lateness p50 (ms)",
         figures["spread_p50_ms"], "target <= 0.5"),
        ("  p99 (ms)", figures["spread_p99_ms"], "target <= 1"),
        ("  RabbitMQ alone: publish to consumer, p50 (ms)", figures["broker_spread_p50_ms"], ""),
        ("  p99 (ms)", figures["broker_spread_p99_ms"], ""),
    ])  # fmt: skip
    _keep("amqp", stamp, figures)
    return figures


def _scale(options: argparse.Namespace, stamp: str) -> None:
    figures = scale.run(jobs=options.scale)
    _table(f"S1 scale ({figures['planned_jobs']:,} planned jobs)", [
        ("memory at rest, all processes, RSS sum (MiB)", figures["rss_mb"], "target <= 200"),
        ("  PSS sum: shared pages counted once (MiB)", figures["pss_mb"], ""),
        ("  RSS right after loading them (MiB)", figures["rss_mb_loaded"], ""),
        ("  RSS right after 100,000 more SETs (MiB)", figures["rss_mb_after_probe"], ""),
        ("W1 SETs/s while holding them", f"{figures['probe_sets_per_second']:,}", ""),
        ("start to serving (s)", figures["start_to_serving_s"], "target <= 2"),
        ("disk used (MiB)", figures["disk_mb"], ""),
        ("loading SETs/s (4 connections)", f"{figures['load_sets_per_second']:,}", ""),
    ])  # fmt: skip
    _keep("scale", stamp, figures)


def _peers(options: argparse.Namespace, stamp: str, kairoi: dict[str, dict[str, Any]]) -> None:
    peers = compare.measure_peers(options.peer_sets, options.jobs, options.spread)
    print(f"\n{'Kairoi and its peers':<44} {'Kairoi':>12}  {'best peer':<34} vs best")
    for label, ours, best, verdict in compare.rows(kairoi, peers):
        print(f"{label:<44} {ours!s:>12}  {best:<34} {verdict}")
    _keep("peers", stamp, {"peers": peers, "kairoi": kairoi})


def _machine_speed() -> float:
    """Seconds for a fixed pure-Python loop, the best of three: this VM's speed drifts from
    day to day (and by a quarter within minutes), and Kairoi's figures follow it."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        times.append(time.perf_counter() - started)
    return round(min(times), 2)


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
