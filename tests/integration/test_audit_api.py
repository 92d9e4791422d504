"""``GET /v1/audit`` and the ``/audit`` page (issue 19, point 6) on SQLite and PostgreSQL:
clinic admins read their clinic's entries (JSON pages, CSV with a header row), admins name the
clinic, other scopes are refused; reading the log is itself audited; no route changes it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from reportkit import BACKENDS, KEY, api, backend_url, report_record

from services.store import ReportStore

T0 = datetime(2030, 3, 1, 9, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportStore]:
    with backend_url(request.param, tmp_path) as url, \
            ReportStore(url, KEY, clock=Clock()) as opened:
        opened.save_report(report_record("s1", "c1"))
        opened.save_report(report_record("s9", "c2"))
        yield opened


def test_clinic_admins_read_their_clinics_audit_log(store: ReportStore) -> None:
    reports, reader = store.create_token("c1", "reports")
    admin_c1, admin_info = store.create_token("c1", "clinic-admin")
    admin_c2, _ = store.create_token("c2", "clinic-admin")
    therapist, _ = store.create_token("c1", "therapist", "t1")
    with api(store) as client:
        assert client.get("/v1/sessions/s1/report", reports).status == 200
        assert client.get("/v1/sessions", reports).status == 200
        reply = client.get("/v1/audit", admin_c1)
        assert reply.status == 200
        body = reply.json()
        assert body["clinic_id"] == "c1"
        assert [(e["token_id"], e["action"], e["target"]) for e in body["entries"]] == [
            (reader.id, "read GET /v1/sessions", "/v1/sessions"),
            (reader.id, "read GET /v1/sessions/{session_id}/report", "/v1/sessions/s1/report"),
        ]
        assert reports not in reply.text
        # Reading the log was audited too, and another clinic's admin sees none of c1's.
        latest = client.get("/v1/audit", admin_c1, limit=1).json()
        assert latest["entries"][0]["action"] == "read GET /v1/audit"
        assert latest["entries"][0]["token_id"] == admin_info.id
        assert latest["next_cursor"] is not None
        older = client.get("/v1/audit", admin_c1, limit=1, cursor=latest["next_cursor"])
        assert older.json()["entries"][0]["action"] == "read GET /v1/sessions"
        assert older.json()["entries"][0]["id"] < latest["entries"][0]["id"]
        theirs = client.get("/v1/audit", admin_c2).json()["entries"]
        assert all(e["clinic_id"] == "c2" for e in theirs) and len(theirs) == 0
        # Tenancy: no token 401; reports and therapist tokens 403; naming another clinic 403.
        assert client.get("/v1/audit").status == 401
        assert client.get("/v1/audit", reports).status == 403
        assert client.get("/v1/audit", therapist).status == 403
        assert client.get("/v1/audit", admin_c1, clinic="c2").status == 403
        # Append-only: no method changes an entry.
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert client.request(method, "/v1/audit", token=admin_c1).status == 405


def test_admins_name_the_clinic_and_csv_exports_a_window(store: ReportStore) -> None:
    reports, _ = store.create_token("c1", "reports")
    admin, _ = store.create_token("ops", "admin")
    with api(store) as client:
        for _ in range(3):
            assert client.get("/v1/sessions/s1/timeline", reports).status == 200
        missing = client.get("/v1/audit", admin)
        assert missing.status == 400 and missing.json()["field"] == "clinic"
        everything = client.get("/v1/audit", admin, clinic="c1").json()["entries"]
        assert len(everything) == 3
        window = {"from": everything[1]["at"], "to": everything[0]["at"]}
        reply = client.get("/v1/audit", admin, clinic="c1", format="csv", **window)
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(reply.text)))
        assert list(rows[0]) == ["id", "at", "clinic_id", "token_id", "scope", "action",
                                 "target", "method", "status", "format"]
        assert [(r["id"], r["target"], r["status"]) for r in rows] == [
            (str(everything[1]["id"]), "/v1/sessions/s1/timeline", "200")]
        bad = client.get("/v1/audit", admin, clinic="c1", **{"from": "yesterday"})
        assert bad.status == 400 and bad.json()["field"] == "from"


def test_the_audit_page_lists_entries_for_a_clinic_admin(store: ReportStore) -> None:
    reports, _ = store.create_token("c1", "reports")
    admin_c1, _ = store.create_token("c1", "clinic-admin")
    with api(store) as client:
        client.get("/v1/sessions/s1/report", reports)
        page = client.request("GET", "/audit", headers={"Cookie": f"rapport_token={admin_c1}"})
        assert page.status == 200 and "text/html" in page.headers["Content-Type"]
        assert "/v1/sessions/s1/report" in page.text and "Download CSV" in page.text
        refused = client.request("GET", "/audit",
                                 headers={"Cookie": f"rapport_token={reports}"})
        assert refused.status == 403 and "text/html" in refused.headers["Content-Type"]
        exported = client.request("GET", "/audit?format=csv",
                                  headers={"Cookie": f"rapport_token={admin_c1}"})
        assert exported.status == 200 and exported.text.startswith("id,at,clinic_id")
