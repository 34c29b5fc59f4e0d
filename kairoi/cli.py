"""The ``kairoi`` command: ``serve`` runs everything; each process can also run alone."""

from __future__ import annotations

import argparse
import gc
import importlib
import socket
import sys
from collections.abc import Callable, Sequence

from kairoi import __version__, config, log, runtime
from kairoi.errors import ConfigError
from kairoi.runtime import EXIT_CONFIG

Service = Callable[[config.Config, argparse.Namespace], int]
CONTROL_VERBS = ("stop", "disable", "enable", "delete", "trigger", "get")
"""The control bus's verbs (kairoi.control.protocol.VERBS, which this module does not import:
a process pays in memory for every module it imports)."""

SERVICES = {
    "serve": "run every process and restart any that dies",
    "frontend": "run the KCP frontend alone",
    "storage": "run the storage process alone",
    "dispatcher": "run the dispatcher alone",
    "runner": "run one runner process alone",
    "ctl": "stop, disable, enable, delete, trigger or get a job of a running Kairoi",
}
"""Each command's summary; its code is ``services/<command>.py``, imported only by the process
that runs it (a process pays in memory for every library it imports)."""


def _service(command: str) -> Service:
    module = importlib.import_module(f"services.{command}")
    service: Service = module.main
    return service


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kairoi", description="Kairoi, a time-based job scheduler server."
    )
    parser.add_argument("-V", "--version", action="version", version=f"kairoi {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in SERVICES.items():
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument(
            "-c", "--config", metavar="FILE", help="TOML configuration (default: built-in defaults)"
        )
        if name == "ctl":
            command.add_argument("verb", choices=CONTROL_VERBS, help="what to do")
            command.add_argument("job", help="the job's id")
            command.add_argument(
                "--cascade",
                action="store_true",
                help="with delete: also delete the jobs that run after it",
            )
        if name == "runner":
            command.add_argument(
                "--name",
                default=f"{socket.gethostname()}-runner",
                help="a name unique among runners and kept across restarts "
                "(default: HOSTNAME-runner)",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = build_parser().parse_args(arguments)
    try:
        settings = config.load(options.config)
    except ConfigError as exc:
        print(f"kairoi: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    runtime.set_title(arguments)
    runtime.die_with_supervisor()
    log.configure(options.command, settings.log.level, settings.log.format)
    for warning in settings.warnings:
        log.get("kairoi").warning("config.ignored", reason=warning)
    service = _service(options.command)
    # Everything loaded so far lives as long as the process: keep it out of garbage
    # collections, whose pauses would otherwise show in how late runs start.
    gc.collect()
    gc.freeze()
    return service(settings, options)
