"""The live dashboard's routes (issue 5): ``GET /v1/live`` (Server-Sent Events, bearer
token), ``GET /live/events`` (the same stream for the page, with the sign-in cookie) and the
page ``GET /live``.

Both streams need a ``reports``, ``clinic-admin`` or ``admin`` token (a ``therapist``
token: ``403``, see services/reports/auth.py); a clinic's token sees only its clinic's
sessions (an admin's, every clinic's), exactly as the report API. A stream starts with one
``snapshot`` event (``{"sessions": [...], "seq": 0, "at": epoch_s}``, the sessions active
now), then sends ``session`` events (a session's new state, each :meth:`LiveSession.to_dict`)
and ``ended`` events (``{"session_id", "clinic_id", "reason": "report" | "idle"}``); a
comment line every ``keepalive_s`` keeps proxies from closing a quiet stream. All data is
JSON.

Event ids count this connection's events: the snapshot is ``id: 0``, the next event 1, and
so on without gaps. (They used to be one counter for the whole hub, so a clinic saw the other
clinics' activity as gaps; issue 16 finding 9.) A reconnecting ``EventSource`` sends the
last id it saw as ``Last-Event-ID``; the server ignores it: there is no replay, every
connection starts again from a fresh snapshot, which holds the whole current state, so a
client misses nothing that is still live and ids start again from 0.

The page is rendered on the server with the sessions active when it loads, then a small
inline script (no library, no CDN; allowed by its hash in the page's Content-Security-Policy,
which still forbids every other script) opens an ``EventSource`` on ``/live/events`` and
updates the table in place: talk share, balance, turns, turns per minute, RTT and the latest
alerts per session. ``data-updates`` on ``#live`` counts the events the page applied and
``data-snapshot-at`` holds the time of the last one; the script builds every cell with
``textContent``, never HTML, so data cannot inject markup.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from services.auth import Revalidation, Viewer, access_of, request_token, viewer
from services.reports.auth import reads_live, reads_live_page
from services.reports.html import CSP, esc, fmt, page, percent
from services.reports.live import LiveHub

log = logging.getLogger(__name__)

LIVE = web.AppKey("live_hub", LiveHub)
KEEPALIVE = web.AppKey("live_keepalive_s", float)
DEFAULT_KEEPALIVE_S = 15.0
RETRY_MS = 2000
COLUMNS = ("session", "length", "therapist share", "client share", "balance",
           "turns T / C", "turns / min", "RTT p95 (ms)", "latest alerts")
NUMERIC = frozenset({"length", "therapist share", "client share", "balance", "turns T / C",
                     "turns / min", "RTT p95 (ms)"})

# The page's script (its SHA-256 is in the page's CSP). Rows mirror row_html().
SCRIPT = """
(function () {
  "use strict";
  var root = document.getElementById("live");
  var body = root.querySelector("tbody");
  var empty = document.getElementById("live-empty");
  var status = document.getElementById("live-status");
  var admin = root.getAttribute("data-admin") === "1";
  var NUMERIC = [false, true, true, true, true, true, true, true, false];
  function num(v, d) {
    return typeof v === "number" ? v.toLocaleString("en-US", {minimumFractionDigits: d,
      maximumFractionDigits: d}) : "\\u2014";
  }
  function pct(v) { return typeof v === "number" ? Math.round(v * 100) + " %" : "\\u2014"; }
  function length(s) {
    if (typeof s !== "number") { return "\\u2014"; }
    var w = Math.floor(s), r = w % 60;
    return Math.floor(w / 60) + ":" + (r < 10 ? "0" : "") + r;
  }
  function role(s, r, k) { return s.roles && s.roles[r] ? s.roles[r][k] : null; }
  function cell(tr, text, numeric) {
    var td = document.createElement("td");
    td.textContent = text;
    if (numeric) { td.className = "num"; }
    tr.appendChild(td);
    return td;
  }
  function render(s) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-session", s.session_id);
    tr.setAttribute("data-updates", String(s.updates));
    if (admin) { cell(tr, s.clinic_id, false); }
    var values = [s.session_id, length(s.duration_s), pct(role(s, "therapist", "talk_share")),
      pct(role(s, "client", "talk_share")), num(s.balance_index, 2),
      num(role(s, "therapist", "turns"), 0) + " / " + num(role(s, "client", "turns"), 0),
      num(s.turns_per_min, 1), num(s.rtt_p95_ms, 0), ""];
    var alerts = null;
    values.forEach(function (v, i) { alerts = cell(tr, v, NUMERIC[i]); });
    (s.alerts || []).forEach(function (a) {
      var tag = document.createElement("span");
      tag.className = a.cleared ? "tag cleared" : "tag";
      tag.textContent = String(a.alert).replace(/_/g, " ") + (a.cleared ? " cleared" : "");
      alerts.appendChild(tag);
    });
    return tr;
  }
  function find(id) {
    var rows = body.rows;
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-session") === id) { return rows[i]; }
    }
    return null;
  }
  function upsert(s) {
    var tr = render(s), old = find(s.session_id);
    if (old) { body.replaceChild(tr, old); return; }
    var rows = body.rows;
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-session") > s.session_id) {
        body.insertBefore(tr, rows[i]);
        return;
      }
    }
    body.appendChild(tr);
  }
  function applied(what) {
    root.setAttribute("data-updates", String(Number(root.getAttribute("data-updates")) + 1));
    var now = new Date();
    root.setAttribute("data-snapshot-at", now.toISOString());
    empty.hidden = body.rows.length > 0;
    status.textContent = "live \\u00b7 " + what + " at " + now.toLocaleTimeString();
  }
  var source = new EventSource("/live/events");
  source.addEventListener("snapshot", function (e) {
    var data = JSON.parse(e.data);
    while (body.firstChild) { body.removeChild(body.firstChild); }
    data.sessions.forEach(upsert);
    applied("snapshot");
  });
  source.addEventListener("session", function (e) {
    upsert(JSON.parse(e.data));
    applied("update");
  });
  source.addEventListener("ended", function (e) {
    var old = find(JSON.parse(e.data).session_id);
    if (old) { body.removeChild(old); }
    applied("session ended");
  });
  source.onerror = function () { status.textContent = "reconnecting\\u2026"; };
})();
"""
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode()
LIVE_CSP = CSP + f"; script-src 'sha256-{SCRIPT_HASH}'; connect-src 'self'"


def sse(kind: str, data: Any, seq: int | None = None) -> bytes:
    """One Server-Sent Event with a JSON ``data`` line."""
    head = f"event: {kind}\n" + (f"id: {seq}\n" if seq is not None else "")
    return head.encode() + b"data: " + orjson.dumps(data) + b"\n\n"


async def _stream(request: web.Request) -> web.StreamResponse:
    hub = request.config_dict[LIVE]
    keepalive = request.config_dict.get(KEEPALIVE, DEFAULT_KEEPALIVE_S)
    clinic = viewer(request).clinic
    response = web.StreamResponse(headers={"Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    response.content_type = "text/event-stream"
    response.charset = "utf-8"
    await response.prepare(request)
    if request.method == "HEAD":
        # The stream's headers only: a body after a HEAD answer would be read as the next
        # answer on a kept-alive connection (aiohttp adds HEAD to every GET route).
        return response
    token = request_token(request, access_of(request))
    revalidation = Revalidation.of(request, token) if token else None
    wait_s = min(keepalive, revalidation.interval_s) if revalidation else keepalive
    with hub.subscribe(clinic) as subscription:
        try:
            sent = 0  # this stream's event ids: no gaps, nothing of other clinics
            start = {"sessions": hub.sessions(clinic), "seq": sent, "at": time.time()}
            await response.write(f"retry: {RETRY_MS}\n\n".encode() + sse("snapshot", start,
                                                                          sent))
            quiet_since = time.monotonic()
            while True:
                timed_out = False
                try:
                    event = await asyncio.wait_for(subscription.get(), wait_s)
                except asyncio.TimeoutError:
                    timed_out = True
                if revalidation is not None and await revalidation.revoked():
                    log.info("live stream closed: token %s was revoked",
                             viewer(request).token_id)
                    await response.write(sse("revoked", {"error": "authorization: token "
                                                                  "revoked"}))
                    break
                if timed_out:
                    if time.monotonic() - quiet_since >= keepalive:
                        await response.write(b": keepalive\n\n")
                        quiet_since = time.monotonic()
                    continue
                if event is None:  # the hub closes
                    break
                quiet_since = time.monotonic()
                sent += 1
                await response.write(sse(event.kind, event.data, sent))
        except (ConnectionResetError, ConnectionError):
            log.debug("live stream client went away")
    return response


@reads_live
async def live_api(request: web.Request) -> web.StreamResponse:
    """``GET /v1/live``: the stream, for tools (bearer token)."""
    return await _stream(request)


@reads_live_page
async def live_page_events(request: web.Request) -> web.StreamResponse:
    """``GET /live/events``: the stream, for the page (cookie or bearer token)."""
    return await _stream(request)


def _alerts_cell(alerts: list[dict[str, Any]]) -> str:
    return "".join(
        f'<span class="tag{" cleared" if a.get("cleared") else ""}">'
        f'{esc(str(a.get("alert", "")).replace("_", " "))}'
        f'{" cleared" if a.get("cleared") else ""}</span>' for a in alerts)


def _role(session: dict[str, Any], role: str, name: str) -> Any:
    return ((session.get("roles") or {}).get(role) or {}).get(name)


def _length(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def row_html(session: dict[str, Any], admin: bool) -> str:
    """A session's row as the script also renders it (services/reports/live.js)."""
    cells = [
        esc(session["session_id"]), _length(session.get("duration_s")),
        percent(_role(session, "therapist", "talk_share")),
        percent(_role(session, "client", "talk_share")), fmt(session.get("balance_index")),
        f'{fmt(_role(session, "therapist", "turns"), 0)} / '
        f'{fmt(_role(session, "client", "turns"), 0)}',
        fmt(session.get("turns_per_min"), 1), fmt(session.get("rtt_p95_ms"), 0),
        _alerts_cell(session.get("alerts") or []),
    ]
    tds = "".join(f'<td class="num">{c}</td>' if name in NUMERIC else f"<td>{c}</td>"
                  for name, c in zip(COLUMNS, cells, strict=True))
    clinic = f"<td>{esc(session['clinic_id'])}</td>" if admin else ""
    return (f'<tr data-session="{esc(session["session_id"])}" '
            f'data-updates="{int(session.get("updates") or 0)}">{clinic}{tds}</tr>')


def live_html(sessions: list[dict[str, Any]], seen: Viewer, feed: str | None) -> str:
    """The body of ``/live`` (rows of the sessions active now; the script keeps them live)."""
    admin = seen.clinic is None
    head = ("<th>clinic</th>" if admin else "") + "".join(
        f'<th class="num">{esc(c)}</th>' if c in NUMERIC else f"<th>{esc(c)}</th>"
        for c in COLUMNS)
    rows = "".join(row_html(s, admin) for s in sessions)
    empty = "" if sessions else " hidden"
    note = ("" if feed else '<p class="note">This server reads no broker (start it with '
            "<code>rapport run --port</code> or <code>rapport reports --broker</code>): no "
            "session can appear here.</p>")
    return (
        "<h1>Live sessions</h1>"
        '<p class="muted">Sessions in progress, updated as the workers publish quality '
        "updates and alerts (about every 5 s of session time); a session leaves the list "
        "when its report is ready (see <a href=\"/sessions\">Sessions</a>) or after it goes "
        f'quiet. <span id="live-status">connecting…</span></p>{note}'
        f'<section class="card" id="live" data-admin="{1 if admin else 0}" data-updates="0" '
        f'data-snapshot-at=""><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
        f'</table><p class="muted" id="live-empty"{empty}>No session is in progress.</p>'
        f"</section><script>{SCRIPT}</script>")


@reads_live_page
async def live_page(request: web.Request) -> web.Response:
    """``GET /live``: the dashboard page."""
    seen = viewer(request)
    hub = request.config_dict[LIVE]
    who = "admin (every clinic)" if seen.clinic is None else f"clinic {seen.clinic}"
    response = page("Live", live_html(hub.sessions(seen.clinic), seen, hub.feed), who=who,
                    scope=seen.scope)
    response.headers["Content-Security-Policy"] = LIVE_CSP
    return response


def add_live_routes(app: web.Application, hub: LiveHub, *,
                    keepalive_s: float = DEFAULT_KEEPALIVE_S) -> None:
    """Mount ``/v1/live``, ``/live/events`` and ``/live`` over ``hub`` on ``app`` (which
    already has the report routes, hence the auth middlewares). Streams end when the app
    shuts down."""
    app[LIVE] = hub
    app[KEEPALIVE] = keepalive_s
    app.router.add_get("/v1/live", live_api)
    app.router.add_get("/live/events", live_page_events)
    app.router.add_get("/live", live_page)

    async def close_streams(_app: web.Application) -> None:
        hub.close()

    app.on_shutdown.append(close_streams)
