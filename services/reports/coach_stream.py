"""``GET /v1/sessions/{session_id}/coach``: the therapist's private coach stream (issue 18,
contract §5; the numbers: services/reports/coach.py, docs/sdk.md "Coach").

Server-Sent Events, ``Authorization: Bearer <session token>`` (the SDK reads the stream with
``fetch``, so the token stays in a header). Only a session token (services/store/tokens.py)
minted for a ``therapist`` of this very session may read it:

- no token, or an unknown, revoked or expired one (or one whose parent was revoked): ``401``;
- a token of another scope (ingest, reports, admin): ``403``; a session token of another role
  (the client's page): ``403``; a session token of another session: ``404``;
- the coach switched off (``RAPPORT_COACH=off``): the route does not exist, ``404``; switched
  off for the token's clinic (``RAPPORT_COACH_OFF_CLINICS``): ``404`` as well.

The stream starts with one ``coach`` event (the numbers now, the active alerts as nudges),
then sends one per live update of the session and one per alert that starts or ends; a
comment line every ``keepalive_s`` keeps proxies from closing a quiet stream. The token is
re-checked while the stream is open (services/auth.py ``Revalidation``): revoking it or its
parent, or its expiry, ends the stream with a ``revoked`` event within a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from services.auth import ApiError, Revalidation, bearer_token, requires, viewer
from services.reports.coach import CoachHub
from services.reports.live import LiveHub
from services.reports.live_pages import DEFAULT_KEEPALIVE_S, RETRY_MS, sse

log = logging.getLogger(__name__)

COACH = web.AppKey("coach_hub", CoachHub)
COACH_KEEPALIVE = web.AppKey("coach_keepalive_s", float)
COACH_OFF: web.AppKey[frozenset[str]] = web.AppKey("coach_off_clinics")


@requires("session")
async def coach_stream(request: web.Request) -> web.StreamResponse:
    who = viewer(request)
    session_id = request.match_info["session_id"]
    if who.session_id != session_id or who.clinic is None:
        raise ApiError(404, f"session_id: no session {session_id!r} for this token")
    if who.clinic in request.config_dict.get(COACH_OFF, frozenset()):
        raise ApiError(404, "coach: switched off for this clinic")
    if who.role != "therapist":
        raise ApiError(403, "role: only the therapist's session token may read the coach")
    coach = request.config_dict[COACH]
    keepalive = request.config_dict.get(COACH_KEEPALIVE, DEFAULT_KEEPALIVE_S)
    token = bearer_token(request)
    assert token is not None  # the auth middleware verified it
    revalidation = Revalidation.of(request, token)
    wait_s = min(keepalive, revalidation.interval_s)
    response = web.StreamResponse(headers={"Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    response.content_type = "text/event-stream"
    response.charset = "utf-8"
    if request.method == "HEAD":  # headers only (see services/reports/live_pages.py)
        await response.prepare(request)
        return response
    with coach.subscribe(who.clinic, session_id) as subscription:
        await response.prepare(request)
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode()
                                 + sse("coach", coach.view(who.clinic, session_id)))
            quiet_since = time.monotonic()
            while True:
                try:
                    event = await asyncio.wait_for(subscription.get(), wait_s)
                    timed_out = False
                except asyncio.TimeoutError:
                    event, timed_out = None, True
                if await revalidation.revoked():
                    log.info("coach stream closed: session token %s is no longer valid",
                             who.token_id)
                    await response.write(sse("revoked", {"error": "authorization: token "
                                                                  "revoked or expired"}))
                    break
                if timed_out:
                    if time.monotonic() - quiet_since >= keepalive:
                        await response.write(b": keepalive\n\n")
                        quiet_since = time.monotonic()
                    continue
                if event is None:  # the server shuts down, or this reader fell behind
                    break
                quiet_since = time.monotonic()
                await response.write(sse("coach", event))
        except (ConnectionResetError, ConnectionError):
            log.debug("coach stream client went away")
    return response


def add_coach_routes(app: web.Application, hub: LiveHub, *,
                     keepalive_s: float = DEFAULT_KEEPALIVE_S,
                     off_clinics: frozenset[str] = frozenset()) -> CoachHub:
    """Mount the coach stream over ``hub``'s records on ``app`` (which has the auth
    middlewares); returns the coach's state."""
    coach = CoachHub()
    hub.add_tap(coach)
    app[COACH] = coach
    app[COACH_KEEPALIVE] = keepalive_s
    app[COACH_OFF] = off_clinics
    app.router.add_get("/v1/sessions/{session_id}/coach", coach_stream)

    async def close_streams(_app: web.Application) -> None:
        coach.close()

    app.on_shutdown.append(close_streams)
    return coach
