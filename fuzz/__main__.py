"""``python -m fuzz``: every atheris target for a set time, then the socket fuzzer.

    python -m fuzz [--seconds S] [--lines N] [--only kcp_session,schedules,codec,sockets]

Each target's corpus grows in var/fuzz/<target>/ (seeded from the docs at each run), its
crashes are written to var/fuzz/crashes/<target>-crash-<sha1>, the socket fuzzer's evidence
to var/fuzz/sockets/; the exit status is 1 when anything was found.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fuzz import seeds, sockets
from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent
MAX_LEN = 8192
"""Inputs up to this size: past the targets' line limits."""
MAX_CRASHES = 10


def fuzz_target(target: str, seconds: int, work: Path) -> int:
    """Run ``target`` under atheris for ``seconds``; the number of crashes it found.

    libFuzzer stops at a crash: the target is started again on its grown corpus until the
    time is up (or MAX_CRASHES were found), so that one fault does not hide the others.
    """
    corpus, crashes = work / target, work / "crashes"
    seeds.write(target, corpus)
    crashes.mkdir(parents=True, exist_ok=True)
    deadline, found = time.monotonic() + seconds, 0
    while (left := int(deadline - time.monotonic())) > 0 and found < MAX_CRASHES:
        command = [
            sys.executable, "-m", "fuzz.engine", target, f"-max_total_time={left}",
            f"-max_len={MAX_LEN}", f"-artifact_prefix={crashes}/{target}-",
            "-print_final_stats=1", str(corpus),
        ]  # fmt: skip
        print(f"fuzz: {target} for {left} s, corpus {corpus}", flush=True)
        if subprocess.run(command, cwd=ROOT, check=False).returncode != 0:
            found += 1
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")))
    parser.add_argument("--lines", type=int, default=int(os.environ.get("FUZZ_LINES", "1000000")))
    parser.add_argument("--only", default=",".join((*TARGETS, "sockets")))
    options = parser.parse_args(argv)
    chosen = options.only.split(",")
    work = ROOT / "var" / "fuzz"
    found = {t: fuzz_target(t, options.seconds, work) for t in TARGETS if t in chosen}
    if "sockets" in chosen:
        print(f"fuzz: sockets, {options.lines} lines", flush=True)
        report = sockets.run(options.lines, evidence=work / "sockets")
        print(json.dumps(report, indent=2))
        found["sockets"] = report["fault_count"]
    print(f"fuzz: found {found} (crash inputs in {work / 'crashes'})")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
