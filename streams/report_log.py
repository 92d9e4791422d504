"""Reading back the reports a partition already has, so a report is published once even when a
worker dies between publishing it and writing its session's closed marker.

A worker publishes a final report, waits for the broker's acknowledgement, then writes the
session's closed marker to its table. A crash between the two leaves the table saying "open";
the next owner would replay the session's last records and publish the report again. So the
worker keeps, per partition, the *reports watermark*: the end offset of its partition of
``rapport.reports`` at which every report before it has its closed marker in the table. It is
written to the table (key :func:`watermark_key`) at every offset commit. A worker taking a
partition over reads the reports from the restored watermark to the end of that partition and
closes every restored open session found there (:func:`models.stream_session.reconcile`).

The read is bounded by what was published since the last commit of the previous owner (a few
seconds' worth), or the whole partition when no watermark exists yet (a table written by an
earlier version).
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from models.stream_session import PublishedReport
from streams.broker_probe import bootstrap_servers
from streams.kafka_security import KafkaSecurity

log = logging.getLogger(__name__)

# Table keys of the watermarks. Session keys are printable ASCII (models/topics.py), so none
# starts with a NUL byte.
WATERMARK_PREFIX = b"\x00reports-watermark:"


def watermark_key(partition: int) -> bytes:
    return WATERMARK_PREFIX + str(partition).encode()


def watermark_partition(key: bytes) -> int | None:
    """The partition of a watermark key, ``None`` for a session key."""
    if not key.startswith(WATERMARK_PREFIX):
        return None
    return int(key[len(WATERMARK_PREFIX):])



class ReportLog:
    """Reads one partition of the reports topic at a time, from an offset to its current end.

    One consumer without a group (nothing is committed), started on first use."""

    def __init__(self, broker: str, topic: str, fetch_max_wait_ms: int | None,
                 security: KafkaSecurity | None = None) -> None:
        self._bootstrap = bootstrap_servers(broker)
        self._auth = (security or KafkaSecurity()).client_kwargs()
        self._topic = topic
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._consumer: AIOKafkaConsumer | None = None

    async def read(self, partition: int, start: int,
                   ) -> tuple[dict[str, PublishedReport], int]:
        """The reports of ``partition`` from offset ``start`` on (records already dropped by
        retention are skipped), by session key, and the partition's end offset."""
        consumer = await self._started()
        tp = TopicPartition(self._topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        found: dict[str, PublishedReport] = {}
        if start >= end:
            return found, end
        consumer.seek(tp, start)
        read = 0
        while await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=1000)
            for message in batches.get(tp, ()):
                read += 1
                report = PublishedReport.parse(message.value or b"", message.headers or (),
                                               message.timestamp, message.key)
                if report is not None:
                    found[report.key] = report
        log.info("partition %d: read %d report record(s) from offset %d to %d", partition,
                 read, start, end)
        return found, end

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest", isolation_level="read_uncommitted",
                # None: aiokafka's own wait (real Kafka answers as soon as data arrives).
                **({} if self._fetch_max_wait_ms is None
                   else {"fetch_max_wait_ms": self._fetch_max_wait_ms}),
                **self._auth)
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

