"""Issue 13: the shell allow-list judges a script by its real path, says why without telling a
client the server's paths, and storage checks it too (the bus is a door as well)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from kairoi import messages
from kairoi.domain import ShellRunner
from kairoi.errors import Forbidden, InvalidRequest
from kairoi.scripts import ScriptPolicy
from kairoi.storage.engine import Engine
from kairoi.storage.kv import MemoryStore


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``scripts/`` (allowed) holding ``a.sh``, ``escape.sh`` → ``../outside.sh``, ``inner.sh``
    → ``a.sh``; ``outside.sh`` beside it."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "a.sh").write_text("exit 0\n")
    (tmp_path / "outside.sh").write_text("exit 0\n")
    os.symlink(tmp_path / "outside.sh", tmp_path / "scripts" / "escape.sh")
    os.symlink("a.sh", tmp_path / "scripts" / "inner.sh")
    return tmp_path


def policy(tree: Path, *allow: str) -> ScriptPolicy:
    return ScriptPolicy(allow or ("scripts/**",), str(tree))


@pytest.mark.parametrize("script", ["scripts/escape.sh", "outside.sh", "scripts/../outside.sh"])
def test_what_resolves_outside_the_allow_list_is_forbidden(tree: Path, script: str) -> None:
    with pytest.raises(Forbidden):
        policy(tree).resolve(script)


@pytest.mark.parametrize(
    ("script", "real"),
    [
        ("scripts/a.sh", "scripts/a.sh"),
        ("./scripts/../scripts/a.sh", "scripts/a.sh"),
        ("scripts/inner.sh", "scripts/a.sh"),
        ("scripts/not-yet.sh", "scripts/not-yet.sh"),  # missing: fails when it runs
        ("scripts/-c", "scripts/-c"),
        ("scripts/--", "scripts/--"),
    ],
)
def test_an_allowed_script_is_kept_as_its_real_absolute_path(
    tree: Path, script: str, real: str
) -> None:
    assert policy(tree).resolve(script) == str(tree / real)


@pytest.mark.parametrize("script", ["-c", "-", "--", "-x"])
def test_a_script_named_like_an_option_becomes_an_absolute_path(tree: Path, script: str) -> None:
    assert policy(tree, "**").resolve(script) == f"{tree}/{script}"


def test_an_allowed_directory_reached_through_a_symlink(tree: Path) -> None:
    os.symlink(tree / "scripts", tree / "linked")
    assert policy(tree, "linked/*.sh").resolve("scripts/a.sh") == str(tree / "scripts/a.sh")
    with pytest.raises(Forbidden):
        policy(tree, "linked/*.sh").resolve("outside.sh")


def test_star_does_not_cross_directories_and_dot_files_match(tree: Path) -> None:
    narrow = policy(tree, "scripts/*.sh")
    assert narrow.resolve("scripts/.hidden.sh")
    with pytest.raises(Forbidden):
        narrow.resolve("scripts/deeper/x.sh")


@pytest.mark.parametrize("script", ["", "a\0b"])
def test_no_path_is_invalid(tree: Path, script: str) -> None:
    with pytest.raises(InvalidRequest):
        policy(tree).resolve(script)


def test_the_reason_tells_no_path_or_pattern_of_the_server_but_the_log_does(tree: Path) -> None:
    with capture_logs() as logs, pytest.raises(Forbidden) as refused:
        policy(tree, "/opt/secret/**").resolve("x.sh")
    assert refused.value.reason == "script 'x.sh' is not allowed by runners.shell.allow"
    [event] = logs
    assert event["event"] == "shell.script_refused"
    assert (event["real_path"], event["cwd"], event["allow"]) == (
        f"{tree}/x.sh",
        str(tree),
        ["/opt/secret/**"],
    )


def test_runnable_refuses_a_stored_path_that_is_now_a_symlink(tree: Path) -> None:
    assert policy(tree).runnable(str(tree / "scripts/a.sh")) == str(tree / "scripts/a.sh")
    with pytest.raises(Forbidden, match="not its own real path"):
        policy(tree).runnable(str(tree / "scripts/inner.sh"))


@pytest.mark.parametrize("script", ["scripts", "scripts/", "scripts/sub", "scripts/pipe"])
def test_what_exists_but_is_no_regular_file_is_refused_at_set_and_at_run(
    tree: Path, script: str
) -> None:
    """Attack report: a directory named as a shell script "ran", and ended executed."""
    (tree / "scripts" / "sub").mkdir()
    os.mkfifo(tree / "scripts" / "pipe")
    rules = policy(tree, "scripts", "scripts/**")
    with pytest.raises(InvalidRequest, match="is not a regular file"):
        rules.resolve(script)
    with pytest.raises(InvalidRequest, match="is not a regular file"):
        rules.runnable(str(tree / script))
    assert rules.resolve("scripts/later.sh") == str(tree / "scripts/later.sh")  # absent: kept


def define(runner: str, arguments: tuple[str, ...]) -> messages.DefineJob:
    return messages.DefineJob(
        job_id="j", when="2030-01-01 00:00:00", zone="", missed="skip", overlap="skip",
        retries=0, backoff_us=0, max_backoff_us=0, parents=(), all_parents=False,
        runner=runner, arguments=arguments, rule_id="", source="",
    )  # fmt: skip


def test_storage_resolves_and_checks_what_arrives_on_its_socket(tree: Path) -> None:
    engine = Engine(MemoryStore(), fsync=False, scripts=policy(tree))
    set_rule = messages.SetShellRule(rule_id="r", pattern="", script="scripts/inner.sh")
    assert engine.apply(set_rule) == messages.Ok()
    engine.commit()
    assert engine.rules["r"].runner == ShellRunner(script=str(tree / "scripts/a.sh"))
    for script in ["/bin/sh", "scripts/escape.sh", "-c"]:
        reply = engine.apply(messages.SetShellRule(rule_id="x", pattern="", script=script))
        assert reply == messages.Failed(
            code="forbidden", reason=f"script {script!r} is not allowed by runners.shell.allow"
        )
    engine.commit()
    assert set(engine.rules) == {"r"}, "nothing refused was stored"


def test_storage_checks_a_job_s_own_script_and_a_job_file_s(tree: Path) -> None:
    engine = Engine(MemoryStore(), fsync=False, scripts=policy(tree))
    assert engine.apply(define("shell", ("/bin/sh",))).code == "forbidden"  # type: ignore[union-attr]
    load = messages.LoadJobs(source="", jobs=(define("shell", ("outside.sh",)),))
    assert engine.apply(load).code == "forbidden"  # type: ignore[union-attr]
    assert engine.apply(define("amqp", ("amqp://h/", "", "k"))) == messages.Ok()
    assert engine.apply(define("shell", ("scripts/a.sh",))) == messages.Ok()
    engine.commit()
    job = engine.job("j")
    assert job is not None and job.spec is not None
    assert job.spec.arguments == (str(tree / "scripts/a.sh"),)


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (messages.SetAmqpRule(rule_id="a", pattern="", dsn="http://h/", exchange="",
                              routing_key=""), "invalid AMQP DSN"),
        (messages.SetAmqpRule(rule_id="a", pattern="", dsn="amqp://[::1/", exchange="",
                              routing_key=""), "invalid AMQP DSN"),
        (messages.SetShellRule(rule_id="a", pattern="p" * 65_536, script="scripts/a.sh"),
         "longer than 65535 bytes"),
        (messages.SetAmqpRule(rule_id="a", pattern="", dsn="amqp://h/", exchange="x" * 70_000,
                              routing_key=""), "longer than 65535 bytes"),
    ],
)  # fmt: skip
def test_storage_refuses_a_rule_the_frontend_would_refuse(
    tree: Path, request_: messages.Request, reason: str
) -> None:
    engine = Engine(MemoryStore(), fsync=False, scripts=policy(tree))
    reply = engine.apply(request_)
    assert isinstance(reply, messages.Failed) and reply.code == "invalid" and reason in reply.reason
    assert engine.apply(messages.GetRule(rule_id="a")) == messages.Failed(
        code="not_found", reason="no rule 'a'"
    )
    assert engine.apply(messages.Ping()) == messages.Pong(), "the next request is served"
