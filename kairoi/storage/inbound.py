"""What storage resolves of a request before it applies it: the bus is a door too.

Any process that can open the storage socket can send any request, so the shell scripts a
rule or a job names are checked here as the frontend checks them on KCP: against
``runners.shell.allow``, resolved to the real path that is stored (kairoi/scripts.py). The
ranges and sizes of every field are checked before this, by kairoi/checks.py. Pure: a
request in, the request to apply out, or a KairoiError.
"""

from __future__ import annotations

import dataclasses

from kairoi import messages
from kairoi.scripts import ScriptPolicy


def checked(request: messages.Message, scripts: ScriptPolicy | None) -> messages.Message:
    """``request`` with the shell scripts it names resolved (when ``scripts`` is given: None
    takes them as they are); KairoiError when a script is refused."""
    if scripts is None:
        return request
    match request:
        case messages.SetShellRule(script=script):
            return dataclasses.replace(request, script=scripts.resolve(script))
        case messages.DefineJob():
            return scripts.job(request)
        case messages.LoadJobs():
            return scripts.jobs(request)
    return request
