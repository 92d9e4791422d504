"""The store consumer on the embedded broker (issue 5; services/reports/consumer.py): records
the workers' logic produced for simulated sessions are stored, a redelivery (a second consumer
group reading everything again, and the first group after its offsets are reset) duplicates
nothing, invalid records are counted and skipped, and a store that is down is retried without
committing — against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from harness import PARTITIONS, TOPICS
from reportkit import BACKENDS, engine_records, open_store
from sqlalchemy import func, select

from services.broker import EmbeddedBroker
from services.reports.consumer import GROUP_ID, StoreConsumer
from services.store import ReportStore, SessionQuery, StoreError
from services.store.schema import AlertRow, SessionRow, TimelineItem

ROLE_TOPIC = {"quality": TOPICS.quality, "alerts": TOPICS.alerts, "reports": TOPICS.reports}


async def produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
        for role, key, value in records:
            await producer.send(ROLE_TOPIC[role], value, key=key or None)
        await producer.flush()
    finally:
        await producer.stop()


def counts(store: ReportStore) -> dict[str, int]:
    with store.db.transaction("count") as session:
        return {table.__tablename__: int(session.scalar(select(func.count()).select_from(table))
                                         or 0)
                for table in (SessionRow, TimelineItem, AlertRow)}


async def consume_until(consumer: StoreConsumer, total: int, timeout: float = 60) -> None:
    """Poll until ``total`` records were handled and committed."""
    deadline = time.monotonic() + timeout
    handled = 0
    while handled < total:
        handled += await consumer.poll_once()
        assert time.monotonic() < deadline, f"only {handled} of {total} records consumed"


async def committed(bootstrap: str, group: str) -> int:
    """Sum of the group's committed offsets over the three topics' partitions."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                              enable_auto_commit=False)
    await reader.start()
    try:
        total = 0
        for topic in ROLE_TOPIC.values():
            for partition in range(PARTITIONS):
                total += await reader.committed(TopicPartition(topic, partition)) or 0
        return total
    finally:
        await reader.stop()


@pytest.fixture
def records() -> list[tuple[str, bytes, bytes]]:
    return [*engine_records("c1", sessions=2, minutes=4, seed=5),
            *engine_records("c2", sessions=1, minutes=4, seed=6)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_consumer_stores_everything_once(backend: str, tmp_path: Path, broker: EmbeddedBroker,
                                         records: list[tuple[str, bytes, bytes]]) -> None:
    broker.create_topics(TOPICS.specs(PARTITIONS))
    bad = [("reports", b"bad", b'{"schema_version": 1, "type": "report"}'),
           ("alerts", b"bad", b"not json")]
    decoded = [(role, orjson.loads(value)) for role, _, value in records]
    expected_events = sum(len(d["events"]) for role, d in decoded if role == "quality")
    reports = {(d["clinic_id"], d["session_id"]) for role, d in decoded if role == "reports"}
    # Quality records without new events (snapshot only) write nothing, and an alert may
    # already be stored from its session's report (which lists its alerts) when that came first.
    changing = sum(1 for role, d in decoded if role == "reports"
                   or (role == "quality" and d["events"]))

    async def scenario(store: ReportStore) -> tuple[dict[str, int], ...]:
        await produce(broker.bootstrap, [*records[:10], *bad, *records[10:]])
        total = len(records) + len(bad)
        first = StoreConsumer(store, f"kafka://{broker.bootstrap}", poll_timeout_ms=200)
        await first.start()
        await consume_until(first, total)
        assert sum(first.stats.invalid.values()) == 2
        assert first.stats.written >= changing
        assert first.stats.written + first.stats.unchanged == len(records)
        stored = counts(store)
        assert await committed(broker.bootstrap, GROUP_ID) == total
        # The same group after restarting: its commits hold, nothing is read again.
        await first.stop()
        again = StoreConsumer(store, broker.bootstrap, poll_timeout_ms=200)
        await again.start()
        deadline, handled = time.monotonic() + 30, 0
        while again.assigned() == 0:  # wait for the group to hand it the partitions
            handled += await again.poll_once()
            assert time.monotonic() < deadline, "no partitions assigned"
        handled += await again.poll_once()
        await again.stop()
        assert handled == 0
        # Redelivery: another group reads every record again; nothing changes.
        second = StoreConsumer(store, broker.bootstrap, group_id="rapport-reports-replay",
                               poll_timeout_ms=200)
        await second.start()
        await consume_until(second, total)
        await second.stop()
        assert second.stats.written == 0 and second.stats.unchanged == len(records)
        return stored, counts(store)

    with open_store(backend, tmp_path) as store:
        stored, replayed = asyncio.run(asyncio.wait_for(scenario(store), 120))
        assert stored == replayed
        assert stored["sessions"] == len(reports) == 3
        assert stored["timeline_items"] == expected_events
        listed = store.list_sessions(SessionQuery(clinic="c1")).items
        assert sorted(s["session_id"] for s in listed) == ["c1-0001", "c1-0002"]
        for clinic, session_id in reports:
            found = store.get_report(session_id, clinic)
            assert found is not None and found["report"]["final"] is True
            raised = Counter(a["alert"] for a in found["alerts"] if not a["cleared"])
            assert raised == Counter(a["type"] for a in found["report"]["alerts"])


class FlakyStore:
    """A store whose first ``failures`` writes raise StoreError (the database is down)."""

    def __init__(self, store: ReportStore, failures: int) -> None:
        self.store = store
        self.failures = failures
        self.attempts = 0

    def add_record(self, raw: Any) -> bool | int:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("connection refused")
        return self.store.add_record(raw)


def test_a_store_outage_is_retried_without_committing(tmp_path: Path, broker: EmbeddedBroker,
                                                      records: list[tuple[str, bytes, bytes]]
                                                      ) -> None:
    broker.create_topics(TOPICS.specs(PARTITIONS))
    reports = [r for r in records if r[0] == "reports"][:1]

    async def scenario(store: ReportStore) -> StoreConsumer:
        await produce(broker.bootstrap, reports)
        flaky = FlakyStore(store, failures=3)
        consumer = StoreConsumer(flaky, broker.bootstrap,  # type: ignore[arg-type]
                                 poll_timeout_ms=200, retry_initial_s=0.05, retry_max_s=0.2)
        await consumer.start()
        running = asyncio.create_task(consumer.run())
        deadline = time.monotonic() + 30
        while True:
            # Offset first, then the table: a commit seen here happened after its write, so
            # the write must be visible; the other order would race with the consumer.
            done = await committed(broker.bootstrap, GROUP_ID)
            stored = counts(store)["sessions"]
            assert not (done >= 1 and stored < 1), "offset committed before the write"
            if done >= 1:
                break
            assert time.monotonic() < deadline, f"not stored and committed ({stored}, {done})"
            await asyncio.sleep(0.05)
        await consumer.stop()
        await running
        return consumer

    with open_store("sqlite", tmp_path) as store:
        consumer = asyncio.run(asyncio.wait_for(scenario(store), 60))
        assert consumer.stats.store_failures == 3 and not consumer.stats.store_down
        assert consumer.stats.written == 1 and consumer.stats.commits >= 1
