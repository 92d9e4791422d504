"""Faust's aiokafka transport with two hooks Faust does not offer.

1. The consumer's fetch wait. Faust builds its worker consumer with ``fetch_max_wait_ms=1500``.
   Real Kafka answers a fetch as soon as data arrives, so that is only an idle-poll interval;
   librdkafka's mock cluster (the embedded broker) holds every fetch for the full wait even
   when data is there, which would add up to 1.5 s to every event's latency. The wait is set
   from ``FETCH_MAX_WAIT_MS`` before the consumer starts (aiokafka reads it at ``start()``).
2. A step before every offset commit (``BEFORE_COMMIT``): the pipeline writes the sessions it
   changed since the last commit to its table there, once each, instead of once per batch —
   Kafka Streams' record cache, in effect. The commit then flushes the producer (outputs and
   changelog) before committing offsets, so committed offsets never run ahead of the state.
3. Delivering fetched messages to the agent's stream. Faust's fetch loop
   (``Consumer._drain_messages``) hands over every message as
   ``wait_first(callback(message), suspend_flow.wait())``: four tasks and an ``asyncio.wait``
   per message, about 40 µs, more than a whole event costs Rapport. Nearly always the callback
   (decode, put into the stream's buffer) finishes without waiting for anything, so this
   consumer runs it inline and falls back to Faust's way only when it has to wait (the
   stream's buffer is full, flow control, producer backlog): then, as in Faust, the delivery
   is abandoned if a rebalance suspends the flow or the consumer stops meanwhile. Only the
   input topics (``INLINE_TOPICS``) take this path, and only while the flow runs: changelog
   records (table recovery) and deliveries during a rebalance go Faust's way. The rest
   of the loop (read offsets, offset gaps, ``broker_commit_every``) does what Faust's does.
   Both overrides are private API: faust-streaming is pinned to the minor version they were
   written against (pyproject.toml), and tests/integration/test_pipeline.py covers them
   (crash, rebalance).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import aiokafka
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

# Set by streams.app.build_app before the worker starts (one app per process).
FETCH_MAX_WAIT_MS = 500
BEFORE_COMMIT: Callable[[Callable[[], Awaitable[bool]]], Awaitable[bool]] | None = None
# Topics whose messages are delivered inline (3): the worker's input, not the changelogs.
INLINE_TOPICS: frozenset[str] = frozenset()


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Private aiokafka attribute: the only hook, read when the fetcher is created.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _deliver(self, delivery: Awaitable[Any]) -> None:
        if not isinstance(delivery, Coroutine):  # not Faust's async on_message: its way
            await self.wait_first(delivery, self.suspend_flow.wait())
            return
        try:
            waiting_on = delivery.send(None)
        except StopIteration:
            return  # delivered without waiting: the usual case
        await self.wait_first(_resume(delivery, waiting_on), self.suspend_flow.wait())

    async def _drain_messages(self, fetcher: Any) -> None:
        # See the module docstring (3): Faust's fetch loop with inline delivery.
        read_offset = self._read_offset
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        callback = self.callback
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await asyncio.sleep(0)  # getmany may return at once, repeatedly
                if self.should_stop:
                    continue
                async for tp, message in records:
                    offset = message.offset
                    previous = read_offset[tp]
                    if previous is not None and offset < previous:
                        continue  # already delivered (fetched again after a seek)
                    if previous and offset - previous > 1 and acks_enabled_for(message.topic):
                        # Offsets with no message (compaction, transaction markers) count
                        # as acknowledged, or the committed offset would stall there.
                        await self._add_gap(tp, previous + 1, offset)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if message.topic in INLINE_TOPICS and not self.suspend_flow.is_set():
                        await self._deliver(callback(message))
                    else:  # changelogs (recovery) and rebalances: exactly Faust's way
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    read_offset[tp] = offset
                    # One loop turn per message, as Faust's wait_first gave: the agent takes
                    # each into its batch as it comes (yielding every 100 messages instead
                    # cost a third of the throughput bench/pipeline.py measures).
                    await asyncio.sleep(0)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _commit_tps(self, tps: Iterable[Any], start_new_transaction: bool) -> bool:
        # Every commit path (periodic, on stop, on error) goes through here; the hook runs
        # the commit itself so it can keep the agent out until offsets are chosen.
        commit = super()._commit_tps
        if BEFORE_COMMIT is None:
            return bool(await commit(tps, start_new_transaction))
        return await BEFORE_COMMIT(lambda: commit(tps, start_new_transaction))


async def _resume(delivery: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """Drive a delivery coroutine that was started inline and had to wait, as a task would:
    wait for the future it yielded, resume it, repeat."""
    while True:
        try:
            if waiting_on is None:  # a bare yield (asyncio.sleep(0)): let the loop run once
                await asyncio.sleep(0)
            else:
                # The flag the coroutine's await set for its task; awaiting the future
                # again, as a task would, needs it cleared (asyncio's Task does the same).
                waiting_on._asyncio_future_blocking = False
                await waiting_on
        except asyncio.CancelledError:
            if waiting_on is None or not waiting_on.cancelled():
                delivery.close()
                raise
            # Our cancellation cancelled the future it waits on: it unwinds on resuming.
        except Exception:  # the coroutine receives the future's error on resuming
            pass
        try:
            waiting_on = delivery.send(None)
        except StopIteration as finished:
            return finished.value


class Transport(faust_aiokafka.Transport):
    """``kafka://`` transport whose consumer honours :data:`FETCH_MAX_WAIT_MS`."""

    Consumer = _Consumer
