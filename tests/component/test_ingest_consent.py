"""Consent enforced at the ingest (issue 19, point 4), with a real report store (SQLite): when
the clinic requires it, a session whose client has no recorded consent is refused with a reason
naming the field, counted under ``consent``, and none of its events are published (later ones
included), over HTTP, the WebSocket, WebRTC offers and session-token minting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from ingestkit import activity, auth, start, values
from prometheus_client import REGISTRY
from reportkit import KEY

from services.ingest import MemoryPublisher, create_app
from services.ingest.service import INGEST
from services.store import ReportStore

Client = TestClient[Any, Any]
NO_CONSENT = "client has no recorded consent to analysis (clinic requires it)"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def refused_count() -> float:
    return REGISTRY.get_sample_value("rapport_ingest_rejected_total",
                                     {"reason": "consent"}) or 0.0


@pytest.fixture
def store(tmp_path: Path) -> ReportStore:
    opened = ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY)
    opened.set_policy("c1", "tok", require_consent=True)
    return opened


@asynccontextmanager
async def served(store: ReportStore, ttl_s: float = 0.0
                 ) -> AsyncIterator[tuple[Client, MemoryPublisher]]:
    sink = MemoryPublisher()
    app = create_app(sink, store, warm_vad=False, pseudonymize=store.pseudonymize)
    app[INGEST].consent.ttl_s = ttl_s
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, sink
    finally:
        await client.close()


def test_a_session_of_a_client_without_consent_is_refused_over_http(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")
    other, _ = store.create_token("c2", "ingest")

    async def scenario() -> None:
        async with served(store) as (client, sink):
            before = refused_count()
            reply = await client.post("/v1/events", json=[start(), activity(0)],
                                      headers=auth(ingest))
            assert reply.status == 422, await reply.text()
            errors = (await reply.json())["errors"]
            assert errors[0] == {"index": 0, "field": "participants[1].participant_id",
                                 "error": f"participants[1].participant_id: {NO_CONSENT}"}
            assert errors[1]["field"] == "session_id"
            # every later event of the session is refused likewise
            reply = await client.post("/v1/events", json=[activity(1)], headers=auth(ingest))
            assert reply.status == 422
            assert (await reply.json())["errors"][0]["field"] == "session_id"
            assert sink.events == [] and sink.dlq == []
            assert refused_count() - before == 3
            # a clinic that does not require consent is not affected
            reply = await client.post("/v1/events", json=[start("s1", "c2")],
                                      headers=auth(other))
            assert reply.status == 202
            # once consent is recorded, a new session passes
            store.set_consent("c1", "p2", True, by="tok")
            reply = await client.post("/v1/events", json=[start("s2"), activity(0, "s2")],
                                      headers=auth(ingest))
            assert reply.status == 202, await reply.text()
            assert {e["session_id"] for e in values(sink.events)} == {"s1", "s2"}
            # revoking it refuses the next new session
            store.record_consent("c1", "p2", False, token_id="tok", scope="clinic-admin")
            reply = await client.post("/v1/events", json=[start("s3")], headers=auth(ingest))
            assert reply.status == 422

    run(scenario())


def test_refused_over_the_websocket(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")

    async def scenario() -> None:
        async with served(store) as (client, sink):
            async with client.ws_connect("/v1/stream", headers=auth(ingest)) as ws:
                await ws.send_bytes(orjson.dumps([start(), activity(0)]))
                ack = await ws.receive_json()
                assert ack["status"] == 422 and ack["accepted"] == 0
                assert ack["errors"][0]["field"] == "participants[1].participant_id"
                await ws.send_bytes(orjson.dumps(activity(1)))
                ack = await ws.receive_json()
                assert ack["errors"][0]["field"] == "session_id"
            assert sink.events == []

    run(scenario())


def test_refused_on_webrtc_offers_and_session_tokens(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")

    async def scenario() -> None:
        async with served(store) as (client, sink):
            offer = {"sdp": "v=0\r\n", "type": "offer", "role": "client", "mode": "audio"}
            reply = await client.post("/v1/sessions/s1/participants/p2/offer", json=offer,
                                      headers=auth(ingest))
            assert reply.status == 422
            assert (await reply.json())["field"] == "participant_id"
            # the therapist cannot then start the refused session either
            reply = await client.post("/v1/sessions/s1/participants/p1/offer",
                                      json={**offer, "role": "therapist"},
                                      headers=auth(ingest))
            assert reply.status == 422 and (await reply.json())["field"] == "session_id"
            assert sink.events == []
            reply = await client.post("/v1/session-tokens", headers=auth(ingest), json={
                "session_id": "s9", "participant_id": "p2", "role": "client"})
            assert reply.status == 400, await reply.text()
            assert (await reply.json())["field"] == "participant_id"
            reply = await client.post("/v1/session-tokens", headers=auth(ingest), json={
                "session_id": "s9", "participant_id": "p1", "role": "therapist"})
            assert reply.status == 201

    run(scenario())


def test_the_policy_is_cached_for_seconds_only(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")
    store.set_policy("c1", "tok", require_consent=False)

    async def scenario() -> None:
        async with served(store, ttl_s=0.2) as (client, _):
            reply = await client.post("/v1/events", json=[start("s1")], headers=auth(ingest))
            assert reply.status == 202
            store.set_policy("c1", "tok", require_consent=True)
            await asyncio.sleep(0.3)
            reply = await client.post("/v1/events", json=[start("s2")], headers=auth(ingest))
            assert reply.status == 422

    run(scenario())


def test_an_unavailable_database_accepts_nothing(store: ReportStore) -> None:
    from services.store import StoreError

    ingest, _ = store.create_token("c1", "ingest")

    class Down:
        """Tokens verify; the consent lookup fails like a database that went away."""

        def verify_token(self, token: str) -> Any:
            return store.verify_token(token)

        def get_policy(self, clinic_id: str) -> Any:
            raise StoreError("read policy: connection refused")

        def consented(self, clinic_id: str, participant_ids: list[str]) -> set[str]:
            raise StoreError("read consents: connection refused")

    async def scenario() -> None:
        sink = MemoryPublisher()
        app = create_app(sink, Down(), warm_vad=False, pseudonymize=store.pseudonymize)
        client: Client = TestClient(TestServer(app))
        await client.start_server()
        try:
            reply = await client.post("/v1/events", json=[start()], headers=auth(ingest))
            assert reply.status == 503
            async with client.ws_connect("/v1/stream", headers=auth(ingest)) as ws:
                await ws.send_bytes(orjson.dumps([start()]))
                ack = await ws.receive_json()
                assert (ack["status"], ack["accepted"]) == (503, 0)
            assert sink.events == []
        finally:
            await client.close()

    run(scenario())
