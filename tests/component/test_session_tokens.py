"""Session tokens (issue 18, contract §1): minted from an ingest or admin token by
``POST /v1/session-tokens``, stored hashed in a real report store (SQLite), usable over the
``/v1/stream`` WebSocket and ``POST /v1/events`` for their own session only, dead at expiry
and with their parent (open sockets included), never logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from ingestkit import activity, auth, start, values
from reportkit import KEY

from services.auth import REVALIDATE_S
from services.ingest import MemoryPublisher, create_app
from services.store import ReportStore
from services.store.tokens import hash_token, verify_token

Client = TestClient[Any, Any]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture
def store(tmp_path: Path) -> ReportStore:
    return ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY)


@asynccontextmanager
async def served(store: ReportStore, revalidate_s: float | None = None
                 ) -> AsyncIterator[tuple[Client, MemoryPublisher]]:
    sink = MemoryPublisher()
    app = create_app(sink, store, warm_vad=False)
    if revalidate_s is not None:
        app[REVALIDATE_S] = revalidate_s
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, sink
    finally:
        await client.close()


async def mint(client: Client, parent: str, **body: Any) -> tuple[int, dict[str, Any]]:
    body = {"session_id": "s1", "participant_id": "p1", "role": "therapist", **body}
    reply = await client.post("/v1/session-tokens", json=body, headers=auth(parent))
    return reply.status, await reply.json()


def test_an_ingest_token_mints_a_session_token_stored_only_as_a_hash(
        store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")

    async def scenario() -> None:
        async with served(store) as (client, _):
            before = datetime.now(timezone.utc)
            status, body = await mint(client, ingest, ttl_s=600)
            assert status == 201, body
            assert {k: body[k] for k in ("session_id", "clinic_id", "participant_id",
                                         "role")} == {"session_id": "s1", "clinic_id": "c1",
                                                      "participant_id": "p1",
                                                      "role": "therapist"}
            expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
            assert before + timedelta(seconds=598) <= expires \
                <= before + timedelta(seconds=602)
            info = store.verify_token(body["token"])
            assert info is not None and info.scope == "session"
            assert info.session_id == "s1" and info.role == "therapist"
            assert info.participant == store.pseudonymize("p1")  # never the id in clear
            # default life 4 h
            _, default = await mint(client, ingest)
            expires = datetime.fromisoformat(default["expires_at"].replace("Z", "+00:00"))
            assert abs((expires - before).total_seconds() - 4 * 3600) < 5
            token = body["token"]

        from sqlalchemy import select

        from services.store.schema import TokenRow
        with store.db.transaction("read") as session:
            hashes = list(session.scalars(select(TokenRow.token_hash)))
        assert hash_token(token) in hashes and token not in hashes

    run(scenario())


def test_minting_rules_clinic_ttl_role_and_who_may_mint(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")
    admin, _ = store.create_token("ops", "admin")
    reports, _ = store.create_token("c1", "reports")

    async def scenario() -> None:
        async with served(store) as (client, _):
            status, body = await mint(client, ingest, clinic_id="c2")
            assert status == 403 and body["error"].startswith("clinic_id:")
            status, body = await mint(client, admin)
            assert status == 400 and body["field"] == "clinic_id"
            status, body = await mint(client, admin, clinic_id="c9")
            assert status == 201 and body["clinic_id"] == "c9"
            status, body = await mint(client, ingest, ttl_s=24 * 3600 + 1)
            assert status == 400 and body["field"] == "ttl_s"
            status, body = await mint(client, ingest, role="boss")
            assert status == 400 and body["field"] == "role"
            status, body = await mint(client, ingest, session_id="")
            assert status == 400 and body["field"] == "session_id"
            status, _ = await mint(client, reports)
            assert status == 403
            reply = await client.post("/v1/session-tokens", json={})
            assert reply.status == 401
            _, child = await mint(client, ingest)
            status, _ = await mint(client, child["token"])  # a session token cannot mint
            assert status == 403

    run(scenario())


def test_a_session_token_posts_its_own_session_only(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")

    async def scenario() -> None:
        async with served(store) as (client, sink):
            _, minted = await mint(client, ingest)
            token = minted["token"]
            reply = await client.post("/v1/events", json=[start(), activity(0)],
                                      headers=auth(token))
            assert reply.status == 202, await reply.text()
            reply = await client.post("/v1/events", json=[activity(1), activity(0, "s2")],
                                      headers=auth(token))
            assert reply.status == 403
            assert (await reply.json())["field"] == "session_id"
            # another clinic's session.start is refused as before
            reply = await client.post("/v1/events", json=[start("s1", "c2")],
                                      headers=auth(token))
            assert reply.status == 403
            assert [e["seq"] for e in values(sink.events) if e["type"] == "activity"] == [0]
            # the reports API is not for session tokens
            reply = await client.get("/v1/sessions", headers=auth(token))
            assert reply.status in (403, 404)

    run(scenario())


def test_a_session_token_streams_its_session_over_the_websocket(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")

    async def scenario() -> None:
        async with served(store) as (client, sink):
            _, minted = await mint(client, ingest)
            async with client.ws_connect("/v1/stream") as ws:  # browsers: first message
                await ws.send_str(orjson.dumps({"type": "auth",
                                                "token": minted["token"]}).decode())
                assert await ws.receive_json() == {"type": "auth", "ok": True}
                await ws.send_bytes(orjson.dumps([start(), activity(0)]))
                ack = await ws.receive_json()
                assert (ack["message"], ack["status"]) == (0, 202)
                await ws.send_bytes(orjson.dumps(activity(1, "s2")))
                ack = await ws.receive_json()
                assert ack["message"] == 1 and ack["status"] == 403
                assert ack["error"].startswith("session_id:")
            assert len(sink.events) == 2

    run(scenario())


def test_an_expired_session_token_is_refused(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")

    async def scenario() -> None:
        async with served(store) as (client, _):
            _, minted = await mint(client, ingest, ttl_s=60)
            token = minted["token"]
            assert store.verify_token(token) is not None
            later = datetime.now(timezone.utc) + timedelta(seconds=61)
            with store.db.transaction("verify later") as session:
                assert verify_token(session, token, now=later) is None
            with store.db.transaction("expire") as session:  # let the clock pass
                from services.store.schema import TokenRow
                row = session.get(TokenRow, hash_token(token))
                assert row is not None
                row.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
            reply = await client.post("/v1/events", json=[start()], headers=auth(token))
            assert reply.status == 401

    run(scenario())


def test_revoking_the_parent_ends_an_open_socket_of_its_session_token(
        store: ReportStore) -> None:
    ingest, info = store.create_token("c1", "ingest")

    async def scenario() -> None:
        async with served(store, revalidate_s=0.2) as (client, sink):
            _, minted = await mint(client, ingest)
            async with client.ws_connect("/v1/stream") as ws:
                await ws.send_str(orjson.dumps({"type": "auth",
                                                "token": minted["token"]}).decode())
                assert (await ws.receive_json())["ok"] is True
                await ws.send_bytes(orjson.dumps([start()]))
                assert (await ws.receive_json())["status"] == 202
                store.revoke_token(info.id)  # the parent, not the session token
                error = await asyncio.wait_for(ws.receive_json(), 3.0)
                assert error["status"] == 401
                closing = await asyncio.wait_for(ws.receive(), 3.0)
                assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
                assert ws.close_code == 4401
            assert len(sink.events) == 1
            reply = await client.post("/v1/events", json=[activity(0)],
                                      headers=auth(minted["token"]))
            assert reply.status == 401

    run(scenario())


def test_session_tokens_never_reach_the_logs(store: ReportStore,
                                             caplog: pytest.LogCaptureFixture) -> None:
    ingest, _ = store.create_token("c1", "ingest")
    caplog.set_level(logging.DEBUG)

    async def scenario() -> str:
        async with served(store) as (client, _):
            _, minted = await mint(client, ingest)
            token = str(minted["token"])
            await client.post("/v1/events", json=[start()], headers=auth(token))
            await client.post("/v1/events", json=[activity(0, "s2")], headers=auth(token))
            async with client.ws_connect("/v1/stream") as ws:
                await ws.send_str(orjson.dumps({"type": "auth", "token": token}).decode())
                await ws.receive_json()
            store.revoke_token(token)
            await client.post("/v1/events", json=[start()], headers=auth(token))
            return token

    token = run(scenario())
    assert any("session token" in r.getMessage() for r in caplog.records)  # logging ran
    assert all(token not in r.getMessage() and token[4:20] not in r.getMessage()
               for r in caplog.records)


def test_an_open_socket_ends_when_its_session_token_expires(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")

    async def scenario() -> None:
        async with served(store, revalidate_s=0.2) as (client, _):
            _, minted = await mint(client, ingest, ttl_s=1)
            async with client.ws_connect("/v1/stream") as ws:
                await ws.send_str(orjson.dumps({"type": "auth",
                                                "token": minted["token"]}).decode())
                assert (await ws.receive_json())["ok"] is True
                error = await asyncio.wait_for(ws.receive_json(), 4.0)
                assert error["status"] == 401
                await asyncio.wait_for(ws.receive(), 3.0)
                assert ws.close_code == 4401

    run(scenario())
