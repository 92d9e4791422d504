"""Faust's aiokafka transport with one knob it hard-codes: the consumer's fetch wait.

Faust builds its worker consumer with ``fetch_max_wait_ms=1500``. Real Kafka answers a fetch
as soon as data arrives, so that is only an idle-poll interval; librdkafka's mock cluster (the
embedded broker) holds every fetch for the full wait even when data is there, which would add
up to 1.5 s to every event's latency. The transport below sets the wait from
``FETCH_MAX_WAIT_MS`` before the consumer starts (aiokafka reads it at ``start()``).
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

# Set by streams.app.build_app before the worker starts (one app per process).
FETCH_MAX_WAIT_MS = 500


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Private aiokafka attribute: the only hook, read when the fetcher is created.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """``kafka://`` transport whose consumer honours :data:`FETCH_MAX_WAIT_MS`."""

    Consumer = _Consumer
