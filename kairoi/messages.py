"""Every message between Kairoi processes, in one place.

On the wire a batch is two frames: the protocol version, then a msgpack array of items, each
``[correlation, tag, field…]``. The correlation number is the sender's, echoed in the reply.
Decoding is strict: an unknown version or tag, a wrong field count or a wrong field type is a
``MessageError``, and the receiver logs and drops the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, get_args, get_origin, get_type_hints

import msgpack

from kairoi.errors import MessageError

PROTOCOL_VERSION: Final = b"KAIROI/1"


@dataclass(frozen=True, kw_only=True, slots=True)
class SetJob:
    """frontend → storage: plan ``job_id`` at ``due_us``, creating it when missing."""

    job_id: str
    due_us: int


@dataclass(frozen=True, kw_only=True, slots=True)
class SetShellRule:
    """frontend → storage: create or replace a rule that runs ``sh <script> <job id>``."""

    rule_id: str
    pattern: str
    script: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SetAmqpRule:
    """frontend → storage: create or replace a rule that publishes job ids to a broker."""

    rule_id: str
    pattern: str
    dsn: str
    exchange: str
    routing_key: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Ok:
    """storage → requester: the request was applied and is durable."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Failed:
    """any → requester: the request was refused or could not be applied."""

    code: str
    reason: str


Request = SetJob | SetShellRule | SetAmqpRule
Reply = Ok | Failed
Message = Request | Reply

# Tags are part of the wire format: never reuse or renumber one.
TAGS: Final[dict[int, type[Message]]] = {
    1: SetJob,
    2: SetShellRule,
    3: SetAmqpRule,
    100: Ok,
    101: Failed,
}
_TAG_OF: Final = {cls: tag for tag, cls in TAGS.items()}


_PACKER = msgpack.Packer(use_bin_type=True)  # reused: packb would build one per call


def _accepted_types(hint: Any) -> tuple[type, ...]:
    if get_origin(hint) is tuple:
        return (list,)
    return tuple(arg for arg in get_args(hint)) or (hint,)


_FIELDS: Final = {
    cls: tuple((f.name, _accepted_types(get_type_hints(cls)[f.name])) for f in fields(cls))
    for cls in TAGS.values()
}

_NAMES: Final = {cls: tuple(name for name, _ in spec) for cls, spec in _FIELDS.items()}
_SIMPLE_TYPES: Final = {
    cls: tuple(accepted[0] for _, accepted in spec)
    for cls, spec in _FIELDS.items()
    if all(len(accepted) == 1 for _, accepted in spec)
}
"""For messages whose every field has one type: the types of a valid message, in order."""
_FIELDLESS: Final = {cls: cls() for cls, spec in _FIELDS.items() if not spec}  # type: ignore[call-arg]
"""Messages without fields are all alike: decoding shares one instance of each."""

Item = tuple[int, Message]


def encode(items: Sequence[Item]) -> list[bytes]:
    """The frames of a batch of (correlation, message) items."""
    body = [
        [
            correlation,
            _TAG_OF[type(message)],
            *(getattr(message, name) for name, _ in _FIELDS[type(message)]),
        ]
        for correlation, message in items
    ]
    return [PROTOCOL_VERSION, _PACKER.pack(body)]


def decode(frames: Sequence[bytes]) -> list[Item]:
    """The items of a batch; raises MessageError if anything about it is wrong."""
    if len(frames) != 2 or frames[0] != PROTOCOL_VERSION:
        head = bytes(frames[0][:16]) if frames else b""
        raise MessageError(
            f"expected [{PROTOCOL_VERSION!r}, body]; got {len(frames)} frames, {head!r}"
        )
    try:
        body = msgpack.unpackb(frames[1], raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise MessageError(f"body is not msgpack: {exc!r}") from exc
    if not isinstance(body, list):
        raise MessageError("body must be an array of items")
    return [_decode_item(item) for item in body]


def _decode_item(item: Any) -> Item:
    if not isinstance(item, list) or len(item) < 2:
        raise MessageError(f"item must be [correlation, tag, field...], got {item!r:.80}")
    correlation, tag, *values = item
    cls = TAGS.get(tag) if type(tag) is int else None
    if type(correlation) is not int or cls is None:
        raise MessageError(f"bad correlation or unknown tag in {item!r:.80}")
    spec = _FIELDS[cls]
    if len(values) != len(spec):
        raise MessageError(f"{cls.__name__} takes {len(spec)} fields, got {len(values)}")
    if tuple(map(type, values)) != _SIMPLE_TYPES.get(cls):  # the fast check did not settle it
        for (name, accepted), value in zip(spec, values, strict=True):
            if type(value) not in accepted:
                raise MessageError(f"{cls.__name__}.{name} must be {accepted}, got {value!r:.40}")
    if not values:
        return correlation, _FIELDLESS[cls]
    return correlation, cls(**dict(zip(_NAMES[cls], values, strict=True)))
