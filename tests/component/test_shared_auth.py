"""Shared authentication (services/auth.py): one application hosts the report API and pages
and another part's routes (an ingest route needing ``ingest``, health needing nothing,
metrics needing ``admin``) on one port, each route with its own required scope."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from reportkit import KEY, report_record

from services.auth import json_response, public, requires, viewer
from services.reports import add_report_routes
from services.store import ReportStore


@requires("ingest", "admin")
async def post_events(request: web.Request) -> web.Response:
    return json_response({"clinic": viewer(request).clinic}, status=202)


@public
async def healthz(request: web.Request) -> web.Response:
    return json_response({"ok": True})


@requires("admin")
async def metrics(request: web.Request) -> web.Response:
    return web.Response(text="rapport_up 1\n")


async def checks_itself(request: web.Request) -> web.Response:
    """Declares nothing: left to the handler (as the ingest routes check their tokens)."""
    return json_response({"own": request.headers.get("Authorization") is None})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReportStore]:
    with ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY) as opened:
        opened.save_report(report_record("c1-s1", "c1"))
        yield opened


def combined(store: ReportStore) -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/ingest/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/own-check", checks_itself)
    add_report_routes(app, store)
    return app


def call(store: ReportStore, requests: list[tuple[str, str, str | None]]) -> list[int]:
    async def scenario() -> list[int]:
        client: TestClient[Any, Any] = TestClient(TestServer(combined(store)))
        await client.start_server()
        try:
            statuses = []
            for method, path, token in requests:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with client.request(method, path, headers=headers) as response:
                    statuses.append(response.status)
            return statuses
        finally:
            await client.close()

    return asyncio.run(scenario())


def test_each_route_gets_its_scope_on_one_app(store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")
    reports, _ = store.create_token("c1", "reports")
    other, _ = store.create_token("c2", "reports")
    admin, _ = store.create_token("ops", "admin")
    cases = [
        ("POST", "/v1/ingest/events", None, 401), ("POST", "/v1/ingest/events", ingest, 202),
        ("POST", "/v1/ingest/events", reports, 403), ("POST", "/v1/ingest/events", admin, 202),
        ("GET", "/v1/sessions", ingest, 403), ("GET", "/v1/sessions", reports, 200),
        ("GET", "/v1/sessions/c1-s1/report", other, 404), ("GET", "/sessions/c1-s1", other, 404),
        ("GET", "/sessions/c1-s1", reports, 200), ("GET", "/sessions/c1-s1", ingest, 403),
        ("GET", "/healthz", None, 200), ("GET", "/metrics", None, 401),
        ("GET", "/metrics", reports, 403), ("GET", "/metrics", admin, 200),
        ("GET", "/openapi.json", None, 200), ("GET", "/v1/unknown", None, 401),
        ("GET", "/v1/unknown", ingest, 404), ("GET", "/v1/own-check", None, 200),
    ]
    statuses = call(store, [(m, p, t) for m, p, t, _ in cases])
    assert statuses == [expected for *_, expected in cases]
