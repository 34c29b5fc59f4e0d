"""The fire path through `kairoi serve`: due jobs run on time, at least once, never early,
and survive the death of any process."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kairoi.client.server import ServerProcess
from kairoi.domain import Job, JobStatus, Outcome
from tests.conftest import Running, start_server
from tests.support import eventually, read_jobs

RECORD = 'echo "$1 $(date +%s%N)" >> ran.txt\n'
"""A script that records its job id and the instant it started, in nanoseconds."""


def write_script(running: Running, name: str, body: str) -> str:
    path = running.server.workdir / "scripts" / name
    path.write_text(body)
    return f"scripts/{name}"


def fast_server(tmp_path: Path, **shell: object) -> Running:
    """A server whose leases are short, so lost runs come back within seconds."""
    return start_server(tmp_path, {"runners": {"lease": 1.5}, "runners.shell": dict(shell)})


def send(running: Running, lines: list[str]) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
        sock.sendall("".join(f"{i} {line}\n" for i, line in enumerate(lines)).encode())
        received = b""
        while received.count(b"\n") < len(lines):
            chunk = sock.recv(1 << 20)
            assert chunk, "connection closed"
            received += chunk
    return received.splitlines()


def at(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%d %H:%M:%S")


def ran(running: Running) -> list[tuple[str, int]]:
    """(job id, start in µs) of every run so far."""
    path = running.server.workdir / "ran.txt"
    if not path.exists():
        return []
    lines = [line.rsplit(" ", 1) for line in path.read_text().splitlines() if line]
    return [(job_id, int(nanos) // 1000) for job_id, nanos in lines]


def final_jobs(running: Running, job_ids: list[str]) -> dict[str, Job | None]:
    """Stop the server gracefully, then read the jobs from its database."""
    assert running.server.stop() == 0
    return read_jobs(running.server.data_dir, job_ids)


def statuses(jobs: dict[str, Job | None]) -> dict[str, JobStatus | None]:
    return {job_id: None if job is None else job.status for job_id, job in jobs.items()}


def test_user_story_a_job_runs_at_its_second(tmp_path: Path) -> None:
    running = fast_server(tmp_path)
    try:
        write_script(running, "example.sh", RECORD)
        write_script(running, "fail.sh", "exit 3\n")
        due = int(time.time()) + 2
        assert send(running, [
            "RULE SET app.rule.default app. shell scripts/example.sh",
            f'SET app.domain.job.1 "{at(due)}"',
            'SET app.past "2020-01-01 00:00:00"',
            'SET nobody.1 "2020-01-01 00:00:00"',
            "RULE SET f fail. shell scripts/fail.sh",
            'SET fail.1 "2020-01-01 00:00:00"',
        ]) == [b"%d OK" % i for i in range(6)]  # fmt: skip
        eventually(lambda: len(ran(running)) == 2)
        runs = dict(ran(running))
        assert runs["app.domain.job.1"] >= due * 1_000_000, "never early"
        assert runs["app.domain.job.1"] < (due + 1) * 1_000_000, "at its second"
    finally:
        jobs = final_jobs(running, ["app.domain.job.1", "app.past", "nobody.1", "fail.1"])
    assert statuses(jobs) == {
        "app.domain.job.1": JobStatus.EXECUTED,
        "app.past": JobStatus.EXECUTED,
        "nobody.1": JobStatus.FAILED,
        "fail.1": JobStatus.FAILED,
    }


def test_a_thousand_jobs_due_in_the_same_second_all_run_none_early(tmp_path: Path) -> None:
    running = fast_server(tmp_path)
    job_ids = [f"burst.{i}" for i in range(1000)]
    try:
        write_script(running, "record.sh", RECORD)
        due = int(time.time()) + 2
        lines = ["RULE SET r burst. shell scripts/record.sh"]
        lines += [f'SET {job_id} "{at(due)}"' for job_id in job_ids]
        assert all(reply.endswith(b" OK") for reply in send(running, lines))
        eventually(lambda: len(ran(running)) >= 1000, timeout=60)
        runs = ran(running)
        assert {job_id for job_id, _ in runs} == set(job_ids)
        assert min(start for _, start in runs) >= due * 1_000_000
    finally:
        jobs = final_jobs(running, job_ids)
    assert set(statuses(jobs).values()) == {JobStatus.EXECUTED}


def test_failures_exit_status_missing_script_and_timeout(tmp_path: Path) -> None:
    running = fast_server(tmp_path, timeout=1.0)
    try:
        write_script(running, "three.sh", "exit 3\n")
        write_script(running, "hang.sh", "sleep 31.5 &\nsleep 31.5\n")
        write_script(running, "ok.sh", "exit 0\n")
        started = time.monotonic()
        assert all(reply.endswith(b" OK") for reply in send(running, [
            "RULE SET a three. shell scripts/three.sh",
            "RULE SET b missing. shell scripts/absent.sh",
            "RULE SET c hang. shell scripts/hang.sh",
            "RULE SET d ok. shell scripts/ok.sh",
            'SET three.1 "2020-01-01 00:00:00"',
            'SET missing.1 "2020-01-01 00:00:00"',
            'SET hang.1 "2020-01-01 00:00:00"',
            'SET ok.1 "2020-01-01 00:00:00"',
        ]))  # fmt: skip
        eventually(lambda: _pids_of("sleep 31.5"), timeout=5)
        eventually(lambda: not _pids_of("sleep 31.5"), timeout=5)
        assert time.monotonic() - started < 4, "killed at the timeout, children included"
    finally:
        jobs = final_jobs(running, ["three.1", "missing.1", "hang.1", "ok.1"])
    assert statuses(jobs) == {
        "three.1": JobStatus.FAILED,
        "missing.1": JobStatus.FAILED,
        "hang.1": JobStatus.FAILED,
        "ok.1": JobStatus.EXECUTED,
    }
    assert {job_id: job.last_outcome for job_id, job in jobs.items() if job} == {
        "three.1": Outcome.FAILED,
        "missing.1": Outcome.FAILED,
        "hang.1": Outcome.TIMED_OUT,
        "ok.1": Outcome.EXECUTED,
    }


def _pids_of(cmdline: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().replace(
                    b"\0", b" "
                ).strip() == cmdline.encode():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_killed_runner_s_run_runs_again_and_ends_executed(tmp_path: Path) -> None:
    """Fault 14: the reference left the child running and ran it again concurrently."""
    running = fast_server(tmp_path)
    try:
        write_script(
            running, "slow.sh", 'echo "start $1" >> log.txt\nsleep 2.5\necho "end $1" >> log.txt\n'
        )
        send(
            running, ["RULE SET r slow. shell scripts/slow.sh", 'SET slow.1 "2020-01-01 00:00:00"']
        )
        log = running.server.workdir / "log.txt"
        eventually(lambda: log.exists() and "start" in log.read_text())
        os.kill(running.server.child_pid("runner-0"), signal.SIGKILL)
        eventually(lambda: log.read_text().count("start") == 2, timeout=15)
        eventually(lambda: "end" in log.read_text(), timeout=10)
        time.sleep(3)  # the first run's sleep, had it survived, would have ended by now
        assert log.read_text().splitlines() == ["start slow.1", "start slow.1", "end slow.1"]
    finally:
        jobs = final_jobs(running, ["slow.1"])
    job = jobs["slow.1"]
    assert job is not None and job.status is JobStatus.EXECUTED and job.run == 2


@pytest.mark.parametrize("victim", ["dispatcher", "storage"])
def test_killing_a_process_while_500_jobs_fire_loses_none(tmp_path: Path, victim: str) -> None:
    running = fast_server(tmp_path)
    job_ids = [f"fire.{i}" for i in range(500)]
    try:
        write_script(running, "record.sh", RECORD)
        due = time.time() + 1.5
        lines = ["RULE SET r fire. shell scripts/record.sh"]
        lines += [f'SET {job_id} "{at(due + i // 250)}"' for i, job_id in enumerate(job_ids)]
        assert all(reply.endswith(b" OK") for reply in send(running, lines))
        eventually(lambda: len(ran(running)) >= 50, timeout=20)
        os.kill(running.server.child_pid(victim), signal.SIGKILL)
        eventually(lambda: {job_id for job_id, _ in ran(running)} == set(job_ids), timeout=60)
    finally:
        jobs = final_jobs(running, job_ids)
    assert set(statuses(jobs).values()) == {JobStatus.EXECUTED}


@pytest.mark.timeout(180)  # 10,000 scripts to start: ~20 s here, more on a loaded machine
def test_storage_killed_mid_pipeline_every_acknowledged_job_runs(tmp_path: Path) -> None:
    running = start_server(
        tmp_path, {"runners": {"lease": 1.5}, "controller": {"request_timeout": 2.0}}
    )
    count = 10_000
    try:
        write_script(running, "record.sh", 'echo "$1 0" >> ran.txt\n')
        assert send(running, ["RULE SET r kill. shell scripts/record.sh"]) == [b"0 OK"]
        due = at(time.time() + 3)
        data = b"".join(b'%d SET kill.%d "%s"\n' % (i, i, due.encode()) for i in range(count))
        with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
            threading.Thread(target=sock.sendall, args=(data,), daemon=True).start()
            received, killed = b"", False
            while received.count(b"\n") < count:
                chunk = sock.recv(65536)
                assert chunk
                received += chunk
                if not killed and received.count(b"\n") > count // 3:
                    os.kill(running.server.child_pid("storage"), signal.SIGKILL)
                    killed = True
        acknowledged = {
            f"kill.{i}" for i, line in enumerate(received.splitlines()) if line == b"%d OK" % i
        }
        assert len(acknowledged) >= count // 3
        eventually(lambda: acknowledged <= {job_id for job_id, _ in ran(running)}, timeout=120)
    finally:
        running.server.stop()


def test_a_due_job_never_waits_behind_a_busy_runner_while_another_is_idle(tmp_path: Path) -> None:
    running = start_server(
        tmp_path, {"runners": {"processes": 2, "lease": 1.5}, "runners.shell": {"concurrency": 1}}
    )
    try:
        running.server.wait_event("runner.joined", "dispatcher", after=1)
        write_script(running, "slow.sh", 'echo "$1 $(date +%s%N)" >> ran.txt\nsleep 3\n')
        write_script(running, "quick.sh", RECORD)
        due = int(time.time()) + 1
        send(running, [
            "RULE SET s slow. shell scripts/slow.sh",
            "RULE SET q quick. shell scripts/quick.sh",
            f'SET slow.1 "{at(due)}"',
            f'SET quick.1 "{at(due + 1)}"',
        ])  # fmt: skip
        eventually(lambda: len(ran(running)) == 2, timeout=10)
        runs = dict(ran(running))
        assert runs["quick.1"] - (due + 1) * 1_000_000 < 500_000, "it ran on the idle runner"
    finally:
        running.server.stop()


def test_stopping_kairoi_kills_running_scripts(tmp_path: Path) -> None:
    """Fault 14: the reference left its children running after it died."""
    running = fast_server(tmp_path)
    try:
        write_script(running, "long.sh", "sleep 41.5\n")
        send(
            running, ["RULE SET r long. shell scripts/long.sh", 'SET long.1 "2020-01-01 00:00:00"']
        )
        eventually(lambda: _pids_of("sleep 41.5"), timeout=10)
    finally:
        jobs = final_jobs(running, ["long.1"])
    assert not _pids_of("sleep 41.5"), "no script outlives its runner"
    job = jobs["long.1"]
    assert job is not None and job.status is JobStatus.TRIGGERED, "it runs again at the next start"


def test_script_output_goes_to_the_runner_log_bounded(tmp_path: Path) -> None:
    running = start_server(tmp_path, {"runners.shell": {"output_bytes": 64}})
    try:
        write_script(running, "chatty.sh", 'seq 1 1000\necho "last words of $1"\n')
        send(
            running,
            ["RULE SET r chatty. shell scripts/chatty.sh", 'SET chatty.1 "2020-01-01 00:00:00"'],
        )
        (output,) = [running.server.wait_event("run.output", "runner")]
        assert output["job"] == "chatty.1"
        assert output["output"].endswith("last words of chatty.1\n")
        assert len(output["output"].encode()) <= 64
    finally:
        running.server.stop()


def test_a_runner_on_another_host_connects_over_tcp(tmp_path: Path) -> None:
    """Runners elsewhere point at the dispatcher's tcp:// endpoint (here: the same host)."""
    running = start_server(
        tmp_path,
        {
            "runners": {"processes": 0, "lease": 1.5},
            "dispatcher": {"endpoint": "tcp://127.0.0.1:*"},
        },
    )
    remote: ServerProcess | None = None
    try:
        dispatcher = running.server.wait_event("service.ready", "dispatcher")["endpoint"]
        assert dispatcher.startswith("tcp://127.0.0.1:")
        write_script(running, "record.sh", RECORD)
        send(
            running, ["RULE SET r far. shell scripts/record.sh", 'SET far.1 "2020-01-01 00:00:00"']
        )
        remote = ServerProcess(
            running.server.workdir,
            {"dispatcher": {"endpoint": dispatcher}},
            command="runner",
            runtime_dir=running.server.runtime_dir,  # storage stays on its ipc:// socket
        ).start()
        eventually(lambda: [job_id for job_id, _ in ran(running)] == ["far.1"], timeout=10)
    finally:
        if remote is not None:
            remote.stop()
        running.server.stop()


def test_set_on_a_running_job_is_a_conflict_and_changes_nothing(tmp_path: Path) -> None:
    running = fast_server(tmp_path)
    try:
        write_script(running, "slow.sh", 'echo "start" >> log.txt\nsleep 1.5\n')
        send(
            running, ["RULE SET r slow. shell scripts/slow.sh", 'SET slow.1 "2020-01-01 00:00:00"']
        )
        log = running.server.workdir / "log.txt"
        eventually(log.exists)
        (reply,) = send(running, ['SET slow.1 "2030-01-01 00:00:00"'])
        assert reply.startswith(b"0 ERROR conflict \"job 'slow.1' is running")
        time.sleep(2.5)
    finally:
        jobs = final_jobs(running, ["slow.1"])
    job = jobs["slow.1"]
    assert (
        job is not None and job.status is JobStatus.EXECUTED and job.due_us < 2_000_000_000_000_000
    )


def test_a_run_waiting_for_a_slot_longer_than_its_lease_runs_once(tmp_path: Path) -> None:
    """Runs the dispatcher holds while every slot is busy keep their leases: not taken for
    lost (and run twice) when the wait outlasts the lease."""
    running = fast_server(tmp_path, concurrency=1)
    try:
        write_script(running, "slow.sh", RECORD + "sleep 4\n")
        due = int(time.time()) + 1
        send(running, [
            "RULE SET s slow. shell scripts/slow.sh",
            *(f'SET slow.{i} "{at(due)}"' for i in range(2)),
        ])  # fmt: skip
        eventually(lambda: len(running.server.events("run.recorded", "storage")) == 2, timeout=20)
        assert sorted(job_id for job_id, _ in ran(running)) == ["slow.0", "slow.1"]
    finally:
        jobs = final_jobs(running, ["slow.0", "slow.1"])
    assert [(job.status, job.run) for job in jobs.values() if job] == [(JobStatus.EXECUTED, 1)] * 2
