"""Entry point of a runner process: ``kairoi runner [-c FILE] [--name NAME]``."""

from __future__ import annotations

import argparse

from kairoi import log
from kairoi.config import Config
from kairoi.errors import BusError
from kairoi.runner import actor
from kairoi.runtime import run_async


def main(config: Config, options: argparse.Namespace) -> int:
    try:
        run_async(actor.run(config, options.name))
    except BusError as exc:
        log.get("kairoi.runner").error("service.failed", reason=str(exc))
        return 1
    return 0
