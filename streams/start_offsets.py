"""Where a worker's input partition starts after an assignment: the consumer group's
committed offset, read from the broker when the partition's first batch arrives
(docs/streaming.md, "Delivery guarantees").

The pipeline applies each partition's records in offset order without holes
(models/delivery.py), but within an assignment it can only see a hole *after* the first
record it is given. Faust does not always give the committed offset first: when a table's
recovery ends, it seeks the input partitions to their committed offsets and then clears its
stream buffers (``Recovery.on_recovery_completed``: ``perform_seek``, then
``flow_control.resume()``); records the fetch loop delivered between the two are dropped
while the consumer's position has moved past them, so the first record the agent sees can be
later than the committed offset, and Faust counts the skipped offsets as a gap it may commit
over. A worker taking a partition over would then start its sessions half-way (a report that
silently misses events). Knowing the committed offset, the pipeline recognises the first
record as one after a hole and has the partition fetched again from the committed offset.

With no committed offset yet, the consumer starts at the partition's first record
(``consumer_auto_offset_reset="earliest"``), so that is the start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.broker_probe import bootstrap_servers
from streams.kafka_security import KafkaSecurity

log = logging.getLogger(__name__)


class StartOffsets:
    """Reads the committed offsets of one consumer group on one topic (``read``), and the
    first offsets of partitions it has none for. Clients are started on first use."""

    ATTEMPTS = 3  # a coordinator moving (a broker restarting) answers with a retriable error
    RETRY_S = 0.5

    def __init__(self, broker: str, group_id: str, topic: str,
                 security: KafkaSecurity | None = None, timeout_s: float = 10.0) -> None:
        self._bootstrap = bootstrap_servers(broker)
        self._auth = (security or KafkaSecurity()).client_kwargs()
        self._group_id = group_id
        self._topic = topic
        self._timeout_s = timeout_s
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def read(self, partitions: Iterable[int]) -> dict[int, int]:
        """The offset each of ``partitions`` starts at for the group: its committed offset,
        else its first offset. A partition whose start could not be read (the broker not
        answering after a few tries) is left out; the caller then starts it at its first
        record delivered, as before this lookup existed."""
        tps = [TopicPartition(self._topic, p) for p in sorted(set(partitions))]
        if not tps:
            return {}
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                return await asyncio.wait_for(self._read(tps), self._timeout_s)
            except Exception as error:  # any broker error: retried, then given up on
                if attempt == self.ATTEMPTS:
                    log.warning("committed offsets of %s unreadable (%r): the first record "
                                "delivered starts each partition", self._topic, error)
                    await self.close()
                    return {}
                await asyncio.sleep(self.RETRY_S * attempt)
        return {}

    async def _read(self, tps: list[TopicPartition]) -> dict[int, int]:
        admin = await self._admin_client()
        committed = await admin.list_consumer_group_offsets(self._group_id, partitions=tps)
        starts = {tp.partition: meta.offset for tp, meta in committed.items()
                  if meta is not None and meta.offset >= 0}
        fresh = [tp for tp in tps if tp.partition not in starts]
        if fresh:
            first = await (await self._plain_consumer()).beginning_offsets(fresh)
            starts.update({tp.partition: offset for tp, offset in first.items()})
        return starts

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, **self._auth)
            await admin.start()
            self._admin = admin
        return self._admin

    async def _plain_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                        enable_auto_commit=False, **self._auth)
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        consumer, self._consumer = self._consumer, None
        for client in (admin, consumer):
            if client is not None:
                try:
                    await client.close() if isinstance(client, AIOKafkaAdminClient) \
                        else await client.stop()
                except Exception as error:  # closing a client of a dead broker
                    log.debug("closing %s: %r", type(client).__name__, error)
