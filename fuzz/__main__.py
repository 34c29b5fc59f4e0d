"""``python -m fuzz``: every atheris target for a set time, then the socket fuzzer.

    python -m fuzz [--seconds S] [--lines N] [--only kcp_session,schedules,codec,sockets]

Each target's corpus grows in var/fuzz/<target>/ (seeded from the docs at each run), its
crashes are written there as crash-<sha1>; the exit status is 1 when anything was found.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from fuzz import seeds, sockets
from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent
MAX_LEN = 8192
"""Inputs up to this size: past the targets' line limits."""


def fuzz_target(target: str, seconds: int, work: Path) -> bool:
    """Run ``target`` under atheris for ``seconds``; whether it found nothing."""
    corpus = work / target
    seeds.write(target, corpus)
    command = [
        sys.executable, "-m", "fuzz.engine", target, f"-max_total_time={seconds}",
        f"-max_len={MAX_LEN}", f"-artifact_prefix={corpus}/", "-print_final_stats=1", str(corpus),
    ]  # fmt: skip
    print(f"fuzz: {target} for {seconds} s, corpus {corpus}", flush=True)
    result = subprocess.run(command, cwd=ROOT, check=False)
    return result.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")))
    parser.add_argument("--lines", type=int, default=int(os.environ.get("FUZZ_LINES", "1000000")))
    parser.add_argument("--only", default=",".join((*TARGETS, "sockets")))
    options = parser.parse_args(argv)
    chosen = options.only.split(",")
    work = ROOT / "var" / "fuzz"
    clean = [fuzz_target(t, options.seconds, work) for t in TARGETS if t in chosen]
    if "sockets" in chosen:
        print(f"fuzz: sockets, {options.lines} lines", flush=True)
        report = sockets.run(options.lines, evidence=work / "sockets")
        print(json.dumps(report, indent=2))
        clean.append(not report["fault_count"])
    return 0 if all(clean) else 1


if __name__ == "__main__":
    sys.exit(main())
