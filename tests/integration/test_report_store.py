"""The report store over real connections: a SQLite file and the local PostgreSQL (a fresh
schema per test; skipped when unreachable unless CI=true). Storing, idempotency under
redelivery, every filter, pagination, trends, tokens, migrations and pseudonymization
(issue 5; METRICS.md §10)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from reportkit import (
    BACKENDS,
    KEY,
    alert_record,
    backend_url,
    day_ms,
    interruption,
    ipu,
    open_store,
    quality_record,
    report_record,
)
from sqlalchemy import inspect, select, text

from models.errors import ValidationError
from services.store import Cursor, ReportStore, SessionQuery, StoreError
from services.store.schema import AlertRow, Base, SessionRow, TimelineItem


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportStore]:
    with open_store(request.param, tmp_path) as opened:
        yield opened


def _row(store: ReportStore, session_id: str, clinic: str = "c1") -> dict[str, Any]:
    with store.db.transaction("read") as session:
        row = session.get(SessionRow, (clinic, session_id))
        assert row is not None
        return {c.key: getattr(row, c.key) for c in inspect(SessionRow).column_attrs}


def _count(store: ReportStore, table: type[Base]) -> int:
    with store.db.transaction("count") as session:
        return len(list(session.scalars(select(table))))


def test_a_redelivered_report_changes_nothing(store: ReportStore) -> None:
    record = report_record("s1", "c1", alerts=[{"type": "long_silence", "ts_ms": 5000,
                                                "cleared_ms": 40000, "silence_start_ms": 0}])
    assert store.save_report(record) is True
    before = _row(store, "s1")
    assert store.save_report(record) is False
    changed = report_record("s1", "c1", duration_s=999.0, therapist="t9")  # same id, new data
    assert store.save_report(changed) is False
    assert _row(store, "s1") == before
    assert _count(store, SessionRow) == 1
    assert _count(store, AlertRow) == 2  # the report's episode: raised and cleared, once
    assert before["duration_s"] == 600.0
    assert before["therapist"] == store.pseudonymize("t1")
    assert before["alert_types"] == "|long_silence|"


def test_timeline_is_idempotent_per_ordinal(store: ReportStore) -> None:
    first = quality_record("s1", "c1", [ipu(0, "t1", "therapist", 0, 900),
                                        ipu(1, "p1", "client", 1200, 3000)])
    assert store.add_timeline(first) == 2
    assert store.add_timeline(first) == 0  # redelivery
    overlapping = quality_record("s1", "c1", [ipu(1, "p1", "client", 1200, 3000),
                                              interruption(2, 2500)])
    assert store.add_timeline(overlapping) == 1
    assert store.add_timeline(quality_record("s2", "c1", [ipu(0, "x", "client", 0, 5)])) == 1
    page = store.get_timeline("s1", "c1")
    assert page is not None
    assert [(i["n"], i["kind"]) for i in page.items] == [(0, "ipu"), (1, "ipu"),
                                                         (2, "interruption")]
    assert page.items[0] == {"n": 0, "kind": "ipu", "ts_ms": 0,
                             "participant_id": store.pseudonymize("t1"), "role": "therapist",
                             "start_ms": 0, "end_ms": 900, "backchannel": False}
    assert _count(store, TimelineItem) == 4


def test_timeline_paging_and_kinds(store: ReportStore) -> None:
    events = [ipu(n, "t1", "therapist", n * 1000, n * 1000 + 500) for n in range(0, 10, 2)]
    events += [interruption(n, n * 1000) for n in range(1, 10, 2)]
    store.add_timeline(quality_record("s1", "c1", events))
    page = store.get_timeline("s1", "c1", limit=4)
    assert page is not None
    assert ([i["n"] for i in page.items], page.next_after, page.total) == ([0, 1, 2, 3], 3, 10)
    rest = store.get_timeline("s1", "c1", after=3, limit=100)
    assert rest is not None and [i["n"] for i in rest.items] == [4, 5, 6, 7, 8, 9]
    assert rest.next_after is None
    ipus = store.get_timeline("s1", "c1", kinds=frozenset({"ipu"}))
    assert ipus is not None and [i["n"] for i in ipus.items] == [0, 2, 4, 6, 8]
    assert ipus.total == 5
    assert store.get_timeline("s1", "c2") is None  # another clinic: not found
    assert store.get_timeline("nope", "c1") is None


def test_alerts_are_idempotent_and_merge_with_the_reports(store: ReportStore) -> None:
    raised = alert_record("s1", "c1", "network_degraded", 7000, participant_id="p1",
                          rtt_p95_ms=420.0)
    assert store.add_alert(raised) is True
    assert store.add_alert(raised) is False
    assert store.add_alert(alert_record("s1", "c1", "network_degraded.cleared", 9000)) is True
    store.save_report(report_record("s1", "c1", alerts=[
        {"type": "network_degraded", "ts_ms": 7000, "cleared_ms": 9000,
         "participant_id": "p1"}]))
    found = store.get_report("s1", "c1")
    assert found is not None
    assert found["alerts"] == [
        {"alert": "network_degraded", "cleared": False, "ts_ms": 7000,
         "participant_id": store.pseudonymize("p1"), "rtt_p95_ms": 420.0},
        {"alert": "network_degraded", "cleared": True, "ts_ms": 9000},
    ]
    assert found["alert_types"] == ["network_degraded"]


def _seed(store: ReportStore) -> None:
    """Six sessions over three days, two clinics, two therapists of c1."""
    silence = [{"type": "long_silence", "ts_ms": 1, "cleared_ms": 2}]
    burst = [{"type": "interruption_burst", "ts_ms": 3, "cleared_ms": None}]
    seeds = [
        ("a1", "c1", "2026-03-01", 9, "ta", silence),
        ("a2", "c1", "2026-03-02", 9, "ta", burst),
        ("a3", "c1", "2026-03-02", 15, "tb", silence + burst),
        ("a4", "c1", "2026-03-03", 9, "ta", []),
        ("b1", "c2", "2026-03-02", 10, "ta", silence),  # same raw id, other clinic
        ("b2", "c2", "2026-03-03", 10, "tc", []),
    ]
    for session_id, clinic, day, hour, therapist, alerts in seeds:
        assert store.save_report(report_record(session_id, clinic, therapist=therapist,
                                               start_ms=day_ms(day, hour), alerts=alerts))


def _ids(store: ReportStore, **filters: Any) -> list[str]:
    return [s["session_id"] for s in store.list_sessions(SessionQuery(**filters)).items]


def test_every_filter(store: ReportStore) -> None:
    _seed(store)
    ta = store.pseudonymize("ta")
    assert _ids(store) == ["b2", "a4", "a3", "b1", "a2", "a1"]  # newest first, all (admin)
    assert _ids(store, clinic="c1") == ["a4", "a3", "a2", "a1"]
    assert _ids(store, clinic="c1", therapist=ta) == ["a4", "a2", "a1"]
    assert _ids(store, therapist=ta) == ["a4", "b1", "a2", "a1"]
    assert _ids(store, clinic="c1", from_ms=day_ms("2026-03-02", 0)) == ["a4", "a3", "a2"]
    assert _ids(store, clinic="c1", until_ms=day_ms("2026-03-02", 12)) == ["a2", "a1"]
    assert _ids(store, from_ms=day_ms("2026-03-02", 0), until_ms=day_ms("2026-03-03", 0)) == [
        "a3", "b1", "a2"]
    assert _ids(store, alert="long_silence") == ["a3", "b1", "a1"]
    assert _ids(store, clinic="c1", alert="interruption_burst") == ["a3", "a2"]
    assert _ids(store, clinic="c1", alert="long_monologue") == []
    assert _ids(store, clinic="c3") == []
    entry = store.list_sessions(SessionQuery(clinic="c1", limit=1)).items[0]
    assert entry["started_at"] == "2026-03-03T09:00:00Z"
    assert entry["metrics"]["therapist_talk_share"] == 0.6
    assert "report" not in entry


def test_keyset_pagination_is_complete_and_stable(store: ReportStore) -> None:
    start = day_ms("2026-03-02")
    for i in range(23):  # many ties on the start time
        store.save_report(report_record(f"s{i:02d}", "c1", start_ms=start + (i // 5) * 1000))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_sessions(SessionQuery(clinic="c1", limit=5, cursor=cursor))
        seen += [s["session_id"] for s in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = Cursor.decode(page.next_cursor)
        # a report arriving meanwhile with an older start does not shift later pages
        if pages == 2:
            store.save_report(report_record("zz-new", "c1", start_ms=start + 60_000))
    assert pages == 5
    assert seen == sorted(seen, key=lambda s: (int(s[1:]) // 5, s), reverse=True)
    assert sorted(seen) == [f"s{i:02d}" for i in range(23)]
    exported = store.export_sessions(SessionQuery(clinic="c1", limit=2))
    assert len(exported) == 24


def test_therapist_trend_and_session_reads(store: ReportStore) -> None:
    _seed(store)
    ta = store.pseudonymize("ta")
    trend = store.therapist_trend(ta, "c1")
    assert [p["session_id"] for p in trend] == ["a1", "a2", "a4"]  # oldest first
    assert [p["session_id"] for p in store.therapist_trend(ta, None, limit=2)] == ["b1", "a4"]
    assert store.therapist_trend(ta, "c1", from_ms=day_ms("2026-03-02", 0)) == trend[1:]
    assert store.therapist_trend(store.pseudonymize("tc"), "c1") == []
    report = store.get_report("a1", "c1")
    assert report is not None and report["report"]["duration_s"] == 600.0
    assert store.get_report("a1", "c2") is None
    assert [store.get_report(s["session_id"], s["clinic_id"]) is not None
            for s in store.list_sessions(SessionQuery()).items] == [True] * len(
        store.list_sessions(SessionQuery()).items)  # admin: each by its clinic


def test_no_raw_participant_id_is_stored(store: ReportStore) -> None:
    store.save_report(report_record("s1", "c1", therapist="alice-therapist",
                                    client="bob-client"))
    store.add_timeline(quality_record("s1", "c1", [
        ipu(0, "bob-client", "client", 0, 100), interruption(1, 50, "alice-therapist",
                                                             "bob-client")]))
    store.add_alert(alert_record("s1", "c1", "network_degraded", 10,
                                 participant_id="bob-client"))
    with store.db.engine.connect() as connection:
        dump = json.dumps([[list(map(str, row)) for row in connection.execute(
            text(f"SELECT * FROM {table}"))] for table in ("sessions", "alerts",
                                                           "timeline_items")])
    assert "alice" not in dump and "bob" not in dump
    assert store.pseudonymize("bob-client") in dump


def test_tokens(store: ReportStore) -> None:
    token, info = store.create_token("c1", "reports")
    assert token.startswith("rpt_") and len(token) > 40
    assert store.verify_token(token) == info
    assert store.verify_token(token + "x") is None
    with store.db.engine.connect() as connection:
        stored = [row[0] for row in connection.execute(text("SELECT token_hash FROM tokens"))]
    assert token not in stored and len(stored[0]) == 64
    other, _ = store.create_token("c2", "admin")
    assert [t.clinic_id for t in store.list_tokens()] == ["c1", "c2"]
    revoked = store.revoke_token(info.id[:8])
    assert revoked.revoked_at is not None
    assert store.verify_token(token) is None
    assert store.verify_token(other) is not None
    assert store.revoke_token(token).revoked_at == revoked.revoked_at  # first time kept
    for bad in ("zz", "ffffffffffff"):
        with pytest.raises(ValidationError):
            store.revoke_token(bad)
    with pytest.raises(ValidationError):
        store.create_token("c1", "superuser")


# The newest migration (services/store/migrations/versions), which a new store must reach.
HEAD_REVISION = "0004"


@pytest.mark.parametrize("backend", BACKENDS)
def test_reports_survive_a_restart_and_the_schema_matches_the_models(
        backend: str, tmp_path: Path) -> None:
    with backend_url(backend, tmp_path) as url:
        with ReportStore(url, KEY) as first:
            first.save_report(report_record("s1", "c1"))
            token, _ = first.create_token("c1", "reports")
        with ReportStore(url, KEY) as second:  # migrations again: a no-op
            assert second.save_report(report_record("s1", "c1")) is False
            assert [s["session_id"] for s in second.list_sessions(SessionQuery()).items] == [
                "s1"]
            assert second.verify_token(token) is not None
            with second.db.engine.connect() as connection:
                diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
                version = connection.execute(text("SELECT version_num FROM alembic_version"))
                assert [row[0] for row in version] == [HEAD_REVISION]
            assert diff == []


def test_database_errors_become_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot migrate"):
        ReportStore("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", KEY)
    with pytest.raises(StoreError, match="cannot use database"):
        ReportStore("nosuchdialect://x", KEY)
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError):
        ReportStore(f"sqlite:///{tmp_path / 'dir.db'}", KEY)
