"""Entry point of ``kairoi serve [-c FILE]``: every process, supervised."""

from __future__ import annotations

import argparse

from kairoi import __version__
from kairoi.config import Config
from kairoi.runtime import ShutdownFlag
from kairoi.supervisor.actor import Supervisor


def main(config: Config, options: argparse.Namespace) -> int:
    shutdown = ShutdownFlag()
    shutdown.install()
    shutdown.watch_children()
    shutdown.watch_hangup()
    print(
        f"kairoi {__version__}: KCP on {config.controller.listen}, "
        f"data in {config.database.path}, sockets in {config.runtime.dir}",
        flush=True,
    )
    return Supervisor(options.config, config.runners.processes, shutdown).run()
