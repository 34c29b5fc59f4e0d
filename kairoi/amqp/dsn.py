"""AMQP DSNs: ``amqp[s]://user:password@host:port/vhost?heartbeat=N&name=...``.

As aio-pika reads them: no user means guest/guest, no path (or ``/``) means the vhost ``/``,
the port defaults to 5672 (5671 for amqps). Options other than ``heartbeat`` and ``name`` are
refused, not ignored, so a DSN never means less than it says.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

DEFAULT_HEARTBEAT = 60
OPTIONS = ("heartbeat", "name")


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    tls: bool
    user: str
    password: str
    vhost: str
    heartbeat: int
    """Seconds between heartbeats we ask for; 0 turns them off."""
    name: str
    """The connection's name, shown in the broker's management UI."""


def parse_dsn(dsn: str) -> Endpoint:
    """The endpoint ``dsn`` names; ValueError says what is wrong with it."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError("the scheme must be amqp:// or amqps://")
    if not parts.hostname:
        raise ValueError("it names no host")
    port = parts.port  # ValueError for a port that is not a number in 0-65535
    options = _options(parts.query)
    tls = parts.scheme == "amqps"
    return Endpoint(
        host=parts.hostname,
        port=port or (5671 if tls else 5672),
        tls=tls,
        user=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        vhost=unquote(parts.path[1:]) if parts.path not in ("", "/") else "/",
        heartbeat=_heartbeat(options.get("heartbeat")),
        name=options.get("name", "kairoi"),
    )


def _options(query: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unsupported option {unknown[0]!r} (supported: {', '.join(OPTIONS)})")
    return options


def _heartbeat(text: str | None) -> int:
    if text is None:
        return DEFAULT_HEARTBEAT
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"heartbeat must be whole seconds within 0-65535, not {text!r}")
    return int(text)


def mask_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ``***``: safe to log and to show."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
