"""WebRTC signaling of the ingest: offers, participants leaving, sessions ending.

- ``POST /v1/sessions/{session_id}/participants/{participant_id}/offer`` with JSON
  ``{"sdp", "type": "offer", "role": "therapist"|"client"|"other", "clinic"?, "mode"?,
  "telephone"?}``: answers ``200 {"sdp", "type": "answer", "mode", "telephone"}`` once ICE
  gathering is complete (aiortc takes no trickle candidates: the offer must carry its
  candidates too). ``clinic`` defaults to the token's; it must be the token's (``403`` naming
  ``clinic``), and an ``admin`` token must give it (``422``). ``mode`` is ``levels`` (RFC 6464
  levels from RTP headers; the default when the offer proposes
  ``urn:ietf:params:rtp-hdrext:ssrc-audio-level``) or ``audio`` (decode and run the VAD).
  ``telephone`` (``false`` by default): the participant dialled in, so their audio crossed a
  telephone line (8 kHz) before a gateway sent it on as 48 kHz Opus; in audio mode the
  backend's narrowband VAD then reads it (docs/vad.md, "Participants who dial in"). It needs audio
  mode (levels mode runs no VAD: ``422`` naming ``telephone``). A participant that posts a new
  offer replaces its previous connection.
- ``DELETE /v1/sessions/{session_id}/participants/{participant_id}``: the participant leaves
  (``204``; ``404`` if it is not present).
- ``POST /v1/sessions/{session_id}/end``: every participant leaves, ``session.end`` (``204``);
  also for sessions fed over HTTP or the WebSocket (optional body ``{"ts_ms"}``).

All need an ingest token of the session's clinic (services/ingest/access.py); an ``admin``
token names the clinic with ``?clinic=C`` on the DELETE and end routes.

A session is (clinic, session id) (issue 16 finding 1): an offer for an id another clinic
uses starts this clinic's own session of that id, and no answer names or reveals another
clinic. The participant id of the path is pseudonymized on entry (services/store/
pseudonyms.py, issue 16 finding 5): events, logs and the live session hold the pseudonym.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from models.errors import ValidationError
from models.events import ROLES, Role, SessionEnd, parse_event
from models.topics import session_key
from services.auth import requires
from services.ingest.access import AccessDenied, Caller, authenticate_request
from services.ingest.batches import BodyTimeout, error_response, read_body
from services.ingest.peer import Mode, ParticipantPeer, offers_audio_level
from services.ingest.publisher import Outgoing, PublishError
from services.ingest.service import INGEST, IngestService
from services.ingest.sessions import SessionError

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 256 * 1024
_ID_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))


def _ident(value: object, field: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 128 or set(value) - _ID_CHARS:
        raise ValidationError(field, "must be 1..128 printable ASCII characters, no spaces")
    return value


async def _caller(service: IngestService, request: web.Request) -> Caller:
    return await authenticate_request(service.tokens, request)


async def _offer_body(request: web.Request) -> dict[str, Any]:
    body = await read_body(request, MAX_OFFER_BYTES, request.app[INGEST].config.body_timeout_s)
    if body is None:
        raise ValidationError("body", f"larger than {MAX_OFFER_BYTES} bytes")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValidationError("body", "must be a JSON object") from None
    if not isinstance(value, dict):
        raise ValidationError("body", "must be a JSON object")
    return value


def _mode(value: object, sdp: str) -> Mode:
    if value is None:
        return "levels" if offers_audio_level(sdp) else "audio"
    if value == "levels":
        if not offers_audio_level(sdp):
            raise ValidationError("mode", "levels needs the offer to propose "
                                          "urn:ietf:params:rtp-hdrext:ssrc-audio-level")
        return "levels"
    if value == "audio":
        return "audio"
    raise ValidationError("mode", "must be levels or audio")


def _telephone(value: object, mode: Mode) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("telephone", "must be true or false")
    if value and mode != "audio":
        raise ValidationError("telephone", "needs mode audio (levels mode reads the sender's "
                                           "own levels and runs no VAD)")
    return value


@requires("ingest", "admin")
async def post_offer(request: web.Request) -> web.Response:
    service = request.app[INGEST]
    try:
        caller = await _caller(service, request)
        session_id = _ident(request.match_info["session_id"], "session_id")
        participant_id = service.pseudonymize(
            _ident(request.match_info["participant_id"], "participant_id"))
        body = await _offer_body(request)
        sdp, kind = body.get("sdp"), body.get("type", "offer")
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise ValidationError("sdp", "must be an SDP offer (a string starting v=0)")
        if kind != "offer":
            raise ValidationError("type", "must be offer")
        role = body.get("role")
        if role not in ROLES:
            raise ValidationError("role", f"must be one of {', '.join(ROLES)}")
        clinic = body.get("clinic")
        if clinic is not None:
            clinic = _ident(clinic, "clinic")
        clinic = _clinic_of(caller.acting_for(clinic))
        mode = _mode(body.get("mode"), sdp)
        telephone = _telephone(body.get("telephone", False), mode)
        await _check_consent(service, clinic, session_id, participant_id, role)
        participant = service.sessions.join(session_id, participant_id, _role(role), clinic)
    except AccessDenied as denied:
        return denied.response()
    except BodyTimeout as timeout:
        return timeout.response()
    except ValidationError as error:
        return error_response(422, error.field, error.reason)
    except SessionError as error:
        return error_response(error.status, error.field, error.message)
    old = participant.peer
    if old is not None:
        participant.peer = None
        await old.close()
    peer: ParticipantPeer | None = None

    async def lost() -> None:
        if peer is not None and participant.peer is peer:
            await service.sessions.leave(clinic, session_id, participant_id)

    peer = ParticipantPeer(session_id, participant, mode, service.config,
                           service.sessions.emitter_of(clinic), service.now_ms, lost,
                           vad=service.vad, vad_ready=service.vad_ready, telephone=telephone)
    participant.peer = peer
    try:
        answer = await peer.answer(sdp, "offer")
    except (ValueError, RuntimeError) as error:  # aiortc: malformed or unsupported SDP
        log.info("offer of participant %s refused: %s", participant_id, error)
        await service.sessions.leave(clinic, session_id, participant_id)
        return error_response(422, "sdp", f"cannot answer this offer ({error})")
    log.info("participant %s of session %s connected in %s mode%s", participant_id,
             session_id, mode, " (telephone: narrowband VAD)" if telephone else "")
    return web.json_response({"sdp": answer.sdp, "type": answer.type, "mode": mode,
                              "telephone": telephone})


async def _check_consent(service: IngestService, clinic: str, session_id: str,
                         participant_id: str, role: object) -> None:
    """Refuse (422 naming the field, counted under ``consent``) an offer to a session refused
    for want of consent, and a client's offer without recorded consent when the clinic
    requires it; the session is then refused (services/ingest/consent.py)."""
    gate = service.consent
    refusal = None
    if gate.refused(clinic, session_id):
        refusal = gate.later_event(clinic, session_id)
    elif role == "client" and await gate.missing(clinic, [participant_id]):
        refusal = gate.refuse(clinic, session_id, "participant_id")
    if refusal is not None:
        service.count(0, 1, {"consent": 1})
        raise refusal


def _role(value: object) -> Role:
    assert value in ROLES
    return value


def _clinic_of(caller: Caller) -> str:
    assert caller.clinic is not None  # acting_for binds a clinic or raises
    return caller.clinic


async def _clinic(service: IngestService, request: web.Request) -> str:
    """The clinic a request acts for: its token's, or an admin token's ``?clinic=``."""
    caller = await _caller(service, request)
    return _clinic_of(caller.acting_for(request.query.get("clinic")))


@requires("ingest", "admin")
async def delete_participant(request: web.Request) -> web.Response:
    service = request.app[INGEST]
    try:
        clinic = await _clinic(service, request)
        session_id = request.match_info["session_id"]
        service.sessions.session(clinic, session_id)  # 404 unless this clinic's and live
        named = request.match_info["participant_id"]
        participant_id = service.pseudonymize(named)
        if not await service.sessions.leave(clinic, session_id, participant_id):
            raise SessionError(404, "participant_id",
                               f"participant {named[:128]!r} is not present")
    except AccessDenied as denied:
        return denied.response()
    except SessionError as error:
        return error_response(error.status, error.field, error.message)
    return web.Response(status=204)


@requires("ingest", "admin")
async def post_end(request: web.Request) -> web.Response:
    """End a live WebRTC session here; a session fed over HTTP/WebSocket gets its
    ``session.end`` published too (at ``ts_ms`` from an optional JSON body, else now: give it
    when the platform's session clock is not epoch milliseconds)."""
    service = request.app[INGEST]
    try:
        clinic = await _clinic(service, request)
        session_id = _ident(request.match_info["session_id"], "session_id")
        if service.sessions.get(clinic, session_id) is not None:
            await service.sessions.end(clinic, session_id)
            await service.emitter.drain()
            return web.Response(status=204)
        ts_ms = service.now_ms()
        if request.can_read_body:
            body = await _offer_body(request)
            if "ts_ms" in body:
                ts_ms = body["ts_ms"]
        event = parse_event({"type": "session.end", "session_id": session_id, "ts_ms": ts_ms})
        await service.publisher.publish(
            [Outgoing("events", session_key(clinic, session_id),
                      orjson.dumps(event_dict(event)))])
    except AccessDenied as denied:
        return denied.response()
    except BodyTimeout as timeout:
        return timeout.response()
    except ValidationError as error:
        return error_response(422, error.field, error.reason)
    except PublishError as error:
        return error_response(503, "broker", str(error), {"Retry-After": "5"})
    return web.Response(status=204)


def event_dict(event: object) -> dict[str, Any]:
    assert isinstance(event, SessionEnd)
    return {"type": event.type, "session_id": event.session_id, "ts_ms": event.ts_ms}


def add_routes(app: web.Application) -> None:
    base = "/v1/sessions/{session_id}"
    app.router.add_post(base + "/participants/{participant_id}/offer", post_offer)
    app.router.add_delete(base + "/participants/{participant_id}", delete_participant)
    app.router.add_post(base + "/end", post_end)
