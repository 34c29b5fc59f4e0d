"""AMQP DSNs: ``amqp[s]://user:password@host:port/vhost?heartbeat=N&name=...``.

As aio-pika reads them: no user means guest/guest, no path (or ``/``) means the vhost ``/``,
the port defaults to 5672 (5671 for amqps). Options other than ``heartbeat`` and ``name`` are
refused, not ignored, so a DSN never means less than it says. Whatever the text, parsing
raises only ValueError (with the reason) and masking never raises.
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
    parts = urlsplit(dsn)  # ValueError for a malformed IPv6 host ("[::1", "[zz]")
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError("the scheme must be amqp:// or amqps://")
    if not parts.hostname:
        raise ValueError("it names no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port must be a number between 0 and 65535") from None
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
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        raise ValueError(f"heartbeat must be whole seconds between 0 and 65535, not {text[:20]!r}")
    return int(text)


def mask_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ``***``: safe to log and to show."""
    try:
        parts = urlsplit(dsn)
    except ValueError:  # not a URL urllib takes: mask what stands where a password would
        return _mask_unparsed(dsn)
    if parts.password is None:
        return dsn
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _mask_unparsed(dsn: str) -> str:
    head, separator, rest = dsn.partition("://")
    authority, slash, path = rest.partition("/")
    user_info, at, host = authority.rpartition("@")
    if not at or ":" not in user_info:
        return dsn
    return f"{head}{separator}{user_info.partition(':')[0]}:***@{host}{slash}{path}"
