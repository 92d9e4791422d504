"""Clients over time (issue 19 point 3): ``GET /v1/clients/{participant_id}/sessions`` and the
page ``/clients/{participant_id}``.

``{participant_id}`` is the platform's id of the client (or its pseudonym); the store keeps
and matches only its pseudonym (``session_participants`` rows of role ``client``, written
from each report's roster). Each session gives the client role's METRICS.md §10 numbers:
``talk_share``, ``longest_monologue_s`` (the longest uninterrupted stretch), ``interrupted``
(successful interruptions the client suffered) and ``response_latency_median_ms``.

Scopes: ``reports`` and ``clinic-admin`` read their clinic's clients; ``admin`` names the
clinic (``?clinic=``, else ``400`` naming ``clinic``); a ``therapist`` token sees only its own
sessions with that client (none: ``404``). A client unknown to the clinic, or another
clinic's, is ``404``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from services.auth import json_response
from services.reports.auth import (
    STORE,
    ApiError,
    Viewer,
    own_therapist,
    reads_reports,
    reads_reports_page,
    viewer,
)
from services.reports.charts import small_multiple
from services.reports.filters import (
    CLIENT_PARAMETERS,
    DEFAULT_TREND,
    MAX_TREND,
    check_known,
    client_clinic,
    date_range,
    parse_id,
    parse_int,
)
from services.reports.html import clock, esc, fmt, page, percent, session_href, therapist_href
from services.reports.names import name_html, page_labels
from services.store.context import CLIENT_FIELDS

CLIENT_LABELS = {
    "talk_share": "client talk share",
    "longest_monologue_s": "longest uninterrupted stretch (s)",
    "interrupted": "interruptions suffered",
    "response_latency_median_ms": "client response latency, median (ms)",
}


async def _client_sessions(request: web.Request, params: dict[str, str]
                           ) -> tuple[str, str, list[dict[str, Any]]]:
    """(clinic, client pseudonym, sessions) or ``404``."""
    seen = viewer(request)
    participant = parse_id("participant_id", request.match_info["participant_id"])
    check_known(params, CLIENT_PARAMETERS)
    clinic = client_clinic(params, seen.clinic)
    from_ms, until_ms = date_range(params)
    limit = parse_int("limit", params["limit"], lowest=1, highest=MAX_TREND) \
        if "limit" in params else DEFAULT_TREND
    store = request.config_dict[STORE]
    found = await asyncio.to_thread(lambda: store.client_sessions(
        participant, clinic, therapist=own_therapist(seen), from_ms=from_ms,
        until_ms=until_ms, limit=limit))
    # A therapist who never saw this client learns nothing more than of an unknown one.
    if found is None or (not found and own_therapist(seen) is not None):
        raise ApiError(404, "client: not found")
    return clinic, store.pseudonymize(participant), found


@reads_reports
async def client_sessions_api(request: web.Request) -> web.Response:
    """``GET /v1/clients/{participant_id}/sessions``: the client's sessions, oldest first."""
    params = dict(request.query)
    clinic, client, sessions = await _client_sessions(request, params)
    series = {name: [s["client"][name] for s in sessions] for name in CLIENT_FIELDS}
    return json_response({"client": client, "clinic_id": clinic, "count": len(sessions),
                          "sessions": sessions, "series": series})


def client_html(client: str, sessions: list[dict[str, Any]],
                labels: dict[str, str] | None = None) -> str:
    """The body of a client's page: one small multiple per metric, then the sessions."""
    multiples = "".join(
        f"<div><strong>{esc(label)}</strong><br>"
        + small_multiple(label, [(s["session_id"], s["clinic_id"], s["started_at"][:10],
                                  s["client"][name]) for s in sessions])
        + "</div>" for name, label in CLIENT_LABELS.items())
    rows = "".join(
        f"<tr><td>{esc(s['started_at'][:16].replace('T', ' '))}</td>"
        f'<td><a href="{esc(session_href(s["session_id"], s["clinic_id"]))}">'
        f"{esc(s['session_id'])}</a></td>"
        f"<td>{_therapist(s.get('therapist'), labels)}</td>"
        f'<td class="num">{clock(s["duration_s"] * 1000)}</td>'
        f'<td class="num">{percent(s["client"]["talk_share"])}</td>'
        f'<td class="num">{fmt(s["client"]["longest_monologue_s"], 1)}</td>'
        f'<td class="num">{fmt(s["client"]["interrupted"], 0)}</td>'
        f'<td class="num">{fmt(s["client"]["response_latency_median_ms"], 0)}</td></tr>'
        for s in reversed(sessions))
    table = ("<table><thead><tr><th>started (UTC)</th><th>session</th><th>therapist</th>"
             '<th class="num">length</th><th class="num">talk share</th><th class="num">'
             'longest stretch (s)</th><th class="num">interrupted</th><th class="num">'
             f"latency median (ms)</th></tr></thead><tbody>{rows}</tbody></table>"
             if sessions else '<p class="muted">No sessions in this range.</p>')
    return (f"<h1>Client {name_html(client, labels)}</h1>"
            f'<p class="muted">{len(sessions)} sessions, oldest first in each plot; each dot '
            "links to its session. The client's own share of the talk, longest stretch "
            "without being interrupted, interruptions suffered and response latency.</p>"
            f'<div class="grid" id="client-multiples">{multiples}</div><h2>Sessions</h2>'
            f'<section class="card">{table}</section>')


def _therapist(pseudonym: Any, labels: dict[str, str] | None) -> str:
    if not pseudonym:
        return "—"
    return f'<a href="{esc(therapist_href(pseudonym))}">{name_html(pseudonym, labels)}</a>'


def _who(seen: Viewer) -> str:
    return "admin (every clinic)" if seen.clinic is None else f"clinic {seen.clinic}"


@reads_reports_page
async def client_page(request: web.Request) -> web.Response:
    """``/clients/{participant_id}``: the client's sessions over time."""
    seen = viewer(request)
    params = {k: v for k, v in request.query.items() if v != ""}
    clinic, client, sessions = await _client_sessions(request, params)
    labels = await page_labels(request.config_dict[STORE], seen, clinic)
    return page("Client", client_html(client, sessions, labels), who=_who(seen), scope=seen.scope)


def add_client_routes(app: web.Application, *, pages: bool = True) -> None:
    app.router.add_get("/v1/clients/{participant_id}/sessions", client_sessions_api)
    if pages:
        app.router.add_get("/clients/{participant_id}", client_page)
