"""HTML report pages for clinicians (issue 5): ``/sessions``, ``/sessions/{id}``,
``/therapists/{id}``, and ``/signin`` / ``/signout``.

Same tokens and tenancy as the JSON API (services/auth.py): a bearer header, or the HttpOnly,
SameSite=Strict cookie that ``/signin`` sets after checking the token. Without a valid token a
page answers ``401`` with the sign-in form; another clinic's session or therapist answers
``404``, like a missing one. Numbers are METRICS.md §10 reports; the report page explains each
metric and its limits (services/reports/explain.py) and draws the speech timeline, talk share,
balance and latency charts as inline SVG (services/reports/charts.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from services.auth import (
    COOKIE,
    ERROR_PAGE,
    ApiError,
    Viewer,
    public,
    same_origin,
    verify,
    viewer,
)
from services.reports.auth import (
    READ_SCOPES,
    STORE,
    check_own_session,
    own_therapist,
    reads_reports_page,
)
from services.reports.charts import (
    balance_gauge,
    latency_histogram,
    share_bar,
    small_multiple,
    speech_timeline,
)
from services.reports.context_view import context_table
from services.reports.explain import explanations_html
from services.reports.filters import (
    ALERT_TYPES,
    REPORT_PARAMETERS,
    check_known,
    parse_context_n,
    parse_id,
    parse_session_query,
    parse_therapist,
    parse_trend_params,
    resolve_clinic,
    scope_query,
    session_clinic,
)
from services.reports.html import (
    clock,
    css_response,
    error_page,
    esc,
    fmt,
    page,
    percent,
    query_href,
    session_href,
    signin_form,
    therapist_href,
)
from services.reports.names import name_html, page_labels
from services.store import ReportStore
from services.store.sessions import SessionPage
from services.store.timeline import MAX_TIMELINE_PAGE

log = logging.getLogger(__name__)

COOKIE_MAX_AGE_S = 8 * 3600
TREND_LABELS = {
    "therapist_talk_share": "therapist talk share",
    "balance_index": "balance index",
    "turns_per_min": "turns per minute",
    "therapist_longest_monologue_s": "longest therapist monologue (s)",
    "therapist_backchannels_per_min": "therapist backchannels / min",
    "therapist_latency_median_ms": "therapist response latency, median (ms)",
    "therapist_interruptions": "therapist interruptions (successful)",
    "client_interruptions": "client interruptions (successful)",
    "interruption_asymmetry": "interruption asymmetry",
    "overlap_s": "overlap (s)",
    "silence_ratio": "silence ratio",
    "lapses": "lapses (≥ 3 s)",
    "alerts": "alerts",
}


def _who(seen: Viewer) -> str:
    return "admin (every clinic)" if seen.clinic is None else f"clinic {seen.clinic}"


def _short(pseudonym: Any) -> str:
    text = "" if pseudonym is None else str(pseudonym)
    return text[:10] + "…" if len(text) > 12 else text


def _tags(types: list[str]) -> str:
    return "".join(f'<span class="tag">{esc(t.replace("_", " "))}</span>' for t in types)


# --- the session list -----------------------------------------------------------------------


def _filters_form(params: dict[str, str], admin: bool) -> str:
    def field(name: str, label: str, kind: str = "text") -> str:
        return (f'<label>{esc(label)}<input type="{kind}" name="{name}" '
                f'value="{esc(params.get(name, ""))}"></label>')

    options = "".join(f'<option value="{esc(a)}"{" selected" if params.get("alert") == a else ""}>'
                      f'{esc(a.replace("_", " "))}</option>' for a in ALERT_TYPES)
    clinic = field("clinic", "clinic") if admin else ""
    return (f'<form class="filters" method="get" action="/sessions">{clinic}'
            f'{field("therapist", "therapist pseudonym")}{field("from", "from", "date")}'
            f'{field("to", "to", "date")}<label>alert<select name="alert"><option value="">'
            f'any</option>{options}</select></label><button type="submit">Filter</button>'
            '<a href="/sessions">clear</a></form>')


def _session_row(item: dict[str, Any], admin: bool,
                 labels: dict[str, str] | None = None) -> str:
    m = item["metrics"]
    therapist = item.get("therapist")
    who = (f'<a href="{esc(therapist_href(therapist))}">{name_html(therapist, labels)}</a>'
           if therapist else "—")
    clinic = f"<td>{esc(item['clinic_id'])}</td>" if admin else ""
    return (f"<tr>{clinic}<td>{esc(item['started_at'][:16].replace('T', ' '))}</td>"
            f'<td><a href="{esc(session_href(item["session_id"], item["clinic_id"]))}">'
            f"{esc(item['session_id'])}</a></td><td>{who}</td>"
            f'<td class="num">{clock(item["duration_s"] * 1000)}</td>'
            f'<td class="num">{percent(m.get("therapist_talk_share"))}</td>'
            f'<td class="num">{fmt(m.get("balance_index"))}</td>'
            f'<td class="num">{fmt(m.get("therapist_interruptions"), 0)} / '
            f'{fmt(m.get("client_interruptions"), 0)}</td>'
            f"<td>{_tags(item['alert_types'])}</td></tr>")


@reads_reports_page
async def sessions_page(request: web.Request) -> web.Response:
    """``/sessions``: the clinic's sessions, newest first, with the API's filters."""
    seen = viewer(request)
    params = {k: v for k, v in request.query.items() if v != ""}
    query = scope_query(parse_session_query(params, seen.clinic), own_therapist(seen))
    store = request.config_dict[STORE]
    result = SessionPage([], None) if query is None else await asyncio.to_thread(
        store.list_sessions, query)
    admin = seen.clinic is None
    labels = await page_labels(store, seen, seen.clinic)
    rows = "".join(_session_row(item, admin, labels) for item in result.items)
    more = ""
    if result.next_cursor is not None:
        following = {k: v for k, v in params.items() if k != "cursor"}
        following["cursor"] = result.next_cursor
        more = f'<p><a rel="next" href="{esc(query_href("/sessions", following))}">Older ' \
               "sessions →</a></p>"
    clinic = "<th>clinic</th>" if admin else ""
    table = (f"<table><thead><tr>{clinic}<th>started (UTC)</th><th>session</th>"
             '<th>therapist</th><th class="num">length</th><th class="num">therapist share'
             '</th><th class="num">balance</th><th class="num">interruptions T / C</th>'
             f"<th>alerts</th></tr></thead><tbody>{rows}</tbody></table>"
             if result.items else '<p class="muted">No sessions match.</p>')
    body = (f"<h1>Sessions</h1>{_filters_form(params, admin)}"
            f'<section class="card">{table}{more}</section>')
    return page("Sessions", body, who=_who(seen), scope=seen.scope)


# --- one session --------------------------------------------------------------------------


def _load_session(store: ReportStore, session_id: str, clinic: str
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    found = store.get_report(session_id, clinic)
    if found is None:
        return None
    items: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        chunk = store.get_timeline(session_id, clinic, after=after, limit=MAX_TIMELINE_PAGE)
        if chunk is None:
            break
        items += chunk.items
        if chunk.next_after is None:
            break
        after = chunk.next_after
    return found, items


def _figure(label: str, value: str) -> str:
    return f'<div class="figure"><div class="value">{value}</div>{esc(label)}</div>'


ROLE_ROWS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("talk (s)", ("talk_s",), 1), ("talk share", ("talk_share",), 3),
    ("turns", ("turns",), 0), ("mean turn (s)", ("mean_turn_s",), 1),
    ("longest monologue (s)", ("longest_monologue_s",), 1),
    ("backchannels", ("backchannels",), 0), ("backchannels / min", ("backchannels_per_min",), 2),
    ("latency median (ms)", ("response_latency_ms", "median"), 0),
    ("latency p90 (ms)", ("response_latency_ms", "p90"), 0),
    ("corrected median (ms)", ("response_latency_ms", "corrected_median"), 0),
    ("interruptions made, successful", ("interruptions_made", "successful"), 0),
    ("interruptions made, unsuccessful", ("interruptions_made", "unsuccessful"), 0),
    ("interrupted (successfully)", ("interrupted",), 0),
    ("pauses", ("pauses", "count"), 0), ("pause median (ms)", ("pauses", "median_ms"), 0),
    ("gaps", ("gaps", "count"), 0), ("gap median (ms)", ("gaps", "median_ms"), 0),
)


LATENCY = ("response_latency_ms",)


def _dig(data: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        data = data.get(step) if isinstance(data, dict) else None
    return data


def _roles_table(roles: dict[str, Any]) -> str:
    names = list(roles)
    head = "".join(f'<th class="num">{esc(r)}</th>' for r in names)
    body = "".join(
        f"<tr><td>{esc(label)}</td>"
        + "".join(f'<td class="num">{fmt(_dig(roles[r], path), digits)}</td>' for r in names)
        + "</tr>" for label, path, digits in ROLE_ROWS)
    return f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"


def _session_table(s: dict[str, Any]) -> str:
    lapses = s.get("lapses") or {}
    rows = (("speaker changes", fmt(s.get("speaker_changes"), 0)),
            ("turns per minute", fmt(s.get("turns_per_min"))),
            ("overlap (s)", fmt(s.get("overlap_s"), 1)),
            ("collisions (delay-caused talk-over)", fmt(s.get("collisions"), 0)),
            ("mutual silence (s)", f'{fmt(s.get("silence_s"), 1)} '
                                   f'({percent(s.get("silence_ratio"))})'),
            ("lapses ≥ 3 s", f'{fmt(lapses.get("count"), 0)}, longest '
                             f'{fmt(lapses.get("longest_s"), 1)} s'),
            ("interruption asymmetry (−1 client … +1 therapist)",
             fmt(s.get("interruption_asymmetry"))))
    return "<table><tbody>" + "".join(f"<tr><td>{esc(k)}</td><td class=\"num\">{v}</td></tr>"
                                      for k, v in rows) + "</tbody></table>"


def _alerts_table(alerts: list[dict[str, Any]], start_ms: int) -> str:
    if not alerts:
        return '<p class="muted">No alerts were raised.</p>'
    rows = []
    for alert in alerts:
        detail = ", ".join(f"{k} {v}" for k, v in alert.items()
                           if k not in ("alert", "cleared", "ts_ms"))
        rows.append(f'<tr><td class="num">{clock(alert["ts_ms"] - start_ms)}</td>'
                    f"<td>{esc(str(alert['alert']).replace('_', ' '))}</td>"
                    f"<td>{'cleared' if alert['cleared'] else 'raised'}</td>"
                    f'<td class="muted">{esc(detail)}</td></tr>')
    return ('<table><thead><tr><th class="num">at</th><th>alert</th><th></th><th>detail</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _quality_table(quality: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    people = quality.get("participants") or {}
    rows = "".join(
        f'<tr><td>{name_html(pid, labels)}</td><td>{esc(q.get("role"))}</td>'
        f'<td class="num">{percent(q.get("coverage"))}</td>'
        f'<td class="num">{fmt(q.get("muted_s"), 1)}</td>'
        f'<td class="num">{fmt(q.get("rtt_p95_ms"), 0)}</td>'
        f'<td class="num">{fmt(q.get("loss_pct"), 2)}</td></tr>'
        for pid, q in people.items() if isinstance(q, dict))
    return ('<table><thead><tr><th>participant (pseudonym)</th><th>role</th><th class="num">'
            'coverage</th><th class="num">muted (s)</th><th class="num">RTT p95 (ms)</th>'
            f'<th class="num">loss %</th></tr></thead><tbody>{rows}</tbody></table>')


LEGEND = ('<p class="legend"><span><i class="role-therapist"></i>therapist</span>'
          '<span><i class="role-client"></i>client</span><span><i class="role-other"></i>other'
          '</span><span><i class="overlap"></i>overlap</span><span><i class="lapse"></i>lapse '
          '(mutual silence ≥ 3 s)</span><span>▾ turn start</span><span>▴ interruption '
          '(filled: successful)</span><span>● collision</span><span>thin bars: backchannels'
          '</span></p>')


def session_html(found: dict[str, Any], items: list[dict[str, Any]],
                 context: dict[str, Any] | None = None,
                 labels: dict[str, str] | None = None) -> str:
    """The body of a session's report page (``context``: its metrics beside the therapist's
    median and the clinic band; ``labels``: the clinic's display labels)."""
    report = found["report"]
    roles, session = report.get("roles") or {}, report.get("session") or {}
    quality = report.get("quality") or {}
    start = int(found["start_ms"])
    end = start + round(float(found["duration_s"]) * 1000)
    therapist = found.get("therapist")
    meta = (f"{esc(found['started_at'][:16].replace('T', ' '))} UTC · "
            f"{clock(end - start)} · clinic {esc(found['clinic_id'])} · ended by "
            f"{esc(found['ended_by'])}")
    if therapist:
        meta += (f' · therapist <a class="therapist" href="{esc(therapist_href(therapist))}">'
                 f"{name_html(therapist, labels)}</a>")
    warning = ('<p class="note">Network quality was poor (RTT p95 over 300 ms): latency and '
               "interruption figures are low confidence.</p>"
               if quality.get("low_confidence") else "")
    t, c = roles.get("therapist") or {}, roles.get("client") or {}
    made = session.get("interruptions") or {}
    figures = "".join((
        _figure("therapist talk share", percent(t.get("talk_share"))),
        _figure("client talk share", percent(c.get("talk_share"))),
        _figure("balance index", fmt(session.get("balance_index"))),
        _figure("turns per minute", fmt(session.get("turns_per_min"), 1)),
        _figure("interruptions therapist → client",
                fmt(_dig(made, ("therapist_to_client", "successful")), 0)),
        _figure("interruptions client → therapist",
                fmt(_dig(made, ("client_to_therapist", "successful")), 0)),
        _figure("lapses", fmt(_dig(session, ("lapses", "count")), 0)),
    ))
    shares = {role: _dig(v, ("talk_share",)) for role, v in roles.items()}
    histograms = "".join(
        "<div>" + latency_histogram(latencies, _dig(roles.get(role), (*LATENCY, "median")),
                                    _dig(roles.get(role), (*LATENCY, "p90")), role) + "</div>"
        for role, latencies in _latencies(items).items())
    return (
        f'<h1>Session {esc(found["session_id"])}</h1><p class="muted">{meta}</p>{warning}'
        f'<section class="card"><div class="figures">{figures}</div></section>'
        f'<h2 class="keep">In context</h2><section class="card" id="context">'
        f'{context_table(context, session=True)}</section>'
        f'<h2>Talk share and balance</h2><section class="card">{share_bar(shares)}'
        f'<p>Balance index {fmt(session.get("balance_index"))}</p>'
        f'{balance_gauge(session.get("balance_index"))}</section>'
        f'<h2>Speech timeline</h2><section class="card">{LEGEND}'
        f'{speech_timeline(items, start, end)}</section>'
        f'<h2>Alerts</h2><section class="card">{_alerts_table(found["alerts"], start)}'
        "</section>"
        f'<h2>Response latency</h2><section class="card"><div class="grid">'
        f'{histograms or "<p class=muted>No speaker changes.</p>"}</div></section>'
        f'<h2>Per role</h2><section class="card">{_roles_table(roles)}</section>'
        f'<h2>Session</h2><section class="card">{_session_table(session)}</section>'
        f'<h2>Quality</h2><section class="card">{_quality_table(quality, labels)}</section>'
        f'<h2>What these numbers mean</h2><section class="card">{explanations_html()}'
        "</section>")


def _latencies(items: list[dict[str, Any]]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for item in items:
        if item["kind"] == "speaker_change" and isinstance(item.get("latency_ms"), int):
            found.setdefault(str(item.get("to_role")), []).append(int(item["latency_ms"]))
    return dict(sorted(found.items(), key=lambda kv: (kv[0] != "therapist", kv[0])))


@reads_reports_page
async def session_page(request: web.Request) -> web.Response:
    """``/sessions/{id}``: one session's report."""
    seen = viewer(request)
    session_id = parse_id("session_id", request.match_info["session_id"])
    check_known(request.query, REPORT_PARAMETERS)
    n = parse_context_n(request.query)
    store = request.config_dict[STORE]
    clinic = session_clinic(request.query, seen.clinic)
    if clinic is None:  # an admin who named no clinic: the one that has the id
        clinic = resolve_clinic(session_id, await asyncio.to_thread(store.clinics_of,
                                                                     session_id))
    loaded = None if clinic is None else await asyncio.to_thread(
        _load_session, store, session_id, clinic)
    if loaded is None or clinic is None:
        raise ApiError(404, "session: not found")
    check_own_session(seen, loaded[0].get("therapist"))
    context = await asyncio.to_thread(store.session_context, session_id, clinic, n)
    labels = await page_labels(store, seen, clinic)
    body = await asyncio.to_thread(session_html, *loaded, context, labels)
    return page(f"Session {session_id}", body, who=_who(seen), scope=seen.scope)


# --- a therapist's trend ------------------------------------------------------------------


@reads_reports_page
async def therapist_page(request: web.Request) -> web.Response:
    """``/therapists/{pseudonym}``: headline metrics across the therapist's sessions."""
    seen = viewer(request)
    therapist = parse_therapist("therapist_id", request.match_info["therapist_id"])
    from_ms, until_ms, limit = parse_trend_params(request.query)
    n = parse_context_n(request.query)
    own = own_therapist(seen)
    if own is not None and therapist != own:
        raise ApiError(404, "therapist: not found")
    store = request.config_dict[STORE]
    points = await asyncio.to_thread(lambda: store.therapist_trend(
        therapist, seen.clinic, from_ms=from_ms, until_ms=until_ms, limit=limit))
    if not points:
        raise ApiError(404, "therapist: not found")
    clinic = seen.clinic or points[-1]["clinic_id"]
    context = await asyncio.to_thread(store.therapist_context, therapist, clinic, n, until_ms)
    labels = await page_labels(store, seen, clinic)
    multiples = "".join(
        f'<div><strong>{esc(label)}</strong><br>'
        + small_multiple(label, [(p["session_id"], p["clinic_id"], p["started_at"][:10],
                                  p["metrics"].get(name)) for p in points])
        + "</div>" for name, label in TREND_LABELS.items())
    rows = "".join(_session_row(p, False, labels) for p in reversed(points))
    body = (f"<h1>Therapist {name_html(therapist, labels)}</h1>"
            f'<p class="muted">{len(points)} sessions, oldest first in each plot; each dot '
            "links to its session. Trends show change, not quality: see a session's page for "
            "what each metric means and its limits.</p>"
            f'<h2 class="keep">In context</h2><section class="card" id="context">'
            f"{context_table(context, session=False)}</section>"
            f'<div class="grid">{multiples}</div><h2>Sessions</h2><section class="card">'
            "<table><thead><tr><th>started (UTC)</th><th>session</th><th>therapist</th>"
            '<th class="num">length</th><th class="num">therapist share</th>'
            '<th class="num">balance</th><th class="num">interruptions T / C</th>'
            f"<th>alerts</th></tr></thead><tbody>{rows}</tbody></table></section>")
    return page("Therapist trend", body, who=_who(seen), scope=seen.scope)


# --- signing in -----------------------------------------------------------------------------


def _safe_next(target: str) -> str:
    """Only a path on this site: no open redirect. Browsers drop tabs and newlines from a
    Location and read ``\\`` as ``/``, so ``/<tab>/host`` would become ``//host``: a target with
    a control character, a space, a backslash or a ``//`` anywhere before its query is refused
    (and a newline could not go into a header anyway)."""
    path = target.split("?", 1)[0]
    if (not target.startswith("/") or "//" in path or "\\" in target
            or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target)):
        return "/sessions"
    return target


@public
async def signin_get(request: web.Request) -> web.Response:
    return signin_form(_safe_next(request.query.get("next", "/sessions")))


def _cross_site(request: web.Request) -> web.Response:
    log.info("refused a cross-site %s %s", request.method, request.path)
    return signin_form("/sessions", "Sign in from this site's own page.", status=403)


@public
async def signin_post(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        return _cross_site(request)
    form = await request.post()
    token, target = str(form.get("token", "")).strip(), _safe_next(str(form.get("next", "")))
    info = await verify(request, token) if token else None
    if info is None:
        return signin_form(target, "Unknown or revoked token.", status=401)
    if info.scope not in READ_SCOPES:
        return signin_form(target, f"A token of scope {info.scope} cannot read reports.",
                           status=403)
    response = web.Response(status=303, headers={"Location": target})
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, path="/", httponly=True,
                        samesite="Strict", secure=request.secure)
    log.info("token %s signed in to the report pages", info.id)
    return response


@public
async def signout(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        return _cross_site(request)
    response = web.Response(status=303, headers={"Location": "/signin"})
    response.del_cookie(COOKIE, path="/")
    return response


@public
async def stylesheet(request: web.Request) -> web.Response:
    return css_response()


def add_page_routes(app: web.Application) -> None:
    if ERROR_PAGE not in app:
        app[ERROR_PAGE] = error_page
    app.router.add_get("/static/rapport.css", stylesheet)
    app.router.add_get("/signin", signin_get)
    app.router.add_post("/signin", signin_post)
    app.router.add_post("/signout", signout)
    app.router.add_get("/sessions", sessions_page)
    app.router.add_get("/sessions/{session_id}", session_page)
    app.router.add_get("/therapists/{therapist_id}", therapist_page)
