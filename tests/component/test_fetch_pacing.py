"""Fetch pacing on the embedded broker (streams/kafka.py, point 6): a fetch to one broker
waits until the interval since the previous one has passed, unless the previous one found
the worker behind; fetches to different brokers do not hold each other up, and requests reach
aiokafka's own coroutine unchanged."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from streams.kafka import FETCH_BACKLOG_RECORDS, _pace_fetches


class _Fetcher:
    """Stands in for aiokafka's Fetcher: records when each request was sent, and to whom; its
    "response" sets partition 0's high watermark to ``highwater`` (None: not reported)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, float, Any]] = []
        self.highwater: int | None = None

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> str:
        self.sent.append((node_id, asyncio.get_running_loop().time(), request))
        assignment.states[TopicPartition("events", 0)] = SimpleNamespace(
            highwater=self.highwater)
        return f"response to {request.name}"


class _Assignment:
    def __init__(self) -> None:
        self.states: dict[TopicPartition, Any] = {}

    def state_value(self, tp: TopicPartition) -> Any:
        return self.states.get(tp)


def _request(name: str, offset: int = 100) -> Any:
    """A fetch request for partition 0 of "events" from ``offset`` (aiokafka's layout)."""
    return SimpleNamespace(name=name, topics=[("events", [(0, offset, 1 << 20)])])


async def _fetch(fetcher: _Fetcher, node_id: int, name: str, offset: int = 100) -> Any:
    return await fetcher._proc_fetch_request(_Assignment(), node_id, _request(name, offset))


def test_fetches_to_one_broker_are_at_least_the_interval_apart() -> None:
    async def scenario() -> None:
        fetcher = _Fetcher()
        _pace_fetches(fetcher, 0.05)
        responses = [await _fetch(fetcher, 1, f"r{i}") for i in range(4)]
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
        await _fetch(fetcher, 1, "a")
        await _fetch(fetcher, 2, "b")  # another broker: not held back
        assert loop.time() - started < 0.1
        await _fetch(fetcher, 1, "c")  # the first broker again: held back
        assert loop.time() - started >= 0.19

    asyncio.run(scenario())


def test_a_fetch_waiting_its_turn_ends_quietly_when_the_fetcher_closes() -> None:
    """aiokafka's Fetcher.close cancels each pending request task and awaits it without
    catching the cancellation: a paced request must end with False, as aiokafka's own does,
    or the consumer thread dies and the worker never exits."""

    async def scenario() -> None:
        fetcher = _Fetcher()
        _pace_fetches(fetcher, 10.0)
        await _fetch(fetcher, 1, "first")
        waiting = asyncio.ensure_future(_fetch(fetcher, 1, "second"))
        await asyncio.sleep(0.01)
        waiting.cancel()
        assert await waiting is False
        assert [request.name for _, _, request in fetcher.sent] == ["first"]

    asyncio.run(scenario())


def test_a_worker_behind_fetches_again_at_once_and_is_paced_once_caught_up() -> None:
    async def scenario() -> None:
        fetcher = _Fetcher()
        _pace_fetches(fetcher, 0.2)
        loop = asyncio.get_running_loop()
        fetcher.highwater = 100 + FETCH_BACKLOG_RECORDS + 1  # more waiting than a fetch takes
        started = loop.time()
        await _fetch(fetcher, 1, "behind")
        fetcher.highwater = 100 + FETCH_BACKLOG_RECORDS  # this one catches up
        await _fetch(fetcher, 1, "catching up")
        assert loop.time() - started < 0.1
        await _fetch(fetcher, 1, "caught up")
        assert loop.time() - started >= 0.19

    asyncio.run(scenario())
