"""Run one fuzz target: under atheris (coverage-guided), or by replaying a corpus.

    python -m fuzz.engine TARGET [libFuzzer flags…] CORPUS_DIR…   # atheris
    python -m fuzz.engine --replay TARGET DIR…                     # no atheris: every file once

Under atheris the process is libFuzzer's: it stops at the first crash, writes the input to
``crash-<sha1>`` (``-artifact_prefix=``) and exits non-zero; ``-runs=N`` or
``-max_total_time=S`` bound a run that finds none.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

Target = Callable[[bytes], None]


def load(target: str) -> Target:
    module = importlib.import_module(f"fuzz.targets.{target}")
    test_one_input: Target = module.TestOneInput
    return test_one_input


def replay(target: str, directories: list[Path]) -> list[tuple[Path, str]]:
    """Run every file of ``directories`` through ``target``: the (file, traceback) of each
    that failed."""
    test_one_input = load(target)
    failures = []
    for directory in directories:
        for path in sorted(directory.iterdir()):
            try:
                test_one_input(path.read_bytes())
            except Exception:  # a fault found: reported, and the replay goes on
                failures.append((path, traceback.format_exc()))
    return failures


def fuzz(target: str, argv: list[str]) -> None:
    import atheris  # noqa: PLC0415 (optional: only the coverage-guided run needs it)

    # Coverage of Kairoi's own code (and cronsim's, which parses cron fields): instrumenting
    # every loaded module would take several seconds at each start.
    with atheris.instrument_imports(include=["kairoi", "cronsim"]):
        test_one_input = load(target)
    atheris.Setup([sys.argv[0], *argv], test_one_input)
    atheris.Fuzz()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--replay"]:
        failures = replay(argv[1], [Path(d) for d in argv[2:]])
        for path, trace in failures:
            print(f"{path}:\n{trace}", file=sys.stderr)
        return 1 if failures else 0
    fuzz(argv[0], argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
