"""The HTML report pages in process (aiohttp test server, SQLite in tmp_path; issue 5): pages
render for the right clinic, another clinic's ids answer 404, no token 401 with the sign-in
form, the cookie sign-in, the speech timeline's turn markers against the report's turn
counts, and escaping of hostile ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from reportkit import KEY, Api, api, engine_records, ipu, quality_record, report_record

from services.auth import COOKIE
from services.reports.charts import turns
from services.store import ReportStore

# No "/": a path segment cannot hold one (the JSON API has the same rule).
HOSTILE = "x\"><img src=x onerror=alert(1)><svg onload=alert(2)>&'"


@pytest.fixture(scope="module")
def records() -> dict[str, list[tuple[str, bytes, bytes]]]:
    return {clinic: engine_records(clinic, sessions=2, minutes=6, seed=seed)
            for clinic, seed in (("c1", 1), ("c2", 2))}


@pytest.fixture
def store(tmp_path: Path, records: dict[str, list[tuple[str, bytes, bytes]]]
          ) -> Iterator[ReportStore]:
    with ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY) as opened:
        for produced in records.values():
            for _, _, value in produced:
                opened.add_record(value)
        yield opened


@pytest.fixture
def client(store: ReportStore) -> Iterator[Api]:
    with api(store) as running:
        yield running


def _sessions(store: ReportStore, clinic: str) -> list[str]:
    from services.store import SessionQuery

    return [s["session_id"] for s in store.list_sessions(SessionQuery(clinic=clinic)).items]


def _therapist(store: ReportStore, session_id: str, clinic: str = "c1") -> str:
    found = store.get_report(session_id, clinic)
    assert found is not None and found["therapist"]
    return str(found["therapist"])


def test_pages_render_for_their_clinic(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    own = _sessions(store, "c1")
    listing = client.get("/sessions", token)
    assert listing.status == 200 and listing.headers["Content-Type"].startswith("text/html")
    assert "script-src" not in listing.headers["Content-Security-Policy"]  # no script at all
    for session_id in own:
        assert f'href="/sessions/{session_id}?clinic=c1"' in listing.text
    for other in _sessions(store, "c2"):
        assert other not in listing.text
    page = client.get(f"/sessions/{own[0]}", token)
    assert page.status == 200
    for heading in ("Speech timeline", "Talk share and balance", "Response latency", "Alerts",
                    "What these numbers mean", "not clinical judgements"):
        assert heading in page.text, heading
    assert page.text.count("<svg") >= 3 and "<script" not in page.text
    trend = client.get(f"/therapists/{_therapist(store, own[0])}", token)
    assert trend.status == 200 and "balance index" in trend.text
    assert trend.text.count('class="multiple"') >= 10
    css = client.get("/static/rapport.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")


def test_another_clinic_gets_404_and_no_token_401(store: ReportStore, client: Api) -> None:
    other, _ = store.create_token("c2", "reports")
    session_id = _sessions(store, "c1")[0]
    pages = [f"/sessions/{session_id}", f"/therapists/{_therapist(store, session_id)}"]
    for path in pages:
        assert client.get(path, other).status == 404, path
    assert client.get(pages[0], other).text == client.get("/sessions/nowhere", other).text
    for path in [*pages, "/sessions"]:
        refused = client.get(path)
        assert refused.status == 401, path
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="rapport"'
        assert '<form method="post" action="/signin">' in refused.text
        assert session_id not in refused.text.replace(f'value="{path}"', "")
    ingest, _ = store.create_token("c1", "ingest")
    assert client.get(pages[0], ingest).status == 403
    admin, _ = store.create_token("ops", "admin")
    # a session is (clinic, id): an admin names the clinic, or gets the only one with the id
    assert client.get(pages[0], admin).status == 200
    assert client.get(pages[0] + "?clinic=c1", admin).status == 200
    assert client.get(pages[0] + "?clinic=c2", admin).status == 404


def test_sign_in_sets_a_strict_httponly_cookie(store: ReportStore, client: Api) -> None:
    token, info = store.create_token("c1", "reports")
    session_id = _sessions(store, "c1")[0]
    bad = client.request("POST", "/signin", data={"token": "rpt_wrong", "next": "/sessions"},
                         allow_redirects=False)
    assert bad.status == 401 and "Unknown or revoked token" in bad.text
    signed = client.request("POST", "/signin", allow_redirects=False,
                            data={"token": token, "next": f"/sessions/{session_id}"})
    assert signed.status == 303 and signed.headers["Location"] == f"/sessions/{session_id}"
    cookie = signed.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Path=/" in cookie
    assert client.get(f"/sessions/{session_id}").status == 200  # the cookie, no header
    assert client.get("/v1/sessions").status == 401  # the JSON API ignores the cookie
    away = client.request("POST", "/signin", allow_redirects=False,
                          data={"token": token, "next": "//evil.example/x"})
    assert away.headers["Location"] == "/sessions"  # no open redirect
    client.request("POST", "/signout", allow_redirects=False)
    assert client.get(f"/sessions/{session_id}").status == 401
    client.request("POST", "/signin", data={"token": token, "next": "/sessions"})
    store.revoke_token(info.id)
    assert client.get("/sessions").status == 401  # a revoked token's cookie is worthless


def test_timeline_has_one_turn_marker_per_turn(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    checked = 0
    for clinic in ("c1", "c2"):
        for session_id in _sessions(store, clinic):
            found = store.get_report(session_id, clinic)
            timeline = store.get_timeline(session_id, clinic, limit=20_000)
            assert found is not None and timeline is not None
            admin_view = client.get(f"/sessions/{session_id}", token) if clinic == "c1" \
                else None
            report_turns = {role: found["report"]["roles"][role]["turns"]
                            for role in found["report"]["roles"]}
            derived = turns(timeline.items)
            assert {r: sum(t.role == r for t in derived) for r in report_turns} == report_turns
            assert len(derived) == found["report"]["session"]["speaker_changes"] + 1
            if admin_view is not None:
                svg = re.search(r'<svg class="timeline".*?</svg>', admin_view.text, re.S)
                assert svg is not None
                for role, count in report_turns.items():
                    assert svg.group(0).count(f'data-turn="{role}"') == count, role
                ipus = sum(1 for i in timeline.items if i["kind"] == "ipu"
                           and not i["backchannel"])
                assert svg.group(0).count('data-kind="ipu"') >= ipus
                lapses = found["report"]["session"]["lapses"]["count"]
                assert (svg.group(0).count('data-kind="lapse"') >= lapses)
            checked += 1
    assert checked == 4


def test_hostile_ids_are_escaped(store: ReportStore, client: Api) -> None:
    store.save_report(report_record(HOSTILE, "c1", therapist=HOSTILE, client="<b>c</b>"))
    store.add_timeline(quality_record(HOSTILE, "c1", [ipu(0, HOSTILE, "therapist", 0, 900),
                                                      ipu(1, "<i>", "client", 1000, 2000)]))
    token, _ = store.create_token("c1", "reports")
    listing = client.get("/sessions", token)
    assert listing.status == 200
    for text in (listing.text,):
        assert "<img" not in text and "<svg onload" not in text
    assert "x&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in listing.text
    page = client.get("/sessions/" + quote(HOSTILE, safe=""), token)
    assert page.status == 200, page.text[:300]
    assert "<img" not in page.text and "<svg onload" not in page.text
    assert page.text.count("&lt;svg onload=alert(2)&gt;") >= 2  # heading, timeline titles
    assert "&lt;i&gt;" not in page.text  # participant ids are stored only as pseudonyms
    reflected = client.get("/sessions", token, therapist="<script>")
    assert reflected.status == 400 and "<script>" not in reflected.text
    evil_next = client.get('/signin?next=/x"><script>alert(1)</script>')
    assert "<script>" not in evil_next.text


def test_the_navigation_offers_what_the_tokens_scope_may_open(store: ReportStore,
                                                                 client: Api) -> None:
    """Issue 19: a therapist is not offered the live views (403 there); a clinic admin is
    offered its directory and audit log; a supervisor neither of those."""
    links = re.compile(r'<header>.*?</header>', re.S)
    expected = {"therapist": ["/sessions"], "reports": ["/sessions", "/live"],
                "clinic-admin": ["/sessions", "/live", "/directory", "/audit"]}
    for scope, hrefs in expected.items():
        token, _ = store.create_token("c1", scope, "t1" if scope == "therapist" else None)
        reply = client.get("/sessions", token)
        assert reply.status == 200, reply.text
        header = links.search(reply.text)
        assert header is not None
        found = re.findall(r'<a href="(/[a-z]+)">', header.group(0))
        assert found == hrefs, (scope, found)
