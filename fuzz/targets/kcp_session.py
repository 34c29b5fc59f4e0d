"""The KCP session: bytes in, the reply lines a connection would write out.

What a frontend connection does with what it reads, without the event loop: the parser (fed in
chunks the input itself chooses), the instruction reader (``read`` and ``read_sets``) and the
reply slots, every request that would go to storage answered OK or expired. Checked: nothing
raises but KairoiError inside the reader; chunking never changes what is parsed; a request for
storage survives the message codec; every message gets exactly one reply line per request id,
in order, that parses back as ``ID OK …`` or ``ID ERROR <code> "<reason>"``.
"""

from __future__ import annotations

from fuzz.seeds import SCRIPT_POLICY
from kairoi import messages
from kairoi.errors import InvalidRequest, KairoiError
from kairoi.frontend import kcp
from kairoi.frontend.instructions import InstructionReader, Local
from kairoi.frontend.replies import AnySlot, SetsSlot, Slot

MAX_LINE = 512
"""A small line limit, so that over-long lines are reached too."""
CODES = {"invalid", "forbidden", "conflict", "not_found", "unavailable", "internal"}
_READER = InstructionReader(SCRIPT_POLICY)


def TestOneInput(data: bytes) -> None:  # noqa: N802 (the name atheris and libFuzzer use)
    chunked = parse(data, chunk=1 + (data[0] % 64) if data else 1)
    whole = parse(data, chunk=len(data) or 1)
    assert chunked == whole, f"chunking changed the parse: {chunked} != {whole}"
    slots, expected_ids = answer(whole, expire=bool(data) and data[-1] % 2 == 1)
    check_replies(b"".join(slot.line or b"" for slot in slots), expected_ids)


def parse(data: bytes, chunk: int) -> list[kcp.Message | kcp.Malformed]:
    """Every message in ``data``, fed ``chunk`` bytes at a time (runs of SETs as messages)."""
    parser = kcp.Parser(MAX_LINE)
    parsed: list[kcp.Message | kcp.Malformed] = []
    for start in range(0, len(data), chunk):
        parser.feed(data[start : start + chunk])
        while (item := parser.next()) is not None:
            parsed.extend(item.messages() if isinstance(item, kcp.SetLines) else [item])
    if (rest := parser.finish()) is not None:
        parsed.append(rest)
    return parsed


def answer(
    parsed: list[kcp.Message | kcp.Malformed], expire: bool
) -> tuple[list[AnySlot], list[str]]:
    """The slots a connection fills for ``parsed``, and the request id each reply must have."""
    slots: list[AnySlot] = []
    ids: list[str] = []
    for item in parsed:
        ids.append(item.request_id or "")
        if isinstance(item, kcp.Malformed):
            error = InvalidRequest(item.reason)
            prefix = kcp.reply_prefix(item.request_id)
            slots.append(Slot(prefix, prefix + kcp.error_suffix(error.code, error.reason)))
            if item.fatal:
                break
        else:
            slots.append(_read(item, expire))
    _check_set_batch(parsed, expire)
    return slots, ids


def _read(message: kcp.Message, expire: bool) -> Slot:
    slot = Slot(kcp.reply_prefix(message.request_id))
    try:
        asked = _READER.read(message.arguments)
    except KairoiError as exc:
        slot.line = slot.prefix + kcp.error_suffix(exc.code, exc.reason)
        return slot
    if isinstance(asked, Local):
        slot.line = slot.prefix + asked.suffix
        return slot
    _through_codec(asked)
    if expire:
        slot.expire()
    else:
        slot.answer(messages.Ok())
    return slot


def _through_codec(request: messages.Message) -> None:
    (item,) = messages.decode(messages.encode([(7, request)]))
    assert item == (7, request), f"the codec changed {request!r} into {item!r}"


def _check_set_batch(parsed: list[kcp.Message | kcp.Malformed], expire: bool) -> None:
    """``read_sets`` of the plain SETs among ``parsed`` agrees with reading them one by one."""
    sets = [
        item
        for item in parsed
        if isinstance(item, kcp.Message)
        and len(item.arguments) == 3  # SET, job, when
        and item.arguments[0] == "SET"
        and item.arguments[1]
        and kcp.quote(item.request_id) == item.request_id
    ]
    if not sets:
        return
    read = _READER.read_sets(
        tuple(m.arguments[1] for m in sets), tuple(m.arguments[2] for m in sets)
    )
    if read is None:
        return
    request, refused = read
    one_by_one = [_one(m) for m in sets]
    assert sorted(refused) == [i for i, r in enumerate(one_by_one) if isinstance(r, KairoiError)]
    valid = [r for r in one_by_one if isinstance(r, messages.SetJob)]
    if request is None:
        assert not valid
        return
    _through_codec(request)
    assert list(zip(request.job_ids, request.due_us, strict=True)) == [
        (r.job_id, r.due_us) for r in valid
    ]
    slot = SetsSlot(tuple(m.request_id for m in sets), refused)
    slot.expire() if expire else slot.answer(messages.Ok())
    check_replies(slot.line or b"", [m.request_id for m in sets])


def _one(message: kcp.Message) -> messages.Request | Local | KairoiError:
    try:
        return _READER.read(message.arguments)
    except KairoiError as exc:
        return exc


def check_replies(written: bytes, expected_ids: list[str]) -> None:
    """``written`` is one well-formed reply line for each id, in order."""
    parser = kcp.Parser(len(written) + 1)
    parser.feed(written)
    got = []
    while (reply := parser.next()) is not None:
        replies = reply.messages() if isinstance(reply, kcp.SetLines) else [reply]
        for line in replies:
            assert isinstance(line, kcp.Message), f"unparsable reply {line!r} in {written!r}"
            _check_reply(line)
            if line.arguments[0] in ("OK", "ERROR"):  # not an item line (a LIST's, a RUNS')
                got.append(line.request_id)
    assert parser.finish() is None, f"a reply without its LF: {written[-80:]!r}"
    assert got == expected_ids, f"reply ids {got} for requests {expected_ids}"


def _check_reply(line: kcp.Message) -> None:
    match line.arguments:
        case ["OK", *_]:
            pass
        case ["ERROR", code, _reason] if code in CODES:
            pass
        case _:
            raise AssertionError(f"not a reply: {line!r}")
