"""Regression tests for the report server's findings of the security and robustness probe
(issue "Multi-tenant integrity and hardening"): each reproduces the probe's request and failed
on the code before the fix."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from reportkit import KEY, Api, api, report_record

from services.store import ReportStore

THERAPIST = "t1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReportStore]:
    with ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY) as opened:
        opened.save_report(report_record("s-ok", "c1", therapist=THERAPIST))
        yield opened


@pytest.fixture
def client(store: ReportStore) -> Iterator[Api]:
    with api(store) as running:
        yield running


@pytest.mark.parametrize("target", [
    "/\t/127.0.0.1:8798/pwned",  # the probe's next=/%09/127.0.0.1:8798/pwned
    "/\n/evil.example",  # next=/%0A/evil: an empty reply and a traceback before
    "/\r\n/evil.example",
    "/ /evil.example",
    "/sessions//evil.example",
    "/\\evil.example",
    "https://evil.example/",
    "//evil.example",
])
def test_sign_in_never_redirects_off_site(store: ReportStore, client: Api, target: str) -> None:
    token, _ = store.create_token("c1", "reports")
    shown = client.get("/signin", next=target)
    assert shown.status == 200 and "evil" not in shown.text and "127.0.0.1:8798" not in shown.text
    signed = client.request("POST", "/signin", allow_redirects=False,
                            data={"token": token, "next": target})
    assert signed.status == 303
    assert signed.headers["Location"] == "/sessions"


def test_sign_in_keeps_a_same_site_next_with_its_query(store: ReportStore,
                                                       client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    signed = client.request("POST", "/signin", allow_redirects=False,
                            data={"token": token, "next": "/sessions?from=2026-01-01"})
    assert signed.headers["Location"] == "/sessions?from=2026-01-01"


@pytest.mark.parametrize("origin", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Referer": "https://evil.example/page.html"},
])
def test_cross_site_sign_in_and_sign_out_are_refused(store: ReportStore, client: Api,
                                                     origin: dict[str, str]) -> None:
    """Login CSRF: a page elsewhere must not sign a browser in with another clinic's token,
    nor sign it out."""
    token, _ = store.create_token("c2", "reports")
    forged = client.request("POST", "/signin", headers=origin, allow_redirects=False,
                            data={"token": token, "next": "/sessions"})
    assert forged.status == 403 and "Set-Cookie" not in forged.headers
    assert client.get("/sessions").status == 401  # no cookie was set

    own, _ = store.create_token("c1", "reports")
    client.request("POST", "/signin", data={"token": own, "next": "/sessions"})
    assert client.get("/sessions").status == 200
    assert client.request("POST", "/signout", headers=origin,
                          allow_redirects=False).status == 403
    assert client.get("/sessions").status == 200  # still signed in


def test_same_site_sign_in_passes_the_origin_check(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    host = client.host
    signed = client.request("POST", "/signin", allow_redirects=False,
                            headers={"Origin": f"http://{host}"},
                            data={"token": token, "next": "/sessions"})
    assert signed.status == 303 and "Set-Cookie" in signed.headers


@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/sessions.csv", "/sessions",
                                  f"/v1/therapists/{'0' * 64}/trend"])
@pytest.mark.parametrize("to", ["9999-12-31", "0001-01-01T00:00:00+01:00"])
def test_dates_at_the_end_of_the_calendar_are_not_a_server_error(
        store: ReportStore, client: Api, path: str, to: str) -> None:
    token, _ = store.create_token("c1", "reports")
    reply = client.get(path, token, to=to)
    assert reply.status in (200, 400, 404), reply.text
    if reply.status == 400:
        assert "to" in reply.text


def test_a_forged_cursor_with_a_huge_integer_is_a_400_naming_it(store: ReportStore,
                                                                client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    for started in (10**30, -(10**30), 2**63):
        cursor = base64.urlsafe_b64encode(f"{started}:s-ok".encode()).decode().rstrip("=")
        reply = client.get("/v1/sessions", token, cursor=cursor)
        assert reply.status == 400, reply.text
        assert reply.json()["field"] == "cursor"


@pytest.mark.parametrize("session_id", ["=HYPERLINK(\"http://evil.example\")", "+1+1",
                                        "-2+3", "@SUM(A1)"])
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(
        store: ReportStore, client: Api, session_id: str) -> None:
    store.save_report(report_record(session_id, "c1", therapist=THERAPIST))
    token, _ = store.create_token("c1", "reports")
    reply = client.get("/v1/sessions.csv", token)
    rows = list(csv.reader(io.StringIO(reply.text)))
    cells = {row[0] for row in rows[1:]}
    assert "'" + session_id in cells and session_id not in cells
    assert "s-ok" in cells  # ordinary ids stay as they are


@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/sessions.csv", "/sessions",
                                  "/v1/sessions/missing", "/openapi.json"])
def test_answers_are_not_cached_nor_sniffed(store: ReportStore, client: Api,
                                            path: str) -> None:
    token, _ = store.create_token("c1", "reports")
    reply = client.get(path, token)
    assert reply.headers.get("Cache-Control") == "no-store", (path, reply.headers)
    assert reply.headers.get("X-Content-Type-Options") == "nosniff"


def test_the_stylesheet_keeps_its_cache_policy(client: Api) -> None:
    reply = client.get("/static/rapport.css")
    assert reply.headers["Cache-Control"] == "public, max-age=3600"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "private" / "reports.db"
    with ReportStore(f"sqlite:///{path}", KEY) as opened:
        opened.save_report(report_record("s1", "c1"))
    for produced in path.parent.iterdir():  # the database and SQLite's -wal/-shm files
        assert produced.stat().st_mode & 0o777 == 0o600, produced
    assert path.parent.stat().st_mode & 0o777 == 0o700
