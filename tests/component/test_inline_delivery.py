"""The worker consumer's inline delivery (streams/kafka.py, point 3): a delivery that finishes
without waiting runs in place; one that must wait is finished the way a task would finish it
(every future it waits on awaited, results and errors passed back in), and is abandoned
cleanly when its driver is cancelled (a rebalance suspending the flow)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.kafka import _resume


def _start(delivery: Any) -> Any:
    """Run a delivery coroutine up to its first wait, as _Consumer._deliver does."""
    return delivery.send(None)


async def _waits(event: asyncio.Event, timeouts: int, log: list[str]) -> str:
    for _ in range(timeouts):  # each wait_for times out: several futures, one after another
        try:
            await asyncio.wait_for(event.wait(), timeout=0.005)
        except TimeoutError:
            log.append("timeout")
    await asyncio.sleep(0)  # a bare yield
    await event.wait()
    return "delivered"


def test_a_delivery_that_never_waits_finishes_in_place() -> None:
    async def put(queue: asyncio.Queue[int]) -> None:
        queue.put_nowait(1)

    async def scenario() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        with pytest.raises(StopIteration):
            _start(put(queue))
        assert queue.qsize() == 1

    asyncio.run(scenario())


def test_a_delivery_that_waits_is_finished_like_a_task() -> None:
    async def scenario() -> None:
        event, log = asyncio.Event(), []
        delivery = _waits(event, 3, log)
        task = asyncio.ensure_future(_resume(delivery, _start(delivery)))
        await asyncio.sleep(0.05)
        assert log == ["timeout"] * 3 and not task.done()
        event.set()
        assert await task == "delivered"

    asyncio.run(scenario())


def test_an_error_inside_a_waiting_delivery_reaches_the_caller() -> None:
    async def failing(future: asyncio.Future[None]) -> None:
        await future

    async def scenario() -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery = failing(future)
        task = asyncio.ensure_future(_resume(delivery, _start(delivery)))
        await asyncio.sleep(0)
        future.set_exception(ValueError("decode failed"))
        with pytest.raises(ValueError, match="decode failed"):
            await task

    asyncio.run(scenario())


def test_cancelling_the_driver_abandons_the_delivery_and_runs_its_cleanup() -> None:
    async def scenario() -> None:
        event, cleaned = asyncio.Event(), []

        async def blocked() -> None:
            try:
                await event.wait()
            finally:
                cleaned.append(True)

        delivery = blocked()
        task = asyncio.ensure_future(_resume(delivery, _start(delivery)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == [True]
        event.set()
        await asyncio.sleep(0)
        assert delivery.cr_frame is None  # finished: nothing resumes it later

    asyncio.run(scenario())
