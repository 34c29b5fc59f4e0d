"""Issue 13 through `kairoi serve`: a client cannot make the shell runner run what it should
not (option-like script names, hostile job ids, symlinks, rules older than the allow-list, a
request straight on the storage socket), and a refusal tells no host path. Every test checks
that no process restarted and that the connection still works."""

from __future__ import annotations

import asyncio
import functools
import os
from pathlib import Path

from kairoi import messages
from kairoi.bus import RequestClient
from kairoi.client.kcp import KcpClient
from kairoi.client.server import ServerProcess, Settings
from tests.conftest import Running, start_server
from tests.support import eventually

RECORD_CALL = 'f=$(mktemp got/XXXXXX)\nprintf "%s|%s|%s" "$0" "$#" "$1" > "$f"\n'
"""Each run leaves a file of its own holding $0, the argument count and $1, exactly."""
PAST = "2020-01-01 00:00:00"
REFUSED = ["/bin/rm", "../x.sh", "scripts/escape.sh", "scripts/../../x.sh"]
"""Scripts outside the default allow-list (the working directory), one through a symlink."""


def calls(workdir: Path) -> set[str]:
    return {path.read_text() for path in (workdir / "got").iterdir()}


def test_option_named_scripts_and_hostile_job_ids_run_as_data(tmp_path: Path) -> None:
    """The reference ran ``sh -c <job id>`` for a script named ``-c``: the job id was code."""
    marker = tmp_path / "marker"
    touch = f"touch {marker}"
    (tmp_path / "got").mkdir()
    names = ["-c", "-x", "--", "-", "-s"]
    for name in names:
        (tmp_path / name).write_text(RECORD_CALL)
    running = start_server(tmp_path)
    try:
        before = running.pids()
        jobs: dict[str, str] = {}  # job id -> script
        with running.client() as client:
            # "-c" takes every job no other rule takes, so job ids may start with "-" too.
            for index, name in enumerate(names):
                pattern = "" if name == "-c" else f"opt{index}."
                assert client.call("RULE", "SET", f"r{index}", pattern, "shell", name) == ["OK"]
                jobs[f"opt{index}.; {touch}" if pattern else "-c"] = name
            hostile = [f"-c {touch}", "--", "-", f"$({touch})", f"`{touch}`", f"nl\n{touch}\n"]
            for job_id in [*hostile, f"a b 'c' \"d\" \\ | {touch}"]:
                jobs[job_id] = "-c"
            for job_id in jobs:
                assert client.call("SET", job_id, PAST) == ["OK"]
            eventually(lambda: len(list((tmp_path / "got").iterdir())) == len(jobs))
            assert calls(tmp_path) == {f"{tmp_path}/{jobs[j]}|1|{j}" for j in jobs}
            assert client.call("SET", "nul\0id", PAST) == ["OK"]
            [run] = eventually(functools.partial(runs_of, client, "nul\0id"))
            assert run[5:9] == [
                "failed",
                "-",
                "scheduled",
                "not run: a job id holding a NUL byte cannot reach sh",
            ]
            assert client.call("PING") == ["OK", "PONG"]
        assert not marker.exists(), "a job id ran as a command"
        assert running.pids() == before
    finally:
        running.server.stop()


def test_a_refused_script_tells_no_host_path_and_symlinks_count_by_their_target(
    tmp_path: Path,
) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside.sh"
    outside.write_text("exit 0\n")
    running = start_server(tmp_path)
    try:
        before = running.pids()
        os.symlink(outside, tmp_path / "scripts" / "escape.sh")
        os.symlink("example.sh", tmp_path / "scripts" / "inner.sh")
        with running.client() as client:
            for script in REFUSED:
                reason = f"script {script!r} is not allowed by runners.shell.allow"
                reply = client.call("RULE", "SET", "r", "p.", "shell", script)
                assert reply == ["ERROR", "forbidden", reason]
                assert str(tmp_path) not in reason
            assert client.call("RULE", "GET", "r")[:2] == ["ERROR", "not_found"]
            assert client.call("RULE", "SET", "r", "p.", "shell", "scripts/inner.sh") == ["OK"]
            real = str((tmp_path / "scripts" / "example.sh").resolve())
            assert real in client.call("RULE", "GET", "r"), "stored as its real path"
        refused = running.server.events("shell.script_refused", "frontend")
        assert [event["script"] for event in refused] == REFUSED
        assert refused[2]["real_path"] == str(outside.resolve()), "the details stay in the log"
        assert running.pids() == before
    finally:
        running.server.stop()
        outside.unlink()


def runs_of(client: KcpClient, job_id: str) -> list[list[str]]:
    """The words of each RUN line of ``job_id`` (none before its first run ends)."""
    return client.call_list("RUNS", job_id)[0]


def restart(running: Running, settings: Settings) -> Running:
    """Stop ``running`` and start its data again with ``settings``."""
    assert running.server.stop() == 0
    server = ServerProcess(running.server.workdir, settings).start()
    return Running(server, server.wait_ready(after=1))


def test_a_rule_older_than_the_allow_list_or_its_symlink_fails_its_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    (tmp_path / "jobs").mkdir()
    for path in (tmp_path / "scripts" / "old.sh", tmp_path / "jobs" / "other.sh"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"touch {marker}\n")
    (tmp_path / "jobs" / "swap.sh").write_text("exit 0\n")
    running = start_server(tmp_path)
    with running.client() as client:
        assert client.call("RULE", "SET", "old", "old.", "shell", "scripts/old.sh") == ["OK"]
        assert client.call("RULE", "SET", "swap", "swap.", "shell", "jobs/swap.sh") == ["OK"]
    (tmp_path / "jobs" / "swap.sh").unlink()
    os.symlink("other.sh", tmp_path / "jobs" / "swap.sh")  # allowed, but not what was set
    running = restart(running, {"runners.shell": {"allow": ["jobs/*.sh"]}})
    try:
        before = running.pids()
        with running.client() as client:
            for job_id in ("old.1", "swap.1"):
                assert client.call("SET", job_id, PAST) == ["OK"]
            for job_id, why in [
                ("old.1", "is not allowed by runners.shell.allow"),
                ("swap.1", "is not its own real path any more"),
            ]:
                runs = eventually(functools.partial(runs_of, client, job_id))
                assert runs[0][5] == "failed" and runs[0][6] == "-"
                assert runs[0][8].startswith("not run: script ") and why in runs[0][8]
            assert client.call("PING") == ["OK", "PONG"]
        assert not marker.exists()
        assert running.pids() == before
    finally:
        running.server.stop()


async def ask_storage(endpoint: str, request: messages.Request) -> messages.Message:
    client = RequestClient(endpoint)
    try:
        while not client.try_send([(1, request)]):
            await asyncio.sleep(0.02)
        [(_, reply)] = await asyncio.wait_for(client.receive(), 10)
        return reply
    finally:
        client.close()


def test_storage_refuses_a_rule_sent_straight_to_its_socket(tmp_path: Path) -> None:
    """The internal bus is a door too: any process that can open the socket could send it."""
    running = start_server(tmp_path)
    try:
        before = running.pids()
        endpoint = f"ipc://{running.server.runtime_dir}/storage.sock"
        os.symlink("/bin/sh", tmp_path / "scripts" / "escape.sh")
        for script in ["/bin/sh", "../x.sh", "scripts/escape.sh"]:
            request = messages.SetShellRule(rule_id="x", pattern="", script=script)
            assert asyncio.run(ask_storage(endpoint, request)) == messages.Failed(
                code="forbidden", reason=f"script {script!r} is not allowed by runners.shell.allow"
            )
        accepted = messages.SetShellRule(rule_id="y", pattern="", script="-c")
        assert asyncio.run(ask_storage(endpoint, accepted)) == messages.Ok()
        with running.client() as client:
            assert client.call("RULE", "GET", "x")[:2] == ["ERROR", "not_found"]
            assert f"{tmp_path.resolve()}/-c" in client.call("RULE", "GET", "y"), "its real path"
        assert running.server.events("shell.script_refused", "storage")
        assert running.pids() == before
    finally:
        running.server.stop()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def runner_ready(running: Running, after: int) -> dict[str, object]:
    """The ``after``-th (from 0) ``service.ready`` of the runner process ``runner-0``."""
    return running.server.wait_event("service.ready", "runner", after=after)


def test_two_servers_runners_of_one_name_never_kill_each_other_s_scripts(
    tmp_path: Path,
) -> None:
    """Issue 13: a runner starting killed every process whose environment named its runner
    name, whichever server had started it."""
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    a = start_server(a_dir)
    b: Running | None = None
    try:
        (a_dir / "scripts" / "long.sh").write_text("echo $$ >> long.pid\nexec sleep 60\n")
        with a.client() as client:
            assert client.call("RULE", "SET", "r", "long.", "shell", "scripts/long.sh") == ["OK"]
            assert client.call("SET", "long.1", PAST) == ["OK"]
        pid_file = a_dir / "long.pid"
        eventually(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"))
        script = int(pid_file.read_text().split()[0])
        b = start_server(b_dir)  # its runner-0 starts while A's script runs
        b_first = runner_ready(b, 0)
        os.kill(b.server.child_pid("runner-0"), 9)
        assert runner_ready(b, 1)["leftovers_killed"] == 0
        assert b_first["key"] != runner_ready(a, 0)["key"]
        assert alive(script), "B's runner, started and restarted, left A's script alone"
        os.kill(a.server.child_pid("runner-0"), 9)
        assert runner_ready(a, 1)["leftovers_killed"] == 1, "A's own leftover is still killed"
        eventually(lambda: not alive(script))
    finally:
        a.server.stop()
        if b is not None:
            b.server.stop()
