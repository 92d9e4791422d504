"""``GET /v1/stream``: wire-v1 events over a WebSocket, for platforms that stream them live.

Authenticate with ``Authorization: Bearer …`` on the upgrade request (a bad token is refused
before the upgrade, ``401``/``403``), or, where a client cannot set headers (browsers), with a
first message ``{"type": "auth", "token": "…"}`` within ``auth_timeout_s``, answered
``{"type": "auth", "ok": true}`` (a bad one is answered with the error and closed, code 4401
or 4403). An ``admin`` token names the clinic it streams for, ``?clinic=C`` on the upgrade
request or ``"clinic"`` in the auth message (else 422, close code 4422).

Every later message (text or binary) is one event, a JSON array of events or JSON Lines, at
most ``max_message_bytes`` (a larger one closes the socket with 1009). Each is validated and
published like a ``POST /v1/events`` body and answered, in order, with
``{"type": "ack", "message": n, "status": 202|207|422|403|429|503, "accepted", ...}`` where
``n`` counts the messages from 0 and the rest is the HTTP body; a 429 (a per-token limit,
services/ingest/limits.py) adds ``field`` naming the limit and ``retry_after_s``.
Backpressure: the next message is not read until the previous one is stored by the broker,
so a fast sender is slowed by TCP flow control instead of filling memory.

Clock (issue 18, for the browser SDK): a message ``{"type": "clock", "id": n, "client_ms": C0}``
is answered at once with the same fields plus ``"server_ms": S``, the ingest's receive clock
(epoch ms, the session clock of METRICS.md §1) when the message arrived. It is not an event
message: it gets no ack and takes no message number. The SDK keeps the sample of least round
trip to map its own clock to the session clock (docs/sdk.md "Clock").

Origin: a browser names its page's origin on the upgrade request; an ``Origin`` that is
neither Rapport's own nor configured (``RAPPORT_CORS_ORIGINS``, services/cors.py) is refused
``403`` before the upgrade. Clients without the header (servers, bots) are not affected.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from models.records import RejectReason, Source, rejected_record
from services.auth import Revalidation, public
from services.cors import origin_allowed
from services.ingest.access import AccessDenied, Caller, authenticate, bearer_token
from services.ingest.intake import BodyLimitError, check_events, split_body
from services.ingest.limits import LimitExceeded
from services.ingest.publisher import Outgoing, PublishError
from services.ingest.service import INGEST, IngestService
from services.store import StoreError

log = logging.getLogger(__name__)

ORIGIN = "ws:/v1/stream"
# The open sockets, closed with 1001 (going away) when the application shuts down: aiohttp
# otherwise waits for their handlers, so SIGTERM took a minute while a client was connected.
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("ingest_sockets")


async def _send(ws: web.WebSocketResponse, value: dict[str, Any]) -> None:
    await ws.send_str(orjson.dumps(value).decode())


async def _first_message_auth(service: IngestService, ws: web.WebSocketResponse,
                              clinic: str | None) -> tuple[Caller, str] | None:
    try:
        message = await ws.receive(timeout=service.config.auth_timeout_s)
    except asyncio.TimeoutError:
        await _send(ws, {"type": "error", "status": 401,
                         "error": "authorization: no auth message in time"})
        await ws.close(code=4401)
        return None
    token: str | None = None
    if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
        try:
            value = orjson.loads(message.data)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict) and value.get("type") == "auth" \
                and isinstance(value.get("token"), str):
            token = value["token"]
            if isinstance(value.get("clinic"), str):
                clinic = value["clinic"]
    elif message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
        return None
    try:
        caller = (await authenticate(service.tokens, token)).acting_for(clinic)
    except AccessDenied as denied:
        await _send(ws, {"type": "error", "status": denied.status,
                         "error": f"{denied.field}: {denied.message}"})
        await ws.close(code=4000 + denied.status)
        return None
    await _send(ws, {"type": "auth", "ok": True})
    assert token is not None  # authenticate refuses None
    return caller, token


CLOCK_MAX_BYTES = 200  # a clock message is about 50 bytes; events are never looked at here


def clock_reply(data: bytes, received_ms: int) -> dict[str, Any] | None:
    """The answer to a clock message, or None when ``data`` is not one (an event message)."""
    if len(data) > CLOCK_MAX_BYTES or b'"clock"' not in data:
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or value.get("type") != "clock":
        return None
    ident, client_ms = value.get("id"), value.get("client_ms")
    if isinstance(ident, bool) or not isinstance(ident, int):
        return {"type": "error", "status": 400, "error": "clock.id: must be an integer"}
    if isinstance(client_ms, bool) or not isinstance(client_ms, int | float):
        return {"type": "error", "status": 400, "error": "clock.client_ms: must be a number"}
    return {"type": "clock", "id": ident, "client_ms": client_ms, "server_ms": received_ms}


async def _handle(service: IngestService, caller: Caller, data: bytes,
                  number: int) -> dict[str, Any]:
    reply: dict[str, Any] = {"type": "ack", "message": number}
    items = split_body(data, max_events=service.config.max_events_per_request)
    if not isinstance(items, list):
        status = items.status if isinstance(items, BodyLimitError) else 400
        reason = RejectReason.TOO_LARGE if status == 413 else RejectReason.MALFORMED_JSON
        service.count(0, 1, {reason.value: 1})
        record = rejected_record(reason, items, Source(ORIGIN, -1, number,
                                                       int(time.time() * 1000), data),
                                 clinic_id=caller.clinic)
        try:  # kept whole in the dead-letter topic, as over HTTP
            await service.publisher.publish([Outgoing("dlq", None, orjson.dumps(record))])
        except PublishError as error:
            log.warning("dead letter not stored: %s", error)
        reply.update(status=status, accepted=0, error=str(items), field=items.field)
        return reply
    limited = service.take_events(caller.token_id, len(items))
    if limited is not None:
        return _limited(reply, limited)
    try:
        consent = None if caller.clinic is None else await service.consent.check(
            caller.clinic, items, service.pseudonymize)
        checked = check_events(items, caller, service.pseudonymize, ORIGIN,
                               consent=consent)
    except AccessDenied as denied:
        reply.update(status=denied.status, accepted=0,
                     error=f"{denied.field}: {denied.message}")
        return reply
    except StoreError:  # consent could not be checked: nothing accepted, the client retries
        log.warning("consent of clinic %s could not be checked: report database unavailable",
                    caller.clinic)
        reply.update(status=503, accepted=0, error="store: the report database is "
                                                   "unavailable (consent check)")
        return reply
    reserved = service.reserve_sessions(caller.token_id, checked)
    if isinstance(reserved, LimitExceeded):
        return _limited(reply, reserved)
    try:
        await service.publisher.publish(checked.records)
    except PublishError as error:
        service.limits.release(caller.token_id, reserved)
        reply.update(status=503, accepted=0, error=f"broker: {error}")
        return reply
    service.limits.commit(caller.token_id, checked.ends, checked.sessions)
    service.count(checked.accepted, len(checked.rejections), checked.reasons)
    reply["status"] = checked.status
    reply.update(checked.body())
    return reply


def _limited(reply: dict[str, Any], limited: LimitExceeded) -> dict[str, Any]:
    reply.update(status=429, accepted=0, error=f"{limited.limit}: {limited.message}",
                 field=limited.limit, retry_after_s=limited.retry_after_s)
    return reply


@public
async def stream(request: web.Request) -> web.StreamResponse:
    service = request.app[INGEST]
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(request, origin):
        log.info("refused a stream from origin %r", origin)
        return AccessDenied(403, "origin", "not an allowed origin (RAPPORT_CORS_ORIGINS)"
                            ).response()
    caller: Caller | None = None
    clinic = request.query.get("clinic")
    header = bearer_token(request.headers.get("Authorization"))
    if header is not None:
        try:
            caller = (await authenticate(service.tokens, header)).acting_for(clinic)
        except AccessDenied as denied:
            return denied.response()
    ws = web.WebSocketResponse(max_msg_size=service.config.max_message_bytes, heartbeat=30.0)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    if caller is None:
        authenticated = await _first_message_auth(service, ws, clinic)
        if authenticated is None:
            return ws
        caller, header = authenticated
    assert header is not None
    revalidation = Revalidation.of(request, header)
    number = 0
    while not ws.closed:
        try:
            message = await ws.receive(timeout=revalidation.interval_s)
        except asyncio.TimeoutError:
            message = None
        received_ms = int(time.time() * 1000)
        if message is not None and message.type == WSMsgType.TEXT \
                and len(message.data) <= CLOCK_MAX_BYTES:
            clock = clock_reply(message.data.encode(), received_ms)
            if clock is not None:  # answered before anything else, for the least delay
                await _send(ws, clock)
                message = None
        if await revalidation.revoked():
            log.info("stream closed: token %s was revoked", caller.token_id)
            await _send(ws, {"type": "error", "status": 401,
                             "error": "authorization: token revoked"})
            await ws.close(code=4401)
            break
        if message is None:
            continue
        if message.type == WSMsgType.TEXT:
            data = message.data.encode()
        elif message.type == WSMsgType.BINARY:
            data = message.data
        else:
            if message.type == WSMsgType.ERROR:
                log.info("stream closed with an error: %s", ws.exception())
            break
        await _send(ws, await _handle(service, caller, data, number))
        number += 1
    if ws.close_code == WSCloseCode.MESSAGE_TOO_BIG:
        log.info("stream closed: a message exceeded %d bytes",
                 service.config.max_message_bytes)
    return ws


async def _close_sockets(app: web.Application) -> None:
    sockets: list[web.WebSocketResponse] = [*app[SOCKETS]]
    if sockets:
        log.info("closing %d ingest stream(s): shutting down", len(sockets))
    await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutting down")
                           for ws in sockets), return_exceptions=True)


def add_routes(app: web.Application) -> None:
    app[SOCKETS] = weakref.WeakSet[web.WebSocketResponse]()
    app.on_shutdown.append(_close_sockets)
    app.router.add_get("/v1/stream", stream)
