"""The browser SDK's server side (issue 18, contract §2 and §3): ``/sdk/rapport.js`` and
``/sdk/rapport.d.ts`` (public, ETag, cache policy), CORS for configured origins (preflights
answered before authentication; none for ``/v1/session-tokens``), the WebSocket's ``Origin``
check and its clock messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer
from ingestkit import INGEST_C1, Tokens, auth, start

from models.errors import ConfigError
from services.ingest import IngestConfig, MemoryPublisher, create_app
from services.settings import parse_origins

Client = TestClient[Any, Any]
PAGE = "https://app.example.com"
JS = b"export function attach() { return 1; }\n"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture
def sdk_dir(tmp_path: Path) -> Path:
    (tmp_path / "rapport.js").write_bytes(JS)
    (tmp_path / "rapport.d.ts").write_text("export declare function attach(): number;\n")
    return tmp_path


@asynccontextmanager
async def served(sdk_dir: Path, origins: tuple[str, ...] = (PAGE,)
                 ) -> AsyncIterator[tuple[Client, MemoryPublisher]]:
    sink = MemoryPublisher()
    config = IngestConfig(sdk_dir=sdk_dir, cors_origins=origins)
    client: Client = TestClient(TestServer(create_app(sink, Tokens(), config,
                                                      warm_vad=False)))
    await client.start_server()
    try:
        yield client, sink
    finally:
        await client.close()


def test_the_sdk_module_is_served_with_an_etag_and_a_five_minute_cache(sdk_dir: Path) -> None:
    async def scenario() -> None:
        async with served(sdk_dir) as (client, _):
            reply = await client.get("/sdk/rapport.js")
            assert reply.status == 200
            assert reply.content_type == "text/javascript"
            assert await reply.read() == JS
            assert reply.headers["Cache-Control"] == "public, max-age=300"
            etag = reply.headers["ETag"]
            again = await client.get("/sdk/rapport.js", headers={"If-None-Match": etag})
            assert again.status == 304 and await again.read() == b""
            types = await client.get("/sdk/rapport.d.ts")
            assert types.status == 200 and b"declare function attach" in await types.read()
            assert (await client.get("/sdk/other.js")).status == 404
            # a new version of the file gets a new tag
            (sdk_dir / "rapport.js").write_bytes(JS + b"// v2 with more\n")
            changed = await client.get("/sdk/rapport.js", headers={"If-None-Match": etag})
            assert changed.status == 200 and changed.headers["ETag"] != etag

    run(scenario())


def test_cors_for_configured_origins_only(sdk_dir: Path) -> None:
    async def scenario() -> None:
        async with served(sdk_dir) as (client, _):
            reply = await client.get("/sdk/rapport.js", headers={"Origin": PAGE})
            assert reply.headers["Access-Control-Allow-Origin"] == PAGE
            assert "Origin" in reply.headers["Vary"]
            other = await client.get("/sdk/rapport.js",
                                     headers={"Origin": "https://evil.example"})
            assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers
            preflight = {"Origin": PAGE, "Access-Control-Request-Method": "POST",
                         "Access-Control-Request-Headers": "authorization, content-type"}
            answer = await client.options("/v1/events", headers=preflight)
            assert answer.status == 204
            assert answer.headers["Access-Control-Allow-Origin"] == PAGE
            assert "authorization" in answer.headers["Access-Control-Allow-Headers"].lower()
            coach = await client.options("/v1/sessions/s1/coach",
                                         headers={**preflight,
                                                  "Access-Control-Request-Method": "GET"})
            assert coach.status == 204
            refused = await client.options("/v1/events", headers={
                **preflight, "Origin": "https://evil.example"})
            assert refused.status == 403
            assert "Access-Control-Allow-Origin" not in refused.headers
            # server-to-server: no CORS on minting
            mint = await client.options("/v1/session-tokens", headers=preflight)
            assert "Access-Control-Allow-Origin" not in mint.headers
            # an actual cross-origin POST: the answer (an error too) names the origin
            posted = await client.post("/v1/events", json=[start()],
                                       headers={**auth(INGEST_C1), "Origin": PAGE})
            assert posted.status == 202
            assert posted.headers["Access-Control-Allow-Origin"] == PAGE
            unauthorized = await client.post("/v1/events", json=[start()],
                                             headers={"Origin": PAGE})
            assert unauthorized.status == 401
            assert unauthorized.headers["Access-Control-Allow-Origin"] == PAGE

    run(scenario())


def test_the_default_allows_no_other_origin(sdk_dir: Path) -> None:
    async def scenario() -> None:
        async with served(sdk_dir, origins=()) as (client, _):
            reply = await client.get("/sdk/rapport.js", headers={"Origin": PAGE})
            assert "Access-Control-Allow-Origin" not in reply.headers
            answer = await client.options("/v1/events", headers={
                "Origin": PAGE, "Access-Control-Request-Method": "POST"})
            assert answer.status == 403

    run(scenario())


def test_websocket_upgrades_check_the_origin(sdk_dir: Path) -> None:
    async def scenario() -> None:
        async with served(sdk_dir) as (client, _):
            with pytest.raises(WSServerHandshakeError) as refused:
                await client.ws_connect("/v1/stream",
                                        headers={"Origin": "https://evil.example"})
            assert refused.value.status == 403
            for origin in (PAGE, f"http://{client.host}:{client.port}"):  # listed, own
                async with client.ws_connect("/v1/stream", headers={
                        "Origin": origin, **auth(INGEST_C1)}) as ws:
                    await ws.send_bytes(orjson.dumps([start()]))
                    assert (await ws.receive_json())["status"] == 202
            async with client.ws_connect("/v1/stream", headers=auth(INGEST_C1)) as ws:
                await ws.send_bytes(orjson.dumps([start()]))  # no Origin: not a browser
                assert (await ws.receive_json())["status"] == 202

    run(scenario())


def test_clock_messages_are_answered_with_the_receive_clock_and_take_no_number(
        sdk_dir: Path) -> None:
    async def scenario() -> None:
        async with served(sdk_dir) as (client, sink):
            async with client.ws_connect("/v1/stream") as ws:
                await ws.send_str(orjson.dumps({"type": "auth", "token": INGEST_C1}).decode())
                assert (await ws.receive_json())["ok"] is True
                before = time.time() * 1000
                await ws.send_str('{"type":"clock","id":7,"client_ms":123.5}')
                answer = await ws.receive_json()
                after = time.time() * 1000
                assert {k: answer[k] for k in ("type", "id", "client_ms")} == {
                    "type": "clock", "id": 7, "client_ms": 123.5}
                assert before - 1 <= answer["server_ms"] <= after + 1
                assert isinstance(answer["server_ms"], int)
                await ws.send_bytes(orjson.dumps([start()]))
                ack = await ws.receive_json()
                assert (ack["type"], ack["message"], ack["status"]) == ("ack", 0, 202)
                await ws.send_str('{"type":"clock","id":"x","client_ms":1}')
                error = await ws.receive_json()
                assert error["status"] == 400 and error["error"].startswith("clock.id")
                await ws.send_bytes(orjson.dumps([start("s2")]))
                assert (await ws.receive_json())["message"] == 1
            assert len(sink.events) == 2 and sink.dlq == []

    run(scenario())


def test_origins_are_validated() -> None:
    assert parse_origins(" https://A.example.com/, http://localhost:8000,,") == (
        "https://a.example.com", "http://localhost:8000")
    with pytest.raises(ConfigError, match="RAPPORT_CORS_ORIGINS"):
        parse_origins("app.example.com")
    with pytest.raises(ConfigError):
        parse_origins("https://a.example.com/path")


def test_sdk_settings_come_from_the_environment_and_the_flag_beats_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from services.cli import build_parser
    from services.cli.ingest import sdk_options
    from services.settings import load_settings

    settings = load_settings(env={"RAPPORT_CORS_ORIGINS": "https://a.example, https://b.example",
                                  "RAPPORT_COACH": "off", "RAPPORT_SDK_DIR": "/srv/sdk"})
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.coach is False and settings.sdk_dir == Path("/srv/sdk")
    assert load_settings(env={}).coach is True and load_settings(env={}).cors_origins == ()
    with pytest.raises(ConfigError, match="RAPPORT_COACH"):
        load_settings(env={"RAPPORT_COACH": "maybe"})
    monkeypatch.setenv("RAPPORT_CORS_ORIGINS", "https://a.example")
    args = build_parser().parse_args(["ingest", "--broker", "x:9092",
                                      "--cors-origin", "https://c.example"])
    args.config = load_settings()
    assert IngestConfig(**sdk_options(args)).cors_origins == ("https://c.example",)
