"""The accept path: pipelined SETs over one KCP connection, and single-request round trips.

Each run starts a real ``kairoi serve`` (fsync on) on a scratch directory and talks to it over
loopback TCP, as a client would.
"""

from __future__ import annotations

import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.floors import floors
from kairoi.client.kcp import KcpClient
from kairoi.client.server import ServerProcess


def pipelined_sets(port: int, count: int, prefix: str = "bench") -> float:
    """Send ``count`` SETs back to back while reading the replies; SETs per second.

    The jobs are due at distinct seconds spread over one hour, as in a real schedule.
    """
    requests = b"".join(
        b'%d SET %s.%d "2030-01-01 00:%02d:%02d"\n' % (i, prefix.encode(), i, i // 60 % 60, i % 60)
        for i in range(count)
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        sender = threading.Thread(target=sock.sendall, args=(requests,))
        sender.start()
        chunks: list[bytes] = []
        lines = 0
        while lines < count:  # count as it comes: no rescanning what was already read
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            chunks.append(chunk)
            lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
        sender.join()
    received = b"".join(chunks)
    oks = received.count(b" OK\n")
    if oks != count:
        refused = next(line for line in received.splitlines() if not line.endswith(b" OK"))
        raise RuntimeError(f"{count - oks} of {count} SETs were not OK, e.g. {refused!r}")
    return count / elapsed


def parallel_sets(port: int, count: int, connections: int, prefix: str = "bench") -> float:
    """``count`` SETs over ``connections`` pipelined connections at once; SETs per second."""
    share = count // connections
    rates: list[float] = []
    threads = [
        threading.Thread(
            target=lambda n=n: rates.append(pipelined_sets(port, share, f"{prefix}.{n}"))
        )
        for n in range(connections)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if len(rates) != connections:
        raise RuntimeError("a connection failed")
    return share * connections / elapsed


def round_trips(port: int, count: int) -> list[float]:
    """Milliseconds for each of ``count`` SETs sent one at a time."""
    times = []
    with KcpClient("127.0.0.1", port) as client:
        for i in range(count):
            started = time.perf_counter()
            reply = client.call("SET", f"rtt.{i}", "2030-01-01 00:00:00")
            times.append((time.perf_counter() - started) * 1000)
            if reply != ["OK"]:
                raise RuntimeError(f"unexpected reply {reply}")
    return times


def run(sets: int = 200_000, rtts: int = 5_000, connections: int = 4) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kairoi-bench-") as scratch:
        server = ServerProcess(Path(scratch)).start()
        try:
            port = server.wait_ready()
            pipelined_sets(port, min(sets, 10_000), prefix="warmup")  # caches, allocator
            rate = pipelined_sets(port, sets)
            parallel_rate = parallel_sets(port, sets, connections, prefix="parallel")
            times = sorted(round_trips(port, rtts))
        finally:
            server.stop()
    return {
        **floors(min(rtts, 2_000)),
        "pipelined_sets": sets,
        "sets_per_second": round(rate),
        "connections": connections,
        "parallel_sets_per_second": round(parallel_rate),
        "round_trips": rtts,
        "rtt_p50_ms": round(statistics.median(times), 3),
        "rtt_p99_ms": round(times[int(len(times) * 0.99) - 1], 3),
    }
