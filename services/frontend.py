"""Entry point of the frontend process: ``kairoi frontend [-c FILE]``."""

from __future__ import annotations

import argparse

from kairoi import log
from kairoi.config import Config
from kairoi.errors import BusError
from kairoi.frontend import actor
from kairoi.runtime import run_async


def main(config: Config, _options: argparse.Namespace | None = None) -> int:
    try:
        run_async(actor.run(config))
    except OSError as exc:
        log.get("kairoi.frontend").error(
            "service.failed",
            reason=f"cannot listen on {config.controller.listen}: {exc.strerror or exc}",
        )
        return 1
    except BusError as exc:
        log.get("kairoi.frontend").error("service.failed", reason=str(exc))
        return 1
    return 0
