"""The retention purge (issue 19, point 5) on SQLite and PostgreSQL, with the store's clock
injected: after a clinic's retention period nothing older is left in any table (a dump of
every table is checked), newer rows stay, a clinic's own policy is honoured, and the audit
log has its own retention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from reportkit import (
    BACKENDS,
    KEY,
    alert_record,
    backend_url,
    day_ms,
    ipu,
    quality_record,
    report_record,
)
from sqlalchemy import text

from services.store import AuditRecord, ReportStore
from services.store.policies import PolicyDefaults

NOW = datetime(2027, 1, 1, 12, tzinfo=timezone.utc)
TABLES = ("sessions", "timeline_items", "alerts", "session_participants", "audit_log")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=BACKENDS)
def clocked(request: pytest.FixtureRequest, tmp_path: Path
            ) -> Iterator[tuple[ReportStore, Clock]]:
    clock = Clock()
    with backend_url(request.param, tmp_path) as url, \
            ReportStore(url, KEY, clock=clock, policy_defaults=PolicyDefaults(365, 2192)) \
            as store:
        yield store, clock


def a_session(store: ReportStore, session_id: str, clinic: str, day: str,
              client: str) -> None:
    """A stored session started on ``day`` (a wall clock), with a timeline and alerts."""
    start = day_ms(day)
    store.save_report(report_record(session_id, clinic, start_ms=start, client=client,
                                    alerts=[{"type": "long_silence", "ts_ms": start + 5000,
                                             "cleared_ms": start + 9000}]))
    store.add_timeline(quality_record(session_id, clinic, [
        ipu(0, "t1", "therapist", start, start + 3000),
        ipu(1, client, "client", start + 3500, start + 6000)]))
    store.add_alert(alert_record(session_id, clinic, "network_degraded", start + 7000))


def dump(store: ReportStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.db.transaction("dump") as session:
        return {table: [tuple(row) for row in session.execute(text(f"SELECT * FROM {table}"))]
                for table in TABLES}


def audit_at(store: ReportStore, clock: Clock, clinic: str, days_ago: int, target: str) -> None:
    clock.now = NOW - timedelta(days=days_ago)
    store.audit(AuditRecord(clinic, "tok", "reports", "read GET /v1/sessions", target, {}))
    clock.now = NOW


def test_the_purge_leaves_nothing_older_than_each_clinics_retention(
        clocked: tuple[ReportStore, Clock]) -> None:
    store, clock = clocked
    # c1: the defaults (365 days; audit 2192). c2: its own policy (100 days; audit 30).
    a_session(store, "gone-c1", "c1", "2025-06-01", "client-gone-1")  # 579 days old
    a_session(store, "kept-c1", "c1", "2026-06-01", "client-kept-1")  # 214 days old
    a_session(store, "gone-c2", "c2", "2026-06-01", "client-gone-2")  # 214 > 100
    a_session(store, "kept-c2", "c2", "2026-12-01", "client-kept-2")  # 31 days old
    store.set_policy("c2", "tokA", retention_days=100, audit_retention_days=30)
    # A session whose report never came: its wall-clock items are dated, relative ones not.
    store.add_timeline(quality_record("lost-c1", "c1", [
        ipu(0, "t1", "therapist", day_ms("2025-01-01"), day_ms("2025-01-01") + 900)]))
    store.add_alert(alert_record("lost-c1", "c1", "long_silence", day_ms("2025-01-01")))
    store.add_timeline(quality_record("relative-c1", "c1", [ipu(0, "t1", "therapist", 0, 900)]))
    audit_at(store, clock, "c1", 2200, "audit-gone-c1")
    audit_at(store, clock, "c1", 2000, "audit-kept-c1")
    audit_at(store, clock, "c2", 40, "audit-gone-c2")
    audit_at(store, clock, "c2", 10, "audit-kept-c2")
    gone = ["gone-c1", "gone-c2", "lost-c1", "audit-gone-c1", "audit-gone-c2",
            store.pseudonymize("client-gone-1"), store.pseudonymize("client-gone-2")]
    kept = ["kept-c1", "kept-c2", "relative-c1", "audit-kept-c1", "audit-kept-c2",
            store.pseudonymize("client-kept-1"), store.pseudonymize("client-kept-2")]

    before = dump(store)
    dry = store.purge(dry_run=True)
    assert dump(store) == before  # a dry run deletes nothing and audits nothing
    counts = {c.clinic_id: c.as_dict() for c in store.purge()}
    assert counts == {c.clinic_id: c.as_dict() for c in dry}
    # Each gone session: 2 timeline items, 3 alert rows (raised, cleared, network_degraded),
    # 2 roster rows. lost-c1 adds an item and an alert.
    assert counts == {
        "c1": {"sessions": 1, "timeline_items": 3, "alerts": 4, "session_participants": 2,
               "audit_entries": 1},
        "c2": {"sessions": 1, "timeline_items": 2, "alerts": 3, "session_participants": 2,
               "audit_entries": 1},
    }
    after = dump(store)
    text_of = {table: repr(rows) for table, rows in after.items()}
    for name in gone:
        for table, rows in text_of.items():
            assert name not in rows, (name, table)
    everything = repr(after)
    for name in kept:
        assert name in everything, name
    assert len(after["sessions"]) == 2 and len(after["session_participants"]) == 4
    assert len(after["timeline_items"]) == 5  # 2 + 2 kept, 1 relative-clock orphan
    # The purge is audited once per clinic purged, as the service.
    purges = [r for r in after["audit_log"] if "purge" in r]
    assert sorted(r[2] for r in purges) == ["c1", "c2"]
    assert all(r[3] == "service" for r in purges)

    # Nothing more to do now; a year on, the rest of c1 goes (its purge entry stays).
    assert store.purge() == []
    clock.now = NOW + timedelta(days=366)
    later = {c.clinic_id: c.sessions for c in store.purge(token_id="cli")}
    assert later == {"c1": 1, "c2": 1}
    assert [row[1] for row in dump(store)["sessions"]] == []


def test_the_audit_retention_is_separate_from_the_reports(
        clocked: tuple[ReportStore, Clock]) -> None:
    store, clock = clocked
    a_session(store, "recent", "c1", "2026-12-20", "client-1")
    store.set_policy("c1", "tokA", retention_days=3650, audit_retention_days=7)
    audit_at(store, clock, "c1", 8, "read-a-week-ago")
    audit_at(store, clock, "c1", 6, "read-yesterday-ish")
    [counts] = store.purge()
    assert counts.as_dict() == {"sessions": 0, "timeline_items": 0, "alerts": 0,
                                "session_participants": 0, "audit_entries": 1}
    left = repr(dump(store))
    assert "read-a-week-ago" not in left and "read-yesterday-ish" in left and "recent" in left
