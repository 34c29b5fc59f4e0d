"""A TCP proxy in front of the real broker, to make it fall silent or drop connections."""

from __future__ import annotations

import asyncio
import threading


class Proxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``hold`` stops what comes back (the broker
    seems to hang), ``cut`` closes every connection (the broker seems to restart)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._held = threading.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self.port = 0
        threading.Thread(target=self._run, daemon=True).start()
        if not self._started.wait(5):
            raise RuntimeError("the proxy did not start")

    @property
    def dsn(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def hold(self) -> None:
        self._held.set()

    def release(self) -> None:
        self._held.clear()

    def cut(self) -> None:
        async def cut() -> None:
            for writer in self._writers:
                writer.transport.abort()
            self._writers.clear()

        asyncio.run_coroutine_threadsafe(cut(), self._loop).result(5)

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()

    async def _serve(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        broker_in, broker = await asyncio.open_connection(*self._target)
        self._writers += [client, broker]
        await asyncio.gather(
            self._pipe(client_in, broker, held=False),
            self._pipe(broker_in, client, held=True),
            return_exceptions=True,
        )

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, held: bool
    ) -> None:
        while data := await source.read(65536):
            while held and self._held.is_set():
                await asyncio.sleep(0.01)
            sink.write(data)
        sink.close()
