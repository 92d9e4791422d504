"""The clinic's own records over HTTP (issue 19, points 1, 4 and 5): directory, consent, policy
and erasure.

Routes (JSON; scope ``clinic-admin`` for its own clinic, ``admin`` naming the clinic with
``?clinic=C``; any other scope ``403``; no token ``401``):

- ``GET /v1/directory``; ``PUT /v1/directory/{participant_id}`` ``{"role", "label"}`` (201 a
  new entry, 200 a replaced one); ``DELETE /v1/directory/{participant_id}``;
- ``GET``/``PUT /v1/clients/{participant_id}/consent`` ``{"analysis": bool}``; revoking
  (``false``) erases the client's data (services/store/erasure.py) and keeps the refusal;
- ``GET``/``PUT /v1/clinic/policy`` ``{"retention_days", "audit_retention_days",
  "require_consent"}`` (a PUT may give any of them);
- ``DELETE /v1/clients/{participant_id}``, ``DELETE /v1/therapists/{participant_id}``: erase;
  ``200`` with the receipt and counts, ``404`` when the clinic holds nothing of theirs.

Participants are the platform's ids in the URL; answers name them by pseudonym only. Another
clinic's participant is simply unknown here (``404``), like a missing one. These routes do
not audit themselves: the audit middleware (services/reports/audit_log.py) records every token
route (a revocation of consent marks the pseudonym it erased, :data:`AUDIT_ERASED`).
Display labels are answered to the clinic's own admins and never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from models.errors import ValidationError
from services.auth import ApiError, json_response, requires, viewer
from services.reports.audit_log import AUDIT_ERASED
from services.reports.auth import STORE
from services.reports.filters import parse_id
from services.store.directory import ConsentRecord, Label, check_role
from services.store.erasure import Erasure, NothingToErase
from services.store.labels import check_label
from services.store.policies import Policy, check_days

ADMIN_SCOPES = ("clinic-admin", "admin")
administers = requires(*ADMIN_SCOPES)
administers_page = requires(*ADMIN_SCOPES, page=True)

log = logging.getLogger(__name__)


def admin_clinic(request: web.Request) -> str:
    """The clinic administered: a clinic-admin token's own (``?clinic=`` may repeat it), or
    the one an admin names with ``?clinic=`` (``400`` naming ``clinic`` without it)."""
    own = viewer(request).clinic
    asked = request.query.get("clinic")
    if own is not None:
        if asked is not None and asked != own:
            raise ApiError(403, "clinic: only an admin token may choose the clinic; "
                                "a clinic-admin token administers its own clinic")
        return own
    if asked is None:
        raise ValidationError("clinic", "an admin token must name the clinic (?clinic=C)")
    return parse_id("clinic", asked)


def _known_params(request: web.Request) -> None:
    for name in request.query:
        if name != "clinic":
            raise ValidationError(name, "unknown parameter (known: clinic)")


async def json_object(request: web.Request, fields: frozenset[str]) -> dict[str, Any]:
    """The body as a JSON object with only ``fields`` (else ``400`` naming what is wrong)."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as error:
        raise ValidationError("body", f"not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    for name in body:
        if name not in fields:
            raise ValidationError(str(name)[:100], "unknown field (known: "
                                                   f"{', '.join(sorted(fields))})")
    return body


def _participant(request: web.Request) -> str:
    return parse_id("participant_id", request.match_info["participant_id"])


async def _run(request: web.Request, call: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(lambda: call(*args, **kwargs))


def iso(moment: datetime) -> str:
    """RFC 3339 UTC (SQLite hands back naive datetimes: they are UTC, as the store wrote)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_json(entry: Label) -> dict[str, Any]:
    return {"pseudonym": entry.participant, "role": entry.role, "label": entry.label,
            "updated_at": iso(entry.updated_at), "updated_by": entry.updated_by}


def consent_json(record: ConsentRecord) -> dict[str, Any]:
    return {"pseudonym": record.participant, "analysis": record.analysis,
            "recorded_at": iso(record.recorded_at), "recorded_by": record.recorded_by}


def policy_json(policy: Policy) -> dict[str, Any]:
    return {"clinic_id": policy.clinic_id, "retention_days": policy.retention_days,
            "audit_retention_days": policy.audit_retention_days,
            "require_consent": policy.require_consent, "explicit": policy.explicit,
            "updated_at": iso(policy.updated_at) if policy.updated_at else None,
            "updated_by": policy.updated_by}


def erasure_json(erasure: Erasure) -> dict[str, Any]:
    return erasure.to_dict()


# --- directory --------------------------------------------------------------------------------


@administers
async def list_directory(request: web.Request) -> web.Response:
    """``GET /v1/directory``: the clinic's entries, therapists first."""
    clinic = admin_clinic(request)
    _known_params(request)
    entries = await _run(request, request.config_dict[STORE].list_labels, clinic)
    return json_response({"clinic_id": clinic, "entries": [entry_json(e) for e in entries],
                          "count": len(entries)})


@administers
async def put_directory(request: web.Request) -> web.Response:
    """``PUT /v1/directory/{participant_id}``: set a display label (201 new, 200 replaced)."""
    clinic = admin_clinic(request)
    _known_params(request)
    participant = _participant(request)
    body = await json_object(request, frozenset({"role", "label"}))
    if "role" not in body:
        raise ValidationError("role", "is required (therapist or client)")
    if "label" not in body:
        raise ValidationError("label", "is required")
    role, label = check_role(body["role"]), check_label(body["label"])
    store, token = request.config_dict[STORE], viewer(request).token_id
    new = await _run(request, store.set_label, clinic, participant, role, label, token)
    entry = await _run(request, store.label_of, clinic, participant)
    assert entry is not None  # just written
    log.info("directory entry of %s set in clinic %s by token %s", entry.participant, clinic,
             token)
    return json_response(entry_json(entry), status=201 if new else 200)


@administers
async def delete_directory(request: web.Request) -> web.Response:
    """``DELETE /v1/directory/{participant_id}``: 204, or 404 when the clinic has none."""
    clinic = admin_clinic(request)
    _known_params(request)
    participant = _participant(request)
    if not await _run(request, request.config_dict[STORE].delete_label, clinic, participant):
        raise ApiError(404, "participant_id: not in the directory")
    return web.Response(status=204)


# --- consent ----------------------------------------------------------------------------------


@administers
async def get_consent(request: web.Request) -> web.Response:
    """``GET /v1/clients/{participant_id}/consent``: the latest record, or 404."""
    clinic = admin_clinic(request)
    _known_params(request)
    record = await _run(request, request.config_dict[STORE].consent_of, clinic,
                        _participant(request))
    if record is None:
        raise ApiError(404, "participant_id: no consent recorded")
    return json_response(consent_json(record))


@administers
async def put_consent(request: web.Request) -> web.Response:
    """``PUT /v1/clients/{participant_id}/consent`` ``{"analysis": bool}``; ``false`` erases
    the client's data (the answer's ``erasure`` holds the receipt and counts)."""
    clinic = admin_clinic(request)
    _known_params(request)
    participant = _participant(request)
    body = await json_object(request, frozenset({"analysis"}))
    analysis = body.get("analysis")
    if not isinstance(analysis, bool):
        raise ValidationError("analysis", "is required: true or false")
    seen = viewer(request)
    record, erased = await _run(request, request.config_dict[STORE].record_consent, clinic,
                                participant, analysis, token_id=seen.token_id,
                                scope=seen.scope)
    answer = consent_json(record)
    answer["erasure"] = None if erased is None else erasure_json(erased)
    if erased is not None:  # this request's own audit entry must not name whom it erased
        request[AUDIT_ERASED] = record.participant
    return json_response(answer)


# --- policy -----------------------------------------------------------------------------------

POLICY_FIELDS = frozenset({"retention_days", "audit_retention_days", "require_consent"})


@administers
async def get_policy(request: web.Request) -> web.Response:
    """``GET /v1/clinic/policy``: the clinic's policy (the defaults when it set none)."""
    clinic = admin_clinic(request)
    _known_params(request)
    policy = await _run(request, request.config_dict[STORE].get_policy, clinic)
    return json_response(policy_json(policy))


def parse_policy(body: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in ("retention_days", "audit_retention_days"):
        if name in body:
            changes[name] = check_days(name, body[name])
    if "require_consent" in body:
        if not isinstance(body["require_consent"], bool):
            raise ValidationError("require_consent", "must be true or false")
        changes["require_consent"] = body["require_consent"]
    return changes


@administers
async def put_policy(request: web.Request) -> web.Response:
    """``PUT /v1/clinic/policy``: change the fields given, keep the others."""
    clinic = admin_clinic(request)
    _known_params(request)
    changes = parse_policy(await json_object(request, POLICY_FIELDS))
    policy = await _run(request, request.config_dict[STORE].set_policy, clinic,
                        viewer(request).token_id, **changes)
    return json_response(policy_json(policy))


# --- erasure ----------------------------------------------------------------------------------


async def _erase(request: web.Request, role: str) -> web.Response:
    clinic = admin_clinic(request)
    _known_params(request)
    participant = _participant(request)
    seen = viewer(request)
    try:
        erased = await _run(request, request.config_dict[STORE].erase, clinic, participant,
                            role, token_id=seen.token_id, scope=seen.scope, missing_ok=False)
    except NothingToErase:
        raise ApiError(404, f"{role}: not found") from None
    return json_response(erasure_json(erased))


@administers
async def erase_client(request: web.Request) -> web.Response:
    """``DELETE /v1/clients/{participant_id}``: erase a client (receipt and counts)."""
    return await _erase(request, "client")


@administers
async def erase_therapist(request: web.Request) -> web.Response:
    """``DELETE /v1/therapists/{participant_id}``: erase a therapist (receipt and counts)."""
    return await _erase(request, "therapist")


def add_governance_routes(app: web.Application) -> None:
    app.router.add_get("/v1/directory", list_directory)
    app.router.add_put("/v1/directory/{participant_id}", put_directory)
    app.router.add_delete("/v1/directory/{participant_id}", delete_directory)
    app.router.add_get("/v1/clients/{participant_id}/consent", get_consent)
    app.router.add_put("/v1/clients/{participant_id}/consent", put_consent)
    app.router.add_get("/v1/clinic/policy", get_policy)
    app.router.add_put("/v1/clinic/policy", put_policy)
    app.router.add_delete("/v1/clients/{participant_id}", erase_client)
    app.router.add_delete("/v1/therapists/{participant_id}", erase_therapist)
