"""The control bus's door into the frontend: msgpack requests from operators' tools
(``kairoi ctl``), sent to storage through the same gateway as KCP's."""

from __future__ import annotations

from typing import Any

from kairoi import log, messages
from kairoi.bus import ControlServer
from kairoi.control import protocol as control
from kairoi.frontend.gateway import Gateway

_log = log.get("kairoi.frontend")


class ControlSlot:
    """A control-bus request's reply: sent as soon as storage answers (each carries its own
    route back, so replies need no order)."""

    __slots__ = ("_envelope", "_request_id", "_server")

    def __init__(self, server: ControlServer, envelope: list[bytes], request_id: Any) -> None:
        self._server = server
        self._envelope = envelope
        self._request_id = request_id

    def answer(self, reply: messages.Message) -> None:
        self._server.send(self._envelope, control.encode_reply(self._request_id, reply))

    def expire(self) -> None:
        reason = "storage did not answer; the outcome is unknown"
        body = control.encode_error(self._request_id, "unavailable", reason)
        self._server.send(self._envelope, body)


class ControlDoor:
    """The control bus: msgpack requests from operators' tools, through storage like KCP's,
    so that a job stopped, disabled or deleted by either door is the same."""

    def __init__(self, server: ControlServer, gateway: Gateway) -> None:
        self._server = server
        self._gateway = gateway

    async def run(self) -> None:
        while True:
            envelope, body = await self._server.receive()
            if body is None:
                reason = "expected a request frame after an empty delimiter frame (use REQ)"
                self._server.send(envelope, control.encode_error(None, "invalid", reason))
                continue
            try:
                request_id, request = control.decode_request(body)
            except control.ControlError as exc:
                body = control.encode_error(exc.request_id, "invalid", exc.reason)
                self._server.send(envelope, body)
                continue
            except Exception as exc:  # a bug must not take the control bus down
                _log.exception("control.request_failed", reason=repr(exc))
                reason = f"cannot read it: {type(exc).__name__} (the server log has the details)"
                body = control.encode_error(None, "internal", reason)
                self._server.send(envelope, body)
                continue
            self._gateway.submit(self, [(ControlSlot(self._server, envelope, request_id), request)])

    def deliver(self) -> None:
        """Replies went out as they were answered."""
