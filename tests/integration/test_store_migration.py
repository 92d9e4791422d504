"""Migration 0003 (issue 16 finding 1): a database written at revision 0001, sessions keyed by
session id alone, moves to keys by (clinic, session id) with every row kept, on SQLite and
PostgreSQL; afterwards two clinics may store a session of the same id, each reading its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from reportkit import BACKENDS, KEY, backend_url, ipu, quality_record, report_record
from sqlalchemy import text

from services.store import ReportStore, SessionQuery
from services.store.database import alembic_config, create_db_engine


def _at_0001(url: str) -> None:
    """Schema 0001 with one session of clinic c1: report, timeline item, alert."""
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            connection.execute(text(
                "INSERT INTO sessions (session_id, clinic_id, therapist, start_ms, end_ms, "
                "started_at_ms, duration_s, ended_by, received_at, alert_types, summary, "
                "report) VALUES ('s1', 'c1', NULL, 0, 600000, 1000, 600.0, 'session.end', "
                "'2026-11-30 10:00:00+00', '|long_silence|', '{}', "
                "'{\"duration_s\": 600.0}')"))
            connection.execute(text(
                "INSERT INTO timeline_items (session_id, n, clinic_id, kind, ts_ms, payload) "
                "VALUES ('s1', 0, 'c1', 'ipu', 1000, '{}')"))
            connection.execute(text(
                "INSERT INTO alerts (session_id, clinic_id, alert, cleared, ts_ms, detail) "
                "VALUES ('s1', 'c1', 'long_silence', false, 5000, '{}')"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_written_at_0001_survive_and_ids_become_per_clinic(backend: str,
                                                                tmp_path: Path) -> None:
    with backend_url(backend, tmp_path) as url:
        _at_0001(url)
        with ReportStore(url, KEY) as store:  # opening migrates to the newest revision
            with store.db.engine.connect() as connection:
                version = connection.execute(text("SELECT version_num FROM alembic_version"))
                assert [row[0] for row in version] == ["0004"]
            old = store.get_report("s1", "c1")
            assert old is not None and old["report"] == {"duration_s": 600.0}
            assert [a["alert"] for a in old["alerts"]] == ["long_silence"]
            page = store.get_timeline("s1", "c1")
            assert page is not None and [i["n"] for i in page.items] == [0]
            # Clinic c2's own "s1": stored beside c1's, neither overwriting the other.
            assert store.save_report(report_record("s1", "c2", duration_s=300.0))
            assert store.add_timeline(quality_record("s1", "c2", [
                ipu(0, "t2", "therapist", 0, 900)])) == 1
            mine = store.get_report("s1", "c2")
            assert mine is not None and mine["report"]["duration_s"] == 300.0
            assert store.get_report("s1", "c1") == old
            theirs = store.get_timeline("s1", "c2")
            assert theirs is not None and theirs.items[0]["ts_ms"] == 0
            assert store.get_report("s1", "c3") is None
            listed = store.list_sessions(SessionQuery()).items
            assert sorted((s["clinic_id"], s["session_id"]) for s in listed) == [
                ("c1", "s1"), ("c2", "s1")]
