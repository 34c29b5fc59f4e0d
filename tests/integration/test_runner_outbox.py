"""The runner's outbox: a report storage could not save is held and sent again until storage
acknowledges it, then never again. A real runner with a real script, over ipc:// sockets, with
the dispatcher's and storage's sockets played by the test."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from pathlib import Path

from kairoi import messages
from kairoi.bus import RequestClient, Router
from kairoi.config import Config, RunnersConfig, RuntimeConfig, ShellRunnerConfig
from kairoi.runner.actor import Runner

NOT_SAVED = messages.Failed(code="internal", reason="not saved: No space left on device")


async def serve_reports(storage: Router, refusals: int, quiet_seconds: float) -> list[str]:
    """Answer storage's part: the first ``refusals`` reports refused as a full disk refuses
    them, then acknowledged; every report seen until ``quiet_seconds`` pass without one."""
    seen: list[str] = []
    while True:
        try:
            peer, items = await asyncio.wait_for(storage.receive(), quiet_seconds)
        except TimeoutError:
            return seen
        replies: list[messages.Item] = []
        for correlation, request in items:
            if isinstance(request, messages.RecordOutcome):
                seen.append(f"{request.job_id}:{request.run}:{request.outcome}")
                replies.append((correlation, NOT_SAVED if len(seen) <= refusals else
                                messages.Ok()))  # fmt: skip
            elif correlation:
                replies.append((correlation, messages.Ok()))
        storage.send(peer, replies)


async def scenario(config: Config, script: str) -> list[str]:
    dispatcher, storage = Router(config.dispatcher_endpoint), Router(config.storage_endpoint)
    clients = RequestClient(config.dispatcher_endpoint), RequestClient(config.storage_endpoint)
    runner, stop = Runner(config, "outbox", *clients), asyncio.Event()
    serving = asyncio.create_task(runner.serve(stop))
    try:
        peer, _ = await asyncio.wait_for(dispatcher.receive(), 10)  # its hello
        run = messages.Execute(job_id="j", run=1, due_us=time.time_ns() // 1000, rule_id="r",
                               runner="shell", arguments=(script,))  # fmt: skip
        dispatcher.send(peer, [(0, run)])
        return await serve_reports(storage, refusals=2, quiet_seconds=3.0)
    finally:
        stop.set()
        await asyncio.wait_for(serving, 10)
        for closing in (*clients, dispatcher, storage):
            closing.close()


def test_a_report_storage_could_not_save_is_sent_again_until_acknowledged(
    tmp_path: Path,
) -> None:
    script = tmp_path / "quick.sh"
    script.write_text('echo "ran $1"\n')
    with tempfile.TemporaryDirectory(prefix="kairoi-", dir="/tmp") as short:
        shell = ShellRunnerConfig(allow=(f"{tmp_path}/**",))
        config = dataclasses.replace(
            Config(), runtime=RuntimeConfig(dir=short), runners=RunnersConfig(shell=shell)
        )
        seen = asyncio.run(scenario(config, str(script)))
    assert seen == ["j:1:executed"] * 3, (
        "refused twice, acknowledged the third time, then held no more"
    )
