"""The control bus's messages: msgpack maps in, msgpack maps out. Pure code.

A request is ``{"op": <verb>, "job": <job id>}``, with an optional ``"id"`` (any value) that
the reply carries back, and for ``delete`` an optional ``"cascade": true`` (UNSET … CASCADE);
a map (at any depth) that names a key twice is refused, as is any other key. A reply is
``{"status": "ok"}`` (``get`` adds ``"job"``, a map of the job's state), or ``{"status":
"error", "code": <code>, "reason": <words>}``. The codes are KCP's: not_found, conflict,
invalid, forbidden, unavailable, internal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import msgpack

from kairoi import messages
from kairoi.domain import MAX_STRING_BYTES
from kairoi.schedule import format_instant

VERBS: Final[dict[str, Callable[[str, bool], messages.Request]]] = {
    "stop": lambda job_id, _: messages.StopJob(job_id=job_id),
    "disable": lambda job_id, _: messages.DisableJob(job_id=job_id),
    "enable": lambda job_id, _: messages.EnableJob(job_id=job_id),
    "delete": lambda job_id, cascade: messages.UnsetJob(job_id=job_id, cascade=cascade),
    "trigger": lambda job_id, _: messages.TriggerJob(job_id=job_id),
    "get": lambda job_id, _: messages.GetJob(job_id=job_id),
}
"""Each verb and the request it makes of a job id (and, for delete, ``cascade``)."""
_PACKER = msgpack.Packer(use_bin_type=True)


class ControlError(Exception):
    """A request that cannot be understood: answered ``invalid`` with this reason."""

    def __init__(self, request_id: Any, reason: str) -> None:
        super().__init__(reason)
        self.request_id = request_id
        self.reason = reason


def decode_request(body: bytes) -> tuple[Any, messages.Request]:
    """(the request's ``id``, or None; what it asks for). Raises ControlError, whose
    ``request_id`` is what could be read of the id."""
    try:
        request = msgpack.unpackb(body, raw=False, object_pairs_hook=_map_of_unique_keys)
    except _DuplicateKeys as exc:  # which one was meant is not for Kairoi to guess
        raise ControlError(None, f"a map names {exc.keys} more than once") from None
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ControlError(None, f"the request is not msgpack: {exc}") from None
    if not isinstance(request, dict):
        raise ControlError(None, "the request must be a map: {op, job, [id]}")
    request_id = request.get("id")
    unknown = sorted(map(str, set(request) - {"op", "job", "id", "cascade"}))
    if unknown:
        raise ControlError(request_id, f"unknown keys {unknown}: expected op, job, cascade, id")
    cascade = request.get("cascade", False)
    if not isinstance(cascade, bool):
        raise ControlError(request_id, f"cascade must be true or false, not {cascade!r:.40}")
    verb, job_id = request.get("op"), request.get("job")
    if verb not in VERBS:
        raise ControlError(request_id, f"op must be one of {', '.join(VERBS)}, not {verb!r:.40}")
    if "cascade" in request and verb != "delete":
        raise ControlError(request_id, f"cascade applies to delete only, not to {verb}")
    if not isinstance(job_id, str):
        raise ControlError(request_id, f"job must be a string, not {job_id!r:.40}")
    if len(job_id.encode()) > MAX_STRING_BYTES:
        raise ControlError(request_id, f"job is longer than {MAX_STRING_BYTES} bytes")
    return request_id, VERBS[verb](job_id, cascade)


class _DuplicateKeys(Exception):
    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.keys = keys


def _map_of_unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A msgpack map as a dict, refused when it names a key twice (else the last would win:
    ``{"op": "get", "op": "delete"}`` deleted)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        raise _DuplicateKeys(sorted(str(key) for key, count in counts.items() if count > 1)[:5])
    return result


def encode_reply(request_id: Any, reply: messages.Message) -> bytes:
    """The reply to a request, from storage's reply to it."""
    match reply:
        case messages.Ok():
            return _pack(request_id, {"status": "ok"})
        case messages.JobState():
            return _pack(request_id, {"status": "ok", "job": job_map(reply)})
        case messages.Failed(code=code, reason=reason):
            return encode_error(request_id, code, reason)
        case _:
            return encode_error(request_id, "internal", f"unexpected {type(reply).__name__}")


def encode_error(request_id: Any, code: str, reason: str) -> bytes:
    return _pack(request_id, {"status": "error", "code": code, "reason": reason})


def job_map(job: messages.JobState) -> dict[str, Any]:
    """A job's state as the control bus shows it: instants as microseconds since the epoch
    and as ISO 8601 UTC text, None where there is none."""
    return {
        "id": job.job_id,
        "status": job.status,
        "next_due_us": job.next_due_us,
        "next_due": _text(job.next_due_us),
        "run": job.run,
        "last_outcome": job.last_outcome or None,
        "last_finished_us": job.last_finished_us,
        "last_finished": _text(job.last_finished_us),
    }


def _text(instant_us: int | None) -> str | None:
    return None if instant_us is None else format_instant(instant_us)


def _pack(request_id: Any, reply: dict[str, Any]) -> bytes:
    if request_id is not None:
        reply["id"] = request_id
    data: bytes = _PACKER.pack(reply)
    return data
