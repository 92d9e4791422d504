"""Fetch pacing on the embedded broker (streams/kafka.py, point 6): a fetch to one broker
waits until the interval since the previous one has passed; fetches to different brokers do
not hold each other up, and requests reach aiokafka's own coroutine unchanged."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from streams.kafka import _pace_fetches


class _Fetcher:
    """Stands in for aiokafka's Fetcher: records when each request was sent, and to whom."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, float, Any]] = []

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> str:
        self.sent.append((node_id, asyncio.get_running_loop().time(), request))
        return f"response to {request}"


def test_fetches_to_one_broker_are_at_least_the_interval_apart() -> None:
    async def scenario() -> None:
        fetcher = _Fetcher()
        _pace_fetches(fetcher, 0.05)
        responses = [await fetcher._proc_fetch_request(None, 1, f"r{i}") for i in range(4)]
        assert responses == [f"response to r{i}" for i in range(4)]
        times = [at for _, at, _ in fetcher.sent]
        assert all(later - earlier >= 0.049 for earlier, later in itertools.pairwise(times))

    asyncio.run(scenario())


def test_brokers_are_paced_separately() -> None:
    async def scenario() -> None:
        fetcher = _Fetcher()
        _pace_fetches(fetcher, 0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await fetcher._proc_fetch_request(None, 1, "a")
        await fetcher._proc_fetch_request(None, 2, "b")  # another broker: not held back
        assert loop.time() - started < 0.1
        await fetcher._proc_fetch_request(None, 1, "c")  # the first broker again: held back
        assert loop.time() - started >= 0.19

    asyncio.run(scenario())


def test_a_fetch_waiting_its_turn_ends_quietly_when_the_fetcher_closes() -> None:
    """aiokafka's Fetcher.close cancels each pending request task and awaits it without
    catching the cancellation: a paced request must end with False, as aiokafka's own does,
    or the consumer thread dies and the worker never exits."""

    async def scenario() -> None:
        fetcher = _Fetcher()
        _pace_fetches(fetcher, 10.0)
        await fetcher._proc_fetch_request(None, 1, "first")
        waiting = asyncio.ensure_future(fetcher._proc_fetch_request(None, 1, "second"))
        await asyncio.sleep(0.01)
        waiting.cancel()
        assert await waiting is False
        assert [request for _, _, request in fetcher.sent] == ["first"]

    asyncio.run(scenario())
