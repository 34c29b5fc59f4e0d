"""The runner's alarm (a real timerfd): never early, in order, together when due together."""

from __future__ import annotations

import asyncio
import time

from kairoi.runner.alarm import Alarm


def now_us() -> int:
    return time.time_ns() // 1000


def test_items_come_at_their_instant_never_before_and_in_order() -> None:
    async def scenario() -> list[tuple[str, int, int]]:
        rung: list[tuple[str, int, int]] = []
        done = asyncio.Event()
        instants: dict[str, int] = {}

        def ring(items: list[str]) -> None:
            rung.extend((item, instants[item], now_us()) for item in items)
            if len(rung) == len(instants):
                done.set()

        alarm: Alarm[str] = Alarm(ring)
        start = now_us()
        for name, offset_us in [("c", 30_000), ("a", 10_000), ("b", 20_000), ("past", -5)]:
            instants[name] = start + offset_us
            alarm.add(instants[name], name)
        await asyncio.wait_for(done.wait(), 2)
        alarm.close()
        return rung

    rung = asyncio.run(scenario())
    assert [name for name, _, _ in rung] == ["past", "a", "b", "c"]
    assert all(rang_at >= instant for _, instant, rang_at in rung), "never early"


def test_items_due_together_come_in_one_call() -> None:
    async def scenario() -> list[list[int]]:
        calls: list[list[int]] = []
        alarm: Alarm[int] = Alarm(calls.append)
        instant = now_us() + 20_000
        for item in range(100):
            alarm.add(instant, item)
        await asyncio.sleep(0.1)
        alarm.close()
        return calls

    assert asyncio.run(scenario()) == [list(range(100))]
