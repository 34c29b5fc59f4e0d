"""Entry point of the dispatcher process: ``kairoi dispatcher [-c FILE]``."""

from __future__ import annotations

import argparse

from kairoi import log
from kairoi.config import Config
from kairoi.dispatcher import actor
from kairoi.errors import BusError
from kairoi.runtime import run_async


def main(config: Config, _options: argparse.Namespace | None = None) -> int:
    try:
        run_async(actor.run(config))
    except BusError as exc:
        log.get("kairoi.dispatcher").error("service.failed", reason=str(exc))
        return 1
    return 0
