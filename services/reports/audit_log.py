"""The audit log's writer (issue 19, point 6): one entry for every successful request to a
route that reads or changes a clinic's data.

:func:`audit_middleware` runs inside the auth middleware (services/auth.py), so it knows the
:class:`~services.auth.Viewer`. A route is audited when its declared scopes
(:func:`services.auth.access_of`) include ``reports``, ``clinic-admin`` or ``therapist``, or
are ``admin`` alone: the report API and pages, the live dashboard, and every route added
later with those scopes, without the route doing anything. Ingest routes (``ingest``/``admin``,
``session``), session tokens, the coach stream and public routes are not audited: they carry
a platform's events, not a clinic's records.

An entry is written after the handler ran and only if it answered below ``400`` (a refused or
failed request touched nothing): ``token_id`` (never the token), ``scope``, ``clinic_id``
(the viewer's; for an admin the one a handler recorded in :data:`AUDIT_CLINIC`, else
``?clinic=``, else the one clinic holding the ``{session_id}`` touched, else ``*``),
``action`` (``read``/``change``/``erase`` and the route, e.g.
``read GET /v1/sessions/{session_id}/report``), ``target`` (the path with its parameters
filled in, a ``{participant_id}`` as its pseudonym (``erased`` in an erasure's own entry), and
the query's filters) and ``detail``
(method, status, format, route; never a pseudonym, label, token or body). Streams (the live
SSE routes) are written when they start, before their first byte is sent (when that write
fails, the connection is closed before any byte of the stream).

The write runs in a worker thread like every store call; when it fails the request fails
with ``503`` instead of answering unaudited ("every read writes an entry").
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlencode

from aiohttp import web

from services.auth import VIEWER, Access, ApiError, Handler, Viewer, access_of, auth_middleware
from services.reports.auth import STORE
from services.store import AuditRecord, ReportStore, StoreError
from services.store.audit import ERASED
from services.store.schema import ALERT_LENGTH, ID_LENGTH

log = logging.getLogger(__name__)

AUDITED_SCOPES = frozenset({"reports", "clinic-admin", "therapist"})
ACTIONS = {"GET": "read", "HEAD": "read", "POST": "change", "PUT": "change",
           "PATCH": "change", "DELETE": "erase"}
# Path or query parameters that name a participant by the platform's id: written as pseudonyms.
PARTICIPANT_PARAMETERS = frozenset({"participant_id", "participant", "client", "client_id"})
# Query parameters that page or shape an answer (or could carry a credential): not filters.
NOT_FILTERS = frozenset({"cursor", "after", "limit", "format", "token", "access_token"})
FORMATS = {"application/json": "json", "text/csv": "csv", "text/html": "html",
           "text/event-stream": "sse"}
ANY_CLINIC = "*"

# A handler that resolved the clinic it touched for an admin may record it here.
AUDIT_CLINIC = web.RequestKey("audit_clinic", str)
# A handler that erased a participant (e.g. revoking consent) records their pseudonym here:
# the request's own entry then names them as ``erased`` like every earlier entry.
AUDIT_ERASED = web.RequestKey("audit_erased", str)
_PENDING = web.RequestKey("audit_pending", bool)


def is_audited(access: Access) -> bool:
    """Whether a route with this requirement writes an audit entry (module docstring)."""
    scopes = access.scopes
    if scopes is None:
        return False
    return bool(scopes & AUDITED_SCOPES) or scopes == frozenset({"admin"})


def audited_route(request: web.Request) -> bool:
    if request.match_info.http_exception is not None:  # no route: 404 or 405
        return False
    return is_audited(access_of(request))


def _canonical(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def _target(request: web.Request, store: ReportStore) -> str:
    """The path with its parameters and filters; participants as pseudonyms, except that a
    ``DELETE`` (an erasure) names the participant of its path as ``erased``, and so does any
    request whose handler recorded an erased pseudonym (:data:`AUDIT_ERASED`): an erasure's
    own entry must not keep whom it erased."""
    path = _canonical(request)
    for name, value in request.match_info.items():
        shown = value
        if name in PARTICIPANT_PARAMETERS:
            shown = ERASED if request.method == "DELETE" else store.pseudonymize(value)
        path = path.replace("{" + name + "}", shown)
    filters = sorted(
        (name, store.pseudonymize(value) if name in PARTICIPANT_PARAMETERS else value)
        for name, value in request.query.items() if name not in NOT_FILTERS)
    target = f"{path}?{urlencode(filters)}" if filters else path
    erased = request.get(AUDIT_ERASED)
    return target.replace(erased, ERASED) if erased else target


def _format(request: web.Request, response: web.StreamResponse) -> str:
    asked = request.query.get("format")
    if asked in ("json", "csv", "html"):
        return asked
    return FORMATS.get(response.content_type, response.content_type or "none")


async def _clinic(request: web.Request, seen: Viewer, store: ReportStore) -> str:
    if seen.clinic is not None:
        return seen.clinic
    if AUDIT_CLINIC in request:
        return request[AUDIT_CLINIC]
    if request.query.get("clinic"):
        return request.query["clinic"][:ID_LENGTH]
    session_id = request.match_info.get("session_id")
    if session_id:
        clinics = await asyncio.to_thread(store.clinics_of, session_id)
        if len(clinics) == 1:
            return clinics[0]
    return ANY_CLINIC


async def record_for(request: web.Request, response: web.StreamResponse,
                     store: ReportStore) -> AuditRecord:
    """The entry for a successful audited request (see the module docstring)."""
    seen = request[VIEWER]
    route = f"{request.method} {_canonical(request)}"
    action = f"{ACTIONS.get(request.method, 'change')} {route}"[:ALERT_LENGTH]
    detail = {"method": request.method, "status": response.status,
              "format": _format(request, response), "route": route}
    return AuditRecord(await _clinic(request, seen, store), seen.token_id, seen.scope, action,
                       _target(request, store), detail)


async def write(request: web.Request, response: web.StreamResponse) -> None:
    """Append the request's entry; a failure fails the request (``503``)."""
    request[_PENDING] = False
    store = request.config_dict.get(STORE)
    if store is None:
        raise ApiError(503, "audit: this server has no report store to write the audit log")
    try:
        record = await record_for(request, response, store)
        await asyncio.to_thread(store.audit, record)
    except StoreError:
        log.exception("audit: could not write the entry of %s %s", request.method,
                      _canonical(request))
        raise ApiError(503, "audit: the audit log cannot be written; nothing was answered")\
            from None


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not audited_route(request) or VIEWER not in request:
        return await handler(request)
    request[_PENDING] = True
    try:
        response = await handler(request)
    except BaseException:
        request[_PENDING] = False
        raise
    if request.get(_PENDING) and response.status < 400:
        await write(request, response)
    request[_PENDING] = False
    return response


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """A stream (SSE) prepared by its handler: write before its headers are sent. When the
    write fails the stream must not start; its headers are prepared already (aiohttp chose
    chunked encoding on the connection), so no clean ``503`` can follow on this connection:
    it is closed before the first byte, and the handler fails."""
    if request.get(_PENDING) and response.status < 400:
        try:
            await write(request, response)
        except ApiError:
            if request.transport is not None:
                request.transport.close()
            raise


def install_audit(app: web.Application) -> None:
    """Add the audit middleware right inside the auth middleware (once)."""
    if audit_middleware in app.middlewares:
        return
    if auth_middleware not in app.middlewares:
        raise RuntimeError("install the auth middleware (services.auth.install) first")
    app.middlewares.insert(app.middlewares.index(auth_middleware) + 1, audit_middleware)
    app.on_response_prepare.append(_on_prepare)
