"""``make bench``: run every benchmark, print a table, keep the figures as JSON."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from benchmarks import accept

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--sets", type=int, default=200_000, help="pipelined SETs (one connection)")
    parser.add_argument("--rtts", type=int, default=5_000, help="single-request round trips")
    options = parser.parse_args()
    figures = accept.run(sets=options.sets, rtts=options.rtts)
    print(f"{'accept path (fsync on)':<40} {'figure':>12}  reference Kairoi")
    print(f"{'pipelined SETs/s, one connection':<40} {figures['sets_per_second']:>12,}  ~5,000")
    print(f"{'round trip p50 (ms)':<40} {figures['rtt_p50_ms']:>12}  7.9")
    print(f"{'round trip p99 (ms)':<40} {figures['rtt_p99_ms']:>12}  8.0")
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    record = {
        "when": stamp,
        "machine": platform.node(),
        "cpus": __import__("os").cpu_count(),
        **figures,
    }
    (RESULTS / f"accept-{stamp}.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
