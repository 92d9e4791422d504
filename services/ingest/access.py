"""Who may ingest: bearer tokens of scope ``ingest`` (or ``admin``), each bound to one clinic.

Authentication is services/auth.py's, shared by every web surface: the ingest routes are
declared ``@requires("ingest", "admin")`` (the WebSocket and the join page ``@public``: the
socket authenticates itself, possibly by its first message), and :func:`authenticate_request`
reuses the middleware's verdict. Tokens are made by ``rapport tokens create --clinic C
--scope ingest``. Give each platform that forwards sessions
its own token: revoking it cuts off that platform only, and its clinic bounds what it may post.

Rules: no token, or an unknown or revoked one, is ``401``; a ``reports`` token is ``403``; an
``ingest`` token posts for its own clinic (``403`` naming ``clinic_id`` for a ``session.start``
or an offer of another clinic); an ``admin`` token may post for any clinic, and names it with
``?clinic=C`` (``422`` naming ``clinic`` without it): a session is (clinic, session id), so
what a request posts must say whose it is (issue 16 finding 1).
A ``session`` token (issue 18, minted by ``POST /v1/session-tokens``) may post only
events of its own session (of its clinic): an event of another ``session_id`` makes its
request or message ``403`` naming ``session_id``, like the clinic rule. Its events count
against its parent token's limits (services/ingest/limits.py), so minting many session tokens
gives a platform no more room than its own token.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

__all__ = ["INGEST_SCOPES", "AccessDenied", "Caller", "TokenVerifier", "authenticate",
           "authenticate_request", "bearer_token"]

from aiohttp import web

from models.events import is_identifier
from services.auth import VIEWER, TokenVerifier

log = logging.getLogger(__name__)

INGEST_SCOPES = frozenset({"ingest", "admin", "session"})


class AccessDenied(Exception):
    """``status`` 401 or 403 with a message naming what is wrong."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message

    def response(self) -> web.Response:
        return web.json_response({"error": f"{self.field}: {self.message}",
                                  "field": self.field}, status=self.status)


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated ingest client: ``clinic`` is None for an admin token (any clinic);
    ``session`` is the one session a session token may post (None: any). ``token_id`` is
    what per-token limits count against: a session token's parent."""

    token_id: str
    clinic: str | None
    session: str | None = None

    def check_clinic(self, clinic_id: str, field: str = "clinic_id") -> None:
        if self.clinic is not None and clinic_id != self.clinic:
            raise AccessDenied(403, field, f"{clinic_id!r} is not the clinic of this token")

    def check_session(self, session_id: str) -> None:
        if self.session is not None and session_id != self.session:
            raise AccessDenied(403, "session_id", f"{session_id!r} is not the session of "
                                                  "this session token")

    @classmethod
    def of(cls, token_id: str, clinic: str | None, scope: str, session: str | None,
           parent_id: str | None) -> Caller:
        if scope == "session":
            return cls(parent_id or token_id, clinic, session)
        return cls(token_id, None if scope == "admin" else clinic)

    def acting_for(self, requested: str | None) -> Caller:
        """The caller bound to the clinic it posts for: its token's, or for an ``admin``
        token the ``requested`` one (``?clinic=``), which it must name (``422``)."""
        if requested is not None:
            if not is_identifier(requested):
                raise AccessDenied(422, "clinic", "must be 1..128 printable ASCII "
                                                  "characters, no spaces")
            self.check_clinic(requested, "clinic")
            return Caller(self.token_id, requested, self.session)
        if self.clinic is None:
            raise AccessDenied(422, "clinic", "an admin token must name the clinic it posts "
                                              "for (?clinic=C)")
        return self


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(tokens: TokenVerifier, token: str | None) -> Caller:
    """The caller of ``token``, or :class:`AccessDenied` (401/403)."""
    if token is None:
        raise AccessDenied(401, "authorization", "missing bearer token")
    info = await asyncio.to_thread(tokens.verify_token, token)
    if info is None:
        log.info("rejected an unknown or revoked ingest token")
        raise AccessDenied(401, "authorization", "unknown or revoked token")
    if info.scope not in INGEST_SCOPES:
        raise AccessDenied(403, "authorization",
                           f"a token of scope {info.scope} cannot post events")
    return Caller.of(info.id, info.clinic_id, info.scope, info.session_id, info.parent_id)


async def authenticate_request(tokens: TokenVerifier, request: web.Request) -> Caller:
    """The caller of a request: from services/auth.py's middleware when it ran (the route is
    declared ``@requires``), else from the bearer header, verified here."""
    if VIEWER in request:
        viewer = request[VIEWER]
        if viewer.scope not in INGEST_SCOPES:
            raise AccessDenied(403, "authorization",
                               f"a token of scope {viewer.scope} cannot post events")
        return Caller.of(viewer.token_id, viewer.clinic, viewer.scope, viewer.session_id,
                         viewer.parent_id)
    return await authenticate(tokens, bearer_token(request.headers.get("Authorization")))
