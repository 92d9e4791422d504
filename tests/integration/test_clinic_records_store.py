"""The clinic's records in the store (issue 19): directory labels sealed at rest, consent and
policy, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from reportkit import BACKENDS, open_store
from sqlalchemy import text

from models.errors import ValidationError
from services.store import ReportStore


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportStore]:
    with open_store(request.param, tmp_path) as opened:
        yield opened


def test_labels_are_per_clinic_and_never_stored_in_clear(store: ReportStore) -> None:
    assert store.set_label("c1", "dr-lee-id", "therapist", "Dr. Lee", by="tok1") is True
    assert store.set_label("c1", "dr-lee-id", "therapist", "Dr. Lee-Smith", by="tok2") is False
    store.set_label("c2", "dr-lee-id", "therapist", "Someone else", by="tok3")
    lee = store.pseudonymize("dr-lee-id")
    assert store.labels_for("c1") == {lee: "Dr. Lee-Smith"}
    assert store.labels_for("c2") == {lee: "Someone else"}
    assert store.labels_for("c3") == {}
    [entry] = store.list_labels("c1")
    assert (entry.participant, entry.role, entry.updated_by) == (lee, "therapist", "tok2")
    with store.db.transaction("dump") as session:
        dumped = str(session.execute(text("SELECT * FROM directory")).all())
    assert "Lee" not in dumped and "dr-lee-id" not in dumped and lee in dumped
    with pytest.raises(ValidationError) as raised:
        store.set_label("c1", "x", "nurse", "N", by="t")
    assert raised.value.field == "role"
    assert store.delete_label("c1", "dr-lee-id") is True
    assert store.labels_for("c1") == {}


def test_consent_and_policy_record_who_and_when(store: ReportStore) -> None:
    assert store.consent_of("c1", "client-1") is None
    store.set_consent("c1", "client-1", True, by="tokA")
    store.set_consent("c1", "client-2", False, by="tokA")
    assert store.consented("c1", ["client-1", "client-2", "client-3"]) == {
        store.pseudonymize("client-1")}
    assert store.consented("c2", ["client-1"]) == set()
    record = store.consent_of("c1", "client-1")
    assert record is not None and record.analysis and record.recorded_by == "tokA"
    policy = store.get_policy("c1")
    assert (policy.retention_days, policy.require_consent, policy.explicit) == (365, False, False)
    changed = store.set_policy("c1", "tokB", require_consent=True, retention_days=30)
    assert (changed.retention_days, changed.audit_retention_days, changed.require_consent,
            changed.updated_by) == (30, 2192, True, "tokB")
    assert store.get_policy("c2").retention_days == 365
    with pytest.raises(ValidationError) as raised:
        store.set_policy("c1", "tokB", retention_days=0)
    assert raised.value.field == "retention_days"


def test_the_store_clock_stamps_consent() -> None:
    moment = datetime(2030, 1, 2, tzinfo=timezone.utc)
    store = ReportStore("sqlite://", b"k" * 32, clock=lambda: moment)
    assert store.set_consent("c1", "p", True, by="t").recorded_at == moment
