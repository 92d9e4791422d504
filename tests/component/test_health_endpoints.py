"""Health and metrics of the stand-alone servers (issue 6; services/health.py): ``rapport
ingest`` and ``rapport reports`` answer ``/healthz``, ``/readyz`` (503 naming the database or
the broker when one is unreachable, 200 otherwise) and ``/metrics`` without a token, and the
ingest, store-consumer, WebRTC and VAD metrics move when their events happen."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import TopicPartition
from ingestkit import INGEST_C1, Tokens, activity, auth, start
from prometheus_client.parser import text_string_to_metric_families
from reportkit import KEY, engine_records

from models.topics import Topics
from services.broker import EmbeddedBroker
from services.cli.report_server import add_health
from services.health import Check, database_problem
from services.ingest import MemoryPublisher, create_app
from services.ingest import metrics as ingest_metrics
from services.ingest.audio import AudioVadFramer
from services.reports import create_app as reports_app
from services.reports import metrics as report_metrics
from services.reports.consumer import StoreConsumer
from services.store import ReportStore
from services.store.database import Database
from streams.broker_probe import BrokerProbe

NOWHERE_DB = "postgresql+psycopg://rapport@127.0.0.1:1/rapport"
NOWHERE_BROKER = "127.0.0.1:1"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReportStore]:
    with ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY) as opened:
        yield opened


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with EmbeddedBroker() as running:
        yield running.bootstrap


def unreachable(store: ReportStore) -> None:
    """The database goes away under a running server (its URL now points nowhere)."""
    store.db.close()
    store.db = Database(NOWHERE_DB, migrate_schema=False)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape(client: TestClient[Any, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                        float]:
    reply = await client.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    return samples(await reply.text())


async def serve(app: web.Application) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


def ingest_app(store: ReportStore, bootstrap: str) -> tuple[web.Application, BrokerProbe]:
    probe = BrokerProbe(bootstrap)
    checks: list[tuple[str, Check]] = [("database", partial(database_problem, store)),
                                       ("broker", probe.check)]
    return create_app(MemoryPublisher(), Tokens(), warm_vad=False, checks=checks), probe


# --- ingest -------------------------------------------------------------------------------


def test_ingest_is_ready_with_database_and_broker_and_says_what_is_missing(
        store: ReportStore, broker: str) -> None:
    async def scenario() -> None:
        app, probe = ingest_app(store, broker)
        client = await serve(app)
        try:
            reply = await client.get("/healthz")
            assert reply.status == 200 and await reply.json() == {"status": "ok"}
            reply = await client.get("/readyz")
            body = await reply.json()
            assert reply.status == 200, body
            assert body["ready"] is True and body["problems"] == []
            unreachable(store)
            reply = await client.get("/readyz")
            body = await reply.json()
            assert reply.status == 503 and body["ready"] is False
            assert body["problems"] == ["database: unreachable (StoreError)"]
        finally:
            await client.close()
            await probe.close()

    run(scenario())


def test_ingest_is_not_ready_without_its_broker(store: ReportStore) -> None:
    async def scenario() -> None:
        app, probe = ingest_app(store, NOWHERE_BROKER)
        client = await serve(app)
        try:
            reply = await client.get("/readyz")
            body = await reply.json()
            assert reply.status == 503
            assert len(body["problems"]) == 1
            assert body["problems"][0].startswith("broker: unreachable (")
            assert (await client.get("/healthz")).status == 200  # alive all the same
        finally:
            await client.close()
            await probe.close()

    run(scenario())


def test_ingest_metrics_count_accepted_and_rejected_events_by_reason(
        store: ReportStore, broker: str) -> None:
    async def scenario() -> None:
        app, probe = ingest_app(store, broker)
        client = await serve(app)
        accepted = ("rapport_ingest_events_total", (("result", "accepted"),))
        rejected = ("rapport_ingest_events_total", (("result", "rejected"),))
        invalid = ("rapport_ingest_rejected_total", (("reason", "invalid"),))
        malformed = ("rapport_ingest_rejected_total", (("reason", "malformed_json"),))
        try:
            before = await scrape(client)  # public: no token
            bad = {**activity(1, session="m1"), "frame_ms": 25}
            body = b"\n".join([orjson.dumps(start("m1")), orjson.dumps(bad), b"not json",
                               orjson.dumps(activity(2, session="m1"))])
            reply = await client.post("/v1/events", data=body, headers=auth(INGEST_C1))
            assert reply.status == 207
            reply = await client.post("/v1/events", data=b"[1, 2", headers=auth(INGEST_C1))
            assert reply.status == 400
            after = await scrape(client)
            moved = {key: after.get(key, 0) - before.get(key, 0)
                     for key in (accepted, rejected, invalid, malformed)}
            assert moved == {accepted: 2, rejected: 3, invalid: 1, malformed: 2}
            assert "rapport_webrtc_peers" in await (await client.get("/metrics")).text()
            assert "rapport_vad_real_time_factor_bucket" in \
                await (await client.get("/metrics")).text()
        finally:
            await client.close()
            await probe.close()

    run(scenario())


def test_webrtc_peer_gauge_follows_connection_states() -> None:
    gauge = ingest_metrics.WEBRTC_PEERS

    def value(state: str) -> float:
        return gauge.labels(state)._value.get()

    base = {s: value(s) for s in ("new", "connecting", "connected", "failed")}
    state = ingest_metrics.peer_moved(None, "new")
    assert value("new") == base["new"] + 1
    for step in ("connecting", "connected", "failed"):
        state = ingest_metrics.peer_moved(state, step)
    assert value("failed") == base["failed"] + 1
    assert {s: value(s) for s in ("new", "connecting", "connected")} == \
        {s: base[s] for s in ("new", "connecting", "connected")}
    assert ingest_metrics.peer_moved(state, None) is None  # closed: out of the gauge
    assert value("failed") == base["failed"]


def test_vad_real_time_factor_is_observed_in_audio_mode() -> None:
    histogram = ingest_metrics.VAD_REAL_TIME_FACTOR

    def count() -> float:
        return sum(s.value for m in histogram.collect() for s in m.samples
                   if s.name.endswith("_count"))

    before = count()
    framer = AudioVadFramer(0, chunk_ms=200)
    tone = (np.sin(np.arange(48_000) * 2 * np.pi * 220 / 48_000) * 8000).astype(np.int16)
    for offset in range(0, 48_000, 960):
        framer.frame(tone[offset:offset + 960], 1, 48_000, offset)
    framer.finish()
    assert count() > before


# --- reports --------------------------------------------------------------------------------


def test_reports_readiness_checks_the_database_and_with_a_broker_the_broker(
        store: ReportStore, broker: str) -> None:
    async def scenario() -> None:
        app = reports_app(store)
        probe = add_health(app, store, f"kafka://{broker}")
        alone = reports_app(store)
        assert add_health(alone, store, None) is None
        client, solo = await serve(app), await serve(alone)
        try:
            for one in (client, solo):
                reply = await one.get("/readyz")
                assert reply.status == 200, await reply.text()
                assert (await one.get("/healthz")).status == 200
            assert "rapport_store_writes_total" in await (await client.get("/metrics")).text()
            unreachable(store)
            reply = await client.get("/readyz")
            assert reply.status == 503
            assert (await reply.json())["problems"] == ["database: unreachable (StoreError)"]
        finally:
            await client.close()
            await solo.close()
            if probe is not None:
                await probe.close()

    run(scenario())


def test_reports_is_not_ready_when_its_broker_is_unreachable(store: ReportStore) -> None:
    async def scenario() -> None:
        app = reports_app(store)
        probe = add_health(app, store, f"kafka://{NOWHERE_BROKER}")
        client = await serve(app)
        try:
            reply = await client.get("/readyz")
            problems = (await reply.json())["problems"]
            assert reply.status == 503 and len(problems) == 1
            assert problems[0].startswith("broker: unreachable (")
        finally:
            await client.close()
            if probe is not None:
                await probe.close()

    run(scenario())


def test_store_consumer_counts_writes_by_kind_and_result(store: ReportStore) -> None:
    topics = Topics()
    consumer = StoreConsumer(store, "127.0.0.1:1", topics)
    records = engine_records("c1", sessions=1, minutes=2, seed=3)
    value = next(r[2] for r in records if r[0] == "reports")
    tp = TopicPartition(topics.reports, 0)

    def writes(result: str) -> float:
        return report_metrics.STORE_WRITES.labels("report", result)._value.get()

    before = {r: writes(r) for r in ("stored", "duplicate", "invalid")}

    async def scenario() -> None:
        assert await consumer._write(tp, [SimpleNamespace(value=value, offset=0)])
        assert await consumer._write(tp, [SimpleNamespace(value=value, offset=1),
                                          SimpleNamespace(value=b"{", offset=2)])

    run(scenario())
    moved = {r: writes(r) - before[r] for r in before}
    assert moved == {"stored": 1, "duplicate": 1, "invalid": 1}
