"""The audit log in the store (issue 19, point 6): listing one clinic's entries newest first
with a time window and pages, and redacting an erased participant's pseudonym from targets,
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from reportkit import BACKENDS, KEY, backend_url
from sqlalchemy import text

from models.errors import ValidationError
from services.store import AuditRecord, ReportStore
from services.store.audit import AuditCursor, AuditQuery

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=BACKENDS)
def clock_store(request: pytest.FixtureRequest, tmp_path: Path
                ) -> Iterator[tuple[ReportStore, Clock]]:
    clock = Clock()
    with backend_url(request.param, tmp_path) as url, \
            ReportStore(url, KEY, clock=clock) as store:
        yield store, clock


def record(clinic: str, target: str, token: str = "tok1") -> AuditRecord:
    return AuditRecord(clinic, token, "reports", "read GET /v1/x", target, {"status": 200})


def test_entries_of_one_clinic_newest_first_in_a_window_and_pages(
        clock_store: tuple[ReportStore, Clock]) -> None:
    store, clock = clock_store
    for day in range(5):
        clock.now = T0 + timedelta(days=day)
        store.audit(record("c1", f"session s{day}"))
    store.audit(record("c2", "session other"))
    page = store.audit_entries(AuditQuery("c1"))
    assert [e["target"] for e in page.items] == [f"session s{d}" for d in (4, 3, 2, 1, 0)]
    assert page.next_cursor is None
    first = page.items[0]
    assert (first["at"], first["clinic_id"], first["token_id"], first["detail"]) == (
        "2030-01-05T00:00:00Z", "c1", "tok1", {"status": 200})
    window = store.audit_entries(AuditQuery("c1", from_at=T0 + timedelta(days=1),
                                            to_at=T0 + timedelta(days=3)))
    assert [e["target"] for e in window.items] == ["session s2", "session s1"]
    seen: list[str] = []
    cursor = None
    while True:
        paged = store.audit_entries(AuditQuery("c1", limit=2, cursor=cursor))
        seen += [e["target"] for e in paged.items]
        if paged.next_cursor is None:
            break
        cursor = AuditCursor.decode(paged.next_cursor)
    assert seen == [f"session s{d}" for d in (4, 3, 2, 1, 0)]
    assert store.audit_entries(AuditQuery("c3")).items == []
    with pytest.raises(ValidationError):
        AuditCursor.decode("bm90IGEgY3Vyc29y")


def test_redact_replaces_a_pseudonym_in_targets_of_that_clinic_only(
        clock_store: tuple[ReportStore, Clock]) -> None:
    store, _ = clock_store
    gone, kept = store.pseudonymize("client-gone"), store.pseudonymize("client-kept")
    store.audit(record("c1", f"client {gone}"))
    store.audit(record("c1", f"session s1 therapist={gone}"))
    store.audit(record("c1", f"client {kept}"))
    store.audit(record("c2", f"client {gone}"))  # another clinic's log is not touched
    assert store.redact_audit("c1", "client-gone") == 2
    with store.db.transaction("dump") as session:
        rows = session.execute(text("SELECT clinic_id, target FROM audit_log ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("c1", "client erased"),
                                        ("c1", "session s1 therapist=erased"),
                                        ("c1", f"client {kept}"), ("c2", f"client {gone}")]
    assert store.redact_audit("c1", gone) == 0  # already redacted; a pseudonym is accepted
