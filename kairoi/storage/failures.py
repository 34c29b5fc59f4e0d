"""What storage answers and logs when a request raises what no handler expected."""

from __future__ import annotations

import re

from kairoi import log, messages
from kairoi.errors import CorruptRecord, KairoiError, StoreError

_log = log.get("kairoi.storage")
CHANGING_A_JOB = (
    messages.RecordOutcome, messages.UnsetJob, messages.DisableJob, messages.EnableJob,
    messages.StopJob, messages.TriggerJob,
)  # fmt: skip
"""The requests that change one job: when one raises, that job's records cannot be handled
(and a runner's report would meet the same fault each time it is sent again)."""
READING_A_JOB = (messages.GetJob, messages.ListRuns, messages.GetOutput)
"""The requests that only read one job: a record of it found unreadable sets it aside, a
fault of Kairoi's own in reading it does not (the job may still run as it should)."""
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
    with its traceback; the client is told the kind of fault, not its text (which may name
    the host's paths or values of its configuration)."""
    name = type(request).__name__
    _log.error("storage.request_failed", request=name, exc_info=exc)
    return messages.Failed(code="internal", reason=f"storage could not apply {name}: "
                           f"{type(exc).__name__} (the server log has the details)")  # fmt: skip


def without_paths(text: str) -> str:
    """``text`` (at most 200 characters of it) with every absolute path made ``<path>``."""
    return _PATH.sub("<path>", text)[:200]


def sets_aside(request: messages.Message, exc: Exception) -> str | None:
    """The job that ``request``, having raised ``exc``, shows cannot be handled (to be
    quarantined), or None."""
    if isinstance(request, CHANGING_A_JOB) and unhandleable(exc):
        return request.job_id
    if isinstance(request, READING_A_JOB) and corrupt(exc):
        return request.job_id
    return None


def corrupt(exc: Exception) -> bool:
    """Whether ``exc`` is, or is behind, a record that cannot be decoded."""
    return isinstance(exc, CorruptRecord) or isinstance(exc.__cause__, CorruptRecord)


def unhandleable(exc: Exception) -> bool:
    """Whether ``exc`` says a record cannot be handled (quarantine it): a bug, or a record
    that cannot be decoded (also behind the refusal that names it), not a refusal of the
    request or a database that cannot be read at the moment (it may read again soon)."""
    if isinstance(exc, KairoiError):
        return isinstance(exc.__cause__, CorruptRecord)
    return isinstance(exc, CorruptRecord) or not isinstance(exc, StoreError)
