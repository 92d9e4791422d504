"""Reading the audit log (issue 19, point 6): ``GET /v1/audit`` and the ``/audit`` page.

For ``clinic-admin`` tokens (their clinic) and ``admin`` tokens (``?clinic=`` required, 400
naming ``clinic`` without it); ``reports`` and ``therapist`` tokens get ``403``. Entries come
newest first (``at`` descending); ``from``/``to`` select ``from <= at < to`` (a date as
``to`` is the end of that day, as on the session list). JSON answers a page (``limit``, at
most 1000, default 100; ``next_cursor``); ``format=csv`` answers every entry of the window with
a header row, at most :data:`MAX_EXPORT` rows, and an ``X-Next-Cursor`` header to continue when
more remain. Nothing here changes an entry (the log is append-only), and reading it is itself
audited, like every other read (services/reports/audit_log.py).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from models.errors import ValidationError
from services.auth import json_response, requires, viewer
from services.reports.auth import STORE
from services.reports.filters import check_known, date_range, parse_id, parse_int, session_clinic
from services.reports.html import esc, page, query_href
from services.store.audit import DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE, AuditCursor, AuditQuery

AUDIT_SCOPES = ("clinic-admin", "admin")
AUDIT_PARAMETERS = frozenset({"clinic", "from", "to", "limit", "cursor", "format"})
CSV_COLUMNS = ("id", "at", "clinic_id", "token_id", "scope", "action", "target", "method",
               "status", "format")
MAX_EXPORT = 100_000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # spreadsheet formulas (handlers.py)


def _moment(epoch_ms: int | None) -> datetime | None:
    if epoch_ms is None:
        return None
    try:
        return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):  # the end of year 9999
        return datetime.max.replace(tzinfo=timezone.utc)


def parse_audit_query(params: Mapping[str, str], viewer_clinic: str | None) -> AuditQuery:
    """The clinic (the token's, or an admin's ``clinic``), window, page size and cursor."""
    check_known(params, AUDIT_PARAMETERS)
    clinic = session_clinic(params, viewer_clinic)
    if clinic is None:
        raise ValidationError("clinic", "an admin token names the clinic whose audit log it "
                                        "reads (?clinic=)")
    from_ms, until_ms = date_range(params)
    limit = parse_int("limit", params["limit"], lowest=1, highest=MAX_AUDIT_PAGE) \
        if "limit" in params else DEFAULT_AUDIT_PAGE
    cursor = AuditCursor.decode(params["cursor"]) if "cursor" in params else None
    if params.get("format", "json") not in ("json", "csv"):
        raise ValidationError("format", "must be json or csv")
    return AuditQuery(parse_id("clinic", clinic), _moment(from_ms), _moment(until_ms), limit,
                      cursor)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def entries_csv(items: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in items:
        flat = {**item, **{k: item["detail"].get(k) for k in ("method", "status", "format")}}
        writer.writerow([_cell(flat.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()


async def _csv(request: web.Request, query: AuditQuery) -> web.Response:
    store = request.config_dict[STORE]
    found = await asyncio.to_thread(store.export_audit, query, MAX_EXPORT)
    text = await asyncio.to_thread(entries_csv, found.items)
    headers = {"Content-Disposition": 'attachment; filename="audit.csv"'}
    if found.next_cursor is not None:
        headers["X-Next-Cursor"] = found.next_cursor
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers=headers)


@requires(*AUDIT_SCOPES)
async def audit_entries(request: web.Request) -> web.Response:
    """``GET /v1/audit``: one clinic's audit entries, newest first (JSON page or CSV)."""
    query = parse_audit_query(request.query, viewer(request).clinic)
    if request.query.get("format") == "csv":
        return await _csv(request, query)
    found = await asyncio.to_thread(request.config_dict[STORE].audit_entries, query)
    body: dict[str, Any] = {"clinic_id": query.clinic, "entries": found.items,
                            "count": len(found.items), "limit": query.limit,
                            "next_cursor": found.next_cursor, "next": None}
    if found.next_cursor is not None:
        params = {k: v for k, v in request.query.items() if k != "cursor"}
        params["cursor"] = found.next_cursor
        body["next"] = f"{request.path}?{urlencode(params)}"
    return json_response(body)


def _row(item: dict[str, Any]) -> str:
    return (f"<tr><td>{esc(item['at'][:19].replace('T', ' '))}</td>"
            f"<td><code>{esc(item['token_id'])}</code></td><td>{esc(item['scope'])}</td>"
            f"<td>{esc(item['action'])}</td><td><code>{esc(item['target'])}</code></td>"
            f'<td class="num">{esc(item["detail"].get("status", ""))}</td></tr>')


def audit_html(query: AuditQuery, items: list[dict[str, Any]], params: dict[str, str],
               next_cursor: str | None) -> str:
    shown = {k: v for k, v in params.items() if k in ("clinic", "from", "to")}
    fields = "".join(
        f'<label>{esc(name)} <input name="{esc(name)}" value="{esc(shown.get(name, ""))}" '
        f'placeholder="{esc(hint)}"></label> '
        for name, hint in (("from", "YYYY-MM-DD"), ("to", "YYYY-MM-DD")))
    clinic = (f'<input type="hidden" name="clinic" value="{esc(shown["clinic"])}">'
              if "clinic" in shown else "")
    form = (f'<form method="get" action="/audit" class="filters">{clinic}{fields}'
            '<button type="submit">Show</button> '
            f'<a href="{esc(query_href("/audit", {**shown, "format": "csv"}))}">'
            "Download CSV</a></form>")
    table = ('<table><thead><tr><th>when (UTC)</th><th>token</th><th>scope</th>'
             '<th>action</th><th>target</th><th class="num">status</th></tr></thead>'
             f"<tbody>{''.join(_row(i) for i in items)}</tbody></table>"
             if items else '<p class="muted">No entries in this window.</p>')
    more = ""
    if next_cursor is not None:
        older = query_href("/audit", {**shown, "cursor": next_cursor})
        more = f'<p><a rel="next" href="{esc(older)}">Older entries →</a></p>'
    return (f"<h1>Audit log · clinic {esc(query.clinic)}</h1>"
            '<p class="muted">Every read and change of this clinic\'s records, newest first: '
            "the token's id (never the token), its scope, what it did and to what. Entries "
            "are never changed; they are deleted only after the clinic's audit retention.</p>"
            f'{form}<section class="card">{table}{more}</section>')


@requires(*AUDIT_SCOPES, page=True)
async def audit_page(request: web.Request) -> web.Response:
    """``/audit``: the clinic admin's view of the audit log (``format=csv`` downloads it)."""
    seen = viewer(request)
    params = {k: v for k, v in request.query.items() if v != ""}
    query = parse_audit_query(params, seen.clinic)
    if params.get("format") == "csv":
        return await _csv(request, query)
    found = await asyncio.to_thread(request.config_dict[STORE].audit_entries, query)
    who = "admin (every clinic)" if seen.clinic is None else \
        f"clinic {seen.clinic} ({seen.scope})"
    return page("Audit log", audit_html(query, found.items, params, found.next_cursor),
                who=who, scope=seen.scope)


def add_audit_routes(app: web.Application, *, pages: bool = True) -> None:
    app.router.add_get("/v1/audit", audit_entries)
    if pages:
        app.router.add_get("/audit", audit_page)
