"""What storage answers and logs when a request raises what no handler expected."""

from __future__ import annotations

import re

from kairoi import log, messages
from kairoi.errors import CorruptRecord, KairoiError, StoreError

_log = log.get("kairoi.storage")
NAMING_A_JOB = (
    messages.RecordOutcome, messages.GetJob, messages.ListRuns, messages.GetOutput,
    messages.UnsetJob, messages.DisableJob, messages.EnableJob, messages.StopJob,
    messages.TriggerJob,
)  # fmt: skip
"""The requests about one job: when one raises, that job's records cannot be handled."""
_PATH = re.compile(r"(?<![\w.>])/[^\s'\"]+")
"""An absolute path in an error's text: a client is not shown the host's paths."""


def reply(request: messages.Message, exc: Exception) -> messages.Failed:
    """The refusal of a request that raised ``exc``: its own code for a KairoiError, else
    ``internal``."""
    if isinstance(exc, KairoiError):
        return messages.Failed(code=exc.code, reason=exc.reason)
    return internal(request, exc)


def internal(request: messages.Message, exc: Exception) -> messages.Failed:
    """The reply to a request that raised what no handler expected, logged for the operator
    with its traceback."""
    name = type(request).__name__
    _log.error("storage.request_failed", request=name, exc_info=exc)
    return messages.Failed(code="internal", reason=f"storage could not apply {name}: "
                           f"{without_paths(f'{type(exc).__name__}: {exc}')}")  # fmt: skip


def without_paths(text: str) -> str:
    """``text`` (at most 200 characters of it) with every absolute path made ``<path>``."""
    return _PATH.sub("<path>", text)[:200]


def unhandleable(exc: Exception) -> bool:
    """Whether ``exc`` says a record cannot be handled (quarantine it): a bug, or a record
    that cannot be decoded (also behind the refusal that names it), not a refusal of the
    request or a database that cannot be read at the moment (it may read again soon)."""
    if isinstance(exc, KairoiError):
        return isinstance(exc.__cause__, CorruptRecord)
    return isinstance(exc, CorruptRecord) or not isinstance(exc, StoreError)
