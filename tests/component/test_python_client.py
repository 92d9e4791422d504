"""The Python client (clients/python/rapport_client.py; issue 18) against a real ingest app
(services/ingest, in-memory publisher) served on a loopback port by a thread of its own:
batching under the ingest's 10,000-events limit in order, retries on 5xx and dropped
connections, 429 Retry-After honoured, rejected events reported, backpressure when the queue
is full, a refused token stops the client, close flushes."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from ingestkit import INGEST_C1, Tokens, activity, start, values

from services.ingest import IngestConfig, MemoryPublisher, create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
from rapport_client import QueueFull, RapportClient, RapportError

Middleware = Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
                      Awaitable[web.StreamResponse]]


class Server:
    """The ingest app on 127.0.0.1 in a thread; ``posts`` has each POST's status,
    ``accepted`` the events each accepted."""

    def __init__(self, config: IngestConfig | None, middleware: Middleware | None) -> None:
        self.sink = MemoryPublisher()
        self.posts: list[int] = []
        self.accepted: list[int] = []
        self.config = config
        self.middleware = middleware
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        app = create_app(self.sink, Tokens(), self.config, warm_vad=False)

        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            response: web.StreamResponse = await handler(request)
            if request.path == "/v1/events":
                self.posts.append(response.status)
                body = getattr(response, "body", None)
                if response.status == 202 and isinstance(body, bytes):
                    self.accepted.append(orjson.loads(body)["accepted"])
            return response

        app.middlewares.insert(0, count)
        if self.middleware is not None:
            app.middlewares.insert(0, web.middleware(self.middleware))
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def events(self) -> list[dict[str, Any]]:
        return values(self.sink.events)

    def stop(self) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@contextmanager
def ingest(config: IngestConfig | None = None,
           middleware: Middleware | None = None) -> Iterator[Server]:
    server = Server(config, middleware)
    server._thread.start()
    assert server.ready.wait(10)
    try:
        yield server
    finally:
        server.stop()


def client(server: Server, token: str = INGEST_C1, **options: Any) -> RapportClient:
    options.setdefault("backoff_initial_s", 0.05)
    options.setdefault("backoff_max_s", 0.2)
    return RapportClient(f"http://127.0.0.1:{server.port}", token, **options)


def test_events_go_in_order_in_batches_under_the_ingest_limit() -> None:
    config = IngestConfig(events_per_s_per_token=1e6, event_burst_per_token=100_000)
    with ingest(config) as server:
        sender = client(server, linger_s=0.5)
        sender.send(start())
        sender.send([activity(n) for n in range(25_000)])
        sender.flush(60)
        sender.close()
        got = server.events()
        assert [e["seq"] for e in got if e["type"] == "activity"] == list(range(25_000))
        assert sender.delivered == 25_001
        assert all(status == 202 for status in server.posts)
        assert 3 <= len(server.posts) <= 10  # batched: not one request per event
        assert sum(server.accepted) == 25_001 and max(server.accepted) <= 10_000


def test_5xx_and_dropped_connections_are_retried() -> None:
    failures = {"left": 3}

    async def flaky(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/v1/events" and failures["left"] > 0:
            failures["left"] -= 1
            if failures["left"] == 1:
                assert request.transport is not None
                request.transport.close()  # the connection drops mid-request
                raise web.HTTPServiceUnavailable()
            return web.json_response({"error": "broker: down"}, status=503,
                                     headers={"Retry-After": "5"})
        response: web.StreamResponse = await handler(request)
        return response

    with ingest(middleware=flaky) as server:
        sender = client(server)
        sender.send([start(), activity(0), activity(1)])
        began = time.monotonic()
        sender.flush(20)
        assert time.monotonic() - began < 5  # Retry-After capped by backoff_max_s
        sender.close()
        assert len(server.events()) == 3 and failures["left"] == 0


def test_429_waits_retry_after_then_delivers_everything() -> None:
    config = IngestConfig(events_per_s_per_token=2000.0, event_burst_per_token=10_000)
    with ingest(config) as server:
        sender = client(server, max_batch_events=10_000)
        sender.send([start(), *(activity(n) for n in range(10_999))])
        sender.flush(30)
        sender.close()
        assert 429 in server.posts
        assert len(server.events()) == 11_000


def test_invalid_events_are_reported_not_retried() -> None:
    with ingest() as server:
        sender = client(server)
        bad = {**activity(1), "frame_ms": 25}
        sender.send([start(), activity(0), bad])
        sender.flush(10)
        sender.close()
        assert sender.delivered == 2
        assert [(r.field, r.event.get("seq")) for r in sender.rejections] == [
            ("activity.frame_ms", 1)]
        assert server.posts == [207]


def test_a_full_queue_blocks_then_raises() -> None:
    gate = threading.Event()

    async def stalled(request: web.Request, handler: Any) -> web.StreamResponse:
        while not gate.is_set():
            await asyncio.sleep(0.02)
        response: web.StreamResponse = await handler(request)
        return response

    with ingest(middleware=stalled) as server:
        sender = client(server, max_queue_events=10, max_batch_events=5, linger_s=0,
                        send_timeout_s=0.3)
        sender.send(start())
        time.sleep(0.2)  # the thread holds the first batch, stalled
        sender.send([activity(n) for n in range(10)])  # fills the queue exactly
        began = time.monotonic()
        with pytest.raises(QueueFull):
            sender.send(activity(10))
        assert time.monotonic() - began >= 0.25  # it waited send_timeout_s first
        gate.set()
        sender.send(activity(10))  # room again once batches go out
        sender.close()
        assert [e.get("seq") for e in server.events()] == [None, *range(11)]


def test_a_refused_token_stops_the_client() -> None:
    with ingest() as server:
        sender = client(server, token="rpt_unknown")
        sender.send(start())
        with pytest.raises(RapportError) as refused:
            sender.flush(10)
        assert refused.value.status == 401
        with pytest.raises(RapportError):
            sender.send(start())
        with pytest.raises(RapportError):
            sender.close()
        assert server.events() == []


def test_close_flushes_and_then_refuses_events() -> None:
    with ingest() as server:
        with client(server, linger_s=5.0) as sender:
            sender.send([start(), activity(0)])
        assert len(server.events()) == 2  # the linger did not hold the close
        with pytest.raises(RapportError):
            sender.send(activity(1))
