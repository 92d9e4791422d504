"""``/healthz``, ``/readyz`` and ``/metrics`` for any Rapport web server (issue 6; the
stand-alone ``rapport reports`` and ``rapport ingest``, and the main job's server).

- ``/healthz`` answers ``200 {"status": "ok"}`` while the process runs (liveness);
- ``/readyz`` runs the readiness checks concurrently and answers ``200`` when none found a
  problem, else ``503``; the JSON body is ``{"ready", "problems": ["database: …"],
  "checked_in_ms"}`` either way;
- ``/metrics`` is the Prometheus text of the process's default registry (or what the host
  gives, e.g. the main job aggregating its workers).

All three are public (no token): probes and Prometheus carry none, and nothing they show is
a clinic's data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text

from services.auth import json_response, public
from services.store import ReportStore

PROBE_TIMEOUT_S = 3.0

#: A readiness check: ``None`` when fine, else what is wrong (``"unreachable (…)"``).
Check = Callable[[], Awaitable[str | None]]
#: Every problem found (``"name: what"``), empty when ready.
Problems = Callable[[], Awaitable[list[str]]]


async def database_problem(store: ReportStore) -> str | None:
    """Whether the report database answers ``SELECT 1`` (in a thread, with a timeout)."""
    def ping() -> None:
        with store.db.transaction("readiness") as session:
            session.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(ping), PROBE_TIMEOUT_S)
    except Exception as error:  # any failure means "not reachable now"
        return f"unreachable ({type(error).__name__})"
    return None


def named_checks(checks: Sequence[tuple[str, Check]]) -> Problems:
    """One :data:`Problems` running ``(name, check)`` pairs concurrently."""
    async def problems() -> list[str]:
        results = await asyncio.gather(*(check() for _, check in checks))
        return [f"{name}: {error}" for (name, _), error in zip(checks, results, strict=True)
                if error]

    return problems


async def _default_metrics() -> bytes:
    return generate_latest(REGISTRY)


def add_health_routes(app: web.Application, problems: Problems | Sequence[tuple[str, Check]],
                      *, metrics: Callable[[], Awaitable[bytes]] | None = None) -> None:
    """Add public ``/healthz``, ``/readyz`` (over ``problems``, or named checks) and
    ``/metrics`` (``metrics()``, default: this process's registry) to ``app``."""
    found = problems if callable(problems) else named_checks(problems)
    body_of = metrics or _default_metrics

    @public
    async def healthz(_request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    @public
    async def readyz(_request: web.Request) -> web.Response:
        started = time.perf_counter()
        wrong = await found()
        body = {"ready": not wrong, "problems": wrong,
                "checked_in_ms": round((time.perf_counter() - started) * 1000)}
        return json_response(body, status=200 if not wrong else 503)

    @public
    async def metrics_page(_request: web.Request) -> web.Response:
        return web.Response(body=await body_of(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
