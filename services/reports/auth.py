"""Bearer-token authentication and tenancy of the report API (issue 5).

Every ``/v1/`` request needs ``Authorization: Bearer <token>`` with a token made by
``rapport tokens create``: none or an unknown or revoked one is ``401``; an ``ingest`` token
is ``403`` (it may post events, not read reports). A ``reports`` token reads its own clinic
only: the handlers pass its clinic to every store query, so another clinic's session is not
found (``404``, never ``403``, so ids of other clinics cannot be probed). An ``admin`` token
reads every clinic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from services.store import ReportStore, TokenInfo

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
READ_SCOPES = frozenset({"reports", "admin"})
PUBLIC_PATHS = frozenset({"/openapi.json"})
STORE = web.AppKey("store", ReportStore)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking: ``clinic`` is None for an admin token (every clinic)."""

    token_id: str
    clinic: str | None
    scope: str

    @classmethod
    def of(cls, token: TokenInfo) -> Viewer:
        return cls(token.id, None if token.scope == "admin" else token.clinic_id, token.scope)


class ApiError(Exception):
    """An error answer: ``status`` with the JSON body ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


VIEWER = web.RequestKey("viewer", Viewer)


def viewer(request: web.Request) -> Viewer:
    return request[VIEWER]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS or not request.path.startswith("/v1/"):
        return await handler(request)
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "authorization: missing bearer token")
    info = await asyncio.to_thread(request.app[STORE].verify_token, token)
    if info is None:
        log.info("rejected an unknown or revoked token on %s", request.path)
        raise ApiError(401, "authorization: unknown or revoked token")
    if info.scope not in READ_SCOPES:
        raise ApiError(403, f"authorization: a token of scope {info.scope} cannot read reports")
    request[VIEWER] = Viewer.of(info)
    return await handler(request)
