"""Seed corpora, taken from the examples in the docs so that they follow the docs.

A KCP seed is a line of a fenced example (``ID`` and ``<placeholders>`` filled in, the lines of
a ``printf '…'`` split); a schedule seed is a ``<when>`` quoted in the schedule docs; a codec
seed is a batch holding the requests the KCP seeds are read into.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

from kairoi import messages
from kairoi.errors import KairoiError
from kairoi.frontend import kcp
from kairoi.frontend.instructions import InstructionReader, Local
from kairoi.scripts import ScriptPolicy

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_REQUEST = re.compile(r"^[^ \"]+ [A-Z]+\b")
_PRINTF = re.compile(r"printf '([^']*)'")
_PLACEHOLDER = re.compile(r"<[^>]+>")
_QUOTED = re.compile(r'"([^"\n]{1,120})"|`([^`\n]{1,120})`')
_SCHEDULE_LIKE = re.compile(r"^(R[0-9]*/|cron:|[0-9+-]{4,}[- ])")
SCRIPT_POLICY = ScriptPolicy(("scripts/**",), cwd="/srv/kairoi")
"""The shell allow-list the targets read rules with (a fixed directory: no file is read)."""


_SAMPLES = {"<n>": "2", "<duration>": "PT30S", "<zone>": "Europe/Paris", "<policy>": "once",
            "<when>": "2030-01-01T00:00:00Z", "<dsn>": "amqp://u:p@127.0.0.1:5672/"}  # fmt: skip
"""What a placeholder of the docs stands for in a seed (any other: ``x``)."""
_INLINE = re.compile(r"`((?:SET|UNSET|GET|LIST|RULE|RUNS|OUTPUT|TRIGGER|STOP) [^`]+)`")
_OPTION = re.compile(r"`((?:RETRIES|BACKOFF|MAXBACKOFF|TZ|MISSED|OVERLAP) [^`]+)`")


def kcp_lines() -> list[bytes]:
    """Every example request line in the docs, as sent on the wire (LF-terminated): lines of
    fenced examples, instructions quoted inline, and each option quoted inline after a SET."""
    found: dict[str, None] = {}
    for path in DOCS:
        text = path.read_text()
        for block in _FENCE.findall(text):
            found.update(
                dict.fromkeys(line for line in _example_lines(block) if _REQUEST.match(line))
            )
        found.update(dict.fromkeys(f"1 {code}" for code in _INLINE.findall(text)))
        found.update(dict.fromkeys(f"1 SET x <when> {code}" for code in _OPTION.findall(text)))
    return [_filled(line) for line in found]


def _filled(line: str) -> bytes:
    line = re.sub(r"^ID\b", "1", line.replace("\\|", "|"))
    line = _PLACEHOLDER.sub(lambda m: _SAMPLES.get(m[0], "x"), line)
    return (line.split("→")[0].rstrip() + "\n").encode()


def _example_lines(block: str) -> Iterator[str]:
    for line in block.splitlines():
        printed = _PRINTF.search(line)
        if printed is None:
            yield line
        else:
            yield from printed[1].replace("\\n", "\n").splitlines()


def schedules() -> list[bytes]:
    """Every ``<when>`` quoted in the docs, also in the years 0001 and 9999."""
    found: dict[bytes, None] = {}
    for path in DOCS:
        for pair in _QUOTED.findall(path.read_text()):
            text = (pair[0] or pair[1]).strip()
            if _SCHEDULE_LIKE.match(text):
                found[text.encode()] = None
                for year in (b"0001", b"9999"):  # the same at both ends of the range
                    found[re.sub(rb"(?<![0-9])2[0-9]{3}-", year + b"-", text.encode())] = None
    return list(found)


def codec_batches() -> list[bytes]:
    """Message bodies (the frame after the version) holding the seeds' requests."""
    reader = InstructionReader(SCRIPT_POLICY)
    requests: list[messages.Message] = [messages.Ping(), messages.Ok()]
    for line in kcp_lines():
        parsed = kcp.Parser()
        parsed.feed(line)
        message = parsed.next()
        if isinstance(message, kcp.Message):
            try:
                request = reader.read(message.arguments)
            except KairoiError:
                continue
            if not isinstance(request, Local):  # one the frontend answers itself
                requests.append(request)
    batches = [messages.encode([(n, request)])[1] for n, request in enumerate(requests)]
    return [*batches, messages.encode(list(enumerate(requests)))[1]]


CORPORA = {"kcp_session": kcp_lines, "schedules": schedules, "codec": codec_batches}


def write(target: str, directory: Path) -> int:
    """Write ``target``'s seeds into ``directory`` (one file each, named by content)."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds = CORPORA[target]()
    for seed in seeds:
        (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    return len(seeds)
