"""OpenAPI description of the clinic's records routes (issue 19: directory, consent, policy,
erasure; services/reports/governance.py), merged into ``/openapi.json`` by
services/reports/openapi.py."""

from __future__ import annotations

from typing import Any

from services.reports.filters import MAX_ID_LENGTH
from services.store.labels import MAX_LABEL_LENGTH
from services.store.policies import MAX_DAYS


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(ref: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{ref}"}}}}


_ERRORS = {
    "400": _error("a parameter or body field is invalid (the message names it), or an admin "
                  "token did not name the clinic (?clinic=)"),
    "401": _error("no bearer token, or an unknown or revoked one"),
    "403": _error("the token's scope does not administer a clinic (only clinic-admin and "
                  "admin do), or a clinic-admin token named another clinic"),
    "503": _error("the report database is unavailable"),
}
_NOT_FOUND = _error("the clinic holds nothing of this participant (another clinic's "
                    "participants are unknown here, exactly like missing ones)")
_CLINIC = {"name": "clinic", "in": "query", "required": False,
           "description": "the clinic administered: required with an admin token; a "
                          "clinic-admin token administers its own (naming another is 403)",
           "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}}
_PARTICIPANT = {"name": "participant_id", "in": "path", "required": True,
                "description": "the platform's participant id (answers name it only by its "
                               "pseudonym)",
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}}
_TIME = {"type": "string", "format": "date-time"}
_DAYS = {"type": "integer", "minimum": 1, "maximum": MAX_DAYS}

SCHEMAS: dict[str, Any] = {
    "DirectoryEntry": {
        "type": "object", "required": ["pseudonym", "role", "label"],
        "properties": {"pseudonym": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                       "role": {"type": "string", "enum": ["therapist", "client"]},
                       "label": {"type": ["string", "null"],
                                 "description": "null when it does not open with the "
                                                "label key"},
                       "updated_at": _TIME, "updated_by": {"type": "string"}}},
    "DirectoryEntryInput": {
        "type": "object", "required": ["role", "label"], "additionalProperties": False,
        "properties": {"role": {"type": "string", "enum": ["therapist", "client"]},
                       "label": {"type": "string", "minLength": 1,
                                 "maxLength": MAX_LABEL_LENGTH,
                                 "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*\\S[^\\x00-\\x1f"
                                            "\\x7f-\\x9f]*$",
                                 "description": "display label shown only to this clinic; "
                                                "stored encrypted"}}},
    "Directory": {
        "type": "object",
        "properties": {"clinic_id": {"type": "string"}, "count": {"type": "integer"},
                       "entries": {"type": "array",
                                   "items": {"$ref": "#/components/schemas/DirectoryEntry"}}}},
    "Erasure": {
        "type": "object", "required": ["receipt", "role", "counts"],
        "properties": {
            "receipt": {"type": "string", "description": "the id the audit log's record of "
                                                         "this erasure names"},
            "role": {"type": "string", "enum": ["client", "therapist"]},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"},
                       "description": "rows removed: sessions, timeline_items, alerts, "
                                      "session_participants, directory, consents, tokens; "
                                      "audit_redacted: audit entries whose target no longer "
                                      "names the pseudonym"}}},
    "Consent": {
        "type": "object", "required": ["pseudonym", "analysis", "recorded_at", "recorded_by"],
        "properties": {"pseudonym": {"type": "string"}, "analysis": {"type": "boolean"},
                       "recorded_at": _TIME,
                       "recorded_by": {"type": "string", "description": "token id"},
                       "erasure": {"oneOf": [{"type": "null"},
                                             {"$ref": "#/components/schemas/Erasure"}],
                                   "description": "PUT only: revoking consent erased the "
                                                  "client's data"}}},
    "ConsentInput": {
        "type": "object", "required": ["analysis"], "additionalProperties": False,
        "properties": {"analysis": {"type": "boolean",
                                    "description": "false revokes consent and erases the "
                                                   "client's stored sessions"}}},
    "Policy": {
        "type": "object",
        "properties": {"clinic_id": {"type": "string"}, "retention_days": _DAYS,
                       "audit_retention_days": _DAYS, "require_consent": {"type": "boolean"},
                       "explicit": {"type": "boolean",
                                    "description": "false: the clinic set nothing; defaults"},
                       "updated_at": {"type": ["string", "null"], "format": "date-time"},
                       "updated_by": {"type": ["string", "null"]}}},
    "PolicyInput": {
        "type": "object", "additionalProperties": False,
        "properties": {"retention_days": _DAYS, "audit_retention_days": _DAYS,
                       "require_consent": {"type": "boolean"}}},
}

PATHS: dict[str, Any] = {
    "/v1/directory": {"get": {
        "summary": "the clinic's directory of display labels (clinic-admin; admin with "
                   "?clinic=)",
        "parameters": [_CLINIC],
        "responses": {"200": _ok("Directory"), **_ERRORS}}},
    "/v1/directory/{participant_id}": {
        "put": {"summary": "give a therapist or client a display label",
                "parameters": [_PARTICIPANT, _CLINIC], "requestBody": _body("DirectoryEntryInput"),
                "responses": {"200": _ok("DirectoryEntry", "replaced"),
                              "201": _ok("DirectoryEntry", "created"), **_ERRORS}},
        "delete": {"summary": "remove a participant's display label",
                   "parameters": [_PARTICIPANT, _CLINIC],
                   "responses": {"204": {"description": "removed"}, "404": _NOT_FOUND,
                                 **_ERRORS}}},
    "/v1/clients/{participant_id}/consent": {
        "get": {"summary": "the client's recorded consent to analysis",
                "parameters": [_PARTICIPANT, _CLINIC],
                "responses": {"200": _ok("Consent"), "404": _NOT_FOUND, **_ERRORS}},
        "put": {"summary": "record consent to analysis; false revokes it and erases the "
                           "client's data (the refusal itself is kept)",
                "parameters": [_PARTICIPANT, _CLINIC], "requestBody": _body("ConsentInput"),
                "responses": {"200": _ok("Consent"), **_ERRORS}}},
    "/v1/clinic/policy": {
        "get": {"summary": "the clinic's retention and consent policy",
                "parameters": [_CLINIC], "responses": {"200": _ok("Policy"), **_ERRORS}},
        "put": {"summary": "change the fields given (retention_days, audit_retention_days, "
                           "require_consent)",
                "parameters": [_CLINIC], "requestBody": _body("PolicyInput"),
                "responses": {"200": _ok("Policy"), **_ERRORS}}},
    "/v1/clients/{participant_id}": {"delete": {
        "summary": "erase a client: every session they took part in, its timeline and "
                   "alerts, their directory entry, consent record and tokens; audited",
        "parameters": [_PARTICIPANT, _CLINIC],
        "responses": {"200": _ok("Erasure"), "404": _NOT_FOUND, **_ERRORS}}},
    "/v1/therapists/{participant_id}": {"delete": {
        "summary": "erase a therapist: every session they led, their directory entry and "
                   "tokens; audited",
        "parameters": [_PARTICIPANT, _CLINIC],
        "responses": {"200": _ok("Erasure"), "404": _NOT_FOUND, **_ERRORS}}},
}
