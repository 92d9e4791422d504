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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

# Set by streams.app.build_app before the worker starts (one app per process).
FETCH_MAX_WAIT_MS = 500
BEFORE_COMMIT: Callable[[Callable[[], Awaitable[bool]]], Awaitable[bool]] | None = None


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Private aiokafka attribute: the only hook, read when the fetcher is created.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _commit_tps(self, tps: Iterable[Any], start_new_transaction: bool) -> bool:
        # Every commit path (periodic, on stop, on error) goes through here; the hook runs
        # the commit itself so it can keep the agent out until offsets are chosen.
        commit = super()._commit_tps
        if BEFORE_COMMIT is None:
            return bool(await commit(tps, start_new_transaction))
        return await BEFORE_COMMIT(lambda: commit(tps, start_new_transaction))


class Transport(faust_aiokafka.Transport):
    """``kafka://`` transport whose consumer honours :data:`FETCH_MAX_WAIT_MS`."""

    Consumer = _Consumer
