"""The report API's OpenAPI 3.1 description, served at ``/openapi.json`` (issue 5).

Hand-written, next to the handlers it describes (services/reports/handlers.py); a component
test checks that every route is described and every described route exists. Metric fields are
METRICS.md §10; alert types §7; timeline kinds §2–§6.
"""

from __future__ import annotations

import copy
from typing import Any

from models.context import CONTEXT_METRICS, DEFAULT_CONTEXT_N, MAX_CONTEXT_N
from services.reports import openapi_clinic
from services.reports.filters import (
    ALERT_TYPES,
    DEFAULT_TREND,
    MAX_ID_LENGTH,
    MAX_TREND,
    TIMELINE_KINDS,
)
from services.store.audit import DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE
from services.store.context import CLIENT_FIELDS
from services.store.sessions import DEFAULT_PAGE, MAX_PAGE, SUMMARY_FIELDS
from services.store.timeline import DEFAULT_TIMELINE_PAGE, MAX_TIMELINE_PAGE

_DATE = ("ISO 8601 date (YYYY-MM-DD: the whole UTC day) or RFC 3339 date-time "
         "(YYYY-MM-DDTHH:MM:SSZ, or with an offset; UTC when it has none), years 1 to 9999")
# What services/reports/filters.py accepts, so that every schema-valid request is answered
# 2xx (schemathesis checks that; `make api-fuzz`).
_TIME_SCHEMA: dict[str, Any] = {"type": "string",
                                "anyOf": [{"format": "date"}, {"format": "date-time"}]}
_ID_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}
_KIND = "|".join(TIMELINE_KINDS)
_KINDS_PATTERN = f"^[ ,]*(?:{_KIND})(?:[ ]*,[ ,]*(?:{_KIND}))*[ ,]*$"


def _param(name: str, where: str, description: str, schema: dict[str, Any],
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "description": description, "required": required,
            "schema": schema}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(ref: str) -> dict[str, Any]:
    return {"description": "OK",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


_ERRORS = {
    "400": _error("a parameter is invalid; the message names it"),
    "401": _error("no bearer token, or an unknown or revoked one"),
    "403": _error("the token's scope cannot read reports (ingest), or a clinic token asked "
                  "for another clinic"),
    "503": _error("the report database is unavailable"),
}
_NOT_FOUND = _error("unknown, or belongs to another clinic")
_AMBIGUOUS = _error("admin tokens: several clinics have this session id; name one (clinic)")

_LIST_FILTERS = [
    _param("clinic", "query", "clinic id (admin tokens only; a clinic token reads its own)",
           _ID_SCHEMA),
    _param("therapist", "query", "therapist pseudonym: hex HMAC-SHA256 of the participant id",
           {"type": "string", "pattern": "^[0-9a-f]{64}$"}),
    _param("from", "query", f"sessions started at or after: {_DATE}", _TIME_SCHEMA),
    _param("to", "query", f"sessions started before the end of: {_DATE}; an empty range "
                          "(to before from) selects nothing", _TIME_SCHEMA),
    _param("alert", "query", "sessions with at least one alert of this type (METRICS.md §7)",
           {"type": "string", "enum": list(ALERT_TYPES)}),
]

_METRICS = {
    "type": "object",
    "description": "headline metrics of the final report (METRICS.md §6, §10); null when the "
                   "report has no value",
    "properties": {name: {"type": ["number", "null"]} for name in (*SUMMARY_FIELDS, "alerts")},
}

_SESSION = {
    "type": "object",
    "required": ["session_id", "clinic_id", "started_at", "duration_s", "metrics"],
    "properties": {
        "session_id": {"type": "string"},
        "clinic_id": {"type": "string"},
        "therapist": {"type": ["string", "null"], "description": "therapist pseudonym"},
        "started_at": {"type": "string", "format": "date-time",
                       "description": "session start (UTC); the session clock when it is a "
                                      "wall clock, else the receive time minus the duration"},
        "start_ms": {"type": "integer", "description": "start on the session clock (§1)"},
        "end_ms": {"type": "integer"},
        "duration_s": {"type": "number"},
        "ended_by": {"type": "string", "enum": ["session.end", "idle_timeout"]},
        "received_at": {"type": "string", "format": "date-time"},
        "alert_types": {"type": "array", "items": {"type": "string"}},
        "metrics": {"$ref": "#/components/schemas/Metrics"},
    },
}

# A session is (clinic, session id) (issue 16): admin tokens name the clinic.
_SESSION_CLINIC = _param("clinic", "query", "the session's clinic: a clinic token reads its "
                         "own (another is 403); an admin token names one, or gets the one "
                         "clinic that has the id (409 when several have it)", _ID_SCHEMA)

_SESSION_REF = {"$ref": "#/components/schemas/Session"}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Rapport report API",
        "version": "1",
        "description": (
            "Post-session reports of telehealth therapy sessions, measured from voice activity "
            "only (shared/METRICS.md). The metrics are proxies for conversational balance, not "
            "clinical judgements; thresholds are defaults to calibrate per clinic. Participant "
            "ids are pseudonymized (HMAC-SHA256 with the deployment's key); the mapping stays "
            "with the platform. Tokens come from `rapport tokens create --clinic C --scope "
            "reports` and see their clinic only; another clinic's ids answer 404."
        ),
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"],
                      "properties": {"error": {"type": "string",
                                               "description": "<field>: <reason>"},
                                     "field": {"type": "string"}}},
            "Metrics": _METRICS,
            "Session": _SESSION,
            "SessionPage": {
                "type": "object",
                "properties": {
                    "sessions": {"type": "array", "items": _SESSION_REF},
                    "count": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "next_cursor": {"type": ["string", "null"]},
                    "next": {"type": ["string", "null"], "description": "URL of the next page"},
                },
            },
            "Report": {
                "allOf": [{"$ref": "#/components/schemas/Session"}, {
                    "type": "object",
                    "properties": {
                        "alerts": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"alert": {"type": "string", "enum": list(ALERT_TYPES)},
                                           "cleared": {"type": "boolean"},
                                           "ts_ms": {"type": "integer"}}}},
                        "report": {"type": "object",
                                   "description": "the final report, METRICS.md §10"},
                    },
                }],
            },
            "Timeline": {
                "type": "object",
                "properties": {
                    "session_id": {"type": "string"},
                    "items": {"type": "array", "items": {
                        "type": "object", "required": ["n", "kind", "ts_ms"],
                        "properties": {"n": {"type": "integer"}, "kind": {"type": "string"},
                                       "ts_ms": {"type": "integer"}},
                        "description": "a classified event; ipu items have participant_id "
                                       "(pseudonym), role, start_ms, end_ms, backchannel"}},
                    "total": {"type": "integer"},
                    "count": {"type": "integer"},
                    "next_after": {"type": ["integer", "null"]},
                },
            },
            # --- the audit log (issue 19, point 6) ---
            "AuditEntry": {
                "type": "object",
                "required": ["id", "at", "clinic_id", "token_id", "scope", "action",
                             "target", "detail"],
                "properties": {
                    "id": {"type": "integer"},
                    "at": {"type": "string", "format": "date-time"},
                    "clinic_id": {"type": "string"},
                    "token_id": {"type": "string", "description": "the token's id, never "
                                                                  "the token"},
                    "scope": {"type": "string"},
                    "action": {"type": "string", "description": "read, change, erase or "
                                                                "purge, and the route"},
                    "target": {"type": "string", "description": "what was touched: the path "
                               "with its parameters (participants as pseudonyms) and filters"},
                    "detail": {"type": "object", "description": "method, status, format"},
                },
            },
            "AuditPage": {
                "type": "object",
                "properties": {
                    "clinic_id": {"type": "string"},
                    "entries": {"type": "array",
                                "items": {"$ref": "#/components/schemas/AuditEntry"}},
                    "count": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "next_cursor": {"type": ["string", "null"]},
                    "next": {"type": ["string", "null"]},
                },
            },
            "Trend": {
                "type": "object",
                "properties": {
                    "therapist": {"type": "string"},
                    "count": {"type": "integer"},
                    "sessions": {"type": "array", "items": _SESSION_REF},
                    "series": {"type": "object", "description": "metric name -> values, one "
                                                               "per session, oldest first"},
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/sessions": {"get": {
            "summary": "finished sessions, newest first, one page",
            "parameters": [*_LIST_FILTERS,
                           _param("limit", "query", f"page size (default {DEFAULT_PAGE})",
                                  {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                           _param("cursor", "query", "next_cursor of the previous page",
                                  {"type": "string"})],
            "responses": {"200": _ok("SessionPage"), **_ERRORS},
        }},
        "/v1/sessions.csv": {"get": {
            "summary": "every session the filters select, as CSV (headline metrics)",
            "parameters": _LIST_FILTERS,
            "responses": {"200": {"description": "CSV with a header row",
                                  "content": {"text/csv": {"schema": {"type": "string"}}}},
                          **_ERRORS},
        }},
        "/v1/sessions/{session_id}/report": {"get": {
            "summary": "a session's final report (METRICS.md §10) and alert transitions",
            "parameters": [_param("session_id", "path", "session id", {"type": "string"},
                                  True), _SESSION_CLINIC],
            "responses": {"200": _ok("Report"), "404": _NOT_FOUND, "409": _AMBIGUOUS, **_ERRORS},
        }},
        "/v1/sessions/{session_id}/timeline": {"get": {
            "summary": "a session's classified events (speech units, speaker changes, "
                       "interruptions, collisions, lapses) in decision order",
            "parameters": [
                _param("session_id", "path", "session id", {"type": "string"}, True),
                _SESSION_CLINIC,
                _param("kind", "query", "comma-separated kinds to keep",
                       {"type": "string", "pattern": _KINDS_PATTERN,
                        "examples": [",".join(TIMELINE_KINDS[:2])]}),
                _param("after", "query", "only items with n greater than this (paging)",
                       {"type": "integer", "minimum": -1, "maximum": 2**31 - 1}),
                _param("limit", "query", f"page size (default {DEFAULT_TIMELINE_PAGE})",
                       {"type": "integer", "minimum": 1, "maximum": MAX_TIMELINE_PAGE}),
            ],
            "responses": {"200": _ok("Timeline"), "404": _NOT_FOUND, "409": _AMBIGUOUS, **_ERRORS},
        }},
        "/v1/therapists/{therapist_id}/trend": {"get": {
            "summary": "headline metrics over a therapist's latest sessions, oldest first",
            "parameters": [
                _param("therapist_id", "path", "therapist pseudonym",
                       {"type": "string", "pattern": "^[0-9a-f]{64}$"}, True),
                _param("from", "query", _DATE, _TIME_SCHEMA),
                _param("to", "query", f"{_DATE}; to before from selects nothing", _TIME_SCHEMA),
                _param("limit", "query", f"most recent sessions (default {DEFAULT_TREND})",
                       {"type": "integer", "minimum": 1, "maximum": MAX_TREND}),
            ],
            "responses": {"200": _ok("Trend"), "404": _NOT_FOUND, **_ERRORS},
        }},
        # --- the audit log (issue 19, point 6; services/reports/audit_api.py) ---
        "/v1/audit": {"get": {
            "summary": "one clinic's audit log, newest first (clinic-admin and admin tokens)",
            "parameters": [
                _param("clinic", "query", "the clinic: an admin token must name it (400 "
                       "without); a clinic-admin token reads its own (another is 403)",
                       _ID_SCHEMA, True),
                _param("from", "query", f"entries at or after: {_DATE}", _TIME_SCHEMA),
                _param("to", "query", f"entries before the end of: {_DATE}", _TIME_SCHEMA),
                _param("limit", "query", f"page size (default {DEFAULT_AUDIT_PAGE}; JSON only)",
                       {"type": "integer", "minimum": 1, "maximum": MAX_AUDIT_PAGE}),
                _param("cursor", "query", "next_cursor of the previous page (or the CSV's "
                                          "X-Next-Cursor header)", {"type": "string"}),
                _param("format", "query", "json (default) or csv (every entry of the window "
                                          "with a header row, at most 100000)",
                       {"type": "string", "enum": ["json", "csv"]}),
            ],
            "responses": {"200": {"description": "OK", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AuditPage"}},
                "text/csv": {"schema": {"type": "string"}}}}, **_ERRORS},
        }},
        "/openapi.json": {"get": {
            "summary": "this document", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {}}}},
        }},
    },
}

# --- issue 19 (i19-ctx): numbers in context, clients over time, therapist scope -------------

_CONTEXT_N = _param("context_n", "query", "numbers in context: each therapist's latest "
                    f"sessions counted (default {DEFAULT_CONTEXT_N})",
                    {"type": "integer", "minimum": 1, "maximum": MAX_CONTEXT_N})
_METRIC_CONTEXT = {
    "type": "object",
    "properties": {
        "value": {"type": ["number", "null"], "description": "this session's (null on a trend)"},
        "own_median": {"type": ["number", "null"],
                       "description": "the therapist's median over own_sessions sessions"},
        "own_sessions": {"type": "integer"},
        "band": {"type": ["object", "null"],
                 "description": "25th-75th percentile (linear) of the clinic's per-therapist "
                                "medians; null when fewer than 5 therapists contribute",
                 "properties": {"p25": {"type": "number"}, "p75": {"type": "number"}}},
        "band_therapists": {"type": "integer"},
        "band_reason": {"type": "string"},
    },
}
_schemas = _DOCUMENT["components"]["schemas"]
_schemas["Context"] = {
    "type": "object",
    "description": "metrics beside the therapist's own median and the clinic band (issue 19)",
    "properties": {
        "n": {"type": "integer"}, "therapist": {"type": ["string", "null"]},
        "clinic_id": {"type": "string"},
        "before": {"type": ["string", "null"], "format": "date-time"},
        "min_band_therapists": {"type": "integer"},
        "metrics": {"type": "object", "properties": {name: _METRIC_CONTEXT
                                                     for name in CONTEXT_METRICS}},
    },
}
_schemas["Report"]["allOf"][1]["properties"]["context"] = {
    "anyOf": [{"$ref": "#/components/schemas/Context"}, {"type": "null"}]}
_schemas["Trend"]["properties"]["context"] = {
    "anyOf": [{"$ref": "#/components/schemas/Context"}, {"type": "null"}]}
_schemas["ClientSessions"] = {
    "type": "object",
    "properties": {
        "client": {"type": "string", "description": "the client's pseudonym"},
        "clinic_id": {"type": "string"},
        "count": {"type": "integer"},
        "sessions": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "session_id": {"type": "string"}, "clinic_id": {"type": "string"},
                "therapist": {"type": ["string", "null"]},
                "started_at": {"type": "string", "format": "date-time"},
                "duration_s": {"type": "number"},
                "client": {"type": "object", "properties": {
                    name: {"type": ["number", "null"]} for name in CLIENT_FIELDS}},
            }}},
        "series": {"type": "object", "description": "metric name -> values, oldest first"},
    },
}
_paths = _DOCUMENT["paths"]
_paths["/v1/sessions/{session_id}/report"]["get"]["parameters"].append(_CONTEXT_N)
_paths["/v1/therapists/{therapist_id}/trend"]["get"]["parameters"].append(_CONTEXT_N)
_paths["/v1/clients/{participant_id}/sessions"] = {"get": {
    "summary": "a client's sessions over time, oldest first: the client's talk share, longest "
               "uninterrupted stretch, interruptions suffered, response latency (issue 19); a "
               "therapist token sees only its own sessions with the client",
    "parameters": [
        _param("participant_id", "path", "the platform's participant id of the client (or its "
               "pseudonym)", _ID_SCHEMA, True),
        _param("clinic", "query", "the client's clinic: required for admin tokens (400 "
               "without); a clinic token reads its own (another is 403)", _ID_SCHEMA),
        _param("from", "query", _DATE, _TIME_SCHEMA),
        _param("to", "query", f"{_DATE}; to before from selects nothing", _TIME_SCHEMA),
        _param("limit", "query", f"most recent sessions (default {DEFAULT_TREND})",
               {"type": "integer", "minimum": 1, "maximum": MAX_TREND}),
    ],
    "responses": {"200": _ok("ClientSessions"), "404": _NOT_FOUND, **_ERRORS},
}}

# --- issue 19: the clinic's records (directory, consent, policy, erasure) ----------------------
_DOCUMENT["components"]["schemas"].update(openapi_clinic.SCHEMAS)
_DOCUMENT["paths"].update(openapi_clinic.PATHS)


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the description (callers may not change the module's)."""
    return copy.deepcopy(_DOCUMENT)
