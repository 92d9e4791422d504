"""Per-token ingest limits over HTTP and the WebSocket (issue 16, finding 10): the probe's
10,000 ``session.start`` events in one 0.9 MB request are refused 429 naming the limit, with
``Retry-After``, published nowhere and counted in ``rapport_ingest_limited_total``; real use
(200 open sessions, ended sessions making room) passes. Also: a WebSocket message that is not
valid JSON is counted as a rejected event (finding 7's counters)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import orjson
from ingestkit import INGEST_C1, INGEST_C2, activity, auth, ingest_client, start
from prometheus_client import REGISTRY

from services.ingest import IngestConfig


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def limited(limit: str) -> float:
    return REGISTRY.get_sample_value("rapport_ingest_limited_total", {"limit": limit}) or 0.0


def end(session: str) -> dict[str, Any]:
    return {"type": "session.end", "session_id": session, "ts_ms": 60_000}


def test_the_probe_ten_thousand_sessions_in_one_request_is_refused_429() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            body = orjson.dumps([{"type": "session.start", "session_id": f"{i:05d}",
                                  "ts_ms": 0, "clinic_id": "c1", "participants": []}
                                 for i in range(10_000)])
            assert len(body) < 1024 * 1024  # the probe's 0.9 MB: under the body limit
            before = limited("max_open_sessions_per_token")
            reply = await client.post("/v1/events", data=body, headers=auth(INGEST_C1))
            assert reply.status == 429
            answer = await reply.json()
            assert answer["field"] == "max_open_sessions_per_token"
            assert "limit of 200" in answer["error"]
            assert int(reply.headers["Retry-After"]) >= 1
            assert sink.events == [] and sink.dlq == []
            assert limited("max_open_sessions_per_token") == before + 1

    run(scenario())


def test_two_hundred_open_sessions_pass_and_an_end_makes_room() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            first = [start(f"s{i}") for i in range(200)]
            reply = await client.post("/v1/events", json=first, headers=auth(INGEST_C1))
            assert reply.status == 202
            reply = await client.post("/v1/events", json=[start("s200")],
                                      headers=auth(INGEST_C1))
            assert reply.status == 429
            assert (await reply.json())["field"] == "max_open_sessions_per_token"
            # events of open sessions still pass; another token has its own count
            reply = await client.post("/v1/events", json=[activity(0, "s3")],
                                      headers=auth(INGEST_C1))
            assert reply.status == 202
            reply = await client.post("/v1/events", json=[start("x1", "c2")],
                                      headers=auth(INGEST_C2))
            assert reply.status == 202
            reply = await client.post("/v1/events", json=[end("s0"), start("s200")],
                                      headers=auth(INGEST_C1))
            assert reply.status == 202
            assert len(sink.events) == 200 + 1 + 1 + 2

    run(scenario())


def test_event_rate_over_the_token_bucket_is_refused_429_with_retry_after() -> None:
    config = IngestConfig(max_events_per_request=20, events_per_s_per_token=2.0,
                          event_burst_per_token=20)

    async def scenario() -> None:
        async with ingest_client(config) as (client, sink):
            body = [start(), *(activity(i) for i in range(19))]
            reply = await client.post("/v1/events", json=body, headers=auth(INGEST_C1))
            assert reply.status == 202
            before = limited("events_per_s_per_token")
            reply = await client.post("/v1/events", json=[activity(19), activity(20),
                                                          activity(21), activity(22)],
                                      headers=auth(INGEST_C1))
            assert reply.status == 429
            assert (await reply.json())["field"] == "events_per_s_per_token"
            assert reply.headers["Retry-After"] == "2"  # 4 events at 2/s
            assert limited("events_per_s_per_token") == before + 1
            assert len(sink.events) == 20
            reply = await client.post("/v1/events", json=[start("y1", "c2")],
                                      headers=auth(INGEST_C2))
            assert reply.status == 202  # another token's bucket

    run(scenario())


def test_websocket_acks_a_limited_message_with_status_429() -> None:
    config = IngestConfig(max_open_sessions_per_token=2)

    async def scenario() -> None:
        async with ingest_client(config) as (client, sink):
            async with client.ws_connect("/v1/stream", headers=auth(INGEST_C1)) as ws:
                await ws.send_bytes(orjson.dumps([start("a"), start("b")]))
                await ws.send_bytes(orjson.dumps([start("c")]))
                await ws.send_bytes(orjson.dumps([end("a"), start("c")]))
                first, second, third = [await ws.receive_json() for _ in range(3)]
            assert first["status"] == 202
            assert second["status"] == 429 and second["accepted"] == 0
            assert second["field"] == "max_open_sessions_per_token"
            assert second["retry_after_s"] >= 1
            assert third["status"] == 202
            assert [orjson.loads(r.value)["session_id"] for r in sink.events] == [
                "a", "b", "a", "c"]

    run(scenario())


def test_invalid_json_over_the_websocket_is_counted_and_dead_lettered() -> None:
    async def scenario() -> None:
        async with ingest_client() as (client, sink):
            async with client.ws_connect("/v1/stream", headers=auth(INGEST_C1)) as ws:
                before = REGISTRY.get_sample_value(
                    "rapport_ingest_rejected_total", {"reason": "malformed_json"}) or 0.0
                await ws.send_str("[1, 2")
                ack = await ws.receive_json()
            assert ack["status"] == 400 and ack["field"] == "body"
            after = REGISTRY.get_sample_value(
                "rapport_ingest_rejected_total", {"reason": "malformed_json"}) or 0.0
            assert after == before + 1
            assert len(sink.dlq) == 1

    run(scenario())


def test_rapport_ingest_flags_beat_the_environment_which_beats_the_defaults(
        monkeypatch: Any) -> None:
    from services.cli import build_parser
    from services.cli.ingest import ingest_limits
    from services.settings import load_settings

    monkeypatch.setenv("RAPPORT_INGEST_MAX_OPEN_SESSIONS_PER_TOKEN", "50")
    monkeypatch.setenv("RAPPORT_INGEST_BODY_TIMEOUT_S", "5")
    args = build_parser().parse_args(["ingest", "--broker", "x:9092",
                                      "--max-open-sessions-per-token", "70"])
    args.config = load_settings()
    limits = ingest_limits(args)
    assert limits == {"max_open_sessions_per_token": 70, "body_timeout_s": 5.0}
    config = IngestConfig(**limits)
    assert config.events_per_s_per_token == 2000.0 and config.body_timeout_s == 5.0
