"""``POST /v1/session-tokens``: short-lived tokens for one session (issue 18, contract §1 of
/work/briefs/sdk-protocol.md; docs/sdk.md "Server").

A platform's server calls this with its own ``ingest`` (or ``admin``) token and hands the
answer's ``token`` to the browser page of one participant, so no long-lived secret reaches a
browser. Body ``{"session_id", "clinic_id"?, "participant_id", "role", "ttl_s"?}``:

- ``clinic_id`` is required with an admin token; with an ingest token it defaults to the
  token's clinic and must equal it (``403`` naming ``clinic_id``);
- ``role`` is a METRICS.md §1 role (``therapist``, ``client``, ``other``); only a therapist's
  token may read the session's coach stream (services/reports/coach.py);
- ``ttl_s`` defaults to 4 h; more than 24 h is ``400`` naming ``ttl_s``.

Answer ``201 {"token", "session_id", "clinic_id", "participant_id", "role", "expires_at"}``
(``expires_at`` ISO 8601 UTC). The token is stored hashed, its participant id as the store's
pseudonym, and it is never logged (only its id, a hash prefix). It dies with its parent token
and at ``expires_at`` (services/store/tokens.py ``verify_token``), open connections included
(services/auth.py ``Revalidation``). The route is server-to-server: no CORS.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, runtime_checkable

import orjson
from aiohttp import web

from models.errors import ValidationError
from models.events import ROLES
from services.auth import ApiError, bearer_token, json_response, requires, viewer
from services.ingest.service import INGEST
from services.store.tokens import MAX_SESSION_TTL_S, SESSION_TTL_S, TokenInfo

log = logging.getLogger(__name__)

MAX_ID = 200
MAX_BODY_BYTES = 16 * 1024


@runtime_checkable
class TokenIssuer(Protocol):
    """What minting needs from the store (:class:`~services.store.ReportStore`)."""

    def create_session_token(self, parent_token: str, *, clinic_id: str, session_id: str,
                             participant_id: str, role: str, ttl_s: int
                             ) -> tuple[str, TokenInfo]: ...


def _text(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        raise ValidationError(name, f"must be a non-empty string of at most {MAX_ID} "
                                    "characters")
    return value


def _ttl(body: dict[str, Any]) -> int:
    value = body.get("ttl_s", SESSION_TTL_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValidationError("ttl_s", "must be a whole number of seconds")
    if not 1 <= value <= MAX_SESSION_TTL_S:
        raise ValidationError("ttl_s", f"must be between 1 and {MAX_SESSION_TTL_S} seconds "
                                       "(24 h)")
    return int(value)


@requires("ingest", "admin")
async def post_session_token(request: web.Request) -> web.Response:
    who = viewer(request)
    issuer = request.app[INGEST].tokens
    if not isinstance(issuer, TokenIssuer):
        raise ApiError(501, "session-tokens: this server's token store cannot mint tokens")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, f"body: larger than {MAX_BODY_BYTES} bytes")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise ValidationError("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    session_id = _text(body, "session_id")
    participant_id = _text(body, "participant_id")
    role = body.get("role")
    if role not in ROLES:
        raise ValidationError("role", f"must be one of {', '.join(ROLES)}")
    ttl_s = _ttl(body)
    clinic_id = _text(body, "clinic_id", required=who.clinic is None)
    if who.clinic is not None:
        if clinic_id is not None and clinic_id != who.clinic:
            raise ApiError(403, f"clinic_id: {clinic_id!r} is not the clinic of this token")
        clinic_id = who.clinic
    assert clinic_id is not None and session_id is not None and participant_id is not None
    service = request.app[INGEST]
    if role == "client" and await service.consent.missing(
            clinic_id, [service.pseudonymize(participant_id)]):
        # Issue 19: the clinic requires consent and this client has none recorded; its
        # events would be refused anyway (services/ingest/consent.py), so say so now.
        raise ValidationError("participant_id", "client has no recorded consent to analysis "
                                                "(clinic requires it)")
    parent = bearer_token(request)
    assert parent is not None  # the auth middleware verified it
    token, info = await asyncio.to_thread(
        issuer.create_session_token, parent, clinic_id=clinic_id, session_id=session_id,
        participant_id=participant_id, role=str(role), ttl_s=ttl_s)
    assert info.expires_at is not None
    return json_response({
        "token": token, "session_id": session_id, "clinic_id": clinic_id,
        "participant_id": participant_id, "role": role,
        "expires_at": info.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }, status=201)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/session-tokens", post_session_token)
