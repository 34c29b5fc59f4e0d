"""The KCP wire grammar: bytes in, messages out. Pure code, no I/O.

Strategy: frame on bytes, decode each argument on its own. LF, space, ``"`` and ``\\`` are ASCII
and never occur inside a UTF-8 multi-byte sequence, so a character split across two TCP reads is
whole again by the time its argument is decoded (the reference inserts an extra U+FFFD there).

The parser is resumable: it remembers where it stopped inside an unfinished message, argument
or quoted string, so input trickling in byte by byte is scanned once, never again from its start.

A message always runs to the first LF outside quotes. Whatever is wrong inside it (a bad escape,
a missing instruction) makes that one message ``Malformed``; the next message parses afresh, so
a bad line never costs the connection. A CR right before that LF is part of the line ending.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

_SPACE, _LF, _CR, _QUOTE = 0x20, 0x0A, 0x0D, 0x22
_SPACES = re.compile(rb" *")
_SIMPLE = re.compile(rb'[^ \n"]*')
_QUOTED_BODY = re.compile(rb'(?:[^"\\]|\\(?s:.))*')
_ESCAPE = re.compile(rb"\\(?s:(.))")
_PLAIN_REGION = re.compile(rb'(?:[^"\\\r]|"[^"\\\r\n]*")*')
_PLAIN_ARGUMENT = re.compile(r'"[^"]*"|[^ "]+')
_SET = r'([^ "\n\\\r]+) SET ([^ "\n\\\r]+) "([^"\n\\\r]*)"'
"""A plain SET line: no backslash, no CR, bare id and job, quoted date."""
_SET_LINES = re.compile(f"^{_SET}\n", re.MULTILINE)
_SET_LINE = re.compile(_SET)


@dataclass(frozen=True, slots=True)
class Message:
    request_id: str
    arguments: list[str]
    """The instruction: every argument after the request id (at least one)."""


@dataclass(frozen=True, slots=True)
class Malformed:
    request_id: str | None
    """None when no identifier could be recovered."""
    reason: str
    fatal: bool = False
    """The stream cannot be resynchronised: answer what is owed, then close."""


@dataclass(frozen=True, slots=True)
class SetLines:
    """Consecutive lines of the commonest shape, ``<id> SET <job> "<when>"`` with a bare id
    and job: what a ``Message`` of each would hold, as columns (pipelined SETs, parsed and
    forwarded as a batch). A bare id needs no quoting in its reply."""

    request_ids: tuple[str, ...]
    job_ids: tuple[str, ...]
    whens: tuple[str, ...]

    @classmethod
    def of(cls, lines: list[tuple[str, ...]]) -> SetLines:
        """From each line's (request id, job id, when)."""
        return cls(*map(tuple, zip(*lines, strict=True)))

    def messages(self) -> list[Message]:
        """The same lines as the general parser gives them, one Message each."""
        return [
            Message(request_id, ["SET", job_id, when])
            for request_id, job_id, when in zip(
                self.request_ids, self.job_ids, self.whens, strict=True
            )
        ]


Parsed = Message | Malformed | SetLines


class Parser:
    def __init__(self, max_message_bytes: int = 1_048_576) -> None:
        self.max_message_bytes = max_message_bytes
        self._buf = bytearray()
        self._start = 0  # first byte of the message being parsed
        self._pos = 0  # where scanning resumes
        self._token_start = -1  # first byte of an unfinished argument, or -1
        self._tokens: list[bytes] = []
        self._problem: str | None = None  # the first thing wrong in this message
        self._id_broken = False
        self._ready: deque[Parsed] = deque()
        self._stopped = False  # after a fatal error: ignore all further input

    def feed(self, data: bytes) -> None:
        if self._stopped:
            return
        if self._start:
            del self._buf[: self._start]
            self._pos -= self._start
            if self._token_start >= 0:
                self._token_start -= self._start
            self._start = 0
        self._buf += data

    def next(self) -> Parsed | None:
        """The next complete message, or None until more input arrives."""
        if self._ready:
            return self._ready.popleft()
        if self._stopped:
            return None
        if self._pos == self._start and not self._tokens:
            self._plain_lines(self._pos)
            if self._ready:
                return self._ready.popleft()
        buf, end = self._buf, len(self._buf)
        pos = self._pos
        while True:
            if self._token_start >= 0:
                pos = self._continue_token(pos)
                if pos < 0:
                    return self._incomplete(end)
            pos = _SPACES.match(buf, pos).end()  # type: ignore[union-attr]
            if pos == end:
                return self._incomplete(pos)
            if buf[pos] == _LF:
                return self._complete(pos + 1)
            self._token_start = pos
            pos = pos + 1 if buf[pos] == _QUOTE else pos

    def _plain_lines(self, pos: int) -> None:
        """Fast path: parse every whole line from ``pos`` that needs no escape handling.

        Plain means no backslash and no CR anywhere, and quotes paired within each line, so
        each line is one message. Pipelined SETs are tried first: when every line is a plain
        SET (one C-level pass finds them all), that pass alone parses them. Otherwise the
        region that is plain is checked and decoded by single C-level calls.
        """
        buf = self._buf
        last_lf = buf.rfind(b"\n", pos)
        if last_lf < 0 or self._too_long_within(pos, last_lf + 1):
            return
        text = buf[pos : last_lf + 1].decode("utf-8", "replace")
        sets = _SET_LINES.findall(text)  # each match is one whole plain line
        if len(sets) == text.count("\n"):
            self._ready.append(SetLines.of(sets))
            self._reset(last_lf + 1)
            return
        plain = _PLAIN_REGION.match(buf, pos, last_lf + 1)
        end = buf.rfind(b"\n", pos, plain.end()) + 1 if plain else 0
        if end <= pos:
            return
        lines = bytes(buf[pos:end]).decode("utf-8", "replace").split("\n")[:-1]
        self._ready.extend(_parse_plain_lines(lines))
        self._reset(end)

    def _too_long_within(self, start: int, end: int) -> bool:
        """Whether a line in ``[start, end)`` is over the limit (the full parser words it)."""
        return end - start > self.max_message_bytes and (
            max(map(len, self._buf[start:end].split(b"\n"))) > self.max_message_bytes
        )

    def finish(self) -> Malformed | None:
        """At end of input: what to say about a message that never got its LF."""
        if self._stopped or not self._buf[self._start :].strip(b" "):
            return None
        request_id = self._request_id()
        self._reset(len(self._buf))
        return Malformed(request_id, "incomplete message: the input ended before its LF")

    def _continue_token(self, pos: int) -> int:
        """Scan on in the unfinished argument; its end, or -1 if the input ends first."""
        buf, start = self._buf, self._token_start
        if buf[start] == _QUOTE:
            pos = _QUOTED_BODY.match(buf, pos).end()  # type: ignore[union-attr]
            if pos == len(buf) or buf[pos] != _QUOTE:
                self._pos = pos
                return -1
            self._add_quoted(bytes(buf[start + 1 : pos]))
            pos += 1
        else:
            pos = _SIMPLE.match(buf, pos).end()  # type: ignore[union-attr]
            if pos == len(buf):
                self._pos = pos
                return -1
            token = bytes(buf[start:pos])
            if token.endswith(b"\r") and buf[pos] == _LF:  # CRLF ends the line
                token = token[:-1]
            if token:
                self._tokens.append(token)
        self._token_start = -1
        return pos

    def _add_quoted(self, body: bytes) -> None:
        if b"\\" in body:
            bad = sorted({m[1] for m in _ESCAPE.finditer(body) if m[1] not in b'\\"'})
            if bad:
                shown = ", ".join("\\" + escape.decode("utf-8", "replace") for escape in bad)
                self._problem = self._problem or f"invalid escape {shown} in a quoted string"
                self._id_broken = self._id_broken or not self._tokens
            body = _ESCAPE.sub(rb"\1", body)
        self._tokens.append(body)

    def _incomplete(self, pos: int) -> Parsed | None:
        if self._token_start < 0:
            self._pos = pos
        if len(self._buf) - self._start > self.max_message_bytes:
            return self._too_long()
        return None

    def _too_long(self) -> Malformed:
        request_id = self._request_id()
        self._reset(len(self._buf))
        self._stopped = True
        return Malformed(
            request_id,
            f"message longer than {self.max_message_bytes} bytes without an LF",
            fatal=True,
        )

    def _complete(self, end: int) -> Parsed:
        if end - self._start > self.max_message_bytes:
            return self._too_long()
        tokens, problem = self._tokens, self._problem
        request_id = self._request_id()
        self._reset(end)
        if request_id is None and not tokens:
            return Malformed(None, "empty message: expected an identifier and an instruction")
        if problem is not None or request_id is None:
            return Malformed(request_id, problem or "malformed identifier")
        if len(tokens) == 1:
            return Malformed(request_id, "missing instruction after the identifier")
        return Message(request_id, [token.decode("utf-8", "replace") for token in tokens[1:]])

    def _request_id(self) -> str | None:
        if not self._tokens or self._id_broken:
            return None
        return self._tokens[0].decode("utf-8", "replace")

    def _reset(self, end: int) -> None:
        self._start = self._pos = end
        self._token_start = -1
        self._tokens = []
        self._problem = None
        self._id_broken = False


def _parse_plain_lines(lines: list[str]) -> list[Parsed]:
    """Plain lines, each a Message or Malformed, runs of SET lines as SetLines."""
    parsed: list[Parsed] = []
    sets: list[tuple[str, ...]] = []
    for line in lines:
        if (match := _SET_LINE.fullmatch(line)) is not None:
            sets.append(match.groups())
            continue
        if sets:
            parsed.append(SetLines.of(sets))
            sets = []
        parsed.append(_parse_plain(line))
    if sets:
        parsed.append(SetLines.of(sets))
    return parsed


def _parse_plain(line: str) -> Message | Malformed:
    if '"' in line:
        arguments = [arg[1:-1] if arg[0] == '"' else arg for arg in _PLAIN_ARGUMENT.findall(line)]
    else:
        arguments = line.split(" ")
        if "" in arguments:
            arguments = [arg for arg in arguments if arg]
    if len(arguments) >= 2:
        return Message(arguments[0], arguments[1:])
    if arguments:
        return Malformed(arguments[0], "missing instruction after the identifier")
    return Malformed(None, "empty message: expected an identifier and an instruction")


_NEEDS_QUOTES = re.compile(r'[ \n\r"]').search


def quote(text: str) -> str:
    """``text`` as one KCP argument: bare when it can be, else a quoted string."""
    if text and _NEEDS_QUOTES(text) is None:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def reply_prefix(request_id: str | None) -> bytes:
    """The start of every reply line to a request: its id, quoted when it must be.

    A message whose id could not be recovered is answered with the empty id ``""``.
    """
    return quote(request_id or "").encode()


OK_SUFFIX = b" OK\n"


def error_suffix(code: str, reason: str) -> bytes:
    """`` ERROR <code> "<reason>"`` and the LF, the reason always quoted."""
    escaped = reason.replace("\\", "\\\\").replace('"', '\\"')
    return f' ERROR {code} "{escaped}"\n'.encode()
