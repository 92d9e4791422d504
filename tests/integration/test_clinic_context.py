"""Issue 19 points 2, 3 and 7 over HTTP on SQLite and PostgreSQL: a therapist token sees only
its own sessions; numbers in context (own median, clinic band from five therapists);
clients over time; display labels on the clinic's own pages only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reportkit import BACKENDS, Api, api, day_ms, open_store, report_record

from services.store import ReportStore

THERAPISTS = [f"t{k}" for k in range(1, 7)]  # six therapists in clinic c1


def _share(k: int, i: int) -> float:
    return round(0.3 + 0.05 * k + 0.01 * i, 4)


def _record(session_id: str, clinic: str, therapist: str, client: str, start_ms: int,
            share: float, interrupted: int) -> dict[str, Any]:
    record = report_record(session_id, clinic, therapist=therapist, client=client,
                           start_ms=start_ms, therapist_share=share)
    record["report"]["roles"]["client"]["interrupted"] = interrupted
    record["report"]["roles"]["client"]["longest_monologue_s"] = 10.0 + interrupted
    return record


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportStore]:
    with open_store(request.param, tmp_path) as opened:
        # Therapist k, session i on 2026-03-(1+i) at (10+k):00; t1 and t2 see client p1,
        # the others client p<k>.
        for k, therapist in enumerate(THERAPISTS, start=1):
            for i in range(4):
                client = "p1" if k <= 2 else f"p{k}"
                opened.save_report(_record(f"s{k}-{i}", "c1", therapist, client,
                                           day_ms(f"2026-03-0{1 + i}", 10 + k), _share(k, i),
                                           interrupted=k + i))
        # Clinic c2: three therapists only (no band), and a client of its own.
        for k in range(1, 4):
            opened.save_report(_record(f"c2-{k}", "c2", f"u{k}", "q1",
                                       day_ms("2026-03-01", 10 + k), 0.5, interrupted=0))
        yield opened


@pytest.fixture
def client(store: ReportStore) -> Iterator[Api]:
    with api(store) as running:
        yield running


def _ids(reply_json: dict[str, Any]) -> set[str]:
    return {s["session_id"] for s in reply_json["sessions"]}


def test_a_therapist_token_sees_only_its_own(store: ReportStore, client: Api) -> None:
    t1 = store.pseudonymize("t1")
    mine, info = store.create_token("c1", "therapist", participant_id="t1")
    assert info.participant == t1
    own = {f"s1-{i}" for i in range(4)}
    listed = client.get("/v1/sessions", mine)
    assert listed.status == 200 and _ids(listed.json()) == own
    # asking for a colleague's sessions: an empty list (documented), not theirs
    other = client.get("/v1/sessions", mine, therapist=store.pseudonymize("t2"))
    assert other.status == 200 and other.json()["sessions"] == []
    csv = client.get("/v1/sessions.csv", mine).text
    assert "s1-0" in csv and "s2-0" not in csv
    assert client.get("/v1/sessions/s1-2/report", mine).status == 200
    assert client.get("/v1/sessions/s1-2/timeline", mine).status == 200
    for path in ("/v1/sessions/s2-2/report", "/v1/sessions/s2-2/timeline",
                 f"/v1/therapists/{store.pseudonymize('t2')}/trend"):
        reply = client.get(path, mine)
        assert reply.status == 404, (path, reply.text)
    trend = client.get(f"/v1/therapists/{t1}/trend", mine)
    assert trend.status == 200 and trend.json()["count"] == 4
    # the pages apply the same scope
    assert client.get("/sessions", mine).text.count("/sessions/s") == 4
    assert client.get("/sessions/s2-1", mine, clinic="c1").status == 404
    assert client.get(f"/therapists/{store.pseudonymize('t2')}", mine).status == 404
    assert client.get("/sessions/s1-1", mine, clinic="c1").status == 200
    # a therapist of another clinic sees none of c1
    theirs, _ = store.create_token("c2", "therapist", participant_id="t1")
    assert client.get("/v1/sessions", theirs).json()["sessions"] == []
    assert client.get("/v1/sessions/s1-1/report", theirs).status == 404


def test_supervisors_see_the_clinic(store: ReportStore, client: Api) -> None:
    every = {f"s{k}-{i}" for k in range(1, 7) for i in range(4)}
    for scope in ("reports", "clinic-admin"):
        token, _ = store.create_token("c1", scope)
        reply = client.get("/v1/sessions", token, limit=100)
        assert reply.status == 200 and _ids(reply.json()) == every, scope
        assert client.get("/v1/sessions/s2-2/report", token).status == 200
        assert client.get("/sessions/s2-2?clinic=c1", token).status == 200
    ingest, _ = store.create_token("c1", "ingest")
    assert client.get("/v1/sessions", ingest).status == 403


def test_session_report_in_context(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    body = client.get("/v1/sessions/s1-3/report", token).json()
    context = body["context"]
    assert context["n"] == 20 and context["therapist"] == store.pseudonymize("t1")
    share = context["metrics"]["therapist_talk_share"]
    assert share["value"] == _share(1, 3)
    # t1's sessions before s1-3: shares 0.35, 0.36, 0.37 -> median 0.36
    assert share["own_sessions"] == 3 and share["own_median"] == pytest.approx(0.36)
    # Before s1-3 (2026-03-04 11:00) every therapist has sessions 0..2: medians
    # 0.36 0.41 0.46 0.51 0.56 0.61 -> p25 = 0.41 + 0.25·0.05, p75 = 0.51 + 0.75·0.05
    assert share["band_therapists"] == 6
    assert share["band"] == pytest.approx({"p25": 0.4225, "p75": 0.5475})
    # context_n=1: only the session just before
    one = client.get("/v1/sessions/s1-3/report", token, context_n=1).json()["context"]
    assert one["metrics"]["therapist_talk_share"]["own_median"] == pytest.approx(0.37)
    assert client.get("/v1/sessions/s1-3/report", token, context_n=0).status == 400
    # the first session of a therapist has no own median yet
    first = client.get("/v1/sessions/s1-0/report", token).json()["context"]
    assert first["metrics"]["therapist_talk_share"]["own_median"] is None
    # fewer than five therapists: no band, and why
    c2, _ = store.create_token("c2", "reports")
    small = client.get("/v1/sessions/c2-3/report", c2).json()["context"]
    entry = small["metrics"]["therapist_talk_share"]
    assert entry["band"] is None and entry["band_therapists"] == 2
    assert "band_reason" in entry


def test_trend_in_context(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    t1 = store.pseudonymize("t1")
    context = client.get(f"/v1/therapists/{t1}/trend", token).json()["context"]
    share = context["metrics"]["therapist_talk_share"]
    assert share["value"] is None and share["own_sessions"] == 4
    assert share["own_median"] == pytest.approx(0.365)  # 0.35 0.36 0.37 0.38
    # all four sessions of each: medians 0.365 + 0.05·(k-1) -> p25 0.4275, p75 0.5525
    assert share["band"] == pytest.approx({"p25": 0.4275, "p75": 0.5525})
    admin, _ = store.create_token("ops", "admin")
    assert client.get(f"/v1/therapists/{t1}/trend", admin).json()["context"][
        "clinic_id"] == "c1"


def test_clients_over_time(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    reply = client.get("/v1/clients/p1/sessions", token)
    assert reply.status == 200, reply.text
    body = reply.json()
    assert body["client"] == store.pseudonymize("p1")
    sessions = body["sessions"]
    assert [s["session_id"] for s in sessions] == [f"s{k}-{i}" for i in range(4)
                                                   for k in (1, 2)]  # oldest first
    first = sessions[0]["client"]
    assert first == {"talk_share": pytest.approx(1 - _share(1, 0)),
                     "longest_monologue_s": 11.0, "interrupted": 1,
                     "response_latency_median_ms": 300.0}
    assert body["series"]["interrupted"] == [s["client"]["interrupted"] for s in sessions]
    # the pseudonym works like the platform id
    same = client.get(f"/v1/clients/{store.pseudonymize('p1')}/sessions", token).json()
    assert same["sessions"] == sessions
    # a therapist token: only its own sessions with the client; none -> 404
    t2, _ = store.create_token("c1", "therapist", participant_id="t2")
    assert [s["session_id"] for s in client.get("/v1/clients/p1/sessions", t2).json()[
        "sessions"]] == [f"s2-{i}" for i in range(4)]
    t3, _ = store.create_token("c1", "therapist", participant_id="t3")
    assert client.get("/v1/clients/p1/sessions", t3).status == 404
    # tenancy: another clinic's token 404, none 401, wrong scope 403; admin names the clinic
    c2, _ = store.create_token("c2", "reports")
    assert client.get("/v1/clients/p1/sessions", c2).status == 404
    assert client.get("/v1/clients/q1/sessions", c2).status == 200
    assert client.get("/v1/clients/p1/sessions").status == 401
    ingest, _ = store.create_token("c1", "ingest")
    assert client.get("/v1/clients/p1/sessions", ingest).status == 403
    admin, _ = store.create_token("ops", "admin")
    missing = client.get("/v1/clients/p1/sessions", admin)
    assert missing.status == 400 and missing.json()["error"].startswith("clinic")
    assert client.get("/v1/clients/p1/sessions", admin, clinic="c1").json()["count"] == 8
    assert client.get("/v1/clients/p1/sessions", token, clinic="c2").status == 403
    assert client.get("/v1/clients/nobody/sessions", token).status == 404
    # the page
    page = client.get("/clients/p1", token)
    assert page.status == 200 and page.text.count('class="multiple"') == 4
    assert client.get("/clients/p1", c2).status == 404


def test_labels_only_on_the_clinics_own_pages(store: ReportStore, client: Api) -> None:
    store.set_label("c1", "t1", "therapist", "Dr. Lee", "test")
    store.set_label("c1", "p1", "client", "Client Ann", "test")
    token, _ = store.create_token("c1", "reports")
    report_page = client.get("/sessions/s1-1", token, clinic="c1").text
    assert "Dr. Lee" in report_page
    assert "Dr. Lee" in client.get(f"/therapists/{store.pseudonymize('t1')}", token).text
    assert "Dr. Lee" in client.get("/sessions", token).text
    assert "Client Ann" in client.get("/clients/p1", token).text
    # JSON keeps pseudonyms; an admin (every clinic, not the clinic) sees pseudonyms
    assert b"Dr. Lee" not in client.get("/v1/sessions/s1-1/report", token).body
    admin, _ = store.create_token("ops", "admin")
    assert "Dr. Lee" not in client.get("/sessions/s1-1", admin, clinic="c1").text
    # the report page shows the context table with the band
    assert 'id="context"' in report_page and 'class="band"' in report_page
