"""Helpers of the integration tier: storage's socket played in a thread, and a frontend
served in the test's event loop, each on an ``ipc://`` endpoint of the test's own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from kairoi import config
from kairoi.bus import ReplyServer, RequestClient
from kairoi.frontend.actor import Frontend


@contextmanager
def serving(endpoint: str, start: Callable[[ReplyServer], Callable[[], None]]) -> Iterator[None]:
    """A ReplyServer bound on ``endpoint`` in a thread of its own: ``start`` is given it and
    returns what to do each time the server wakes (at least every 20 ms)."""
    stop, bound = threading.Event(), threading.Event()

    def serve() -> None:
        server = ReplyServer(endpoint)
        turn = start(server)
        bound.set()
        while not stop.is_set():
            server.wait(20)
            turn()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    bound.wait(5)
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


@asynccontextmanager
async def frontend_on(
    endpoint: str, request_timeout: float = 5.0, max_line_bytes: int | None = None
) -> AsyncIterator[Frontend]:
    """A frontend on 127.0.0.1:0 sending to storage at ``endpoint``, ready to be connected."""
    line_limit = "" if max_line_bytes is None else f"max_line_bytes = {max_line_bytes}\n"
    settings = config.parse(
        f'[controller]\nlisten = "127.0.0.1:0"\nrequest_timeout = {request_timeout}\n'
        f'{line_limit}[storage]\nendpoint = "{endpoint}"\n'
    )
    client = RequestClient(endpoint)
    frontend, stop = Frontend(settings, client), asyncio.Event()
    serving_task = asyncio.create_task(frontend.serve(stop))
    try:
        await asyncio.wait_for(frontend.ready.wait(), 5)
        yield frontend
    finally:
        stop.set()
        await serving_task
        client.close()
