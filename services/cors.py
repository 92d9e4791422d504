"""Cross-origin access for the browser SDK (issue 18, contract §2; docs/sdk.md "Server").

The SDK runs in a platform's page, on another origin than Rapport. Allowed origins come from
``RAPPORT_CORS_ORIGINS`` (a comma list, e.g. ``https://app.example.com``; ``--cors-origin`` on
``rapport ingest`` and ``rapport run``); the default, an empty list, allows none but Rapport's
own origin. For an allowed ``Origin`` the routes a page calls answer with
``Access-Control-Allow-Origin`` (that origin; never ``*``) and ``Vary: Origin``, and their
preflight ``OPTIONS`` is answered ``204`` (``403`` for another origin):

- ``/v1/events`` (POST), ``/v1/sessions/{id}/coach`` (GET, SSE), ``/sdk/*`` (GET).

``/v1/session-tokens`` is server-to-server and gets no CORS. No route allows credentials
(cookies): the SDK sends its token in ``Authorization``. WebSocket upgrades have no CORS; the
socket checks ``Origin`` itself with :func:`origin_allowed` (services/ingest/stream.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web

from services.auth import Handler, json_response
from services.settings import parse_origins

log = logging.getLogger(__name__)

CORS_ORIGINS: web.AppKey[frozenset[str]] = web.AppKey("cors_origins")
CORS_PATHS = re.compile(r"^(/v1/events|/v1/sessions/[^/]+/coach|/sdk/[^/]+)$")
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
EXPOSE_HEADERS = "Retry-After, ETag"
MAX_AGE_S = "600"


def _configured(request: web.Request) -> frozenset[str]:
    return request.config_dict.get(CORS_ORIGINS, frozenset())


def origin_allowed(request: web.Request, origin: str) -> bool:
    """Whether a page of ``origin`` may use this server: Rapport's own origin, or a
    configured one."""
    normalized = origin.strip().rstrip("/").lower()
    if normalized in _configured(request):
        return True
    return urlsplit(normalized).netloc == request.host.lower()


def _cross_origin(request: web.Request) -> str | None:
    """The request's ``Origin`` when the path takes CORS and the origin is configured."""
    origin = request.headers.get("Origin")
    if origin is None or not CORS_PATHS.match(request.path):
        return None
    return origin if origin.strip().rstrip("/").lower() in _configured(request) else None


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights before authentication (a browser sends no token with them)."""
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers \
            and CORS_PATHS.match(request.path):
        origin = _cross_origin(request)
        if origin is None:
            log.info("refused a preflight from origin %r on %s",
                     request.headers.get("Origin"), request.path)
            return json_response({"error": "origin: not an allowed origin "
                                           "(RAPPORT_CORS_ORIGINS)", "field": "origin"}, 403)
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": MAX_AGE_S})
    return await handler(request)


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer of a CORS path to an allowed origin (errors and streams included)."""
    if not CORS_PATHS.match(request.path):
        return
    response.headers["Vary"] = "Origin"
    origin = _cross_origin(request)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS


def install_cors(app: web.Application, origins: Iterable[str]) -> None:
    """Allow ``origins`` on ``app`` (the preflight middleware goes first, before auth)."""
    known: frozenset[str] = app.get(CORS_ORIGINS) or frozenset()
    app[CORS_ORIGINS] = known.union(parse_origins(list(origins), "cors_origins"))
    if cors_middleware not in app.middlewares:
        app.middlewares.insert(0, cors_middleware)
    if cors_headers not in app.on_response_prepare:
        app.on_response_prepare.append(cors_headers)
