"""The therapist's coach stream ``GET /v1/sessions/{id}/coach`` (issue 18, contract §5) on
the combined server of ``rapport run --port`` (services/web.py), fed through the live hub:
the therapist's session token reads its session's coach events; the client's session token,
another session's, reports/ingest/admin tokens and no token cannot; revoking the parent ends
an open stream; ``RAPPORT_COACH=off`` removes the route; CORS for a configured page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from reportkit import KEY

from services.auth import REVALIDATE_S
from services.ingest import IngestConfig, MemoryPublisher
from services.reports import LiveHub
from services.store import ReportStore
from services.web import JobHealth, build_app

Client = TestClient[Any, Any]
PAGE = "https://therapy.example.com"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture
def store(tmp_path: Path) -> ReportStore:
    return ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY)


@asynccontextmanager
async def served(store: ReportStore, *, coach: bool = True,
                 off_clinics: frozenset[str] = frozenset()
                 ) -> AsyncIterator[tuple[Client, LiveHub]]:
    hub = LiveHub(hide=store.pseudonymize.apply)
    app = build_app(store, MemoryPublisher(), JobHealth(store, []), live=hub,
                    ingest=IngestConfig(coach=coach, cors_origins=(PAGE,),
                                        coach_off_clinics=off_clinics))
    app[REVALIDATE_S] = 0.2
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, hub
    finally:
        await client.close()


async def mint(client: Client, parent: str, role: str, session: str = "s1",
               participant: str = "t1") -> str:
    reply = await client.post("/v1/session-tokens", json={
        "session_id": session, "participant_id": participant, "role": role},
        headers={"Authorization": f"Bearer {parent}"})
    assert reply.status == 201, await reply.text()
    return str((await reply.json())["token"])


def quality(at_ms: int, therapist_s: float, client_s: float) -> dict[str, Any]:
    return {"type": "quality", "session_id": "s1", "clinic_id": "c1", "event_time_ms": at_ms,
            "snapshot": {"roles": {
                "therapist": {"talk_s": therapist_s,
                              "interruptions_made": {"successful": 1, "unsuccessful": 0}},
                "client": {"talk_s": client_s, "longest_monologue_s": 12.5}}},
            "events": [{"n": 0, "kind": "ipu", "participant_id": "t1", "role": "therapist",
                        "start_ms": 1000, "end_ms": 4000, "backchannel": False}]}


async def read_event(reply: ClientResponse) -> tuple[str, dict[str, Any]]:
    kind, data = "", b""
    while True:
        line = (await asyncio.wait_for(reply.content.readline(), 5)).rstrip(b"\n")
        if line.startswith(b"event: "):
            kind = line[7:].decode()
        elif line.startswith(b"data: "):
            data = line[6:]
        elif not line and kind:
            return kind, orjson.loads(data)


def test_the_therapists_session_token_reads_the_coach(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")

    async def scenario() -> None:
        async with served(store) as (client, hub):
            token = await mint(client, ingest, "therapist")
            reply = await client.get("/v1/sessions/s1/coach", headers={
                "Authorization": f"Bearer {token}", "Origin": PAGE})
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("text/event-stream")
            assert reply.headers["Access-Control-Allow-Origin"] == PAGE
            kind, first = await read_event(reply)
            assert kind == "coach" and first["session_id"] == "s1"
            assert first["at_ms"] is None and first["nudges"] == []
            hub.apply(quality(5000, 3.0, 1.0))
            kind, update = await read_event(reply)
            assert kind == "coach"
            assert update == {"session_id": "s1", "at_ms": 5000, "talk_share_10min": 0.75,
                              "monologue_s": 4.0, "interruptions_made": 1.0,
                              "client_longest_uninterrupted_s": 12.5, "nudges": []}
            hub.apply({"type": "alert", "session_id": "s1", "clinic_id": "c1",
                       "event_time_ms": 6000, "alert": {"kind": "alert",
                                                        "alert": "interruption_burst",
                                                        "ts_ms": 6000, "count": 3}})
            _, alerted = await read_event(reply)
            assert [(n["kind"], n["state"]) for n in alerted["nudges"]] == [
                ("interruption_burst", "started")]
            reply.close()

    run(scenario())


def test_nobody_else_can_read_the_coach(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")
    reports, _ = store.create_token("c1", "reports")
    admin, _ = store.create_token("ops", "admin")

    async def scenario() -> None:
        async with served(store) as (client, _):
            client_page = await mint(client, ingest, "client", participant="p1")
            other_session = await mint(client, ingest, "therapist", session="s2")
            for token, status in ((client_page, 403), (other_session, 404), (reports, 403),
                                  (ingest, 403), (admin, 403), ("rpt_unknown", 401),
                                  (None, 401)):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                reply = await client.get("/v1/sessions/s1/coach", headers=headers)
                assert reply.status == status, (token, status)
                assert b"talk_share" not in await reply.read()

    run(scenario())


def test_revoking_the_parent_ends_an_open_coach_stream(store: ReportStore) -> None:
    ingest, info = store.create_token("c1", "ingest")

    async def scenario() -> None:
        async with served(store) as (client, _):
            token = await mint(client, ingest, "therapist")
            reply = await client.get("/v1/sessions/s1/coach",
                                     headers={"Authorization": f"Bearer {token}"})
            assert (await read_event(reply))[0] == "coach"
            store.revoke_token(info.id)
            kind, _ = await read_event(reply)
            assert kind == "revoked"
            assert await asyncio.wait_for(reply.content.read(), 5) == b""  # stream ended

    run(scenario())


def test_the_coach_can_be_switched_off(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")

    async def scenario() -> None:
        async with served(store, coach=False) as (client, _):
            token = await mint(client, ingest, "therapist")
            reply = await client.get("/v1/sessions/s1/coach",
                                     headers={"Authorization": f"Bearer {token}"})
            assert reply.status == 404

    run(scenario())


def test_a_clinic_can_switch_its_coach_off(store: ReportStore) -> None:
    """RAPPORT_COACH_OFF_CLINICS: the clinics listed get 404, the others their coach."""
    off, _ = store.create_token("c1", "ingest")
    on, _ = store.create_token("c2", "ingest")

    async def scenario() -> None:
        async with served(store, off_clinics=frozenset({"c1"})) as (client, _):
            for parent, status in ((off, 404), (on, 200)):
                token = await mint(client, parent, "therapist")
                reply = await client.get("/v1/sessions/s1/coach",
                                         headers={"Authorization": f"Bearer {token}"})
                assert reply.status == status
                reply.close()

    run(scenario())
