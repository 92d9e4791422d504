"""``POST /v1/events``: a batch of wire-v1 events over HTTP (see services/ingest/intake.py).

The body is a JSON array or JSON Lines of at most ``max_body_bytes`` (default 1 MiB; larger
bodies are refused with ``413`` before they are read, and never published: split them).
Answers, always JSON:

- ``202 {"accepted": n}``: every event is published (stored by the broker);
- ``207`` / ``422 {"accepted", "rejected", "errors": [{"index", "field", "error"}]}``: some /
  none were valid; the valid ones are published, each invalid one is on the dead-letter topic;
- ``400`` a JSON array body that is not valid JSON (dead-lettered as one record);
- ``401`` / ``403`` see services/ingest/access.py; ``413`` body too large;
- ``408`` the body did not arrive within ``body_timeout_s`` (a slow or stalled client);
- ``429`` a per-token limit (services/ingest/limits.py): ``field`` names it
  (``events_per_s_per_token`` or ``max_open_sessions_per_token``); nothing of the request was
  accepted; retry after ``Retry-After`` seconds;
- ``503`` the broker could not store the events in time or the ingest buffer is full: nothing
  of the request was accepted; retry after ``Retry-After`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from aiohttp import web

from models.errors import ValidationError
from models.records import RejectReason, Source, rejected_record
from services.auth import requires
from services.ingest.access import AccessDenied, Caller, authenticate_request
from services.ingest.intake import (
    BodyLimitError,
    Checked,
    check_events,
    split_body,
)
from services.ingest.limits import LimitExceeded
from services.ingest.publisher import Outgoing, PublishError
from services.ingest.service import INGEST, IngestService

log = logging.getLogger(__name__)

BODY_TIMEOUT_S = 30.0  # IngestConfig.body_timeout_s; a request body must arrive within this


def error_response(status: int, field: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": f"{field}: {message}", "field": field}, status=status,
                             headers=headers)


class BodyTimeout(ValidationError):
    """The body did not arrive in time (issue 16 finding 11: a client that sends half a body
    and stops held a handler and its buffer forever). Answered 408, connection closed."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__("body", f"not received within {timeout_s:g} s; send it faster")

    def response(self) -> web.Response:
        answer = error_response(408, self.field, self.reason)
        answer.force_close()  # the rest of the body may never come: do not wait for it
        return answer


async def read_body(request: web.Request, limit: int,
                    timeout_s: float = BODY_TIMEOUT_S) -> bytes | None:
    """The body, or None when it exceeds ``limit`` bytes (read no further than that);
    :class:`BodyTimeout` when all of it has not arrived within ``timeout_s``."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.content.iter_chunked(65_536):
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
    except TimeoutError:
        log.info("%s %s: body not received within %g s (%d bytes came)", request.method,
                 request.path, timeout_s, size)
        raise BodyTimeout(timeout_s) from None
    return b"".join(chunks)


def too_large(limit: int) -> web.Response:
    return error_response(413, "body", f"larger than {limit} bytes; send smaller batches")


@requires("ingest", "admin", "session")
async def post_events(request: web.Request) -> web.Response:
    service = request.app[INGEST]
    try:
        caller = (await authenticate_request(service.tokens, request)).acting_for(
            request.query.get("clinic"))
    except AccessDenied as denied:
        return denied.response()
    try:
        body = await read_body(request, service.config.max_body_bytes,
                               service.config.body_timeout_s)
    except BodyTimeout as timeout:
        return timeout.response()
    if body is None:
        service.count(0, 1, {RejectReason.TOO_LARGE.value: 1})
        return too_large(service.config.max_body_bytes)
    items = split_body(body, max_events=service.config.max_events_per_request)
    if not isinstance(items, list):
        status = items.status if isinstance(items, BodyLimitError) else 400
        reason = RejectReason.TOO_LARGE if status == 413 else RejectReason.MALFORMED_JSON
        service.count(0, 1, {reason.value: 1})
        record = rejected_record(reason, items,
                                 Source("http:/v1/events", -1, 0, int(time.time() * 1000),
                                        body), clinic_id=caller.clinic)
        try:
            await service.publisher.publish([Outgoing("dlq", None, orjson.dumps(record))])
        except PublishError as error:
            log.warning("dead letter not stored: %s", error)
        return error_response(status, items.field, items.reason)
    limited = service.take_events(caller.token_id, len(items))
    if limited is not None:
        return too_many(limited)
    try:
        consent = None if caller.clinic is None else await service.consent.check(
            caller.clinic, items, service.pseudonymize)
        checked = check_events(items, caller, service.pseudonymize, "http:/v1/events",
                               consent=consent)
    except AccessDenied as denied:
        return denied.response()
    return await publish_checked(service, caller, checked)


def too_many(limited: LimitExceeded) -> web.Response:
    return error_response(429, limited.limit, limited.message,
                          {"Retry-After": str(limited.retry_after_s)})


async def publish_checked(service: IngestService, caller: Caller,
                          checked: Checked) -> web.Response:
    """Publish a checked body; the HTTP answer (202/207/422, or 429, 503)."""
    reserved = service.reserve_sessions(caller.token_id, checked)
    if isinstance(reserved, LimitExceeded):
        return too_many(reserved)
    try:
        await service.publisher.publish(checked.records)
    except PublishError as error:
        service.limits.release(caller.token_id, reserved)
        log.warning("events not accepted: %s", error)
        return error_response(503, "broker", str(error), {"Retry-After": "5"})
    service.limits.commit(caller.token_id, checked.ends, checked.sessions)
    service.count(checked.accepted, len(checked.rejections), checked.reasons)
    return web.json_response(checked.body(), status=checked.status)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/events", post_events)
