"""Slow clients are cut off (issue 16, finding 11): a client that sends half a body and stops
is answered 408 and disconnected within ``body_timeout_s``; one that never finishes its
request headers is disconnected within the servers' header timeout (services/web.py
``server_options``). Raw sockets, because aiohttp's client always sends whole requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp.test_utils import TestServer
from ingestkit import INGEST_C1, Tokens

from services.ingest import IngestConfig, MemoryPublisher, create_app
from services.web import server_options


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def serve(body_timeout_s: float = 30.0, header_timeout_s: float = 30.0) -> TestServer:
    app = create_app(MemoryPublisher(), Tokens(), IngestConfig(body_timeout_s=body_timeout_s),
                     warm_vad=False)
    server = TestServer(app)
    await server.start_server(**server_options(header_timeout_s, linger_s=1.0))
    return server


async def read_all(reader: asyncio.StreamReader, within_s: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after within_s)."""
    return await asyncio.wait_for(reader.read(), within_s)


def test_half_a_body_then_silence_is_answered_408_and_closed() -> None:
    async def scenario() -> None:
        server = await serve(body_timeout_s=1.0)
        try:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                         b"Authorization: Bearer " + INGEST_C1.encode() + b"\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                         b'[{"type": "session.start", ')
            await writer.drain()
            began = time.monotonic()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            took = time.monotonic() - began
            assert head.startswith(b"HTTP/1.1 408"), head[:80]
            assert b"Connection: close" in head
            assert 0.9 <= took < 4.0
            answer = await read_all(reader, 10.0)  # then closed (after linger_s at most)
            closed = time.monotonic() - began
            writer.close()
            assert b'"field": "body"' in answer
            assert closed < 5.0
        finally:
            await server.close()

    run(scenario())


def test_headers_that_never_end_are_cut_off() -> None:
    async def scenario() -> None:
        server = await serve(header_timeout_s=1.0)
        try:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            await writer.drain()
            began = time.monotonic()
            answer = await read_all(reader, 10.0)  # EOF: the server closed the connection
            took = time.monotonic() - began
            writer.close()
            assert answer == b""
            assert took < 5.0
        finally:
            await server.close()

    run(scenario())
