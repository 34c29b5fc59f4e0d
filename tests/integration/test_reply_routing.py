"""The frontend's reply routing against a storage that answers what the frontend cannot
write, over a real ipc:// socket: one bad reply costs its own slot only (issue 13, item 3).

The storage here is a stand-in on the real bus (a ReplyServer in a thread): it answers STATS
with counts whose names and values do not pair up, the class of reply that made formatting
raise and killed the routing task for every client.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager

import pytest
from structlog.testing import capture_logs

from kairoi import messages
from kairoi.bus import ReplyServer, RequestClient
from kairoi.frontend.actor import Frontend
from kairoi.frontend.gateway import Gateway, supervised
from kairoi.frontend.replies import Owed, OwedBytes, Slot
from tests import support_bus
from tests.support_bus import serving

BAD_STATS = messages.Stats(names=("planned", "failed"), values=(1,))
SMALL_LIMIT = 4 << 20
"""A message size for the tests of what passes it (the real one is hundreds of MiB)."""


@pytest.fixture
def endpoint() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="kairoi-", dir="/tmp") as short:
        yield f"ipc://{short}/storage.sock"


def _reply(request: messages.Message) -> messages.Message:
    match request:
        case messages.GetStats():
            return BAD_STATS
        case messages.Ping():
            return messages.Pong()
        case _:
            return messages.Ok()


def faulty_storage(endpoint: str, delay: float = 0.0) -> AbstractContextManager[None]:
    """Answers every batch after ``delay`` seconds."""

    def start(server: ReplyServer) -> Callable[[], None]:
        def answer_all() -> None:
            while (received := server.receive_nowait()) is not None:
                peer, items = received
                time.sleep(delay)
                server.send(peer, [(c, _reply(request)) for c, request in items])

        return answer_all

    return serving(endpoint, start)


def frontend_on(endpoint: str, max_line_bytes: int = 1024) -> AbstractAsyncContextManager[Frontend]:
    return support_bus.frontend_on(endpoint, max_line_bytes=max_line_bytes)


async def _lines(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    return [await asyncio.wait_for(reader.readline(), 5) for _ in range(count)]


async def _open(frontend: Frontend) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert frontend.address is not None
    return await asyncio.open_connection(*frontend.address)


def test_reply_that_cannot_be_written_is_answered_internal_and_routing_goes_on(
    endpoint: str,
) -> None:
    async def scenario() -> None:
        async with frontend_on(endpoint) as frontend:
            reader, writer = await _open(frontend)
            writer.write(b"1 STATS\n2 PING\n3 STATS\n4 PING\n")
            first = await _lines(reader, 4)
            writer.write(b"5 PING\n")  # the same connection still works
            again = await _lines(reader, 1)
            other_reader, other_writer = await _open(frontend)
            other_writer.write(b"6 PING\n")  # and so does any other
            other = await _lines(other_reader, 1)
            writer.close()
            other_writer.close()
        assert first[0].startswith(b'1 ERROR internal "') and first[2].startswith(b"3 ERROR")
        assert first[1::2] == [b"2 OK PONG\n", b"4 OK PONG\n"]
        assert again == [b"5 OK PONG\n"] and other == [b"6 OK PONG\n"]

    with faulty_storage(endpoint), capture_logs() as logs:
        asyncio.run(scenario())
    failed = [entry for entry in logs if entry["event"] == "frontend.reply_failed"]
    assert len(failed) == 2 and failed[0]["exc_info"] is True
    assert failed[0]["reply"] == "Stats"


def test_over_long_line_closes_only_after_earlier_replies_are_written(endpoint: str) -> None:
    async def scenario() -> list[bytes]:
        async with frontend_on(endpoint, max_line_bytes=1024) as frontend:
            reader, writer = await _open(frontend)
            writer.write(b"1 PING\n2 PING\n3 " + b"x" * 4096)
            got = await _lines(reader, 3)
            assert await asyncio.wait_for(reader.read(), 5) == b""  # then closed
            writer.close()
            return got

    with faulty_storage(endpoint, delay=0.3):  # the close waits for storage's answers
        replies = asyncio.run(scenario())
    assert replies[:2] == [b"1 OK PONG\n", b"2 OK PONG\n"]
    assert replies[2].startswith(b'3 ERROR invalid "message longer than 1024 bytes')


def test_end_of_input_closes_only_after_every_reply_is_written(endpoint: str) -> None:
    async def scenario() -> tuple[list[bytes], bytes]:
        async with frontend_on(endpoint) as frontend:
            reader, writer = await _open(frontend)
            writer.write(b"1 PING\n2 VERSION\n3 PING\n4 PING")
            writer.write_eof()
            got = await _lines(reader, 4)
            rest = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return got, rest

    with faulty_storage(endpoint, delay=0.3):
        replies, rest = asyncio.run(scenario())
    assert replies[0] == b"1 OK PONG\n" and replies[1].startswith(b"2 OK ")
    assert replies[2] == b"3 OK PONG\n"
    assert replies[3].startswith(b'4 ERROR invalid "incomplete message') and rest == b""


def test_a_failing_task_is_logged_and_started_again() -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError("a bug")

    with capture_logs() as logs:
        asyncio.run(asyncio.wait_for(supervised("replies", flaky), 5))
    assert runs == [0, 1, 2]
    failed = [entry for entry in logs if entry["event"] == "frontend.task_failed"]
    assert [entry["task"] for entry in failed] == ["replies", "replies"]
    assert all(entry["exc_info"] is True for entry in failed)


class Recorder:
    """A sink that counts its deliveries."""

    def __init__(self) -> None:
        self.delivered = 0

    def deliver(self) -> None:
        self.delivered += 1


def test_a_request_over_the_message_size_is_refused_and_the_rest_go_on(endpoint: str) -> None:
    count = SMALL_LIMIT // 60_000 + 10
    huge = messages.SetJobs(
        job_ids=tuple(f"{n:03}" + "x" * 60_000 for n in range(count)), due_us=(0,) * count
    )
    slots = [Slot(b"1"), Slot(b"2"), Slot(b"3")]

    async def scenario() -> None:
        client = RequestClient(endpoint, max_bytes=SMALL_LIMIT)
        gateway, sink = Gateway(client, timeout=5.0), Recorder()
        routing = asyncio.create_task(gateway.run())
        try:
            batch: list[tuple[Owed, messages.Request]] = [
                (slots[0], messages.Ping()), (slots[1], huge), (slots[2], messages.Ping()),
            ]  # fmt: skip
            gateway.submit(sink, batch)
            while any(slot.line is None for slot in slots):
                await asyncio.sleep(0.01)
        finally:
            routing.cancel()
            client.close()

    with faulty_storage(endpoint), capture_logs() as logs:
        asyncio.run(asyncio.wait_for(scenario(), 10))
    assert slots[0].line == b"1 OK PONG\n" and slots[2].line == b"3 OK PONG\n"
    assert slots[1].line is not None
    assert slots[1].line.startswith(b'2 ERROR invalid "the request is too large: ')
    assert [
        entry["request"] for entry in logs if entry["event"] == "storage.request_too_large"
    ] == ["SetJobs"]


def test_replies_over_the_message_size_reach_the_peer_in_parts(endpoint: str) -> None:
    """Storage's answers to one batch may pass the message size together (the peer would
    drop such a message, and with it every reply in it): they go out in parts."""
    output = b"o" * (SMALL_LIMIT // 3)
    replies: list[messages.Item] = [(n, messages.Output(run=n, output=output)) for n in range(4)]

    async def scenario() -> list[messages.Item]:
        server = ReplyServer(endpoint, max_bytes=SMALL_LIMIT)
        client = RequestClient(endpoint, max_bytes=SMALL_LIMIT)
        try:
            while not client.try_send([(9, messages.Ping())]):
                await asyncio.sleep(0.01)
            while (received := server.receive_nowait()) is None:
                await asyncio.sleep(0.01)
            server.send(received[0], replies)
            got: list[messages.Item] = []
            while len(got) < len(replies):
                got += await client.receive()
            return got
        finally:
            client.close()
            server.close()

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == replies


def test_an_answered_slot_counts_its_line_instead_of_its_reservation() -> None:
    owed = OwedBytes()
    listing = Slot(b"1", reserved=1 << 20, owed=owed)
    owed.value += listing.reserved  # as the connection does when it owes the slot
    listing.answer(messages.Jobs(jobs=()))
    assert listing.line == b"1 OK 0\n" and owed.value == listing.reserved == len(listing.line)
    big = messages.JobState(
        job_id="j", status="planned", next_due_us=None, run=0, last_outcome="",
        last_finished_us=None, when="x" * 100_000, options=(),
    )  # fmt: skip
    getting = Slot(b"2", owed=owed)
    getting.answer(big)
    assert getting.line is not None and owed.value == len(listing.line) + len(getting.line)
