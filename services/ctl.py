"""``kairoi ctl VERB JOB [-c FILE]``: one request on the control bus of a running Kairoi.

It prints ``ok`` (``get``: the job as JSON) and exits 0, or prints the error's code and
reason on stderr and exits 1; 69 (EX_UNAVAILABLE) when nothing answered in time.
"""

from __future__ import annotations

import argparse
import json
import sys

import msgpack

from kairoi.bus import ControlClient
from kairoi.config import Config
from kairoi.errors import BusError

EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 69


def main(config: Config, options: argparse.Namespace) -> int:
    fields = {"op": options.verb, "job": options.job}
    if options.cascade:
        fields["cascade"] = True
    request = msgpack.packb(fields)
    try:
        client = ControlClient(config.control_endpoint)
    except BusError as exc:
        print(f"kairoi ctl: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        answer = client.request(request, config.control.timeout)
    finally:
        client.close()
    if answer is None:
        print(
            f"kairoi ctl: no answer from {config.control_endpoint} within "
            f"{config.control.timeout:g}s (is Kairoi running with this configuration?)",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    return _show(msgpack.unpackb(answer, raw=False))


def _show(reply: dict[str, object]) -> int:
    if reply.get("status") != "ok":
        print(f"kairoi ctl: {reply.get('code')}: {reply.get('reason')}", file=sys.stderr)
        return EXIT_REFUSED
    if "job" in reply:
        print(json.dumps(reply["job"], indent=2, ensure_ascii=False))
    else:
        print("ok")
    return 0
