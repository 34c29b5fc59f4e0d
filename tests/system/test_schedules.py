"""Recurring, retried and dependent jobs, and job files, through `kairoi serve`: real
processes, real scripts, real time."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from kairoi.client.kcp import KcpClient
from tests.conftest import Running, start_server
from tests.support import eventually

RECORD = 'echo "$1 $KAIROI_RUN $(date +%s%N)" >> ran.txt\n'
"""Records the job id, the run number and when it started (ns)."""


def script(running: Running, name: str, body: str) -> str:
    (running.server.workdir / "scripts" / name).write_text(body)
    return f"scripts/{name}"


def ran(running: Running, job_id: str) -> list[tuple[int, float]]:
    """(run, start in seconds) of each run of ``job_id`` so far."""
    path = running.server.workdir / "ran.txt"
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines() if line]
    return [(int(run), int(ns) / 1e9) for job, run, ns in lines if job == job_id]


def iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat().replace("+00:00", "Z")


def reference_time(seconds_from_now: float) -> str:
    """The reference SET's ``YYYY-MM-DD HH:MM:SS`` (UTC) that far from now."""
    return datetime.fromtimestamp(time.time() + seconds_from_now, UTC).strftime("%Y-%m-%d %H:%M:%S")


def runs(client: KcpClient, job_id: str) -> list[list[str]]:
    """RUNS' lines for the job, oldest first: [RUN, run, due, started, finished, outcome…]."""
    items, last = client.call_list("RUNS", job_id)
    assert last[0] == "OK", last
    return list(reversed(items))


def test_a_cron_job_with_seconds_fires_once_each_second(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    try:
        with running.client() as client:
            client.call("RULE", "SET", "r", "tick", "shell", script(running, "r.sh", RECORD))
            assert client.call("SET", "tick", "cron:* * * * * *") == ["OK"]
            time.sleep(5.5)
            assert client.call("UNSET", "tick") == ["OK"]
        starts = [start for _, start in ran(running, "tick")]
        seconds = [int(start) for start in starts]
        assert 5 <= len(starts) <= 6
        assert len(set(seconds)) == len(seconds), "once per second"
        assert all(start - int(start) < 0.5 for start in starts), "at the start of its second"
        assert seconds == list(range(seconds[0], seconds[0] + len(seconds))), "every second"
    finally:
        running.server.stop()


def test_an_interval_r2_fires_exactly_three_times(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    try:
        with running.client() as client:
            client.call("RULE", "SET", "r", "r2", "shell", script(running, "r.sh", RECORD))
            start = int(time.time()) + 2
            assert client.call("SET", "r2", f"R2/{iso(start)}/PT1S") == ["OK"]
            eventually(lambda: client.call("GET", "r2")[1] == "executed", timeout=10)
            time.sleep(1.5)
        starts = [start_s for _, start_s in ran(running, "r2")]
        assert [int(s) for s in starts] == [start, start + 1, start + 2]
    finally:
        running.server.stop()


def test_a_job_retried_twice_ends_executed_after_three_runs(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    flaky = 'n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ "$n" -ge 3 ]\n'
    try:
        with running.client() as client:
            client.call("RULE", "SET", "r", "flaky", "shell", script(running, "f.sh", flaky))
            now = reference_time(1)
            assert client.call("SET", "flaky", now, "RETRIES", "2", "BACKOFF", "PT1S") == ["OK"]
            assert client.call("GET", "flaky")[6:] == [now, "RETRIES", "2", "BACKOFF", "PT1S"]
            eventually(lambda: client.call("GET", "flaky")[1] == "executed", timeout=15)
            history = runs(client, "flaky")
        assert [run[1] for run in history] == ["1", "2", "3"]
        assert [run[5] for run in history] == ["failed", "failed", "executed"]
    finally:
        running.server.stop()


def test_a_child_after_two_parents_runs_once_after_both(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    try:
        with running.client() as client:
            client.call("RULE", "SET", "r", "", "shell", script(running, "r.sh", RECORD))
            first = reference_time(1)
            second = reference_time(2)
            client.call("SET", "parent.a", first)
            client.call("SET", "parent.b", second)
            assert client.call("SET", "child", "AFTER", "parent.a", "parent.b") == ["OK"]
            assert client.call("GET", "child")[1] == "waiting"
            eventually(lambda: ran(running, "child"), timeout=10)
            time.sleep(1.0)
            assert client.call("UNSET", "parent.a")[:2] == ["ERROR", "conflict"]
            assert client.call("UNSET", "parent.a", "CASCADE") == ["OK"]
            assert client.call("GET", "child")[:2] == ["ERROR", "not_found"]
        (child_run,) = ran(running, "child")
        (a_run,), (b_run,) = ran(running, "parent.a"), ran(running, "parent.b")
        assert child_run[1] > max(a_run[1], b_run[1])
    finally:
        running.server.stop()


def test_a_server_down_across_three_cron_seconds_runs_one_catch_up(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    try:
        with running.client() as client:
            client.call("RULE", "SET", "r", "tick", "shell", script(running, "r.sh", RECORD))
            client.call("SET", "tick", "cron:* * * * * *", "MISSED", "once")
            time.sleep(2.2)
        stopping = time.time()
        assert running.server.stop() == 0
        time.sleep(3.2)
        running.server.start()
        port = running.server.wait_ready(after=1)
        restarted = time.time()
        time.sleep(2.5)
        with KcpClient("127.0.0.1", port) as client:
            client.call("DISABLE", "tick")
            history = runs(client, "tick")
        # A catch-up starts seconds after the occurrence it stands for; every other run starts
        # at its second (however long the stop itself took, which a loaded machine stretches).
        late = [run for run in history if _instant(run[3]) - _instant(run[2]) > 1.5]
        assert len(late) == 1, f"one catch-up for the seconds it was down: {history}"
        assert stopping - 1 < _instant(late[0][2]) < restarted, "for a second it was down"
        assert _instant(late[0][3]) >= restarted - 0.5, "run once it was back"
        dues = [run[2] for run in history]
        assert len(dues) == len(set(dues)), f"no second ran twice: {history}"
    finally:
        running.server.stop()


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


JOBS = """\
jobs:
  - id: file.a
    schedule: "2030-01-01T00:00:00Z"
    shell: scripts/r.sh
  - id: file.b
    schedule: "cron:0 0 3 * * *"
    tz: Europe/Paris
    shell: scripts/r.sh
"""


def test_a_job_file_is_loaded_then_reloaded_on_sighup_and_a_bad_edit_is_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "jobs.yaml").write_text(JOBS)
    running = start_server(tmp_path, {"jobs": {"files": ["jobs.yaml"]}})
    try:
        script(running, "r.sh", RECORD)
        with running.client() as client:
            eventually(lambda: client.call("GET", "file.b")[0] == "OK")
            assert "FILE" in client.call("GET", "file.a")
            (tmp_path / "jobs.yaml").write_text(JOBS.replace("file.a", "file.c"))
            running.server.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
            eventually(lambda: client.call("GET", "file.c")[0] == "OK")
            assert client.call("GET", "file.a")[:2] == ["ERROR", "not_found"], "dropped"
            (tmp_path / "jobs.yaml").write_text(JOBS + "  - id: broken\n    after: [ghost]\n")
            running.server.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
            refused = eventually(lambda: running.server.events("jobs.refused", "frontend"))
            assert refused[0]["line"] == 9 and "ghost" in refused[0]["reason"]
            assert client.call("GET", "broken")[:2] == ["ERROR", "not_found"]
            assert client.call("GET", "file.c")[0] == "OK", "the running set is kept"
            assert client.call("GET", "file.a")[:2] == ["ERROR", "not_found"]
    finally:
        running.server.stop()
