"""The one web server of the main job (``rapport run --port``): ingest, reports, pages and
the live dashboard, plus ``/healthz``, ``/readyz`` and ``/metrics`` for the whole job.

The main job's processes are one ``rapport run`` (broker, feed, ingest, report store) and its
``rapport worker`` children, each with its own web port on 127.0.0.1. This server answers for
all of them: ``/readyz`` is ready when the broker answers, the report database answers and
every worker is ready; ``/metrics`` is this process's registry plus every worker's samples,
each labelled ``worker="<n>"`` so series from different workers stay distinct.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY, Collector

from models.errors import ConfigError
from services.health import PROBE_TIMEOUT_S, add_health_routes, database_problem
from services.ingest import IngestConfig, add_ingest_routes
from services.ingest.publisher import Publisher
from services.reports import LiveHub, add_live_routes, add_report_routes
from services.reports.coach_stream import add_coach_routes
from services.store import ReportStore

log = logging.getLogger(__name__)

# Issue 16 finding 11: aiohttp waits 3630 s by default for a request's headers (a new
# connection's first, or a keep-alive connection's next), so slow-header clients could hold
# connections for an hour. Every server of ours (rapport run --port, rapport ingest, rapport
# reports) passes these to its AppRunner; request bodies have their own timeout
# (IngestConfig.body_timeout_s, services/ingest/batches.py read_body).
HEADER_TIMEOUT_S = 30.0
# After answering a request whose body it did not read (408, 413, 429), aiohttp keeps
# reading and discarding the rest for up to this long so the client sees the answer, then
# closes the connection (aiohttp's default is 10 s).
LINGER_S = 5.0


MAX_LINE_BYTES = 64 * 1024


def server_options(header_timeout_s: float = HEADER_TIMEOUT_S,
                   linger_s: float = LINGER_S) -> dict[str, Any]:
    """AppRunner keyword arguments: a connection that has not sent a complete request head
    within ``header_timeout_s`` (idle keep-alive included) is closed; an unread body is
    drained for at most ``linger_s``. A request line may be up to :data:`MAX_LINE_BYTES`:
    an id or a query value over its length limit then reaches the handlers, which answer a
    JSON 400 naming the parameter, instead of aiohttp's plain-text "line too long" at 8190
    bytes (200 characters of a 4-byte script are 2400 bytes percent-encoded, and a path and
    a query can each carry one)."""
    return {"keepalive_timeout": header_timeout_s, "lingering_time": linger_s,
            "max_line_size": MAX_LINE_BYTES}


async def start_site(runner: web.AppRunner, host: str, port: int) -> int:
    """Listen on ``host:port`` (0: a free port) and return the bound port. A port in use or an
    address this machine does not have is the user's to fix: a :class:`ConfigError` naming
    ``--port``, which the CLI prints as one line (no traceback)."""
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as error:
        raise ConfigError("--port", f"cannot listen on {host}:{port}: "
                                    f"{error.strerror or error}") from None
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return port


@dataclass(frozen=True, slots=True)
class WorkerEndpoint:
    """A worker process of the job, reachable on its own web port."""

    index: int
    port: int
    alive: Callable[[], bool]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class JobHealth:
    """Readiness and metrics of the whole job, gathered on request."""

    def __init__(self, store: ReportStore, workers: Sequence[WorkerEndpoint],
                 broker_check: Callable[[], Awaitable[str | None]] | None = None) -> None:
        self.store = store
        self.workers = list(workers)
        self._broker_check = broker_check
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def problems(self) -> list[str]:
        """What keeps the job from being ready; empty when ready."""
        checks = [self._database(), *(self._worker(w) for w in self.workers)]
        if self._broker_check is not None:
            checks.append(self._broker())
        found: list[str] = []
        for result in await asyncio.gather(*checks):
            found.extend(result)
        return found

    async def _broker(self) -> list[str]:
        assert self._broker_check is not None
        error = await self._broker_check()
        return [f"broker: {error}"] if error else []

    async def _database(self) -> list[str]:
        error = await database_problem(self.store)
        return [f"database: {error}"] if error else []

    async def _worker(self, worker: WorkerEndpoint) -> list[str]:
        name = f"worker {worker.index}"
        if not worker.alive():
            return [f"{name}: exited"]
        try:
            async with self._client().get(worker.url("/readyz")) as answer:
                if answer.status == 200:
                    return []
                body = await answer.json(content_type=None)
                return [f"{name}: {p}" for p in body.get("problems", [])] or [f"{name}: "
                                                                              "not ready"]
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            return [f"{name}: not answering ({type(error).__name__})"]

    async def worker_metrics(self) -> list[tuple[int, str]]:
        """Each live worker's /metrics text."""
        async def scrape(worker: WorkerEndpoint) -> tuple[int, str] | None:
            try:
                async with self._client().get(worker.url("/metrics")) as answer:
                    return worker.index, await answer.text()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return None

        results = await asyncio.gather(*(scrape(w) for w in self.workers if w.alive()))
        return [r for r in results if r is not None]


class _Scraped(Collector):
    """Worker samples re-exposed with a ``worker`` label (one family per metric name)."""

    def __init__(self, texts: Iterable[tuple[int, str]]) -> None:
        self._texts = list(texts)

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for index, body in self._texts:
            for family in text_string_to_metric_families(body):
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit)
                for sample in family.samples:
                    labels = {**sample.labels, "worker": str(index)}
                    merged.add_sample(sample.name, labels, sample.value, sample.timestamp)
        return list(families.values())


def _job_metrics(own: bytes, scraped: list[tuple[int, str]]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scraped(scraped))
    return own + generate_latest(registry)


def build_app(store: ReportStore, publisher: Publisher, health: JobHealth, *,
              own_publisher: bool = True, live: LiveHub | None = None,
              ingest: IngestConfig | None = None) -> web.Application:
    """The combined application: report routes and pages, ingest routes (configured by
    ``ingest``), health, metrics; and the live dashboard over ``live`` when given, with the
    therapist's coach stream over it unless ``ingest.coach`` is off (issue 18)."""
    app = web.Application(client_max_size=2 * 1024 * 1024)
    add_report_routes(app, store)
    if live is not None:
        add_live_routes(app, live)
        if (ingest or IngestConfig()).coach:  # RAPPORT_COACH (issue 18)
            add_coach_routes(app, live, off_clinics=(ingest or IngestConfig()).coach_off_clinics)
    add_ingest_routes(app, publisher, store, ingest, own_publisher=own_publisher,
                      pseudonymize=store.pseudonymize)

    async def metrics() -> bytes:
        scraped = await health.worker_metrics()
        return await asyncio.to_thread(_job_metrics, generate_latest(REGISTRY), scraped)

    add_health_routes(app, health.problems, metrics=metrics)

    async def close_health(_app: web.Application) -> None:
        await health.close()

    app.on_cleanup.append(close_health)
    return app
