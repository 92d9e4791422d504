"""The ingest service on the embedded broker: events posted over HTTP land on rapport.events
keyed by session (idempotent producer), a session's events of one request together in one
record as JSON lines, invalid ones on rapport.events.dlq."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer

from models.topics import Topics
from services.broker import EmbeddedBroker
from services.ingest import KafkaPublisher, create_app
from services.store.tokens import TokenInfo

TOKEN = "rpt_test_ingest"


class Tokens:
    def verify_token(self, token: str) -> TokenInfo | None:
        if token != TOKEN:
            return None
        return TokenInfo("abc", "c1", "ingest", datetime.now(timezone.utc), None)


async def read(bootstrap: str, topic: str, count: int) -> list[Any]:
    """The first records of ``topic`` holding ``count`` JSON lines in all."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"t-{topic}",
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    records: list[Any] = []
    try:
        while sum(len(lines(r)) for r in records) < count:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


def lines(record: Any) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in record.value.split(b"\n")]


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
    # One record per session, its events in the order posted (services/ingest/publisher.py).
    # Keyed by session key, "clinic_id session_id" (models/topics.py; issue 16).
    assert sorted(r.key for r in published) == sorted(f"c1 s{i}".encode() for i in range(5))
    for record in published:
        assert [(b"c1 " + e["session_id"].encode(), e["type"]) for e in lines(record)] == [
            (record.key, "session.start"), (record.key, "speech")]
    (rejected,) = [orjson.loads(r.value) for r in dead]
    assert rejected["type"] == "rejected" and rejected["field"] == "speech.session_id"


def test_events_posted_while_the_broker_is_down_wait_and_arrive_and_a_full_buffer_is_503(
        broker: EmbeddedBroker) -> None:
    """A brief outage: a POST waits (buffered, retried) and answers 202 once the broker is
    back, with every event on the topic exactly once; meanwhile a POST that would overflow the
    bounded buffer is refused at once with 503, Retry-After and an error saying so."""
    topics = Topics()
    broker.create_topics(topics.specs(partitions=4))
    waiting = [{"type": "session.start", "session_id": f"o{i}", "ts_ms": 0, "clinic_id": "c1"}
               for i in range(30)]
    overflow = [{"type": "session.start", "session_id": f"x{i}", "ts_ms": 0, "clinic_id": "c1"}
                for i in range(40)]

    async def scenario() -> tuple[list[Any], float]:
        publisher = KafkaPublisher(broker.bootstrap, max_pending=50)
        app = create_app(publisher, Tokens(), warm_vad=False)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            reply = await client.post("/v1/events", json=waiting[:1], headers=headers)
            assert reply.status == 202  # connected, metadata known
            broker.set_down()
            started = asyncio.get_running_loop().time()
            posting = asyncio.create_task(client.post("/v1/events", json=waiting[1:],
                                                      headers=headers))
            await asyncio.sleep(2.0)
            assert not posting.done(), "a POST answered while the broker was down"
            assert publisher.pending == len(waiting) - 1
            full = await client.post("/v1/events", json=overflow, headers=headers)
            assert full.status == 503
            assert "Retry-After" in full.headers
            assert "buffer full" in (await full.json())["error"]
            broker.set_down(False)
            reply = await asyncio.wait_for(posting, 40)
            assert reply.status == 202, await reply.text()
            assert (await reply.json())["accepted"] == len(waiting) - 1
            waited = asyncio.get_running_loop().time() - started
        finally:
            await client.close()
        return await read(broker.bootstrap, topics.events, len(waiting)), waited

    published, waited = asyncio.run(asyncio.wait_for(scenario(), 120))
    ids = sorted(e["session_id"] for r in published for e in lines(r))
    assert ids == sorted(e["session_id"] for e in waiting)  # all there, none twice
    assert not any(i.startswith("x") for i in ids)  # nothing of the refused request
    print(f"the POST waited {waited:.1f} s through the outage")
