"""The live dashboard's consumer (issue 5): tails ``rapport.quality``, ``rapport.alerts`` and
``rapport.reports`` into a :class:`~services.reports.live.LiveHub`.

Live only: it joins no consumer group and commits nothing; it reads every partition from the
end (the newest offset when it starts), so a dashboard shows what happens from now on, and a
restart neither replays history nor disturbs the store consumer's group
(services/reports/consumer.py, which is what makes reports durable). Records that are not
JSON objects are counted and skipped. Every ``expire_every_s`` it ends the sessions that went
quiet (:meth:`LiveHub.expire`). :class:`LiveConsumer` has ``start()`` / ``run()`` /
``stop()`` like the store consumer, for ``rapport run --port`` and ``rapport reports
--broker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from models.topics import Topics
from services.reports.live import LiveHub
from streams.broker_probe import bootstrap_servers
from streams.kafka_security import KafkaSecurity

log = logging.getLogger(__name__)


class LiveConsumer:
    """Feeds ``hub`` from the workers' output topics, newest records only."""

    def __init__(self, hub: LiveHub, bootstrap: str, topics: Topics | None = None, *,
                 poll_timeout_ms: int = 500, expire_every_s: float = 5.0,
                 security: KafkaSecurity | None = None, **consumer_options: Any) -> None:
        self.hub = hub
        self.topics = topics or Topics()
        self.consumed = 0
        self.invalid = 0
        self._bootstrap = bootstrap_servers(bootstrap)
        self._poll_timeout_ms = poll_timeout_ms
        self._expire_every_s = expire_every_s
        self._options = {**(security or KafkaSecurity()).client_kwargs(), **consumer_options}
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def names(self) -> tuple[str, str, str]:
        return self.topics.quality, self.topics.alerts, self.topics.reports

    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect, and position every partition at its end before returning, so every
        record published afterwards is seen."""
        options: dict[str, Any] = {"auto_offset_reset": "latest", "fetch_max_wait_ms": 100,
                                   "max_partition_fetch_bytes": 16 * 1024 * 1024,
                                   **self._options}
        consumer = AIOKafkaConsumer(*self.names, bootstrap_servers=self._bootstrap,
                                    group_id=None, enable_auto_commit=False, **options)
        await consumer.start()
        self._consumer = consumer
        self.hub.feed = self._bootstrap
        try:
            deadline = time.monotonic() + timeout_s
            while not consumer.assignment():
                if time.monotonic() > deadline:
                    raise KafkaError("live consumer: no partitions assigned")
                await asyncio.sleep(0.05)
            for tp in consumer.assignment():
                await consumer.position(tp)  # resolves "latest" now
        except BaseException:
            await self.stop()
            raise
        log.info("live consumer tailing %s on %s (%d partitions)", ", ".join(self.names),
                 self._bootstrap, len(consumer.assignment()))

    def take(self, value: bytes | None) -> None:
        """Hand one record's value to the hub."""
        self.consumed += 1
        try:
            record = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            self.invalid += 1
            return
        self.hub.apply(record)

    async def run(self) -> None:
        """Consume until :meth:`stop`."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("LiveConsumer.start() first")
        last_expiry = time.monotonic()
        self._idle.clear()
        try:
            await self._loop(consumer, last_expiry)
        finally:
            self._idle.set()

    async def _loop(self, consumer: AIOKafkaConsumer, last_expiry: float) -> None:
        while not self._stopping.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=self._poll_timeout_ms)
            except KafkaError as error:  # transient: the broker is restarting, ...
                log.warning("live consumer: %s; retrying", error)
                await asyncio.sleep(1.0)
                continue
            for messages in batches.values():
                for message in messages:
                    self.take(message.value)
            if time.monotonic() - last_expiry >= self._expire_every_s:
                last_expiry = time.monotonic()
                self.hub.expire()

    async def stop(self) -> None:
        """Finish the poll in hand, then close."""
        self._stopping.set()
        await self._idle.wait()
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            with contextlib.suppress(KafkaError):
                await consumer.stop()
