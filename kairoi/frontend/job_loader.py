"""The frontend's loading of job files (``jobs.files``): at start and on SIGHUP each file is
read and checked whole (kairoi/frontend/jobfiles.py), then sent to storage through the
gateway as one request; what became of it is logged."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from kairoi import log, messages
from kairoi.frontend import jobfiles
from kairoi.frontend.gateway import Gateway
from kairoi.scripts import ScriptPolicy

_log = log.get("kairoi.frontend")

JOB_FILE_RETRY_SECONDS = 2.0
"""How soon a job file is sent again when storage did not answer."""


class JobFileLoader:
    """Loads the job files (``jobs.files``) at start and on SIGHUP: each file is read, checked
    as a whole, and sent to storage as one request; what became of it is logged
    (``jobs.loaded``, or ``jobs.refused`` with the line and the reason)."""

    def __init__(self, paths: tuple[str, ...], gateway: Gateway, scripts: ScriptPolicy) -> None:
        self._paths = paths
        self._gateway = gateway
        self._scripts = scripts

    def load_all(self) -> None:
        for path in self._paths:
            self.load(os.path.abspath(path))

    def load(self, path: str) -> None:
        try:
            text = Path(path).read_text(encoding="utf-8")
            job_file = jobfiles.read(path, text, self._scripts)
        except (OSError, UnicodeDecodeError) as exc:
            _log.error("jobs.refused", file=path, line=0, reason=f"cannot read it: {exc}")
            return
        except jobfiles.FileError as exc:
            _log.error("jobs.refused", file=path, line=exc.line, reason=exc.reason)
            return
        except Exception:  # a bug reading one file must not stop the frontend
            _log.exception("jobs.refused", file=path, line=0, reason="internal error")
            return
        self._gateway.submit(self, [(JobFileSlot(self, job_file), job_file.request)])

    def deliver(self) -> None:
        """Each file's outcome was logged as storage answered."""


class JobFileSlot:
    """A job file sent to storage: its outcome is logged; unanswered, it is sent again."""

    def __init__(self, loader: JobFileLoader, job_file: jobfiles.JobFile) -> None:
        self._loader = loader
        self._file = job_file

    def answer(self, reply: messages.Message) -> None:
        request = self._file.request
        match reply:
            case messages.Ok():
                _log.info("jobs.loaded", file=request.source, jobs=len(request.jobs))
            case messages.Refused(positions=(position, *_), reasons=(reason, *_)):
                job_id = request.jobs[position].job_id
                _log.error("jobs.refused", file=request.source, line=self._file.lines[position],
                           job=job_id, reason=reason)  # fmt: skip
            case messages.Failed(code="unavailable"):
                self.expire()
            case messages.Failed(reason=reason):
                _log.error("jobs.refused", file=request.source, line=0, reason=reason)
            case _:
                _log.error("jobs.refused", file=request.source, line=0, reason=repr(reply))

    def expire(self) -> None:
        source = self._file.request.source
        _log.warning("jobs.unanswered", file=source, retry_in=JOB_FILE_RETRY_SECONDS)
        asyncio.get_running_loop().call_later(JOB_FILE_RETRY_SECONDS, self._loader.load, source)
