"""Endpoints of the report API (issue 5): session list and CSV export, a session's report and
timeline, a therapist's trend. The numbers are METRICS.md §10 reports, stored pseudonymized.

Handlers parse their parameters (services/reports/filters.py), run the synchronous store in a
worker thread and answer JSON. Tenancy is applied here: every store call gets the viewer's
clinic (None for admin), so another clinic's session is simply not found (404).
"""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from services.auth import json_response, public
from services.reports.auth import (
    STORE,
    ApiError,
    check_own_session,
    own_therapist,
    reads_reports,
    viewer,
)
from services.reports.filters import (
    REPORT_PARAMETERS,
    check_known,
    parse_context_n,
    parse_id,
    parse_session_query,
    parse_therapist,
    parse_timeline_params,
    parse_trend_params,
    resolve_clinic,
    scope_query,
    session_clinic,
)
from services.reports.openapi import openapi_document
from services.store.sessions import SUMMARY_FIELDS, SessionPage

CSV_COLUMNS = ("session_id", "clinic_id", "therapist", "started_at", "duration_s", "ended_by",
               "alert_types", *SUMMARY_FIELDS, "alerts")


def _not_found(what: str) -> ApiError:
    return ApiError(404, f"{what}: not found")


@reads_reports
async def list_sessions(request: web.Request) -> web.Response:
    """``GET /v1/sessions``: newest first, filtered, one page (a therapist token: only its
    own sessions; asking for another therapist's: an empty page)."""
    seen = viewer(request)
    query = parse_session_query(request.query, seen.clinic)
    scoped = scope_query(query, own_therapist(seen))
    page = SessionPage([], None) if scoped is None else await asyncio.to_thread(
        request.config_dict[STORE].list_sessions, scoped)
    body: dict[str, Any] = {"sessions": page.items, "count": len(page.items),
                            "limit": query.limit, "next_cursor": page.next_cursor, "next": None}
    if page.next_cursor is not None:
        params = {k: v for k, v in request.query.items() if k != "cursor"}
        params["cursor"] = page.next_cursor
        body["next"] = f"{request.path}?{urlencode(params)}"
    return json_response(body)


# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection"): an id
# chosen by a platform must never run as one in a clinic's spreadsheet.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value: Any) -> Any:
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value  # shown as text, as spreadsheets do for a leading apostrophe
    return value


def sessions_csv(items: list[dict[str, Any]]) -> str:
    """The session list as CSV: identity, times, alert types and the headline metrics."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in items:
        flat = {**item, **item["metrics"]}
        writer.writerow([_csv_value(flat.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()


@reads_reports
async def export_sessions(request: web.Request) -> web.Response:
    """``GET /v1/sessions.csv``: every session the filters select (no pagination)."""
    seen = viewer(request)
    scoped = scope_query(parse_session_query(request.query, seen.clinic), own_therapist(seen))
    items = [] if scoped is None else await asyncio.to_thread(
        request.config_dict[STORE].export_sessions, scoped)
    text = await asyncio.to_thread(sessions_csv, items)
    return web.Response(text=text, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="sessions.csv"'})


async def _clinic(request: web.Request, session_id: str) -> str | None:
    """The session's clinic: the token's, the one an admin named, or for an admin who named
    none the one clinic that has the id (None: no clinic has it)."""
    clinic = session_clinic(request.query, viewer(request).clinic)
    if clinic is not None:
        return clinic
    store = request.config_dict[STORE]
    return resolve_clinic(session_id, await asyncio.to_thread(store.clinics_of, session_id))


@reads_reports
async def session_report(request: web.Request) -> web.Response:
    """``GET /v1/sessions/{id}/report``: list entry, alert transitions, final report, and
    its metrics in context (``context``, issue 19; ``?context_n=``)."""
    session_id = parse_id("session_id", request.match_info["session_id"])
    check_known(request.query, REPORT_PARAMETERS)
    n = parse_context_n(request.query)
    clinic = await _clinic(request, session_id)
    store = request.config_dict[STORE]
    found = None if clinic is None else await asyncio.to_thread(
        store.get_report, session_id, clinic)
    if found is None or clinic is None:
        raise _not_found("session")
    check_own_session(viewer(request), found.get("therapist"))
    found["context"] = await asyncio.to_thread(store.session_context, session_id, clinic, n)
    return json_response(found)


@reads_reports
async def session_timeline(request: web.Request) -> web.Response:
    """``GET /v1/sessions/{id}/timeline``: classified events in decision order."""
    session_id = parse_id("session_id", request.match_info["session_id"])
    kinds, after, limit = parse_timeline_params(request.query)
    clinic = await _clinic(request, session_id)
    if clinic is not None and own_therapist(viewer(request)) is not None:
        stored, therapist = await asyncio.to_thread(
            request.config_dict[STORE].session_therapist, session_id, clinic)
        # A session without a stored report names no therapist yet: not a therapist's.
        check_own_session(viewer(request), therapist if stored else None)
    page = None if clinic is None else await asyncio.to_thread(
        lambda: request.config_dict[STORE].get_timeline(session_id, clinic, kinds=kinds,
                                                        after=after, limit=limit))
    if page is None:
        raise _not_found("session")
    return json_response({"session_id": session_id, "items": page.items, "total": page.total,
                          "count": len(page.items), "next_after": page.next_after})


@reads_reports
async def therapist_trend(request: web.Request) -> web.Response:
    """``GET /v1/therapists/{id}/trend``: headline metrics of the therapist's latest
    sessions, oldest first (``{id}`` is the therapist's pseudonym), and the therapist's
    medians beside the clinic's band (``context``, issue 19). A therapist token reads only
    its own trend (another's: ``404``)."""
    therapist = parse_therapist("therapist_id", request.match_info["therapist_id"])
    from_ms, until_ms, limit = parse_trend_params(request.query)
    n = parse_context_n(request.query)
    own = own_therapist(viewer(request))
    if own is not None and therapist != own:
        raise _not_found("therapist")
    store, clinic = request.config_dict[STORE], viewer(request).clinic
    points = await asyncio.to_thread(lambda: store.therapist_trend(
        therapist, clinic, from_ms=from_ms, until_ms=until_ms, limit=limit))
    if not points and (from_ms is not None or until_ms is not None):
        known = await asyncio.to_thread(lambda: store.therapist_trend(therapist, clinic,
                                                                      limit=1))
        if not known:
            raise _not_found("therapist")
    elif not points:
        raise _not_found("therapist")
    sessions = [{key: p[key] for key in ("session_id", "clinic_id", "started_at", "duration_s",
                                         "alert_types", "metrics")} for p in points]
    series = {name: [p["metrics"].get(name) for p in points]
              for name in (*SUMMARY_FIELDS, "alerts")}
    # An admin's trend may span clinics: the band is the clinic of the latest session's.
    band_clinic = clinic or (points[-1]["clinic_id"] if points else None)
    context = None if band_clinic is None else await asyncio.to_thread(
        store.therapist_context, therapist, band_clinic, n, until_ms)
    return json_response({"therapist": therapist, "count": len(sessions),
                          "sessions": sessions, "series": series, "context": context})


@public
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/v1/sessions", list_sessions)
    app.router.add_get("/v1/sessions.csv", export_sessions)
    app.router.add_get("/v1/sessions/{session_id}/report", session_report)
    app.router.add_get("/v1/sessions/{session_id}/timeline", session_timeline)
    app.router.add_get("/v1/therapists/{therapist_id}/trend", therapist_trend)
