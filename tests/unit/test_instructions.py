"""SET and RULE SET: the reference's arity and argument rules, plus the shell allow-list."""

from __future__ import annotations

import re

import pytest

from kairoi import __version__, messages
from kairoi.errors import Forbidden, InvalidRequest, KairoiError
from kairoi.frontend.instructions import InstructionReader, Local
from kairoi.schedule import parse_reference_time
from kairoi.scripts import ScriptPolicy


@pytest.fixture
def reader() -> InstructionReader:
    return InstructionReader(ScriptPolicy(("scripts/**", "/opt/jobs/*.sh"), cwd="/srv/kairoi"))


def test_set(reader: InstructionReader) -> None:
    assert reader.read(["SET", "app.1", "2030-01-01 00:00:00"]) == messages.SetJob(
        job_id="app.1", due_us=parse_reference_time("2030-01-01 00:00:00")
    )


def test_set_accepts_empty_and_odd_job_ids(reader: InstructionReader) -> None:
    for job_id in ["", "with space", "line\nfeed", "RULE", "é"]:
        request = reader.read(["SET", job_id, "2030-01-01 00:00:00"])
        assert isinstance(request, messages.SetJob) and request.job_id == job_id


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        (["SET"], "SET takes a job and when it runs"),
        (["SET", "j"], "SET takes a job and when it runs"),
        (["SET", "j", "2030-01-01", "00:00:00"], "quote the date and time"),
        (["SET", "j", "x", "y"], "unknown option 'y'"),
        (["SET", "j", "x"], "invalid date 'x'"),
    ],
)
def test_set_arity(reader: InstructionReader, arguments: list[str], why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        reader.read(arguments)


def test_job_id_length_limit(reader: InstructionReader) -> None:
    assert reader.read(["SET", "x" * 65_535, "2030-01-01 00:00:00"])
    with pytest.raises(InvalidRequest, match="longer than 65535 bytes"):
        reader.read(["SET", "x" * 65_536, "2030-01-01 00:00:00"])
    with pytest.raises(InvalidRequest, match="longer than 65535 bytes"):
        reader.read(["SET", "é" * 32_768, "2030-01-01 00:00:00"])


@pytest.mark.parametrize("word", ["set", "unset", "Get", "version", "RULE", "rule", "FOO"])
def test_unknown_instructions_are_case_sensitive(reader: InstructionReader, word: str) -> None:
    with pytest.raises(InvalidRequest, match="unknown instruction"):
        reader.read([word, "x", "y"])


def test_set_rule_is_not_an_instruction(reader: InstructionReader) -> None:
    with pytest.raises(InvalidRequest):
        reader.read(["SET", "RULE", "x", "app.", "shell", "s.sh"])
    request = reader.read(["SET", "RULE", "2030-01-01 00:00:00"])
    assert isinstance(request, messages.SetJob) and request.job_id == "RULE"


def test_rule_set_shell(reader: InstructionReader) -> None:
    assert reader.read(
        ["RULE", "SET", "r", "app.", "shell", "scripts/a.sh"]
    ) == messages.SetShellRule(rule_id="r", pattern="app.", script="/srv/kairoi/scripts/a.sh")


def test_rule_set_amqp(reader: InstructionReader) -> None:
    request = reader.read(["RULE", "SET", "r", "", "amqp", "amqp://g:g@h:5672/v", "", "rk"])
    assert request == messages.SetAmqpRule(
        rule_id="r", pattern="", dsn="amqp://g:g@h:5672/v", exchange="", routing_key="rk"
    )


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["RULE", "SET", "r", "p", "shell"], "wrong number of arguments for the shell runner"),
        (["RULE", "SET", "r", "p", "shell", "scripts/a", "b"], "for the shell runner"),
        (["RULE", "SET", "r", "p", "amqp", "d", "e"], "for the amqp runner"),
        (["RULE", "SET", "r", "p", "amqp", "d", "e", "k", "x"], "for the amqp runner"),
        (["RULE", "SET", "r", "p", "Shell", "scripts/a"], "unknown runner 'Shell'"),
        (["RULE", "SET", "r", "p"], "wrong number of arguments"),
        (["RULE", "SET"], "wrong number of arguments"),
    ],
)
def test_rule_set_errors(reader: InstructionReader, arguments: list[str], reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        reader.read(arguments)


@pytest.mark.parametrize(
    "script",
    [
        "/bin/rm",
        "scripts/../../../etc/passwd",
        "../scripts/x.sh",
        "other/x.sh",
        "/opt/jobs/sub/x.sh",
        "scripts",
    ],
)
def test_scripts_outside_the_allow_list_are_forbidden(
    reader: InstructionReader, script: str
) -> None:
    with pytest.raises(Forbidden, match=r"runners\.shell\.allow"):
        reader.read(["RULE", "SET", "r", "p", "shell", script])


@pytest.mark.parametrize(
    "script",
    [
        "scripts/a.sh",
        "scripts/deep/er/b.sh",
        "./scripts/c.sh",
        "/srv/kairoi/scripts/d",
        "/opt/jobs/x.sh",
        "scripts/.hidden",
    ],
)
def test_scripts_inside_the_allow_list_are_accepted(reader: InstructionReader, script: str) -> None:
    assert reader.read(["RULE", "SET", "r", "p", "shell", script])


def test_empty_script_is_invalid(reader: InstructionReader) -> None:
    with pytest.raises(InvalidRequest, match="needs a script path"):
        reader.read(["RULE", "SET", "r", "p", "shell", ""])


def test_default_allow_list_is_the_working_directory() -> None:
    policy = ScriptPolicy(("**",), cwd="/srv/kairoi")
    policy.resolve("scripts/example.sh")
    policy.resolve("job.sh")
    with pytest.raises(Forbidden):
        policy.resolve("../elsewhere.sh")
    with pytest.raises(Forbidden):
        policy.resolve("/bin/sh")


def read_sets(
    reader: InstructionReader, job_ids: tuple[str, ...], whens: tuple[str, ...]
) -> tuple[messages.SetJobs | None, dict[int, KairoiError]]:
    read = reader.read_sets(job_ids, whens)
    assert read is not None, "one request"
    return read


def test_a_run_of_sets_is_one_request(reader: InstructionReader) -> None:
    request, refused = read_sets(reader, ("a", "b"), ("2030-01-01 00:00:00", "2030-01-01 00:00:01"))
    due = parse_reference_time("2030-01-01 00:00:00")
    assert request == messages.SetJobs(job_ids=("a", "b"), due_us=(due, due + 1_000_000))
    assert refused == {}


def test_a_run_of_sets_refuses_bad_lines_by_position(reader: InstructionReader) -> None:
    request, refused = read_sets(
        reader,
        ("a", "b", "x" * 65_536, "c"),
        ("2030-01-01 00:00:00", "2030-02-30 00:00:00", "2030-01-01 00:00:00", "now"),
    )
    assert request == messages.SetJobs(
        job_ids=("a",), due_us=(parse_reference_time("2030-01-01 00:00:00"),)
    )
    assert sorted(refused) == [1, 2, 3]
    assert "day is out of range" in refused[1].reason
    assert "longer than 65535 bytes" in refused[2].reason
    assert all(error.code == "invalid" for error in refused.values())


def test_a_run_of_bad_sets_asks_storage_nothing(reader: InstructionReader) -> None:
    request, refused = read_sets(reader, ("a",), ("never",))
    assert request is None and list(refused) == [0]


def test_a_run_of_sets_with_other_schedules_is_read_line_by_line(
    reader: InstructionReader,
) -> None:
    assert reader.read_sets(("a", "b"), ("2030-01-01 00:00:00", "cron:* * * * *")) is None


@pytest.mark.parametrize(
    ("arguments", "request_"),
    [
        (["GET", "j"], messages.GetJob(job_id="j")),
        (["UNSET", ""], messages.UnsetJob(job_id="", cascade=False)),
        (["DISABLE", "j"], messages.DisableJob(job_id="j")),
        (["ENABLE", "j"], messages.EnableJob(job_id="j")),
        (["STOP", "j"], messages.StopJob(job_id="j")),
        (["TRIGGER", "a b"], messages.TriggerJob(job_id="a b")),
        (["LIST"], messages.ListJobs(prefix="", after=None, limit=100)),
        (["LIST", "app."], messages.ListJobs(prefix="app.", after=None, limit=100)),
        (["LIST", "LIMIT", "5"], messages.ListJobs(prefix="", after=None, limit=5)),
        (["LIST", "LIMIT", "LIMIT", "5"], messages.ListJobs(prefix="LIMIT", after=None, limit=5)),
        (
            ["LIST", "app.", "AFTER", "app.9", "LIMIT", "10000"],
            messages.ListJobs(prefix="app.", after="app.9", limit=10_000),
        ),
        (["RUNS", "j"], messages.ListRuns(job_id="j", limit=100)),
        (["RUNS", "j", "LIMIT", "3"], messages.ListRuns(job_id="j", limit=3)),
        (["OUTPUT", "j"], messages.GetOutput(job_id="j", run=0)),
        (["OUTPUT", "j", "12"], messages.GetOutput(job_id="j", run=12)),
        (["RULE", "GET", "r"], messages.GetRule(rule_id="r")),
        (["RULE", "LIST"], messages.ListRules(prefix="")),
        (["RULE", "LIST", "app"], messages.ListRules(prefix="app")),
        (["RULE", "UNSET", "r"], messages.UnsetRule(rule_id="r")),
        (["PING"], messages.Ping()),
        (["STATS"], messages.GetStats()),
    ],
)
def test_reading_and_lifecycle_instructions(
    reader: InstructionReader, arguments: list[str], request_: messages.Request
) -> None:
    assert reader.read(arguments) == request_


def test_version_is_answered_by_the_frontend(reader: InstructionReader) -> None:
    assert reader.read(["VERSION"]) == Local(f" OK {__version__}\n".encode())


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        (["GET"], "GET takes 1 argument: GET <job>"),
        (["STOP", "a", "b"], "STOP takes 1 argument"),
        (["LIST", "LIMIT", "5", "AFTER"], "LIST [<prefix>]"),
        (["LIST", "a", "LIMIT", "0"], "LIMIT must be a whole number between 1 and 10000"),
        (["LIST", "LIMIT", "10001"], "not '10001'"),
        (["LIST", "LIMIT", "-1"], "not '-1'"),
        (["LIST", "LIMIT", "1", "LIMIT", "2"], "unexpected 'LIMIT'"),
        (["LIST", "a", "SINCE", "x"], "unexpected 'SINCE'"),
        (["RUNS"], "RUNS needs a job"),
        (["RUNS", "j", "AFTER", "x"], "unexpected 'AFTER'"),
        (["OUTPUT"], "OUTPUT takes 1 or 2 arguments"),
        (
            ["OUTPUT", "j", "0"],
            "a run number must be a whole number between 1 and 9223372036854775807",
        ),
        (["OUTPUT", "j", "x"], "not 'x'"),
        (["RULE", "GET"], "RULE GET takes 1 argument"),
        (["RULE", "LIST", "a", "b"], "RULE LIST takes at most 1 argument"),
        (["RULE", "DROP", "r"], "unknown instruction 'RULE DROP'"),
        (["RULE"], "RULE needs an instruction"),
        (["PING", "x"], "PING takes no argument"),
        (["VERSION", "x"], "VERSION takes no argument"),
        (["GET", "x" * 65_536], "longer than 65535 bytes"),
    ],
)
def test_lifecycle_instruction_errors(
    reader: InstructionReader, arguments: list[str], why: str
) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(why)):
        reader.read(arguments)


def define(**fields: object) -> messages.DefineJob:
    defaults: dict[str, object] = {
        "job_id": "j", "when": "", "zone": "", "missed": "once", "overlap": "skip",
        "retries": 0, "backoff_us": 0, "max_backoff_us": 0, "parents": (),
        "all_parents": True, "runner": "", "arguments": (), "rule_id": "", "source": "",
    }  # fmt: skip
    return messages.DefineJob(**{**defaults, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "request_"),
    [
        (["SET", "j", "cron:0 0 3 * * *", "TZ", "Europe/Paris"],
         define(when="cron:0 0 3 * * *", zone="Europe/Paris")),
        (["SET", "j", "R/2026-11-22T10:00:00Z/PT10S"], define(when="R/2026-11-22T10:00:00Z/PT10S")),
        (["SET", "j", "2030-01-01T10:00:00+01:00"], define(when="2030-01-01T10:00:00+01:00")),
        (["SET", "j", "2030-01-01 00:00:00", "RETRIES", "2", "BACKOFF", "PT30S"],
         define(when="2030-01-01 00:00:00", retries=2, backoff_us=30_000_000)),
        (["SET", "j", "cron:* * * * *", "MISSED", "all", "OVERLAP", "queue", "RETRIES", "1",
          "BACKOFF", "PT1M", "MAXBACKOFF", "PT5M"],
         define(when="cron:* * * * *", missed="all", overlap="queue", retries=1,
                backoff_us=60_000_000, max_backoff_us=300_000_000)),
        (["SET", "j", "AFTER", "a", "b"], define(parents=("a", "b"))),
        (["SET", "j", "AFTER", "a", "b", "ANY", "RETRIES", "1", "BACKOFF", "PT1S"],
         define(parents=("a", "b"), all_parents=False, retries=1, backoff_us=1_000_000)),
        (["SET", "j", "AFTER", "a", "ALL"], define(parents=("a",))),
    ],
)  # fmt: skip
def test_set_with_a_schedule_and_options(
    reader: InstructionReader, arguments: list[str], request_: messages.DefineJob
) -> None:
    assert reader.read(arguments) == request_


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        (["SET", "j", "cron:* * *"], "invalid cron expression"),
        (["SET", "j", "R/2030-01-01T00:00:00Z/PT0S"], "must not be zero"),
        (["SET", "j", "cron:* * * * *", "TZ", "Nowhere/Else"], "unknown time zone"),
        (["SET", "j", "2030-01-01 00:00:00", "TZ", "UTC"], "TZ applies to cron schedules only"),
        (["SET", "j", "cron:* * * * *", "MISSED", "twice"], "MISSED is one of skip, once, all"),
        (["SET", "j", "cron:* * * * *", "OVERLAP", "x"], "OVERLAP is one of skip, queue, allow"),
        (["SET", "j", "cron:* * * * *", "RETRIES", "2"], "RETRIES needs BACKOFF"),
        (
            ["SET", "j", "cron:* * * * *", "RETRIES", "-1", "BACKOFF", "PT1S"],
            "RETRIES must be a whole number between 0 and 1000",
        ),
        (["SET", "j", "cron:* * * * *", "RETRIES", "1", "BACKOFF", "P1M"], "fixed duration"),
        (["SET", "j", "cron:* * * * *", "BACKOFF", "PT1S"], "go with RETRIES"),
        (["SET", "j", "cron:* * * * *", "TZ"], "TZ needs a value"),
        (["SET", "j", "cron:* * * * *", "TZ", "UTC", "TZ", "UTC"], "TZ is given twice"),
        (["SET", "j", "cron:* * * * *", "EVERY", "1"], "unknown option 'EVERY'"),
        (["SET", "j", "AFTER"], "AFTER needs at least one parent"),
        (["SET", "j", "AFTER", "ANY"], "AFTER needs at least one parent"),
    ],
)
def test_set_option_errors(reader: InstructionReader, arguments: list[str], why: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(why)):
        reader.read(arguments)


def test_unset_cascade(reader: InstructionReader) -> None:
    assert reader.read(["UNSET", "p", "CASCADE"]) == messages.UnsetJob(job_id="p", cascade=True)
    with pytest.raises(InvalidRequest, match="UNSET <job> \\[CASCADE\\]"):
        reader.read(["UNSET", "p", "ALL"])
