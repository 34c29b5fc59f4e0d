"""The fuzzers run, briefly, so that they cannot rot and their first findings show at once.

``make fuzz`` runs them for minutes (docs/security.md#fuzzing). Here each atheris target runs
for a few thousand inputs from its seed corpus, and the socket fuzzer sends 5,000 lines; without
atheris, the seed corpora are replayed and the test then skips (a failure under CI=true).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz import engine, seeds, sockets
from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent.parent
RUNS = {"kcp_session": 2000, "schedules": 3000, "codec": 3000}


def without_atheris() -> None:
    reason = "atheris is not installed (pip install -e '.[fuzz]'): only the seeds were replayed"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the fuzzers")
    pytest.skip(reason)


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_finds_nothing(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    assert seeds.write(target, corpus) > 0, "the docs give every target seeds"
    if importlib.util.find_spec("atheris") is None:
        failures = engine.replay(target, [corpus])
        assert not failures, "\n".join(f"{path}:\n{trace}" for path, trace in failures)
        without_atheris()
    command = [
        sys.executable, "-m", "fuzz.engine", target, f"-runs={RUNS[target]}", "-seed=1",
        "-max_len=2048", f"-artifact_prefix={tmp_path}/", str(corpus),
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    crashes = [path.read_bytes() for path in tmp_path.glob("crash-*")]
    assert result.returncode == 0 and not crashes, f"{crashes}\n{result.stderr[-3000:]}"


def test_socket_fuzzer_finds_nothing(tmp_path: Path) -> None:
    report = sockets.run(5000, connections=4, seed=1, workdir=tmp_path, evidence=tmp_path)
    assert report["replies"] > 1000 and report["jobs_checked"] > 200, report
    assert set(report["max_rss_mib"]) == set(sockets.CHILDREN), report
    assert report["fault_count"] == 0, report
