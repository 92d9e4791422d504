"""The report API in process (aiohttp test server, SQLite in tmp_path): authentication,
tenancy on every endpoint, error bodies, OpenAPI (issue 5, "Authentication and tenancy")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from reportkit import (
    KEY,
    Api,
    api,
    day_ms,
    ipu,
    quality_record,
    report_record,
)

from services.reports.openapi import openapi_document
from services.store import ReportStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReportStore]:
    with ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY) as opened:
        opened.save_report(report_record("c1-s1", "c1", therapist="t1",
                                         start_ms=day_ms("2026-03-02")))
        opened.save_report(report_record("c2-s1", "c2", therapist="t2",
                                         start_ms=day_ms("2026-03-02")))
        for clinic, session in (("c1", "c1-s1"), ("c2", "c2-s1")):
            opened.add_timeline(quality_record(session, clinic, [ipu(0, "x", "client", 0, 9)]))
        opened.add_timeline(quality_record("c1-live", "c1", [ipu(0, "x", "client", 0, 9)]))
        yield opened


@pytest.fixture
def client(store: ReportStore) -> Iterator[Api]:
    with api(store) as running:
        yield running


def endpoints(store: ReportStore, session: str, therapist: str) -> list[str]:
    return [
        f"/v1/sessions/{session}/report",
        f"/v1/sessions/{session}/timeline",
        f"/v1/therapists/{store.pseudonymize(therapist)}/trend",
    ]


LISTS = ["/v1/sessions", "/v1/sessions.csv"]


def test_every_endpoint_answers_its_own_clinic(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    for path in endpoints(store, "c1-s1", "t1"):
        assert client.get(path, token).status == 200, path
    assert client.get("/v1/sessions/c1-live/timeline", token).status == 200  # before its report
    listed = client.get("/v1/sessions", token).json()
    assert [s["session_id"] for s in listed["sessions"]] == ["c1-s1"]
    csv = client.get("/v1/sessions.csv", token)
    assert csv.status == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert "c1-s1" in csv.text and "c2-s1" not in csv.text


def test_another_clinics_token_gets_404_and_lists_only_its_own(store: ReportStore,
                                                              client: Api) -> None:
    token, _ = store.create_token("c2", "reports")
    for path in [*endpoints(store, "c1-s1", "t1"), "/v1/sessions/c1-live/timeline"]:
        reply = client.get(path, token)
        assert reply.status == 404, path
        assert reply.json()["error"].endswith(": not found")
    # and the same 404 as for ids that exist nowhere: nothing to tell them apart
    assert client.get("/v1/sessions/c1-s1/report", token).body == client.get(
        "/v1/sessions/nowhere/report", token).body
    listed = client.get("/v1/sessions", token).json()["sessions"]
    assert [s["session_id"] for s in listed] == ["c2-s1"]
    assert "c1-s1" not in client.get("/v1/sessions.csv", token).text
    assert client.get("/v1/sessions", token, therapist=store.pseudonymize("t1")).json()[
        "sessions"] == []
    for path in LISTS:
        refused = client.get(path, token, clinic="c1")
        assert refused.status == 403 and refused.json()["error"].startswith("clinic: ")


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer rpt_wrong", "Basic dXNlcjpwdw==",
                                    "rpt_no_scheme"])
def test_no_or_an_invalid_token_gets_401_everywhere(store: ReportStore, client: Api,
                                                    header: str | None) -> None:
    for path in endpoints(store, "c1-s1", "t1") + LISTS + ["/v1/sessions/none/report"]:
        headers = {} if header is None else {"Authorization": header}

        async def call(path: str = path, headers: dict[str, str] = headers) -> tuple[int, str]:
            async with client._client.get(path, headers=headers) as response:
                return response.status, response.headers.get("WWW-Authenticate", "")

        status, challenge = client._loop.run_until_complete(call())
        assert (status, challenge) == (401, 'Bearer realm="rapport"'), (path, header)


def test_a_revoked_token_gets_401(store: ReportStore, client: Api) -> None:
    token, info = store.create_token("c1", "reports")
    assert client.get("/v1/sessions", token).status == 200
    store.revoke_token(info.id)
    for path in endpoints(store, "c1-s1", "t1") + LISTS:
        reply = client.get(path, token)
        assert reply.status == 401, path
        assert reply.json() == {"error": "authorization: unknown or revoked token"}


def test_ingest_tokens_cannot_read_and_admin_reads_every_clinic(store: ReportStore,
                                                                client: Api) -> None:
    ingest, _ = store.create_token("c1", "ingest")
    reply = client.get("/v1/sessions", ingest)
    assert reply.status == 403 and reply.json()["error"].startswith("authorization: ")
    admin, _ = store.create_token("ops", "admin")
    for clinic, session, therapist in (("c1", "c1-s1", "t1"), ("c2", "c2-s1", "t2")):
        report, timeline, trend = endpoints(store, session, therapist)
        assert client.get(trend, admin).status == 200, trend
        for path in (report, timeline):
            # a session is (clinic, id) (issue 16 finding 1): an admin names the clinic, or
            # gets the only clinic that has the id
            assert client.get(path, admin).status == 200, path
            assert client.get(path, admin, clinic=clinic).status == 200, path
            assert client.get(path, admin, clinic="c9").status == 404, path
    listed = client.get("/v1/sessions", admin).json()["sessions"]
    assert sorted(s["session_id"] for s in listed) == ["c1-s1", "c2-s1"]
    only = client.get("/v1/sessions", admin, clinic="c2").json()["sessions"]
    assert [s["session_id"] for s in only] == ["c2-s1"]
    # the same id in two clinics: an admin must say which
    store.add_record(report_record("c1-s1", "c2"))
    for path in endpoints(store, "c1-s1", "t1")[:2]:
        ambiguous = client.get(path, admin)
        assert ambiguous.status == 409 and ambiguous.json()["error"].startswith("clinic: ")
        assert client.get(path, admin, clinic="c2").status == 200
    assert client.get("/v1/sessions/nowhere/report", admin).status == 404


def test_errors_are_json_naming_the_field(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    cases = [
        ("/v1/sessions", {"from": "last week"}, "from: must be an ISO date"),
        ("/v1/sessions", {"limit": "0"}, "limit: "),
        ("/v1/sessions", {"alert": "boredom"}, "alert: must be one of"),
        ("/v1/sessions", {"cursor": "nope"}, "cursor: "),
        ("/v1/sessions", {"page": "2"}, "page: unknown parameter"),
        ("/v1/sessions.csv", {"to": "2026-99-01"}, "to: "),
        ("/v1/sessions/c1-s1/timeline", {"kind": "laughter"}, "kind: "),
        ("/v1/sessions/c1-s1/report", {"x": "1"}, "x: unknown parameter"),
        ("/v1/therapists/t1/trend", {}, "therapist_id: must be a therapist pseudonym"),
    ]
    for path, params, message in cases:
        reply = client.get(path, token, **params)
        assert reply.status == 400, (path, params)
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.json()["error"].startswith(message), reply.json()
    missing = client.get("/v1/nothing", token)
    assert missing.status == 404 and "error" in missing.json()


def test_report_body(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    body = client.get("/v1/sessions/c1-s1/report", token).json()
    assert body["session_id"] == "c1-s1" and body["clinic_id"] == "c1"
    assert body["therapist"] == store.pseudonymize("t1")
    assert body["report"]["roles"]["therapist"]["talk_share"] == 0.6
    assert set(body["report"]["quality"]["participants"]) == {store.pseudonymize("t1"),
                                                              store.pseudonymize("p1")}
    assert body["started_at"] == "2026-03-02T10:00:00Z"


def test_openapi_describes_exactly_the_routes(client: Api) -> None:
    reply = client.get("/openapi.json")  # public
    assert reply.status == 200
    document = reply.json()
    assert document["openapi"].startswith("3.1")
    assert document == openapi_document()
    app_routes = {
        (re.sub(r"\{(\w+)\}", r"{\1}", r.resource.canonical), r.method.lower())
        for r in client._client.server.app.router.routes()  # type: ignore[union-attr]
        if r.method != "HEAD" and (r.resource.canonical.startswith("/v1/")
                                   or r.resource.canonical == "/openapi.json")
    }  # the HTML pages (/sessions, /signin, ...) are not part of the JSON API
    documented = {(path, method) for path, item in document["paths"].items()
                  for method in item}
    assert documented == app_routes
    for path, item in document["paths"].items():
        for name in re.findall(r"\{(\w+)\}", path):
            for operation in item.values():
                declared = [p["name"] for p in operation["parameters"] if p["in"] == "path"]
                assert name in declared, (path, name)
