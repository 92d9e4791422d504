"""The ingest API in process (aiohttp test server, in-memory publisher): POST /v1/events
(202/207/422/400/401/403/413/503), the dead-letter records, and the /v1/stream WebSocket
(header and first-message auth, per-message acks, oversize messages)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Coroutine
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from ingestkit import (
    ADMIN,
    INGEST_C1,
    INGEST_C2,
    REPORTS_C1,
    Tokens,
    activity,
    auth,
    hidden,
    ingest_client,
    start,
    values,
)

from services.auth import REVALIDATE_S
from services.ingest import IngestConfig, MemoryPublisher, create_app


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def jsonl(*events: dict[str, Any]) -> bytes:
    return b"\n".join(orjson.dumps(e) for e in events) + b"\n"


def test_all_valid_events_are_accepted_and_published_keyed_by_session() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            body = [start(), activity(0), activity(1)]
            reply = await client.post("/v1/events", json=body, headers=auth(INGEST_C1))
            assert reply.status == 202
            assert await reply.json() == {"accepted": 3}
            assert values(sink.events) == hidden(body)
            assert {r.key for r in sink.events} == {b"c1 s1"}  # models/topics.py
            assert sink.dlq == []
            # JSON Lines work the same
            reply = await client.post("/v1/events", data=jsonl(activity(2)),
                                      headers=auth(INGEST_C1))
            assert reply.status == 202 and len(sink.events) == 4

    run(scenario())


def test_some_invalid_events_give_207_with_reasons_and_go_to_the_dead_letter_topic() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            bad = {**activity(1), "frame_ms": 25}
            body = jsonl(start(), bad) + b"not json\n\n" + jsonl(activity(2))
            reply = await client.post("/v1/events", data=body, headers=auth(INGEST_C1))
            assert reply.status == 207
            answer = await reply.json()
            assert answer["accepted"] == 2 and answer["rejected"] == 2
            assert [(e["index"], e["field"]) for e in answer["errors"]] == [
                (1, "activity.frame_ms"), (2, "json")]
            assert "10, 20 or 30" in answer["errors"][0]["error"]
            assert [e["seq"] for e in values(sink.events) if e["type"] == "activity"] == [2]
            dead = values(sink.dlq)
            assert [(d["reason"], d["field"]) for d in dead] == [
                ("invalid", "activity.frame_ms"), ("malformed_json", "json")]
            assert base64.b64decode(dead[1]["raw"]) == b"not json"
            assert dead[0]["session_id"] == "s1" and sink.dlq[0].key == b"c1 s1"
            # the dead letter's raw event carries the pseudonym too, not the raw id
            assert orjson.loads(base64.b64decode(dead[0]["raw"])) == hidden(bad)
            assert dead[0]["source"]["offset"] == 1

    run(scenario())


def test_no_valid_event_gives_422_and_a_bad_array_400() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            reply = await client.post("/v1/events", json=[{"type": "nope"}, 3],
                                      headers=auth(INGEST_C1))
            assert reply.status == 422
            answer = await reply.json()
            assert [e["field"] for e in answer["errors"]] == ["type", "event"]
            assert answer["accepted"] == 0 and sink.events == [] and len(sink.dlq) == 2
            reply = await client.post("/v1/events", data=b"[{", headers=auth(INGEST_C1))
            assert reply.status == 400
            assert (await reply.json())["field"] == "body"
            assert len(sink.dlq) == 3

    run(scenario())


def test_authentication_and_tenancy() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            body = [start()]
            for headers in ({}, auth("rpt_unknown"), {"Authorization": "Basic x"}):
                reply = await client.post("/v1/events", json=body, headers=headers)
                assert reply.status == 401  # from services/auth.py's middleware
                assert (await reply.json())["error"].startswith("authorization: ")
                assert reply.headers["WWW-Authenticate"].startswith("Bearer")
            reply = await client.post("/v1/events", json=body, headers=auth(REPORTS_C1))
            assert reply.status == 403
            # another clinic's session.start: 403 naming clinic_id, nothing published
            reply = await client.post("/v1/events", json=body, headers=auth(INGEST_C2))
            assert reply.status == 403
            assert "clinic_id" in (await reply.json())["error"]
            assert sink.events == [] and sink.dlq == []
            # once s1 started for c1, c2's events for "s1" are c2's own session "s1"
            assert (await client.post("/v1/events", json=body,
                                      headers=auth(INGEST_C1))).status == 202
            reply = await client.post("/v1/events", json=[activity(0)], headers=auth(INGEST_C2))
            assert reply.status == 202
            assert [r.key for r in sink.events] == [b"c1 s1", b"c2 s1"]
            # admin tokens may post for any clinic, naming it
            reply = await client.post("/v1/events", json=[start("s2", "c9")],
                                      headers=auth(ADMIN))
            assert reply.status == 422 and (await reply.json())["field"] == "clinic"
            reply = await client.post("/v1/events?clinic=c9", json=[start("s2", "c9")],
                                      headers=auth(ADMIN))
            assert reply.status == 202 and sink.events[-1].key == b"c9 s2"
            # a clinic token naming another clinic is refused
            reply = await client.post("/v1/events?clinic=c1", json=[activity(0)],
                                      headers=auth(INGEST_C2))
            assert reply.status == 403 and (await reply.json())["field"] == "clinic"

    run(scenario())


def test_oversize_bodies_are_refused_with_413_before_publishing() -> None:
    async def scenario() -> None:
        config = IngestConfig(max_body_bytes=4096)
        async with ingest_client(config) as (client, sink):
            body = [activity(i) for i in range(100)]
            reply = await client.post("/v1/events", json=body, headers=auth(INGEST_C1))
            assert reply.status == 413
            assert (await reply.json())["field"] == "body"

            async def chunks() -> Any:  # no Content-Length: the limit applies while reading
                for _ in range(10):
                    yield b" " * 1000

            reply = await client.post("/v1/events", data=chunks(), headers=auth(INGEST_C1))
            assert reply.status == 413
            assert sink.events == [] and sink.dlq == []

    run(scenario())


def test_broker_unavailable_is_503_and_nothing_is_acknowledged() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            sink.fail = True
            reply = await client.post("/v1/events", json=[start()], headers=auth(INGEST_C1))
            assert reply.status == 503 and reply.headers["Retry-After"]
            sink.fail = False
            reply = await client.post("/v1/events", json=[start()], headers=auth(INGEST_C1))
            assert reply.status == 202 and len(sink.events) == 1

    run(scenario())


def test_session_end_for_a_session_fed_over_http() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            await client.post("/v1/events", json=[start()], headers=auth(INGEST_C1))
            # c2 ending "s1" ends c2's own "s1" (issue 16 finding 1), never c1's
            reply = await client.post("/v1/sessions/s1/end", json={"ts_ms": 600_000},
                                      headers=auth(INGEST_C2))
            assert reply.status == 204 and sink.events[-1].key == b"c2 s1"
            reply = await client.post("/v1/sessions/s1/end", json={"ts_ms": 600_000},
                                      headers=auth(INGEST_C1))
            assert reply.status == 204 and sink.events[-1].key == b"c1 s1"
            assert values(sink.events)[-1] == {"type": "session.end", "session_id": "s1",
                                               "ts_ms": 600_000}

    run(scenario())


def test_websocket_with_header_auth_acks_every_message_in_order() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            async with client.ws_connect("/v1/stream", headers=auth(INGEST_C1)) as ws:
                await ws.send_str(orjson.dumps(start()).decode())
                await ws.send_bytes(orjson.dumps([activity(0), {**activity(1), "seq": -1}]))
                await ws.send_str("{")
                first, second, third = [await ws.receive_json() for _ in range(3)]
            assert first == {"type": "ack", "message": 0, "status": 202, "accepted": 1}
            assert second["message"] == 1 and second["status"] == 207
            assert second["errors"] == [{"index": 1, "field": "activity.seq",
                                         "error": "activity.seq: must be >= 0, got -1"}]
            assert third["status"] == 422 and third["errors"][0]["field"] == "json"
            assert len(sink.events) == 2 and len(sink.dlq) == 2

    run(scenario())


def test_websocket_first_message_auth_and_refusals() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            reply = await client.get("/v1/stream", headers=auth("rpt_unknown"))
            assert reply.status == 401  # refused before the upgrade
            async with client.ws_connect("/v1/stream") as ws:
                await ws.send_str(orjson.dumps({"type": "auth", "token": INGEST_C1}).decode())
                assert await ws.receive_json() == {"type": "auth", "ok": True}
                await ws.send_str(orjson.dumps(start()).decode())
                assert (await ws.receive_json())["status"] == 202
            async with client.ws_connect("/v1/stream") as ws:
                await ws.send_str(orjson.dumps({"type": "auth", "token": "nope"}).decode())
                assert (await ws.receive_json())["status"] == 401
                closing = await ws.receive()
                assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
                assert ws.close_code == 4401
            assert len(sink.events) == 1

    run(scenario())


def test_websocket_oversize_message_closes_the_socket() -> None:
    async def scenario() -> None:
        async with ingest_client(IngestConfig(max_message_bytes=2048)) as (client, sink):
            async with client.ws_connect("/v1/stream", headers=auth(INGEST_C1)) as ws:
                await ws.send_str(orjson.dumps([activity(i) for i in range(50)]).decode())
                message = await ws.receive()
                assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
                assert ws.close_code == 1009
            assert sink.events == []

    run(scenario())


def test_join_page_is_self_contained() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, _):
            reply = await client.get("/join", params={"session": "<s>", "token": "t"})
            assert reply.status == 200
            text = await reply.text()
            assert "<s>" not in text  # parameters are read by the script, never echoed
            assert "iceGatheringState" in text and "replaceTrack" in text
            assert "http" not in text.replace("http-equiv", "")  # no CDN, no remote script
            assert "connect-src 'self'" in reply.headers["Content-Security-Policy"]

    run(scenario())


def _v11_shapes() -> list[dict[str, Any]]:
    return [
        {**start(), "exclusive": True},
        {"type": "voice", "session_id": "s1", "participant_id": "p1", "ts_ms": 1000,
         "speaking": True},
        {"type": "levels", "session_id": "s1", "participant_id": "p2", "scale": "linear",
         "samples": [[1000, 0.02], [1050, 0.31]]},
        {"type": "speech", "session_id": "s1", "participant_id": "p1", "start_ms": 1000,
         "end_ms": 9600},
    ]


def test_every_v11_shape_is_accepted_over_http_and_websocket() -> None:
    """METRICS.md §9 v1.1: voice, levels and exclusive sessions reach the workers as they
    are; a malformed one is rejected naming the field and dead-lettered."""
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            body = _v11_shapes()
            reply = await client.post("/v1/events", json=body, headers=auth(INGEST_C1))
            assert reply.status == 202, await reply.text()
            assert values(sink.events) == body
            bad = {"type": "levels", "session_id": "s1", "participant_id": "p2",
                   "scale": "linear", "samples": [[2000, 0.5], [1990, 0.5]]}
            async with client.ws_connect("/v1/stream", headers=auth(INGEST_C1)) as ws:
                await ws.send_bytes(orjson.dumps([body[1], bad]))
                ack = await ws.receive_json()
            assert ack["status"] == 207
            assert ack["errors"][0]["field"] == "levels.samples[1][0]"
            assert [d["field"] for d in values(sink.dlq)] == ["levels.samples[1][0]"]

@pytest.mark.parametrize("depth", [255, 600, 1023])
def test_deeply_nested_arrays_are_a_422_naming_the_limit_not_a_500(depth: int) -> None:
    """The probe's POST of an array nested 255-1023 deep answered 500 with a traceback, and
    over the WebSocket the connection dropped without a close code."""
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            body = b"[" * depth + b"]" * depth
            reply = await client.post("/v1/events", data=body, headers=auth(INGEST_C1))
            assert reply.status == 422
            answer = await reply.json()
            assert answer["field"] == "body" and "16 levels" in answer["error"]
            line = b'{"type": "speech", "x": ' + b"[" * depth + b"]" * depth + b"}\n"
            reply = await client.post("/v1/events", data=line, headers=auth(INGEST_C1))
            assert reply.status == 422
            assert (await reply.json())["errors"][0]["field"] == "event"
            async with client.ws_connect("/v1/stream", headers=auth(INGEST_C1)) as ws:
                await ws.send_bytes(body)
                ack = await ws.receive_json()
                assert ack["status"] == 422 and ack["field"] == "body"
                await ws.send_bytes(orjson.dumps([start()]))  # the socket still works
                assert (await ws.receive_json())["status"] == 202
            assert sink.events and [d["reason"] for d in values(sink.dlq)] == [
                "malformed_json", "malformed_json", "malformed_json"]
            assert base64.b64decode(values(sink.dlq)[0]["raw"]) == body

    run(scenario())


def test_a_request_of_too_many_events_is_a_413_naming_the_limit() -> None:
    """The probe's 1 MiB array of 524,000 tiny elements took 16.6 s to answer and grew the
    process by 1.6 GB; the count is refused before any per-event work."""
    async def scenario() -> None:
        async with ingest_client(IngestConfig(max_events_per_request=100)) as (client, sink):
            tiny = b"[" + b",".join([b"0"] * 524_000) + b"]"
            reply = await client.post("/v1/events", data=tiny, headers=auth(INGEST_C1))
            assert reply.status == 413
            answer = await reply.json()
            assert answer["field"] == "body" and "limit of 100" in answer["error"]
            lines = jsonl(*([activity(0)] * 101))
            reply = await client.post("/v1/events", data=lines, headers=auth(INGEST_C1))
            assert reply.status == 413
            reply = await client.post("/v1/events", data=jsonl(*([activity(0)] * 100)),
                                      headers=auth(INGEST_C1))
            assert reply.status == 202  # at the limit is fine
            assert [d["reason"] for d in values(sink.dlq)] == ["too_large", "too_large"]

    run(scenario())


def test_revoking_a_token_closes_its_open_websocket() -> None:
    """Issue 16 finding 3: the revoked ingest WebSocket accepted a 289-event session."""
    async def scenario() -> None:
        tokens = Tokens()
        sink = MemoryPublisher()
        app = create_app(sink, tokens)
        app[REVALIDATE_S] = 0.2
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        try:
            async with client.ws_connect("/v1/stream", headers=auth(INGEST_C1)) as ws:
                await ws.send_bytes(orjson.dumps([start()]))
                assert (await ws.receive_json())["status"] == 202
                del tokens.table[INGEST_C1]  # revoked in the token store
                error = await asyncio.wait_for(ws.receive_json(), 3.0)
                assert error == {"type": "error", "status": 401,
                                 "error": "authorization: token revoked"}
                closing = await asyncio.wait_for(ws.receive(), 3.0)
                assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
                assert ws.close_code == 4401
            assert len(sink.events) == 1  # nothing after the revocation
        finally:
            await client.close()

    run(scenario())
