"""The AMQP runner: confirmed publishes per second, and lateness from due time to the
consumer receiving the message (RabbitMQ at 127.0.0.1:5672, guest/guest)."""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pamqp import commands as spec

from benchmarks.fire import _pct, _set_over_bus
from kairoi.amqp.connection import ChannelHandler, Connection
from kairoi.amqp.dsn import parse_dsn
from kairoi.amqp.publishing import ConfirmingChannel
from kairoi.client.kcp import KcpClient
from kairoi.client.server import ServerProcess, Settings

DSN = "amqp://guest:guest@127.0.0.1:5672/"


class Consumer:
    """Receives from a queue of its own, in a thread, on the project's lean AMQP client (with
    no acks, so that the consumer is never what limits the figures): when (µs) each job id
    arrived."""

    def __init__(self) -> None:
        self.exchange = self.queue = f"kairoi.bench.{uuid.uuid4().hex[:8]}"
        self.received: dict[str, int] = {}
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._consume()), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the consumer did not start")

    async def _consume(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        connection = await Connection.open(parse_dsn(DSN), timeout=10)
        try:
            channel = await connection.open_channel(_Deliveries(self.received))
            for method in (
                spec.Exchange.Declare(exchange=self.exchange, auto_delete=True),
                spec.Queue.Declare(queue=self.queue, auto_delete=True),
                spec.Queue.Bind(queue=self.queue, exchange=self.exchange, routing_key="jobs"),
                spec.Basic.Consume(queue=self.queue, no_ack=True),
            ):
                await connection.rpc(channel, method)
            self._ready.set()
            await self._stop.wait()
        finally:
            await connection.close()

    def wait_for(self, job_ids: list[str], timeout: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(j in self.received for j in job_ids):
            time.sleep(0.05)
        missing = [j for j in job_ids if j not in self.received]
        if missing:
            raise TimeoutError(f"{len(missing)} of {len(job_ids)} messages never arrived")
        return {j: self.received[j] for j in job_ids}

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


class _Deliveries(ChannelHandler):
    """Each delivered body (a job id, in one frame) and when it arrived; the first copy only."""

    def __init__(self, received: dict[str, int]) -> None:
        self._received = received

    def content_body(self, body: bytes) -> None:
        self._received.setdefault(body.decode(), time.time_ns() // 1000)


def run(jobs: int = 2000, spread_seconds: float = 10.0, volume: int = 20_000) -> dict[str, Any]:
    """``volume`` jobs due at one instant give the rate; ``jobs`` the lateness figures."""
    consumer = Consumer()
    try:
        with tempfile.TemporaryDirectory(prefix="kairoi-bench-") as scratch:
            settings: Settings = {"log": {"level": "info"}}  # as in production: no line per run
            server = ServerProcess(Path(scratch), settings).start()
            try:
                port = server.wait_ready()
                server.wait_event("runner.joined", "dispatcher")
                with KcpClient("127.0.0.1", port) as client:
                    client.call(
                        "RULE", "SET", "bench", "bench.", "amqp", DSN, consumer.exchange, "jobs"
                    )
                figures = {
                    **_throughput(server, consumer, volume),
                    **_burst(server, consumer, jobs),
                    **_spread(server, consumer, jobs, spread_seconds),
                }
            finally:
                server.stop()
        figures.update(asyncio.run(_broker_alone(consumer, jobs, spread_seconds)))
    finally:
        consumer.close()
    return {"jobs": jobs, "volume": volume, **figures}


async def _broker_alone(consumer: Consumer, jobs: int, seconds: float) -> dict[str, float]:
    """RabbitMQ's own share: the same messages (confirmed, persistent, mandatory) published
    by a plain client of the project's AMQP client, all at once and then one by one as the
    spread workload would; from each publish to the consumer."""
    connection = await Connection.open(parse_dsn(DSN), timeout=10)
    try:
        channel = await ConfirmingChannel.open(connection, timeout=10)
        published: dict[str, int] = {}
        for i in range(jobs):
            job_id = f"floor.burst.{i}"
            published[job_id] = time.time_ns() // 1000
            channel.publish(consumer.exchange, "jobs", job_id.encode(), job_id.encode())
        burst = await asyncio.to_thread(_lateness, consumer, published)
        spread: dict[str, int] = {}
        for i in range(jobs):
            await asyncio.sleep(seconds / jobs)
            job_id = f"floor.spread.{i}"
            spread[job_id] = time.time_ns() // 1000
            channel.publish(consumer.exchange, "jobs", job_id.encode(), job_id.encode())
        lateness = await asyncio.to_thread(_lateness, consumer, spread)
    finally:
        await connection.close()
    return {
        "broker_burst_max_ms": max(burst),
        "broker_spread_p50_ms": _pct(lateness, 50),
        "broker_spread_p99_ms": _pct(lateness, 99),
    }


def _throughput(server: ServerProcess, consumer: Consumer, jobs: int) -> dict[str, float]:
    """All ``jobs`` due at one instant: how many a second reached the consumer, counted from
    that instant to the last arrival (none can be published before it)."""
    due_us = (time.time_ns() // 1000) + 1_000_000 + jobs * 50  # time enough to set them all
    due = {f"bench.volume.{i}": due_us for i in range(jobs)}
    asyncio.run(_set_over_bus(server, due))
    if time.time_ns() // 1000 > due_us:
        raise RuntimeError("setting the jobs took longer than planned: the rate would be wrong")
    last_us = max(consumer.wait_for(list(due), 120).values())
    return {"publishes_per_second": round(jobs / ((last_us - due_us) / 1e6))}


def _burst(server: ServerProcess, consumer: Consumer, jobs: int) -> dict[str, float]:
    due_us = ((time.time_ns() // 1000) // 1_000_000 + 2) * 1_000_000
    due = {f"bench.burst.{i}": due_us for i in range(jobs)}
    asyncio.run(_set_over_bus(server, due))
    lateness = _lateness(consumer, due)
    return {"burst_p50_ms": _pct(lateness, 50), "burst_max_ms": max(lateness)}


def _spread(
    server: ServerProcess, consumer: Consumer, jobs: int, seconds: float
) -> dict[str, float]:
    start_us = (time.time_ns() // 1000) + 2_000_000
    step_us = int(seconds * 1_000_000 / jobs)
    due = {f"bench.spread.{i}": start_us + i * step_us for i in range(jobs)}
    asyncio.run(_set_over_bus(server, due))
    lateness = _lateness(consumer, due)
    return {"spread_p50_ms": _pct(lateness, 50), "spread_p99_ms": _pct(lateness, 99),
            "spread_max_ms": max(lateness)}  # fmt: skip


def _lateness(consumer: Consumer, due: dict[str, int]) -> list[float]:
    arrived = consumer.wait_for(list(due), 120)
    lateness = [(arrived[job_id] - due_us) / 1000 for job_id, due_us in due.items()]
    if min(lateness) < 0:
        raise RuntimeError(f"a message arrived {-min(lateness):.3f} ms before its due time")
    return lateness
