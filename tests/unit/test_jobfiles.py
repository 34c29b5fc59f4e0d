"""Job files: YAML in, one LoadJobs out, or the first error with its line."""

from __future__ import annotations

import pytest

from kairoi import messages
from kairoi.frontend.jobfiles import FileError, read
from kairoi.scripts import ScriptPolicy

SCRIPTS = ScriptPolicy(("scripts/**",), cwd="/srv/kairoi")
GOOD = """\
# the nightly report, then its mail
jobs:
  - id: app.report.daily
    schedule: "cron:0 0 3 * * *"
    tz: Europe/Paris
    shell: scripts/report.sh
    retries: 2
    backoff: PT30S
    max_backoff: PT5M

  - id: app.report.send
    after: [app.report.daily]
    after_mode: any
    amqp: {dsn: "amqp://u:p@broker/", exchange: reports, routing_key: send}

  - id: app.ping
    schedule: R/2030-01-01T00:00:00Z/PT10S
    overlap: queue
    missed: all
    rule: pinger
"""


def test_a_job_file_becomes_one_request_with_each_entry_s_line() -> None:
    job_file = read("/etc/jobs.yaml", GOOD, SCRIPTS)
    assert job_file.lines == (3, 11, 16)
    daily, send, ping = job_file.request.jobs
    assert job_file.request.source == "/etc/jobs.yaml"
    assert (daily.when, daily.zone, daily.runner, daily.arguments) == (
        "cron:0 0 3 * * *", "Europe/Paris", "shell", ("/srv/kairoi/scripts/report.sh",),
    )  # fmt: skip
    assert (daily.retries, daily.backoff_us, daily.max_backoff_us) == (2, 30_000_000, 300_000_000)
    assert (send.when, send.parents, send.all_parents, send.runner) == (
        "", ("app.report.daily",), False, "amqp",
    )  # fmt: skip
    assert send.arguments == ("amqp://u:p@broker/", "reports", "send")
    assert (ping.overlap, ping.missed, ping.rule_id, ping.source) == (
        "queue", "all", "pinger", "/etc/jobs.yaml",
    )  # fmt: skip


def test_an_empty_file_holds_no_job() -> None:
    assert read("/f", "", SCRIPTS).request == messages.LoadJobs(source="/f", jobs=())
    assert read("/f", "jobs: []\n", SCRIPTS).request.jobs == ()


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("jobs: [\n", 2, "not valid YAML"),
        ("- a\n", 1, "a map with one key, jobs"),
        ("jobs: []\nrules: []\n", 1, "a map with one key, jobs"),
        ("jobs:\n  - 5\n", 2, "each job is a map"),
        ("jobs:\n  - schedule: 'cron:* * * * *'\n", 2, "each job needs id"),
        ("jobs:\n  - id: a\n", 2, "needs a schedule, or after"),
        ("jobs:\n  - id: a\n    schedule: 'cron:* * * * *'\n    after: [b]\n", 2, "not both"),
        ("jobs:\n  - id: a\n    schedule: 'cron:* *'\n", 2, "invalid cron expression"),
        ("jobs:\n  - id: a\n    schedule: 'cron:* * * * *'\n    every: 5\n", 2,
         "unknown keys ['every']"),
        ("jobs:\n  - id: a\n    schedule: 'cron:* * * * *'\n    shell: /bin/rm\n", 2,
         "not allowed by runners.shell.allow"),
        ("jobs:\n  - id: a\n    schedule: 'cron:* * * * *'\n    shell: scripts/x\n    rule: r\n",
         2, "one runner"),
        ("jobs:\n  - id: a\n    schedule: 'cron:* * * * *'\n    amqp: {dsn: 'http://x'}\n", 2,
         "amqp is a map of dsn"),
        ("jobs:\n  - {id: a, schedule: 'cron:* * * * *'}\n  - {id: a, after: [b]}\n",
         3, "declared twice"),
        ("jobs:\n  - id: a\n    after: b\n", 2, "after is a list"),
        ("jobs:\n  - id: a\n    schedule: 'cron:* * * * *'\n    retries: 2\n", 2,
         "RETRIES needs BACKOFF"),
        ("jobs:\n  - id: a\n    schedule: 'cron:* * * * *'\n    retries: " + "9" * 5000 + "\n",
         0, "not valid YAML"),
        ("jobs:\n  - id: a\n    schedule: 'cron:* * * * *'\n    retries: 1001\n", 2,
         "RETRIES must be a whole number between 0 and 1000"),
        ("jobs:\n  - id: a\n    schedule: '9999-12-31T23:59:59-14:00'\n", 2,
         "the instant must be between"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_with_the_line_and_the_reason(text: str, line: int, why: str) -> None:
    with pytest.raises(FileError) as refused:
        read("/f", text, SCRIPTS)
    assert refused.value.line == line
    assert why in refused.value.reason
