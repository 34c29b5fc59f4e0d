"""Entry point of the storage process: ``kairoi storage [-c FILE]``."""

from __future__ import annotations

import argparse

from kairoi import log
from kairoi.config import Config
from kairoi.errors import BusError, StoreError
from kairoi.runtime import ShutdownFlag
from kairoi.storage import actor


def main(config: Config, _options: argparse.Namespace | None = None) -> int:
    shutdown = ShutdownFlag()
    shutdown.install()
    try:
        actor.run(config, shutdown)
    except (StoreError, BusError) as exc:
        log.get("kairoi.storage").error("service.failed", reason=str(exc))
        return 1
    return 0
