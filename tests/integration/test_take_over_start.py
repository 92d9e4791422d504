"""Where a worker starts a partition it takes over (streams/start_offsets.py; docs/streaming.md,
"Delivery guarantees"), shown on the pipeline itself with the embedded broker: Faust may hand
over a partition's first records after the committed offset (the records before them
dropped with its stream buffers), and the worker must see that as a hole, not start there.
The pipeline is fed batches as its agent would; the broker is real, Faust is not needed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from faust.types import TP
from harness import PARTITIONS, TOPICS

from services.broker import EmbeddedBroker
from streams.app import Pipeline, WorkerConfig

pytestmark = pytest.mark.slow

GROUP = "t-take-over-start"


@dataclass
class _Message:
    partition: int
    offset: int
    value: bytes
    key: bytes | None
    topic: str = TOPICS.events
    timestamp: float = 1_767_000_000.0
    headers: Any = None


@dataclass
class _Event:
    message: _Message


def _events(partition: int, offsets: range) -> list[_Event]:
    """Records of one session: its start, then nothing the report depends on here."""
    start = orjson.dumps({"type": "session.start", "session_id": "s1", "clinic_id": "c1",
                          "ts_ms": 0, "participants": [
                              {"participant_id": "t", "role": "therapist"},
                              {"participant_id": "c", "role": "client"}]})
    return [_Event(_Message(partition, offset, start, b"c1 s1")) for offset in offsets]


class _Topic:
    """An output topic that keeps what is sent (no report closes here: nothing awaited)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **record: Any) -> None:
        self.sent.append(record)


def _pipeline(broker: EmbeddedBroker) -> Pipeline:
    config = WorkerConfig(broker=broker.bootstrap, app_id=GROUP, partitions=PARTITIONS)
    # No Faust app: a batch without closed sessions never reaches the producer or the table.
    outputs = {role: _Topic() for role in TOPICS.outputs()}
    return Pipeline(app=None, config=config, table={}, outputs=outputs)


async def _commit(bootstrap: str, partition: int, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(TOPICS.events, partition)
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()


def test_a_first_batch_after_the_committed_offset_is_fetched_again_from_it(
        broker: EmbeddedBroker) -> None:
    """Committed 5 on partition 1; the first batch starts at 9: nothing is applied, the
    partition is sought back to 5, and no commit may pass 5 meanwhile. Records from 5 on are
    then applied."""
    broker.create_topics(TOPICS.specs(PARTITIONS))

    async def scenario() -> None:
        await _commit(broker.bootstrap, 1, 5)
        pipeline = _pipeline(broker)
        try:
            await pipeline.handle(_events(1, range(9, 12)))
            assert pipeline.hooks.rewinds == {TP(TOPICS.events, 1): 5}
            assert pipeline.processor.session(1, "c1 s1") is None
            assert pipeline.commit_ceiling(TP(TOPICS.events, 1)) == 5
            pipeline.hooks.rewinds.clear()  # what the fetch loop does when it seeks
            await pipeline.handle(_events(1, range(5, 12)))
            state = pipeline.processor.session(1, "c1 s1")
            assert state is not None and state.last_offset == 11
            assert not pipeline.hooks.rewinds
        finally:
            await pipeline.start_offsets.close()
            await pipeline.report_log.close()

    asyncio.run(scenario())


def test_a_partition_nothing_was_committed_for_starts_at_its_first_offset(
        broker: EmbeddedBroker) -> None:
    broker.create_topics(TOPICS.specs(PARTITIONS))

    async def scenario() -> None:
        pipeline = _pipeline(broker)
        try:
            await pipeline.handle(_events(2, range(3, 5)))
            assert pipeline.hooks.rewinds == {TP(TOPICS.events, 2): 0}
        finally:
            await pipeline.start_offsets.close()
            await pipeline.report_log.close()

    asyncio.run(scenario())
