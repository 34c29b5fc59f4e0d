"""What a KCP round trip costs on this machine before any of Kairoi's own code runs.

Each single SET pays, at least: one TCP round trip (client and frontend), one ZeroMQ round
trip (frontend and storage, two processes over ``ipc://``) and one durable RocksDB write (the
SET's two keys, synced). Each is measured alone here, one at a time with a pause between,
as a client that waits for each reply spaces them, and their medians add up to a floor under
the round trip's median.
"""

from __future__ import annotations

import multiprocessing
import socket
import statistics
import tempfile
import time
from collections.abc import Callable

import zmq
from rocksdict import Options, Rdict, WriteBatch, WriteOptions

PAUSE_SECONDS = 0.0005
"""Between two measured operations: a client waiting for each reply is not back at once."""


def floors(samples: int = 1000) -> dict[str, float]:
    """Medians in milliseconds of a durable write, a bus round trip and a TCP round trip."""
    figures = {
        "durable_write_p50_ms": _durable_write(samples),
        "bus_round_trip_p50_ms": _bus_round_trip(samples),
        "tcp_round_trip_p50_ms": _tcp_round_trip(samples),
    }
    figures["floor_p50_ms"] = round(sum(figures.values()), 3)
    return figures


def _median_ms(samples: int, operation: Callable[[int], object]) -> float:
    times = []
    for i in range(samples):
        time.sleep(PAUSE_SECONDS)
        started = time.perf_counter()
        operation(i)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def _durable_write(samples: int) -> float:
    with tempfile.TemporaryDirectory(prefix="kairoi-bench-") as scratch:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        db = Rdict(scratch, options)
        synced = WriteOptions()
        synced.sync = True

        def write(i: int) -> None:
            batch = WriteBatch(raw_mode=True)
            batch.put(b"jfloor.%d" % i, b"\x83\xa1s\x00\xa1d\xcf\x00\x06\xba\x03\x82\x0b\x00\x00")
            batch.put(b"d\x80\x06\xba\x03\x82\x0b\x00\x00floor.%d" % i, b"")
            db.write(batch, synced)

        try:
            return _median_ms(samples, write)
        finally:
            db.close()


def _bus_round_trip(samples: int) -> float:
    with tempfile.TemporaryDirectory(prefix="kairoi-", dir="/tmp") as short:
        endpoint = f"ipc://{short}/floor.sock"
        echo = multiprocessing.get_context("spawn").Process(target=_bus_echo, args=(endpoint,))
        echo.start()
        context = zmq.Context()
        dealer = context.socket(zmq.DEALER)
        dealer.connect(endpoint)
        try:
            dealer.send(b"hello")
            dealer.recv()  # the echo is up
            return _median_ms(samples, lambda _: (dealer.send(b"x"), dealer.recv()))
        finally:
            dealer.send(b"")
            dealer.close(linger=1000)
            context.term()
            echo.join(10)


def _bus_echo(endpoint: str) -> None:
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind(endpoint)
    while True:
        peer, body = router.recv_multipart()
        if not body:
            break
        router.send_multipart([peer, body])
    router.close()
    context.term()


def _tcp_round_trip(samples: int) -> float:
    listener = socket.create_server(("127.0.0.1", 0))
    address = listener.getsockname()
    echo = multiprocessing.get_context("spawn").Process(target=_tcp_echo, args=(listener,))
    echo.start()
    listener.close()
    with socket.create_connection(address) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def round_trip(_: int) -> bytes:
            client.sendall(b"x")
            return client.recv(16)

        try:
            return _median_ms(samples, round_trip)
        finally:
            client.shutdown(socket.SHUT_WR)
            echo.join(10)


def _tcp_echo(listener: socket.socket) -> None:
    connection, _ = listener.accept()
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := connection.recv(16):
        connection.sendall(data)
    connection.close()
