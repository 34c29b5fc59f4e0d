"""What storage checks of a request before it applies it: the bus is a door too.

Any process that can open the storage socket can send any request, so a rule is checked here
as the frontend checks it on KCP: its shell script (and a job's own) against
``runners.shell.allow``, resolved to the real path that is stored (kairoi/scripts.py); its
AMQP DSN parsed; its words no longer than KCP allows. Pure: a request in, the request to
apply out, or a KairoiError.
"""

from __future__ import annotations

import dataclasses

from kairoi import messages
from kairoi.amqp.dsn import parse_dsn
from kairoi.domain import MAX_STRING_BYTES
from kairoi.errors import InvalidRequest
from kairoi.scripts import ScriptPolicy


def checked(request: messages.Message, scripts: ScriptPolicy | None) -> messages.Message:
    """``request`` with the shell scripts it names resolved (when ``scripts`` is given: None
    takes them as they are); KairoiError when a rule or a script is refused."""
    match request:
        case messages.SetShellRule(rule_id=rule_id, pattern=pattern, script=script):
            _check_lengths(rule_id, pattern, script)
            if scripts is not None:
                return dataclasses.replace(request, script=scripts.resolve(script))
        case messages.SetAmqpRule():
            _check_lengths(request.rule_id, request.pattern, request.dsn, request.exchange,
                           request.routing_key)  # fmt: skip
            _check_dsn(request.dsn)
        case messages.DefineJob() if scripts is not None:
            return scripts.job(request)
        case messages.LoadJobs() if scripts is not None:
            return scripts.jobs(request)
    return request


def _check_lengths(*words: str) -> None:
    if any(len(word.encode()) > MAX_STRING_BYTES for word in words):
        raise InvalidRequest(f"a rule's word is longer than {MAX_STRING_BYTES} bytes")


def _check_dsn(dsn: str) -> None:
    try:
        parse_dsn(dsn)
    except ValueError as exc:
        # Not echoed: a DSN too malformed to parse may be too malformed to mask its password.
        raise InvalidRequest(f"invalid AMQP DSN: {exc}") from None
