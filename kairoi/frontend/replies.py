"""The replies a connection owes, in request order: one slot per request, or one for a whole
run of pipelined SETs. Pure code: the actor fills slots as storage answers and writes the
lines of the slots at the head of the queue once they are ready.
"""

from __future__ import annotations

from kairoi import messages
from kairoi.errors import KairoiError
from kairoi.frontend import kcp

UNAVAILABLE = kcp.error_suffix("unavailable", "storage did not answer; the outcome is unknown")


class Slot:
    """One owed reply: the request's id, then its whole line once known."""

    __slots__ = ("line", "prefix")
    size = 1

    def __init__(self, prefix: bytes, line: bytes | None = None) -> None:
        self.prefix = prefix
        self.line = line

    def answer(self, reply: messages.Message) -> None:
        self.line = self.prefix + suffix(reply)

    def expire(self) -> None:
        self.line = self.prefix + UNAVAILABLE


class SetsSlot:
    """The replies to a run of SET lines (``kcp.SetLines``), all written at once. Lines
    refused before storage was asked (a bad date) are ``refused``; storage's reply answers the
    others, which it was sent in order as one ``SetJobs``."""

    __slots__ = ("_refused", "_request_ids", "line")

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
        sent = [p for p in range(len(self._request_ids)) if p not in self._refused]
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
        sent = [p for p in range(len(self._request_ids)) if p not in self._refused]
        self.line = self._lines(dict.fromkeys(sent, UNAVAILABLE))

    def _lines(self, answered: dict[int, bytes]) -> bytes:
        """Each line's reply: refused here, else as ``answered`` says, else OK."""
        return b"".join(
            request_id.encode() + self._refused.get(position, answered.get(position, kcp.OK_SUFFIX))
            for position, request_id in enumerate(self._request_ids)
        )


AnySlot = Slot | SetsSlot


def suffix(reply: messages.Message) -> bytes:
    """What follows the request id in the reply line that ``reply`` makes."""
    match reply:
        case messages.Ok():
            return kcp.OK_SUFFIX
        case messages.Failed(code=code, reason=reason):
            return kcp.error_suffix(code, reason)
        case _:
            return kcp.error_suffix("internal", f"unexpected reply {type(reply).__name__}")
