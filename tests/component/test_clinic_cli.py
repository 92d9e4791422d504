"""``rapport directory``, ``consent``, ``policy`` and ``erase`` in process (issue 19): each
change reaches the store and the audit log (token id ``cli``), labels stay sealed, and an
erasure prints its receipt and counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from reportkit import KEY, report_record
from sqlalchemy import select, text

from services.cli import main
from services.settings import load_settings
from services.store import ReportStore
from services.store.schema import AuditEntry


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAPPORT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("RAPPORT_DB_URL", raising=False)
    monkeypatch.setenv("RAPPORT_PSEUDONYM_KEY", KEY.decode())
    return tmp_path / "data"


def _store() -> ReportStore:
    return ReportStore.from_settings(load_settings())


def test_directory_set_list_remove(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["directory", "set", "--clinic", "c1", "lee-id", "--role", "therapist",
                 "--label", "Dr. Lee"]) == 0
    assert "added" in capsys.readouterr().out
    assert main(["directory", "list", "--clinic", "c1"]) == 0
    listing = capsys.readouterr().out
    with _store() as store:
        lee = store.pseudonymize("lee-id")
        assert store.labels_for("c1") == {lee: "Dr. Lee"}
        with store.db.transaction("dump") as session:
            assert "Dr. Lee" not in str(session.execute(text("SELECT * FROM directory")).all())
            [entry] = session.scalars(select(AuditEntry)).all()
            assert (entry.token_id, entry.action, entry.target) == (
                "cli", "directory.set", f"participant {lee}")
            assert "Lee" not in str(entry.detail)
    assert "Dr. Lee" in listing and lee in listing and "lee-id" not in listing
    assert main(["directory", "list", "--clinic", "c2"]) == 0
    assert "Dr. Lee" not in capsys.readouterr().out
    assert main(["directory", "remove", "--clinic", "c1", "lee-id"]) == 0
    assert main(["directory", "remove", "--clinic", "c1", "lee-id"]) == 2
    with pytest.raises(SystemExit):
        main(["directory", "set", "--clinic", "c1", "x", "--role", "nurse", "--label", "N"])


def test_consent_policy_and_erase(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "set", "--clinic", "c1", "--require-consent", "yes",
                 "--retention-days", "90"]) == 0
    assert "90 days" in capsys.readouterr().out
    assert main(["policy", "set", "--clinic", "c1", "--retention-days", "0"]) == 2
    assert "retention_days" in capsys.readouterr().err
    assert main(["consent", "set", "--clinic", "c1", "ann-id", "--analysis", "yes"]) == 0
    with _store() as store:
        assert store.get_policy("c1").require_consent is True
        assert store.consented("c1", ["ann-id"]) == {store.pseudonymize("ann-id")}
        store.set_consent("c1", "bob-id", True, by="tok")
        store.save_report(report_record("s1", "c1", client="ann-id"))
        store.save_report(report_record("s2", "c1", client="bob-id"))
    capsys.readouterr()
    assert main(["erase", "--clinic", "c1", "--client", "ann-id"]) == 0
    out = capsys.readouterr().out
    assert "receipt erasure-" in out and "sessions 1" in out and "consents 1" in out
    assert main(["erase", "--clinic", "c1", "--client", "ann-id"]) == 2
    assert main(["consent", "set", "--clinic", "c1", "bob-id", "--analysis", "no"]) == 0
    assert "sessions 1" in capsys.readouterr().out
    with _store() as store:
        assert store.get_report("s2", "c1") is None
        refusal = store.consent_of("c1", "bob-id")
        assert refusal is not None and refusal.analysis is False
        with store.db.transaction("audit") as session:
            actions = [e.action for e in session.scalars(
                select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["policy.set", "consent.set", "erase.client", "consent.revoke",
                       "consent.set"]
    with pytest.raises(SystemExit):
        main(["erase", "--clinic", "c1"])
