"""A client that goes away mid-request is routine, not a server error (issue 16, finding 7):
it is logged at INFO without a traceback, never as an ERROR. Served by a real AppRunner with
the production options (aiohttp's test server cancels handlers on disconnect instead, which
hides the problem), on the ingest and on the report service's sign-in form."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from ingestkit import INGEST_C1, Tokens
from reportkit import KEY

from services.ingest import IngestConfig, MemoryPublisher
from services.ingest import create_app as ingest_app
from services.reports import create_app as reports_app
from services.store import ReportStore
from services.web import server_options


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def abort_mid_body(app: web.Application, head: bytes) -> None:
    """Send ``head`` (a request line, headers announcing 1000 bytes, a few of them), then
    reset the connection; wait until the server has handled it."""
    runner = web.AppRunner(app, access_log=None, **server_options())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(0.3)  # the handler is reading the body
        writer.transport.abort()
        await asyncio.sleep(0.5)
    finally:
        await runner.cleanup()


def assert_quiet(caplog: pytest.LogCaptureFixture, path: str) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    went = [r for r in caplog.records if "client went away" in r.getMessage()]
    assert len(went) == 1 and path in went[0].getMessage()
    assert went[0].levelno == logging.INFO and went[0].exc_info is None


def test_ingest_client_gone_mid_body_is_logged_at_info(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = ingest_app(MemoryPublisher(), Tokens(), IngestConfig(), warm_vad=False)
    run(abort_mid_body(app, b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                            b"Authorization: Bearer " + INGEST_C1.encode() + b"\r\n"
                            b"Content-Length: 1000\r\n\r\n[{"))
    assert_quiet(caplog, "/v1/events")


def test_report_sign_in_client_gone_mid_form_is_logged_at_info(
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    with ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY) as store:
        run(abort_mid_body(reports_app(store),
                           b"POST /signin HTTP/1.1\r\nHost: x\r\nOrigin: http://x\r\n"
                           b"Content-Type: application/x-www-form-urlencoded\r\n"
                           b"Content-Length: 1000\r\n\r\ntoken=rpt_"))
    assert_quiet(caplog, "/signin")


def test_a_malformed_request_is_answered_400_and_logged_as_one_info_line() -> None:
    """schemathesis's probe header ``X-Probe: \\x00``: aiohttp answers 400 and logs the parse
    error as an ERROR traceback unless the entry point's logging configuration
    (services/logs.py) turns it into one INFO line."""
    import io

    from services.logs import configure

    async def probe() -> bytes:
        app = web.Application()
        app.router.add_get("/", lambda _: web.Response(text="ok"))
        runner = web.AppRunner(app, access_log=None, **server_options())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Probe: \x00\r\n\r\n")
            await writer.drain()
            answer = await reader.read(200)
            writer.close()
            return answer
        finally:
            await runner.cleanup()

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    try:
        for level, shown in (("WARNING", False), ("INFO", True)):
            configure(level, "text", stream=out, force=True)
            answer = run(probe())
            assert answer.split(b" ")[1] == b"400", answer
            text = out.getvalue()
            assert "Traceback" not in text and "ERROR" not in text, text
            assert ("malformed HTTP request answered 400" in text) is shown, text
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for f in list(logging.getLogger("aiohttp.server").filters):
            logging.getLogger("aiohttp.server").removeFilter(f)


def test_shutting_down_closes_open_ingest_streams_at_once() -> None:
    """SIGTERM of `rapport ingest` with a platform's WebSocket open: the socket is closed
    with 1001 (going away, so the SDK reconnects elsewhere) and the server stops in
    moments, not after aiohttp's 60 s wait for the socket's handler."""

    async def scenario() -> tuple[float, int | None]:
        app = ingest_app(MemoryPublisher(), Tokens(), IngestConfig(), warm_vad=False)
        runner = web.AppRunner(app, access_log=None, **server_options())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        import aiohttp

        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"http://127.0.0.1:{port}/v1/stream",
                                          headers={"Authorization": f"Bearer {INGEST_C1}"})
            await ws.send_str("[]")
            assert (await ws.receive_json())["type"] == "ack"
            closing = asyncio.ensure_future(ws.receive())  # the client, listening
            started = asyncio.get_running_loop().time()
            await runner.cleanup()
            took = asyncio.get_running_loop().time() - started
            message = await closing
            return took, message.data if message.type == aiohttp.WSMsgType.CLOSE else None

    took, code = run(scenario())
    assert code == 1001
    assert took < 10, f"shutdown took {took:.1f} s"
