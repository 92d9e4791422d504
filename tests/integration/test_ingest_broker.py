"""The ingest service on the embedded broker: events posted over HTTP land on rapport.events
keyed by session (idempotent producer), invalid ones on rapport.events.dlq."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer

from services.broker import EmbeddedBroker
from services.ingest import KafkaPublisher, create_app
from services.store.tokens import TokenInfo
from streams.topics import Topics

TOKEN = "rpt_test_ingest"


class Tokens:
    def verify_token(self, token: str) -> TokenInfo | None:
        if token != TOKEN:
            return None
        return TokenInfo("abc", "c1", "ingest", datetime.now(timezone.utc), None)


async def read(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"t-{topic}",
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    records: list[Any] = []
    try:
        while len(records) < count:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


def test_posted_events_are_on_the_events_topic_keyed_by_session(
        broker: EmbeddedBroker) -> None:
    topics = Topics()
    broker.create_topics(topics.specs(partitions=4))
    events = [{"type": "session.start", "session_id": f"s{i}", "ts_ms": 0, "clinic_id": "c1"}
              for i in range(5)]
    events += [{"type": "speech", "session_id": f"s{i}", "participant_id": "p",
                "start_ms": 10, "end_ms": 20} for i in range(5)]

    async def scenario() -> tuple[list[Any], list[Any]]:
        app = create_app(KafkaPublisher(broker.bootstrap), Tokens(), warm_vad=False)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            reply = await client.post("/v1/events", json=events, headers=headers)
            assert reply.status == 202, await reply.text()
            reply = await client.post("/v1/events", data=b'{"type": "speech"}\n',
                                      headers=headers)
            assert reply.status == 422
        finally:
            await client.close()
        return (await read(broker.bootstrap, topics.events, len(events)),
                await read(broker.bootstrap, topics.dlq, 1))

    published, dead = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert sorted(orjson.loads(r.value)["session_id"] for r in published) == sorted(
        e["session_id"] for e in events)
    for record in published:
        assert record.key == orjson.loads(record.value)["session_id"].encode()
    partitions: dict[bytes, set[int]] = {}
    for record in published:
        partitions.setdefault(record.key, set()).add(record.partition)
    assert all(len(p) == 1 for p in partitions.values())  # a session stays on one partition
    (rejected,) = [orjson.loads(r.value) for r in dead]
    assert rejected["type"] == "rejected" and rejected["field"] == "speech.session_id"
