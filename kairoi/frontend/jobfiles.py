"""Job files (``jobs.files``): jobs declared in YAML, read into one request for storage.

    jobs:
      - id: app.report.daily
        schedule: "cron:0 0 3 * * *"      # any SET <when>; or after: [parent, …]
        tz: Europe/Paris
        shell: scripts/report.sh           # or amqp: {dsn, exchange, routing_key}, or rule: id
        missed: once                        # skip | once | all
        overlap: skip                       # skip | queue | allow
        retries: 2
        backoff: PT30S
        max_backoff: PT5M
      - id: app.report.send
        after: [app.report.daily]
        after_mode: all                     # all | any
        shell: scripts/send.sh

Pure code: text in, a LoadJobs (or the first error, with its line) out. A file is taken as a
whole or not at all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import yaml

from kairoi import messages
from kairoi.amqp.dsn import mask_dsn, parse_dsn
from kairoi.errors import KairoiError
from kairoi.frontend.definitions import define
from kairoi.scripts import ScriptPolicy

KEYS = (
    "id", "schedule", "after", "after_mode", "tz", "missed", "overlap", "retries", "backoff",
    "max_backoff", "shell", "amqp", "rule",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FileError(Exception):
    """What is wrong with a job file, and where (a line from 1, or 0 for the whole file)."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class JobFile:
    request: messages.LoadJobs
    lines: tuple[int, ...]
    """The line of each job's entry, in the request's order."""


def read(source: str, text: str, scripts: ScriptPolicy) -> JobFile:
    """The jobs of the file at ``source``; raises FileError."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an int of thousands of digits
        mark = getattr(exc, "problem_mark", None)
        raise FileError(mark.line + 1 if mark else 0, f"not valid YAML: {exc}") from None
    if document is None:
        return JobFile(messages.LoadJobs(source=source, jobs=()), ())
    entries = document.get("jobs") if isinstance(document, dict) else None
    if not isinstance(entries, list) or set(document) != {"jobs"}:
        raise FileError(1, "a job file is a map with one key, jobs: a list of jobs")
    lines = tuple(node.start_mark.line + 1 for node in _entry_nodes(root))
    jobs, seen = [], set()
    for line, entry in zip(lines, entries, strict=True):
        try:
            job = _job(entry, source, scripts)
        except (KairoiError, ValueError) as exc:
            raise FileError(line, getattr(exc, "reason", str(exc))) from None
        if job.job_id in seen:
            raise FileError(line, f"job {job.job_id!r} is declared twice")
        seen.add(job.job_id)
        jobs.append(job)
    return JobFile(messages.LoadJobs(source=source, jobs=tuple(jobs)), lines)


def _entry_nodes(root: Any) -> list[Any]:
    for key, value in root.value:
        if key.value == "jobs":
            return list(value.value)
    return []


def _job(entry: Any, source: str, scripts: ScriptPolicy) -> messages.DefineJob:
    if not isinstance(entry, dict):
        raise ValueError("each job is a map: id, schedule or after, and options")
    unknown = sorted(set(map(str, entry)) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown keys {unknown}: expected {', '.join(KEYS)}")
    job_id = _text(entry, "id", required=True)
    schedule, after = entry.get("schedule"), entry.get("after")
    if (schedule is None) == (after is None):
        raise ValueError(f"job {job_id!r} needs a schedule, or after: its parents, not both")
    words = [] if schedule is None else [_text(entry, "schedule")]
    if after is not None:
        if not isinstance(after, list) or not after or not all(isinstance(p, str) for p in after):
            raise ValueError("after is a list of job ids")
        words += ["AFTER", *after, _text(entry, "after_mode", default="all").upper()]
    for key, option in (("tz", "TZ"), ("missed", "MISSED"), ("overlap", "OVERLAP"),
                        ("retries", "RETRIES"), ("backoff", "BACKOFF"),
                        ("max_backoff", "MAXBACKOFF")):  # fmt: skip
        if key in entry:
            words += [option, _text(entry, key)]
    runner, arguments, rule_id = _runner(entry, scripts)
    return dataclasses.replace(
        define(job_id, words), runner=runner, arguments=arguments, rule_id=rule_id, source=source
    )


def _runner(entry: dict[str, Any], scripts: ScriptPolicy) -> tuple[str, tuple[str, ...], str]:
    """(runner, arguments, rule id) of an entry: its own runner, or a rule, or neither."""
    given = [key for key in ("shell", "amqp", "rule") if key in entry]
    if len(given) > 1:
        raise ValueError(f"a job has one runner: shell, amqp or rule, not {' and '.join(given)}")
    if "shell" in entry:
        return "shell", (scripts.resolve(_text(entry, "shell")),), ""
    if "amqp" in entry:
        amqp = entry["amqp"]
        if not isinstance(amqp, dict) or set(amqp) != {"dsn", "exchange", "routing_key"}:
            raise ValueError("amqp is a map of dsn, exchange and routing_key")
        dsn, exchange, key = (str(amqp[name]) for name in ("dsn", "exchange", "routing_key"))
        try:
            parse_dsn(dsn)
        except ValueError as exc:
            raise ValueError(f"invalid AMQP DSN {mask_dsn(dsn)!r}: {exc}") from None
        return "amqp", (dsn, exchange, key), ""
    if "rule" in entry:
        return "", (), _text(entry, "rule")
    return "", (), ""


def _text(entry: dict[str, Any], key: str, required: bool = False, default: str = "") -> str:
    value = entry.get(key)
    if value is None:
        if required:
            raise ValueError(f"each job needs {key}")
        return default
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{key} must be a string, not {value!r:.40}")
    return str(value)
