"""Kairoi's own exceptions.

Every error a client can see carries a stable ``code``; the actor boundary turns it into
``Failed(code, reason)`` on the bus and ``ID ERROR <code> "<reason>"`` on KCP.

    KairoiError                      code
    ├── InvalidRequest               invalid      malformed line, bad arity, bad date, bad value
    │   └── TooManyRelatives         invalid      a request would walk too many AFTER relatives
    ├── Forbidden                    forbidden    refused by configuration (shell allow-list)
    ├── Conflict                     conflict     the job's state forbids it (SET on Triggered)
    ├── NotFound                     not_found    no such job or rule
    ├── Unavailable                  unavailable  a process did not answer; outcome unknown
    └── InternalError                internal     a bug or a broken resource
    ConfigError                      (not on the wire) a configuration file or key is wrong
    BusError                         (not on the wire) ZeroMQ failed: bad endpoint, cannot bind
    MessageError                     (not on the wire) a message between processes is malformed
    StoreError                       (not on the wire) the database cannot be opened or written
    └── CorruptRecord                (not on the wire) a record on disk cannot be decoded
"""

from __future__ import annotations

from typing import ClassVar


class KairoiError(Exception):
    """An error with a stable code, safe to show to a client."""

    code: ClassVar[str] = "internal"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidRequest(KairoiError):
    code = "invalid"


class TooManyRelatives(InvalidRequest):
    """More jobs run after a job (AFTER, directly or not) than one request walks."""


class Forbidden(KairoiError):
    code = "forbidden"


class Conflict(KairoiError):
    code = "conflict"


class NotFound(KairoiError):
    code = "not_found"


class Unavailable(KairoiError):
    code = "unavailable"


class InternalError(KairoiError):
    code = "internal"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file or key."""


class BusError(Exception):
    """A ZeroMQ socket could not be set up or used."""


class MessageError(Exception):
    """Bytes received from another process are not a valid message."""


class StoreError(Exception):
    """The durable store failed: it cannot be opened, read or written."""


class CorruptRecord(StoreError):
    """A record read from the database cannot be decoded (storage quarantines it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
