"""Mounting the ingest service: :func:`add_ingest_routes` adds its routes to any aiohttp
application (``rapport ingest`` alone, or the combined server of ``rapport run``);
:func:`create_app` is a stand-alone application with ``/healthz``, ``/readyz`` and
``/metrics`` (services/health.py).

Routes: ``POST /v1/events`` (services/ingest/batches.py), ``GET /v1/stream`` (WebSocket,
stream.py), ``POST /v1/session-tokens`` (session_tokens.py), ``GET /sdk/…`` (sdk.py; CORS
for the SDK's routes: services/cors.py), the WebRTC signaling under ``/v1/sessions/…``
(signaling.py) and ``GET /join`` (join.py). The application's start-up starts the publisher
(unless ``own_publisher`` is False) and warms the VAD in a thread (audio-mode participants
wait for it); its shutdown makes every WebRTC participant leave (their last frames
published), then drains and closes the publisher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiohttp import web

from services.auth import TokenVerifier, install
from services.cors import install_cors
from services.health import Check, add_health_routes
from services.ingest import batches, join, sdk, session_tokens, signaling, stream
from services.ingest.publisher import Publisher
from services.ingest.service import INGEST, IngestConfig, IngestService
from services.ingest.vad_backend import VadBackend
from services.store.pseudonyms import Pseudonymizer

log = logging.getLogger(__name__)

_WARMUP = web.AppKey("ingest_warmup", asyncio.Task[None])


def _warm_vad(backend: VadBackend | None = None) -> None:
    """librosa compiles some of its code on first use (seconds): not on a live stream."""
    (backend or VadBackend()).warm()


async def _warm_up(service: IngestService) -> None:
    """Warm the VAD in a thread; audio-mode participants wait for ``service.vad_ready``
    before their VAD first runs on the event loop."""
    try:
        await asyncio.to_thread(_warm_vad, service.vad)
    finally:
        service.vad_ready.set()


def add_ingest_routes(app: web.Application, publisher: Publisher, tokens: TokenVerifier,
                      config: IngestConfig | None = None, *,
                      own_publisher: bool = True, warm_vad: bool = True,
                      pseudonymize: Pseudonymizer | None = None) -> IngestService:
    """Add the ingest routes and lifecycle to ``app``; returns the shared service state.
    ``pseudonymize`` must use the store's key (services/store/pseudonyms.py) so that the
    pseudonyms published match the ones a platform computes."""
    service = IngestService(publisher, tokens, config, pseudonymize=pseudonymize)
    app[INGEST] = service
    install(app, tokens)  # services/auth.py: error and token middlewares (once per app)
    install_cors(app, service.config.cors_origins)  # services/cors.py (issue 18)
    batches.add_routes(app)
    session_tokens.add_routes(app)
    sdk.add_routes(app)
    stream.add_routes(app)
    signaling.add_routes(app)
    join.add_routes(app)

    async def start(app: web.Application) -> None:
        if own_publisher:
            await publisher.start()
        service.emitter.start()
        if warm_vad:
            app[_WARMUP] = asyncio.create_task(_warm_up(service))
        else:
            service.vad_ready.set()

    async def stop(app: web.Application) -> None:
        await service.sessions.close_all()
        await service.emitter.close()
        if own_publisher:
            await publisher.close()
        if _WARMUP in app:
            await app[_WARMUP]

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return service


def create_app(publisher: Publisher, tokens: TokenVerifier,
               config: IngestConfig | None = None, *, warm_vad: bool = True,
               checks: Sequence[tuple[str, Check]] = (),
               pseudonymize: Pseudonymizer | None = None) -> web.Application:
    """A stand-alone ingest application (``rapport ingest``); ``/readyz`` runs ``checks``
    (``(name, check)``: the token database and the broker)."""
    app = web.Application()
    add_ingest_routes(app, publisher, tokens, config, warm_vad=warm_vad,
                      pseudonymize=pseudonymize)
    add_health_routes(app, checks)
    return app
