"""Erasing a client or a therapist (issue 19, point 5) on SQLite and PostgreSQL: afterwards a
dump of every column of every row of every table finds nothing of theirs, other clients' data
is untouched, and the erasure is itself audited by a receipt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reportkit import (
    BACKENDS,
    alert_record,
    interruption,
    ipu,
    open_store,
    quality_record,
    report_record,
)
from sqlalchemy import select

from services.store import ReportStore
from services.store.audit import AuditRecord
from services.store.schema import AuditEntry, Base

CLIENT, OTHER, THERAPIST = "client-ann-7781", "client-bob-5512", "therapist-lee-3301"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportStore]:
    with open_store(request.param, tmp_path) as opened:
        yield opened


def dump(store: ReportStore) -> str:
    """Every column of every row of every table in the metadata, as text."""
    lines = []
    with store.db.transaction("dump") as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                lines.append(f"{table.name}: {tuple(str(value) for value in row)}")
    return "\n".join(lines)


def _populate(store: ReportStore) -> None:
    for n, client in enumerate((CLIENT, CLIENT, OTHER)):
        sid = f"s{n}"
        store.save_report(report_record(sid, "c1", therapist=THERAPIST, client=client))
        store.add_timeline(quality_record(sid, "c1", [
            ipu(1, THERAPIST, "therapist", 0, 1000), ipu(2, client, "client", 1200, 3000),
            interruption(3, 2500, by=THERAPIST, of=client)]))
        store.add_alert(alert_record(sid, "c1", "network_degraded", 5000,
                                     participant_id=client))
    # the same platform id in another clinic is another clinic's client: untouched
    store.save_report(report_record("s0", "c2", therapist="t-other", client=CLIENT))
    for who, role in ((CLIENT, "client"), (OTHER, "client"), (THERAPIST, "therapist")):
        store.set_label("c1", who, role, f"label of {who}", by="tokA")
        store.set_consent("c1", who, True, by="tokA")
    ingest, _ = store.create_token("c1", "ingest")
    store.create_session_token(ingest, clinic_id="c1", session_id="s9", participant_id=CLIENT,
                               role="client", ttl_s=600)
    store.create_session_token(ingest, clinic_id="c1", session_id="s9", participant_id=OTHER,
                               role="client", ttl_s=600)
    store.create_token("c1", "therapist", participant_id=THERAPIST)
    ann = store.pseudonymize(CLIENT)
    store.audit(AuditRecord("c1", "tokA", "clinic-admin", "consent.set", f"client {ann}"))
    store.audit(AuditRecord("c1", "tokA", "reports", "read.client", f"client {ann} sessions"))


def test_erasing_a_client_leaves_nothing_of_theirs(store: ReportStore) -> None:
    _populate(store)
    ann, bob = store.pseudonymize(CLIENT), store.pseudonymize(OTHER)
    assert ann in dump(store)  # the dump does see pseudonyms where they are
    erased = store.erase("c1", CLIENT, "client", token_id="tokZ", scope="clinic-admin")
    everything = dump(store)
    c1_rows = "\n".join(line for line in everything.splitlines() if "'c2'" not in line)
    assert ann not in c1_rows and CLIENT not in everything
    assert erased.counts() == {"sessions": 2, "timeline_items": 6, "alerts": 2,
                               "session_participants": 4, "directory": 1, "consents": 1,
                               "tokens": 1, "audit_redacted": 2}
    # other clients, the therapist and the other clinic are untouched
    assert bob in everything
    assert store.get_report("s2", "c1") is not None
    assert store.get_report("s0", "c1") is None and store.get_report("s1", "c1") is None
    assert store.get_report("s0", "c2") is not None
    assert store.consented("c1", [OTHER, THERAPIST]) == {bob, store.pseudonymize(THERAPIST)}
    assert store.consented("c2", [CLIENT]) == set()
    page = store.get_timeline("s2", "c1")
    assert page is not None and page.total == 3
    # the erasure's own audit record names the receipt, not the client
    with store.db.transaction("audit") as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        last = entries[-1]
        assert (last.action, last.target, last.token_id) == (
            "erase.client", f"erasure {erased.receipt}", "tokZ")
        assert last.detail["sessions"] == 2
        assert [e.target for e in entries[:2]] == ["client erased", "client erased sessions"]


def test_erasing_a_therapist_removes_their_sessions_and_tokens(store: ReportStore) -> None:
    _populate(store)
    lee = store.pseudonymize(THERAPIST)
    erased = store.erase("c1", THERAPIST, "therapist", token_id="tokZ", scope="admin")
    assert (erased.sessions, erased.tokens, erased.directory) == (3, 1, 1)
    assert lee not in dump(store)
    assert store.get_report("s0", "c2") is not None


def test_erasing_someone_unknown_changes_nothing_but_the_audit(store: ReportStore) -> None:
    _populate(store)
    def data(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("audit_log")]

    before = dump(store)
    erased = store.erase("c1", "nobody", "client", token_id="tokZ", scope="clinic-admin")
    assert set(erased.counts().values()) == {0}
    after = dump(store)
    assert data(after) == data(before)
    assert f"erasure {erased.receipt}" in after


def test_revoking_consent_erases_but_keeps_the_refusal(store: ReportStore) -> None:
    _populate(store)
    ann = store.pseudonymize(CLIENT)
    record, erased = store.record_consent("c1", CLIENT, False, token_id="tokZ",
                                          scope="clinic-admin")
    assert record.analysis is False and erased is not None and erased.sessions == 2
    assert erased.consents == 0
    refusal = store.consent_of("c1", CLIENT)
    assert refusal is not None and refusal.analysis is False
    rows = [line for line in dump(store).splitlines() if ann in line and "'c2'" not in line]
    assert len(rows) == 1 and rows[0].startswith("consents:")


def test_erasing_someone_unknown_can_be_refused_without_a_trace(store: ReportStore) -> None:
    from services.store.erasure import NothingToErase

    _populate(store)
    before = dump(store)
    with pytest.raises(NothingToErase):
        store.erase("c2", OTHER, "client", token_id="tokZ", scope="clinic-admin",
                    missing_ok=False)
    assert dump(store) == before


def test_sessions_missing_from_the_roster_are_erased_too(store: ReportStore) -> None:
    from sqlalchemy import delete

    from services.store.schema import SessionParticipant

    ann = store.pseudonymize(CLIENT)
    store.save_report(report_record("old", "c1", therapist=THERAPIST, client=CLIENT))
    with store.db.transaction("as before 0004") as session:  # rosters held the therapist only
        session.execute(delete(SessionParticipant).where(SessionParticipant.participant == ann))
    store.add_timeline(quality_record("live", "c1", [ipu(1, CLIENT, "client", 0, 900)]))
    store.add_alert(alert_record("live2", "c1", "network_degraded", 10, participant_id=CLIENT))
    store.save_report(report_record("other", "c1", therapist=THERAPIST, client=OTHER))
    erased = store.erase("c1", CLIENT, "client", token_id="tokZ", scope="clinic-admin")
    assert (erased.sessions, erased.timeline_items, erased.alerts) == (1, 1, 1)
    assert ann not in dump(store)
    assert store.get_report("other", "c1") is not None


def test_only_sessions_in_that_role_are_erased(store: ReportStore) -> None:
    # the same platform id led one session as therapist and sat in another as client
    store.save_report(report_record("as-therapist", "c1", therapist=CLIENT, client=OTHER))
    store.save_report(report_record("as-client", "c1", therapist=THERAPIST, client=CLIENT))
    erased = store.erase("c1", CLIENT, "client", token_id="tokZ", scope="clinic-admin")
    assert erased.sessions == 1
    assert store.get_report("as-client", "c1") is None
    assert store.get_report("as-therapist", "c1") is not None
