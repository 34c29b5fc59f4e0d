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

import aio_pika

from benchmarks.fire import _pct, _set_over_bus
from kairoi.client.kcp import KcpClient
from kairoi.client.server import ServerProcess, Settings

DSN = "amqp://guest:guest@127.0.0.1:5672/"


class Consumer:
    """Receives from a queue of its own in a thread; the instant (µs) each job id arrived."""

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
        async with await aio_pika.connect(DSN) as connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=1000)
            exchange = await channel.declare_exchange(self.exchange, auto_delete=True)
            queue = await channel.declare_queue(self.queue, auto_delete=True)
            await queue.bind(exchange, "jobs")

            async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                self.received.setdefault(message.body.decode(), time.time_ns() // 1000)
                await message.ack()

            await queue.consume(take)
            self._ready.set()
            await self._stop.wait()

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


def run(jobs: int = 2000, spread_seconds: float = 10.0, concurrency: int = 512) -> dict[str, Any]:
    consumer = Consumer()
    try:
        with tempfile.TemporaryDirectory(prefix="kairoi-bench-") as scratch:
            settings: Settings = {
                "runners.shell": {"concurrency": concurrency},
                "log": {"level": "info"},
            }
            server = ServerProcess(Path(scratch), settings).start()
            try:
                port = server.wait_ready()
                server.wait_event("runner.joined", "dispatcher")
                with KcpClient("127.0.0.1", port) as client:
                    client.call(
                        "RULE", "SET", "bench", "bench.", "amqp", DSN, consumer.exchange, "jobs"
                    )
                figures = {
                    **_throughput(server, consumer, jobs),
                    **_burst(server, consumer, jobs),
                    **_spread(server, consumer, jobs, spread_seconds),
                }
            finally:
                server.stop()
    finally:
        consumer.close()
    return {"jobs": jobs, "concurrency": concurrency, **figures}


def _throughput(server: ServerProcess, consumer: Consumer, jobs: int) -> dict[str, float]:
    due = {f"bench.now.{i}": 0 for i in range(jobs)}
    asyncio.run(_set_over_bus(server, due))
    arrivals = sorted(consumer.wait_for(list(due), 120).values())
    return {
        "publishes_per_second": round((len(arrivals) - 1) / ((arrivals[-1] - arrivals[0]) / 1e6))
    }


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
