"""HTML building blocks of the report pages (issue 5): escaping, formatting, the page layout,
the shared stylesheet, the sign-in form and error pages.

Pages are rendered on the server as plain HTML5 with inline SVG (services/reports/charts.py);
they load one stylesheet from this server (``/static/rapport.css``) and nothing else, so they
work offline, and they run no script (the Content-Security-Policy forbids it). Everything that
comes from data — session, clinic and participant ids or pseudonyms, alert details, query
parameters — goes through :func:`esc`, in text and in attributes alike.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
CSS_PATH = "/static/rapport.css"

CSS = """
:root { --t: #3b6ea8; --c: #d9822b; --o: #6a9955; --ink: #1d2330; --mute: #667085;
        --line: #d0d5dd; --bg: #f7f8fa; --warn: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--ink); background: var(--bg); }
header { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.5rem;
         background: #fff; border-bottom: 1px solid var(--line); }
header .brand { font-weight: 700; color: var(--ink); text-decoration: none; }
header .who { margin-left: auto; color: var(--mute); font-size: .9em; }
header form { margin: 0; }
main { max-width: 1040px; margin: 1.2rem auto; padding: 0 1.5rem; }
footer { max-width: 1040px; margin: 2rem auto; padding: 0 1.5rem; color: var(--mute);
         font-size: .85em; }
h1 { font-size: 1.45rem; margin: .2rem 0 .8rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
               padding: .8rem 1rem; margin: .8rem 0; }
table { border-collapse: collapse; width: 100%; font-size: .92em; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); }
th { color: var(--mute); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
a { color: var(--t); }
.muted { color: var(--mute); }
.tag { display: inline-block; padding: 0 .4rem; border-radius: 4px; background: #fef3f2;
       color: var(--warn); font-size: .82em; margin: 0 .15rem .1rem 0; }
.tag.cleared { background: #ecfdf3; color: #067647; }
#live td, #live th { white-space: nowrap; }
.note { background: #fffaeb; border: 1px solid #fedf89; border-radius: 6px;
        padding: .5rem .8rem; }
.error { color: var(--warn); }
form.filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; }
form.filters label { display: flex; flex-direction: column; font-size: .85em; color: var(--mute); }
input, select, button { font: inherit; padding: .25rem .4rem; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem 2rem; }
.figure .value { font-size: 1.5rem; font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; }
.grid > div { background: #fff; border: 1px solid var(--line); border-radius: 8px;
              padding: .5rem; }
.legend span { margin-right: 1rem; font-size: .85em; }
.legend i { display: inline-block; width: 12px; height: 10px; margin-right: 4px; }
dl.explain dt { font-weight: 600; margin-top: .6rem; }
dl.explain dd { margin: 0 0 0 1rem; }
svg text { font: 11px system-ui, sans-serif; fill: var(--mute); }
svg text.lane { text-anchor: end; fill: var(--ink); }
svg .axis line { stroke: var(--line); }
.role-therapist, i.role-therapist { fill: var(--t); background: var(--t); }
.role-client, i.role-client { fill: var(--c); background: var(--c); }
.role-other, i.role-other { fill: var(--o); background: var(--o); }
rect.backchannel { opacity: .85; }
rect.lapse, i.lapse { fill: #e4e7ec; background: #e4e7ec; }
rect.overlap, i.overlap { fill: #fda29b; background: #fda29b; opacity: .55; }
path.turn { fill: var(--ink); }
path.interruption { fill: var(--warn); }
path.interruption.unsuccessful { fill: none; stroke: var(--warn); }
circle.collision { fill: #7a5af8; }
line.marker { stroke: var(--ink); stroke-dasharray: 3 2; }
text.inbar { fill: #fff; font-weight: 600; }
rect.track { fill: #e4e7ec; }
rect.fill { fill: var(--t); }
polyline.trend { fill: none; stroke: var(--t); stroke-width: 1.5; }
circle.dot { fill: var(--t); }
/* numbers in context (issue 19): clinic band, own median, this session */
rect.band, i.band { fill: #c7d7ea; background: #c7d7ea; }
line.own-median { stroke: var(--ink); stroke-width: 2; }
i.own-median { width: 3px; background: var(--ink); }
circle.value, i.value { fill: var(--c); background: var(--c); border-radius: 50%; }
table.context td { vertical-align: middle; }
.label-pseudonym { color: var(--mute); font-size: .85em; }
/* print (issue 19): A4 and Letter, no navigation or forms, charts kept, a section a page */
@page { margin: 15mm 14mm; }
@media print {
  header, nav, form, button, .filters, a[rel="next"], #live-status { display: none !important; }
  body { background: #fff; font-size: 10.5pt; }
  main, footer { max-width: none; width: auto; margin: 0; padding: 0; }
  a { color: inherit; text-decoration: none; }
  section.card { border: 1px solid #999; break-inside: avoid; page-break-inside: avoid; }
  h2 { break-before: page; page-break-before: always; break-after: avoid;
       page-break-after: avoid; }
  h2.keep, h1 + h2 { break-before: auto; page-break-before: auto; }
  svg { max-width: 100%; height: auto; }
  svg.timeline { break-inside: auto; }
  .grid { gap: .4rem; }
  .grid > div { break-inside: avoid; }
  table { font-size: 9pt; }
}
"""


def esc(value: Any) -> str:
    """``value`` as text safe in HTML and SVG text and in quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 2) -> str:
    """A number for people: fixed ``digits``, thousands separated; — when missing."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:,.{digits}f}"


def percent(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value * 100:.0f} %"


def clock(offset_ms: float) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour) of a time from the session's start."""
    seconds = max(int(offset_ms // 1000), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def session_href(session_id: str, clinic_id: str) -> str:
    """A session's page: the clinic always named, a session being (clinic, id)."""
    return "/sessions/" + quote(session_id, safe="") + "?" + urlencode({"clinic": clinic_id})


def therapist_href(pseudonym: str) -> str:
    return "/therapists/" + quote(pseudonym, safe="")


def query_href(path: str, params: Mapping[str, str]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


# Where each scope's navigation leads (issue 19): the live views are for supervisors, the
# directory and the audit log for those who administer a clinic.
_NAV = (("/sessions", "Sessions", None),
        ("/live", "Live", frozenset({"reports", "admin", "clinic-admin"})),
        ("/directory", "Directory", frozenset({"admin", "clinic-admin"})),
        ("/audit", "Audit log", frozenset({"admin", "clinic-admin"})))


def _nav(scope: str | None) -> str:
    """The header links a token of ``scope`` can follow (signed out: Sessions and Live)."""
    shown = [(href, label) for href, label, scopes in _NAV
             if scopes is None or (scope in scopes if scope else href == "/live")]
    return "".join(f'<a href="{href}">{label}</a>' for href, label in shown)


def page(title: str, body: str, *, who: str | None = None, status: int = 200,
         scope: str | None = None) -> web.Response:
    """A whole page in the shared layout; ``who`` describes the signed-in token, ``scope``
    (its scope) picks the navigation links."""
    account = ""
    if who is not None:
        account = (f'<span class="who">{esc(who)}</span><form method="post" '
                   'action="/signout"><button type="submit">Sign out</button></form>')
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{esc(title)} · Rapport</title><link rel="stylesheet" href="{CSS_PATH}">'
        '</head><body><header><a class="brand" href="/sessions">Rapport</a>'
        f'{_nav(scope)}{account}</header><main>{body}</main>'
        '<footer>Rapport measures conversation flow from voice activity only, never from '
        'what is said. Its numbers are proxies for active listening and the balance of '
        'the conversation, not clinical judgements; every threshold is a default to '
        'calibrate per clinic.</footer></body></html>'
    )
    response = web.Response(text=text, status=status, content_type="text/html",
                            charset="utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def signin_form(next_path: str, message: str | None = None, status: int = 200) -> web.Response:
    """The sign-in page: paste a token made by ``rapport tokens create --scope reports``."""
    error = f'<p class="error">{esc(message)}</p>' if message else ""
    body = (
        '<h1>Sign in</h1><section class="card">'
        f'{error}<form method="post" action="/signin">'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        '<p><label>Access token<br><input type="password" name="token" size="60" '
        'autocomplete="off" required></label></p>'
        '<p class="muted">A token of scope <code>reports</code> (your clinic) or '
        '<code>admin</code>, from <code>rapport tokens create --clinic C --scope reports'
        '</code>. It is kept in an HttpOnly cookie for this site only.</p>'
        '<button type="submit">Sign in</button></form></section>'
    )
    return page("Sign in", body, status=status)


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """Errors of page routes (services/auth.py ``ERROR_PAGE``): the sign-in form for 401."""
    if status == 401:
        return signin_form(request.path_qs, "Please sign in to see this page.", status=401)
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found",
              503: "Reports unavailable"}
    title = titles.get(status, "Error")
    body = (f"<h1>{esc(title)}</h1><section class=\"card\"><p>{esc(message)}</p>"
            '<p><a href="/sessions">Back to the sessions</a></p></section>')
    return page(title, body, status=status)


def css_response() -> web.Response:
    response = web.Response(text=CSS, content_type="text/css", charset="utf-8")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
