"""The retention purge from the command line (``rapport purge``) and on the reports
service's schedule (issue 19, point 5)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from reportkit import KEY, day_ms, report_record

from services.cli import main
from services.reports import create_app
from services.reports.purge_schedule import add_purge_schedule
from services.store import ReportStore, SessionQuery
from services.store.audit import AuditQuery


def stored(path: Path) -> ReportStore:
    """Two sessions: one started two years ago, one yesterday (real clock)."""
    store = ReportStore(f"sqlite:///{path}", KEY)
    now = datetime.now(timezone.utc)
    old = int((now - timedelta(days=800)).timestamp() * 1000)
    recent = int((now - timedelta(days=1)).timestamp() * 1000)
    store.save_report(report_record("old", "c1", start_ms=old))
    store.save_report(report_record("recent", "c1", start_ms=recent))
    return store


def session_ids(store: ReportStore) -> list[str]:
    return sorted(s["session_id"] for s in store.export_sessions(SessionQuery()))


def test_rapport_purge_dry_run_then_purge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RAPPORT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAPPORT_PSEUDONYM_KEY", KEY.decode())
    monkeypatch.delenv("RAPPORT_DB_URL", raising=False)
    db = tmp_path / "reports.db"
    stored(db).close()
    url = f"sqlite:///{db}"
    assert main(["purge", "--db-url", url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "c1: would delete 1 sessions" in out
    with ReportStore(url, KEY) as store:
        assert session_ids(store) == ["old", "recent"]
    assert main(["purge", "--db-url", url]) == 0
    assert "c1: deleted 1 sessions" in capsys.readouterr().out
    with ReportStore(url, KEY) as store:
        assert session_ids(store) == ["recent"]
        [entry] = store.audit_entries(AuditQuery("c1")).items
        assert (entry["action"], entry["token_id"]) == ("purge", "cli")
        assert entry["detail"]["sessions"] == 1
    assert main(["purge", "--db-url", url]) == 0
    assert "nothing older" in capsys.readouterr().out
    # A shorter retention from the environment applies to clinics without a policy.
    monkeypatch.setenv("RAPPORT_RETENTION_DAYS", "1")
    with ReportStore(url, KEY) as store:
        store.save_report(report_record("week", "c1", start_ms=day_ms("2020-01-01")))
    assert main(["purge", "--db-url", url, "--dry-run"]) == 0
    assert "c1: would delete 2 sessions" in capsys.readouterr().out


def test_the_reports_service_purges_on_its_schedule(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    store = stored(tmp_path / "reports.db")
    caplog.set_level(logging.INFO, logger="services.reports.purge_schedule")

    async def scenario() -> None:
        app = create_app(store)
        add_purge_schedule(app, store, 0.2)
        server = TestServer(app)
        await server.start_server()
        try:
            for _ in range(100):
                if session_ids(store) == ["recent"] and sum(
                        "retention purge:" in r.message for r in caplog.records) >= 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert session_ids(store) == ["recent"]
    lines = [r.message for r in caplog.records if "retention purge:" in r.message]
    assert "clinic c1: 1 sessions" in lines[0]
    assert "nothing older" in lines[1]  # the next run finds nothing more
    [entry] = store.audit_entries(AuditQuery("c1")).items
    assert (entry["action"], entry["token_id"]) == ("purge", "service")
    store.close()
