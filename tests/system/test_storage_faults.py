"""Storage under faults of its own: records on disk it cannot read or handle, a request that
raises, a full disk, a pause longer than a lease. Through `kairoi serve`, with real RocksDB,
real scripts and signals; the storage process keeps its pid throughout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from kairoi.client.kcp import KcpClient
from kairoi.client.server import ServerProcess, Settings
from kairoi.storage import keys
from kairoi.storage.rocks import RocksStore
from tests.conftest import Running, start_server
from tests.support import eventually, pipeline, read_jobs

LATER = "2030-01-01 00:00:00"
LATER_US = 1_893_456_000_000_000
CORRUPT = b"\xc1 not msgpack"


def write_raw(data_dir: Path, batch: dict[bytes, bytes | None]) -> None:
    """Write bytes into a stopped server's database, as a disk fault or a bug would."""
    store = RocksStore(str(data_dir))
    try:
        store.write(batch, sync=True)
    finally:
        store.close()


def restart(running: Running, times: int) -> int:
    running.server.start()
    return running.server.wait_ready(after=times)


def test_records_storage_cannot_read_or_handle_never_stop_it(tmp_path: Path) -> None:
    """A corrupt job, rule, due entry and counts, and a job whose record reads but makes UNSET
    raise: the request that meets one is answered, the rest of its batch is saved, the job is
    quarantined and a second UNSET deletes it."""
    running = start_server(tmp_path)
    try:
        with running.client() as client:
            client.call("RULE", "SET", "r", "app.", "shell", "scripts/example.sh")
            for job_id in ("app.kept", "app.corrupt", "app.poison"):
                assert client.call("SET", job_id, LATER) == ["OK"]
        assert running.server.stop() == 0
        poisoned = {"s": 0, "d": 2**63 + 5, "n": 0}  # it reads well; its due time makes no key
        write_raw(running.server.data_dir, {
            keys.job("app.corrupt"): CORRUPT,
            keys.job("app.poison"): msgpack.packb(poisoned),
            keys.job("app.due"): CORRUPT,  # and due now: claiming meets it at once
            keys.timed(keys.DUE, int(time.time() * 1e6), "app.due"): b"",
            keys.rule("bad"): CORRUPT,
            keys.STATS: CORRUPT,
        })  # fmt: skip
        port = restart(running, 1)
        storage = running.server.child_pid("storage")
        running.server.wait_event("storage.quarantined", "storage", after=1)  # rule, app.due
        replies = pipeline(port, [f"SET app.a{i} \"{LATER}\"" for i in range(3)]
                           + ["UNSET app.poison"]
                           + [f"SET app.b{i} \"{LATER}\"" for i in range(3)])  # fmt: skip
        assert replies[:3] + replies[4:] == [b"%d OK" % i for i in (0, 1, 2, 4, 5, 6)]
        assert replies[3].startswith(b'3 ERROR internal "storage could not apply UnsetJob: ')
        assert b"/" not in replies[3], "no host path in what a client is shown"
        failure = running.server.wait_event("storage.request_failed", "storage")
        assert "struct.error" in failure["exception"], "logged with its traceback"
        with KcpClient("127.0.0.1", port) as client:
            for job_id in ("app.poison", "app.corrupt", "app.due"):
                state = client.call("GET", job_id)
                assert state[:2] == ["OK", "quarantined"] and state[-2] == "REASON", state
            listed, _ = client.call_list("LIST", "app.")
            assert ["app.corrupt", "quarantined"] in [item[1:3] for item in listed]
            assert client.call("RULE", "GET", "bad")[:2] == ["ERROR", "conflict"]
            for job_id in ("app.poison", "app.corrupt", "app.due"):
                assert client.call("UNSET", job_id) == ["OK"]
                assert client.call("GET", job_id)[:2] == ["ERROR", "not_found"]
            assert client.call("RULE", "UNSET", "bad") == ["OK"]
            assert client.call("GET", "app.kept")[:2] == ["OK", "planned"]
        assert running.server.child_pid("storage") == storage
        assert len(running.server.events("service.ready", "storage")) == 2, "no restart"
    finally:
        running.server.stop()
    saved = [f"app.{group}{i}" for group in "ab" for i in range(3)] + ["app.kept"]
    assert all(read_jobs(running.server.data_dir, saved).values()), "every OK is on disk"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of this test's own; skips (fails under CI=true) where mount is denied."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(disk)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the full-disk test")
        pytest.skip(reason)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; the file."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
    return filler


def stats(client: KcpClient) -> dict[str, str]:
    return dict(word.split("=") for word in client.call("STATS")[1:])


def test_writes_are_taken_again_once_a_full_disk_has_room(tmp_path: Path, small_disk: Path) -> None:
    database = small_disk / "data"
    running = start_server(tmp_path, {"database": {"path": str(database)}})
    try:
        pids = {name: running.server.child_pid(name) for name in ("storage", "frontend")}
        kept = [f"before.{i}" for i in range(100)]
        with running.client() as client:
            for job_id in kept:
                assert client.call("SET", job_id, LATER) == ["OK"]
            filler = fill(small_disk)
            refused: list[str] = eventually(
                lambda: ((reply := client.call("SET", "full", LATER)) != ["OK"] and reply) or []
            )
            assert refused[:2] == ["ERROR", "internal"], refused
            assert "No space left on device" in refused[2] and str(tmp_path) not in refused[2]
            assert stats(client)["writable"] == "0" and int(stats(client)["write_errors"]) >= 1
            running.server.wait_event("storage.write_failed", "storage")
            filler.unlink()
            eventually(lambda: client.call("SET", "after", LATER) == ["OK"])
            assert stats(client)["writable"] == "1"
            running.server.wait_event("storage.write_recovered", "storage")
            assert all(client.call("GET", job_id)[1] == "planned" for job_id in kept)
        assert {name: running.server.child_pid(name) for name in pids} == pids
        assert len(running.server.events("service.ready", "storage")) == 1, "never restarted"
    finally:
        running.server.stop()
    assert all(read_jobs(database, [*kept, "after"]).values()), "every OK is on disk"


def executed(client: KcpClient, job_id: str) -> list[str]:
    """GET's words for the job, once its last run is recorded executed."""
    return eventually(lambda: ((got := client.call("GET", job_id))[1] == "executed" and got) or [])


LONG = 'echo "start $1 $KAIROI_RUN" >> ran.txt\nsleep 1\necho "end $1" >> ran.txt\n'
"""A script that outlives the moment storage is stopped, and ends while it is."""


def test_a_run_that_ends_while_storage_is_stopped_is_not_run_again(tmp_path: Path) -> None:
    """Fault: runs that ended while storage was down for longer than the lease ran again,
    though their runner held the outcome."""
    lease = 1.5
    running = start_server(tmp_path, {"runners": {"lease": lease}})
    ran = tmp_path / "ran.txt"
    try:
        (tmp_path / "scripts" / "long.sh").write_text(LONG)
        pids = {name: running.server.child_pid(name) for name in ("storage", "runner-0")}
        with running.client() as client:
            assert client.call("RULE", "SET", "r", "long", "shell", "scripts/long.sh") == ["OK"]
            assert client.call("SET", "long", "2020-01-01 00:00:00") == ["OK"]  # due at once
            eventually(lambda: ran.exists() and "start" in ran.read_text())
            os.kill(pids["storage"], signal.SIGSTOP)
            try:
                stopped = time.monotonic()
                eventually(lambda: "end" in ran.read_text())  # it ended, storage away
                time.sleep(max(0.0, 3 * lease - (time.monotonic() - stopped)))  # the fault
            finally:
                os.kill(pids["storage"], signal.SIGCONT)
            state = executed(client, "long")
            assert state[3] == "1", f"run 1 executed, not run again: {state}"
            history, _ = client.call_list("RUNS", "long")
            assert [item[1:2] + item[5:6] for item in history] == [["1", "executed"]], history
        assert ran.read_text().count("start") == 1, "the script ran once"
        assert {name: running.server.child_pid(name) for name in pids} == pids
        assert running.server.events("storage.stood_still", "storage")
        assert not running.server.events("run.lost")
    finally:
        running.server.stop()


def test_a_run_that_ends_while_storage_is_down_is_not_run_again(tmp_path: Path) -> None:
    """The same with storage killed and started again only after a lease (each process on
    its own, as under a Procfile, so that nothing restarts it sooner), and the runner that
    holds the outcome slow to come back: it still has a lease to."""
    lease = 2.0
    runtime_dir = str(tmp_path / "run")
    settings: Settings = {"runners": {"lease": lease}}
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "long.sh").write_text(LONG)
    ran = tmp_path / "ran.txt"
    names = ("storage", "dispatcher", "runner", "frontend")
    processes = {name: ServerProcess(tmp_path, settings, name, runtime_dir) for name in names}
    try:
        for name, process in processes.items():
            process.start().wait_event("service.ready", name if name != "runner" else None)
        storage, runner = processes["storage"], processes["runner"].process
        assert runner is not None
        ready = processes["frontend"].events("service.ready", "frontend")[0]
        with KcpClient("127.0.0.1", int(ready["listen"].rpartition(":")[2])) as client:
            assert client.call("RULE", "SET", "r", "long", "shell", "scripts/long.sh") == ["OK"]
            assert client.call("SET", "long", "2020-01-01 00:00:00") == ["OK"]  # due at once
            eventually(lambda: ran.exists() and "start" in ran.read_text())
            storage.process.kill()  # type: ignore[union-attr]
            killed = time.monotonic()
            eventually(lambda: "end" in ran.read_text())  # it ended while storage was down
            runner.send_signal(signal.SIGSTOP)
            try:
                time.sleep(max(0.0, 1.25 * lease - (time.monotonic() - killed)))  # the fault
                storage.start().wait_event("service.ready", "storage", after=1)
                time.sleep(lease / 4)  # the dispatcher claims at once; the runner is not there
            finally:
                runner.send_signal(signal.SIGCONT)
            state = executed(client, "long")
            assert state[3] == "1", f"run 1 executed, not run again: {state}"
            history, _ = client.call_list("RUNS", "long")
        assert [item[1:2] + item[5:6] for item in history] == [["1", "executed"]], history
        assert ran.read_text().count("start") == 1, "the script ran once"
        assert runner.poll() is None, "the runner was never restarted"
    finally:
        for process in reversed(processes.values()):
            process.stop()
