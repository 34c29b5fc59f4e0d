"""The replies a connection owes, in request order: one slot per request, or one for a whole
run of pipelined SETs. Pure code: the actor fills slots as storage answers and writes the
lines of the slots at the head of the queue once they are ready.
"""

from __future__ import annotations

from typing import Protocol

from kairoi import messages
from kairoi.errors import KairoiError
from kairoi.frontend import kcp
from kairoi.limits import MAX_OUTPUT_BYTES, MAX_PAGE_BYTES
from kairoi.schedule import format_instant

UNAVAILABLE = kcp.error_suffix("unavailable", "storage did not answer; the outcome is unknown")
INTERNAL = messages.Failed(
    code="internal", reason="the reply could not be written; the server log says why"
)
"""What a request is answered when a fault of Kairoi's own lost its reply."""
INTERNAL_SUFFIX = kcp.error_suffix(INTERNAL.code, INTERNAL.reason)
MAX_OWED_BYTES = 8 * MAX_PAGE_BYTES
"""The most a connection's owed replies may hold (``OwedBytes``): past it, the connection
reads no further request until replies have been written (it reads one when it owes none, so
one reply reserved larger still goes)."""
MAX_TOTAL_OWED_BYTES = 8 * MAX_OWED_BYTES
"""The most the owed replies of every connection together may hold: past it, a connection
that owes any reads no further request until some are written (one that owes none still
reads, so none waits for ever; each then holds at most one reply more)."""
_LISTING = (messages.ListJobs, messages.ListRuns, messages.ListRules)
_LINE_WORDS_BYTES = 256
"""More than a listed line holds besides its request id and its quoted strings."""
_PAGE_ITEMS_MOST = MAX_PAGE_BYTES // 64
"""The most items a page holds: storage counts each at least 64 bytes (storage/views.py)."""


def reserved_bytes(request: messages.Request, prefix: bytes) -> int:
    """What the reply to ``request`` may hold at most, counted against MAX_OWED_BYTES before
    it comes, so the bound holds in the bytes written: an output is decoded (an invalid byte
    becomes a 3-byte U+FFFD) and quoted; a page's strings are quoted (a backslash or quote
    doubles) and each line repeats the request id. Nothing for the rest (short replies,
    counted once they come, and bounded by ``controller.max_pending`` in number)."""
    if isinstance(request, messages.GetOutput):
        return 3 * MAX_OUTPUT_BYTES + len(prefix) + _LINE_WORDS_BYTES
    if isinstance(request, _LISTING):
        lines = 2 + min(getattr(request, "limit", _PAGE_ITEMS_MOST), _PAGE_ITEMS_MOST)
        return 2 * MAX_PAGE_BYTES + lines * (len(prefix) + _LINE_WORDS_BYTES)
    return 0


class Slot:
    """One owed reply: the request's id, then its whole line once known."""

    __slots__ = ("_owed", "line", "prefix", "reserved")
    size = 1

    def __init__(
        self,
        prefix: bytes,
        line: bytes | None = None,
        reserved: int = 0,
        owed: OwedBytes | None = None,
    ) -> None:
        self.prefix = prefix
        self.line = line
        self.reserved = reserved
        self._owed = owed

    def answer(self, reply: messages.Message) -> None:
        self._fill(render(self.prefix, reply))

    def expire(self) -> None:
        self._fill(self.prefix + UNAVAILABLE)

    def _fill(self, line: bytes) -> None:
        """Hold ``line``; from now on it, not the reservation, counts in ``owed``."""
        self.line = line
        if self._owed is not None:
            self._owed.add(len(line) - self.reserved)
            self.reserved = len(line)


class OwedBytes:
    """What a connection's owed replies hold: each slot's reservation (``reserved_bytes``)
    until it is answered, then its line, until it is written; and the same summed over every
    connection, in ``total`` (shared)."""

    __slots__ = ("total", "value")

    def __init__(self, total: OwedBytes | None = None) -> None:
        self.value = 0
        self.total = total

    def add(self, delta: int) -> None:
        self.value += delta
        if self.total is not None:
            self.total.value += delta


class SetsSlot:
    """The replies to a run of SET lines (``kcp.SetLines``), all written at once. Lines
    refused before storage was asked (a bad date) are ``refused``; storage's reply answers the
    others, which it was sent in order as one ``SetJobs``."""

    __slots__ = ("_refused", "_request_ids", "line")
    reserved = 0

    def __init__(self, request_ids: tuple[str, ...], refused: dict[int, KairoiError]) -> None:
        self._request_ids = request_ids  # bare: no quoting needed
        self._refused = {
            position: kcp.error_suffix(error.code, error.reason)
            for position, error in refused.items()
        }
        self.line: bytes | None = None
        if len(refused) == len(request_ids):
            self.line = self._lines({})

    @property
    def size(self) -> int:
        return len(self._request_ids)

    def answer(self, reply: messages.Message) -> None:
        if isinstance(reply, messages.Ok) and not self._refused:
            ids = self._request_ids  # the common case: every line is OK
            self.line = (" OK\n".join(ids) + " OK\n").encode()
            return
        sent = self._sent()
        match reply:
            case messages.Ok():
                self.line = self._lines({})
            case messages.Refused(positions=positions, codes=codes, reasons=reasons):
                self.line = self._lines({
                    sent[position]: kcp.error_suffix(code, reason)
                    for position, code, reason in zip(positions, codes, reasons, strict=True)
                    if 0 <= position < len(sent)
                })  # fmt: skip
            case _:
                self.line = self._lines(dict.fromkeys(sent, suffix(reply)))

    def expire(self) -> None:
        self.line = self._lines(dict.fromkeys(self._sent(), UNAVAILABLE))

    def _sent(self) -> list[int]:
        """The positions of the lines sent to storage, in order."""
        return [p for p in range(len(self._request_ids)) if p not in self._refused]

    def _lines(self, answered: dict[int, bytes]) -> bytes:
        """Each line's reply: refused here, else as ``answered`` says, else OK."""
        return b"".join(
            request_id.encode() + self._refused.get(position, answered.get(position, kcp.OK_SUFFIX))
            for position, request_id in enumerate(self._request_ids)
        )


AnySlot = Slot | SetsSlot


class Owed(Protocol):
    """A reply owed to a request sent to storage, whatever the door it came by."""

    def answer(self, reply: messages.Message) -> None: ...

    def expire(self) -> None:
        """Storage did not answer in time: the outcome is unknown."""
        ...


class Sink(Protocol):
    """Where owed replies go once answered (a KCP connection, the control bus)."""

    def deliver(self) -> None: ...


def suffix(reply: messages.Message) -> bytes:
    """What follows the request id in the reply line to a request answered OK or ERROR."""
    match reply:
        case messages.Ok():
            return kcp.OK_SUFFIX
        case messages.Failed(code=code, reason=reason):
            return kcp.error_suffix(code, reason)
        case _:
            return kcp.error_suffix("internal", f"unexpected reply {type(reply).__name__}")


def render(prefix: bytes, reply: messages.Message) -> bytes:
    """The whole reply to a request whose id is ``prefix`` (already quoted): one line, or
    for a list, a line per item (``<id> <KIND> …``) and a last ``<id> OK <count>`` (and the
    cursor of a page that ended early)."""
    match reply:
        case messages.JobState():
            return prefix + _line("OK", *_job_words(reply))
        case messages.Jobs(jobs=jobs, more=more):
            words = [[kcp.quote(j.job_id), *_job_words(j)] for j in jobs]
            return _listed(prefix, "JOB", words, _cursor("AFTER", more, words))
        case messages.Runs(runs=runs, more=more):
            words = [_run_words(run) for run in runs]
            return _listed(prefix, "RUN", words, _cursor("BEFORE", more, words))
        case messages.RuleState():
            return prefix + _line("OK", *_rule_words(reply)[1:])
        case messages.Rules(rules=rules, more=more):
            words = [_rule_words(rule) for rule in rules]
            return _listed(prefix, "RULE", words, _cursor("AFTER", more, words))
        case messages.Output(run=run, output=output):
            return prefix + _line("OK", str(run), kcp.quote(output.decode("utf-8", "replace")))
        case messages.Pong():
            return prefix + _line("OK", "PONG")
        case messages.Stats(names=names, values=values):
            counts = [f"{name}={value}" for name, value in zip(names, values, strict=True)]
            return prefix + _line("OK", *counts)
        case _:
            return prefix + suffix(reply)


def _line(*words: str) -> bytes:
    return (" " + " ".join(words) + "\n").encode()


def _listed(prefix: bytes, kind: str, items: list[list[str]], cursor: list[str]) -> bytes:
    lines = [prefix + _line(kind, *words) for words in items]
    return b"".join([*lines, prefix + _line("OK", str(len(items)), *cursor)])


def _cursor(keyword: str, more: bool, items: list[list[str]]) -> list[str]:
    """A page that ended early (MAX_PAGE_BYTES) ends ``OK <count> <keyword> <first word of
    its last item>``: the option that asks for the next page."""
    return [keyword, items[-1][0]] if more and items else []


def _job_words(job: messages.JobState) -> list[str]:
    """status, next due, run, last outcome, last finished, schedule, options: as GET and
    LIST show a job."""
    return [
        job.status,
        _instant(job.next_due_us),
        str(job.run),
        job.last_outcome or "-",
        _instant(job.last_finished_us),
        kcp.quote(job.when) if job.when else "-",
        *map(kcp.quote, job.options),
    ]


def _run_words(run: messages.RunState) -> list[str]:
    return [
        str(run.run),
        _instant(run.due_us),
        _instant(run.started_us),
        _instant(run.finished_us),
        run.outcome,
        "-" if run.exit_code is None else str(run.exit_code),
        "manual" if run.manual else "scheduled",
        kcp.quote(run.reason),
    ]


def _rule_words(rule: messages.RuleState) -> list[str]:
    return [kcp.quote(word) for word in (rule.rule_id, rule.pattern, rule.runner, *rule.arguments)]


def _instant(instant_us: int | None) -> str:
    return "-" if instant_us is None else format_instant(instant_us)
