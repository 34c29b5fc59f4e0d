"""Which scripts the shell runner may run (``runners.shell.allow``): one policy for every door.

A script is judged by its real path: made absolute against the working directory, ``..``
resolved and every symlink followed (``os.path.realpath``), so a symlink inside an allowed
directory that points outside it is refused. The path is matched against the patterns with
wcmatch's glob: ``**`` crosses directories, ``*`` and ``?`` do not cross ``/``, a dot file
matches like any other. A relative pattern is relative to the working directory; the fixed
part of every pattern (before its first wildcard) is resolved too, so an allowed directory
may itself be reached through a symlink.

Three doors check the same way: the frontend when a rule or job file names a script (the
real path is what it sends on), storage when the request arrives on its socket (any process
that can open that socket could send one), and the runner right before it runs the script
(a rule stored before the allow-list was narrowed, or a path turned into a symlink since,
does not run). A script that does not exist yet is accepted, as the reference accepts it: it
fails when it runs, and its real path is checked again then. One that exists but is not a
regular file (a directory, a device, a pipe) is refused at every door: sh would not run it.

The reason a client sees names its own text and the configuration key, never the server's
working directory or patterns: those go to the ``shell.script_refused`` log event.
"""

from __future__ import annotations

import dataclasses
import os
import stat

from wcmatch import glob

from kairoi import log, messages
from kairoi.errors import Forbidden, InvalidRequest

_log = log.get("kairoi.scripts")
_FLAGS = glob.GLOBSTAR | glob.DOTGLOB
_LOGGED = 1024
"""The most of a path a log line shows: a client's long paths cannot make long lines."""


class ScriptPolicy:
    """The allow-list of one process: ``allow`` patterns, relative ones against ``cwd``."""

    def __init__(self, allow: tuple[str, ...], cwd: str | None = None) -> None:
        self._cwd = cwd or os.getcwd()
        self._patterns = [_resolved_pattern(os.path.join(self._cwd, one)) for one in allow]

    def resolve(self, script: str) -> str:
        """The real path of ``script`` when the allow-list admits it; InvalidRequest when it
        is no path, Forbidden when it is not allowed."""
        if not script:
            raise InvalidRequest("the shell runner needs a script path")
        if "\0" in script:
            raise InvalidRequest("a script path cannot hold a NUL character")
        real = os.path.realpath(os.path.join(self._cwd, script))
        if not glob.globmatch(real, self._patterns, flags=_FLAGS):
            _log.warning(
                "shell.script_refused", script=script[:_LOGGED], real_path=real[:_LOGGED],
                cwd=self._cwd, allow=self._patterns,
            )  # fmt: skip
            raise Forbidden(f"script {script!r} is not allowed by runners.shell.allow")
        if not _regular_or_absent(real):
            raise InvalidRequest(f"script {script!r} is not a regular file (a directory, a "
                                 "device or a pipe cannot be run)")  # fmt: skip
        return real

    def runnable(self, script: str) -> str:
        """Right before a run: the real path of a stored ``script``, which must still be
        allowed and, when stored absolute (as every rule set since paths are resolved is),
        still resolve to itself. Raises Forbidden or InvalidRequest."""
        real = self.resolve(script)
        if os.path.isabs(script) and real != script:
            _log.warning("shell.script_refused", script=script[:_LOGGED], real_path=real[:_LOGGED])
            raise Forbidden(
                f"script {script!r} is not its own real path any more (a symlink was put in "
                "its way since it was set)"
            )
        return real

    def job(self, job: messages.DefineJob) -> messages.DefineJob:
        """``job`` with its own shell script (if it has one) resolved and checked."""
        if job.runner != "shell" or len(job.arguments) != 1:
            return job
        return dataclasses.replace(job, arguments=(self.resolve(job.arguments[0]),))

    def jobs(self, load: messages.LoadJobs) -> messages.LoadJobs:
        """``load`` with every job's own shell script resolved and checked."""
        return dataclasses.replace(load, jobs=tuple(map(self.job, load.jobs)))


def _regular_or_absent(real: str) -> bool:
    """Whether ``real`` is a regular file, or nothing yet (it fails when it runs, then)."""
    try:
        return stat.S_ISREG(os.stat(real).st_mode)
    except OSError:  # absent, or not reachable: the run says why
        return True


def _resolved_pattern(pattern: str) -> str:
    """``pattern`` (absolute) normalised, its fixed leading directories resolved."""
    parts = os.path.normpath(pattern).split(os.sep)
    fixed = next(
        (index for index, part in enumerate(parts) if glob.is_magic(part, flags=_FLAGS)),
        len(parts),
    )
    prefix = os.path.realpath(os.sep.join(parts[:fixed]) or os.sep)
    if fixed == len(parts):
        return glob.escape(prefix)
    return os.path.join(glob.escape(prefix), *parts[fixed:])
