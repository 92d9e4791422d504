"""The embedded broker gives real Kafka semantics: keyed partitioning, consumer groups and
committed offsets, with every topic created at its configured partition count."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from models.topics import Topics
from services.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[2]


async def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, key=f"s{i % 7}".encode(), value=str(i).encode())
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, group: str, count: int) -> list[int]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=False, fetch_max_wait_ms=50,
    )
    await consumer.start()
    values: list[int] = []
    try:
        while len(values) < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=count - len(values))
            for messages in batches.values():
                values.extend(int(m.value) for m in messages)
        await consumer.commit()
    finally:
        await consumer.stop()
    return values


def test_consumer_group_resumes_after_its_committed_offsets(broker: EmbeddedBroker) -> None:
    topic = Topics().events
    broker.create_topics(Topics().specs(partitions=4))

    async def scenario() -> tuple[list[int], list[int], list[int]]:
        await _produce(broker.bootstrap, topic, 60)
        first = await _consume(broker.bootstrap, topic, "workers", 60)
        await _produce(broker.bootstrap, topic, 20)  # values 0..19 again, new offsets
        resumed = await _consume(broker.bootstrap, topic, "workers", 20)
        fresh_group = await _consume(broker.bootstrap, topic, "other", 80)
        return first, resumed, fresh_group

    first, resumed, fresh_group = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert sorted(first) == list(range(60))
    assert sorted(resumed) == list(range(20))  # nothing committed was delivered again
    assert len(fresh_group) == 80  # another group starts from the beginning


def test_topics_get_their_partition_count(broker: EmbeddedBroker) -> None:
    broker.create_topics(Topics().specs(partitions=6))
    topics = Topics()
    names = [topics.events, topics.quality, topics.alerts, topics.reports, topics.dlq]

    async def partitions() -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(names)
        finally:
            await admin.close()
        return {t["topic"]: len(t["partitions"]) for t in described}

    assert asyncio.run(asyncio.wait_for(partitions(), 30)) == dict.fromkeys(names, 6)


def test_rapport_broker_command_prints_its_address_and_serves(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "broker", "--partitions", "3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("bootstrap: 127.0.0.1:"), line
        bootstrap = line.removeprefix("bootstrap: ")
        values = asyncio.run(asyncio.wait_for(_roundtrip(bootstrap), 60))
        assert sorted(values) == list(range(10))
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    assert process.stderr is not None
    assert "rapport.events (3)" in process.stderr.read()


async def _roundtrip(bootstrap: str) -> list[int]:
    await _produce(bootstrap, Topics().reports, 10)
    return await _consume(bootstrap, Topics().reports, "cli", 10)
