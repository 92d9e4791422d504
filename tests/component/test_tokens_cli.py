"""``rapport tokens`` in process: create prints the token last, list shows ids not tokens,
revoke by id prefix; the database comes from RAPPORT_DB_URL or --db-url (issue 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from reportkit import KEY

from services.cli import main
from services.store import ReportStore


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAPPORT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("RAPPORT_DB_URL", raising=False)
    monkeypatch.setenv("RAPPORT_PSEUDONYM_KEY", KEY.decode())
    return tmp_path / "data"


def test_create_list_revoke(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "create", "--clinic", "c1", "--scope", "reports"]) == 0
    out, err = capsys.readouterr()
    token = out.strip().splitlines()[-1]
    assert token.startswith("rpt_") and "c1" in err
    assert (data / "rapport.db").exists()  # the default database in the data directory
    with ReportStore(f"sqlite:///{data / 'rapport.db'}", KEY) as store:
        info = store.verify_token(token)
    assert info is not None and (info.clinic_id, info.scope) == ("c1", "reports")

    assert main(["tokens", "list"]) == 0
    listing = capsys.readouterr().out
    assert info.id in listing and token not in listing and "active" in listing

    assert main(["tokens", "revoke", info.id[:7]]) == 0
    assert info.id in capsys.readouterr().out
    assert main(["tokens", "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    with ReportStore(f"sqlite:///{data / 'rapport.db'}", KEY) as store:
        assert store.verify_token(token) is None


def test_db_url_option_and_errors(data: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["tokens", "create", "--clinic", "c9", "--scope", "admin",
                 "--db-url", other]) == 0
    capsys.readouterr()
    assert main(["tokens", "list", "--db-url", other]) == 0
    assert "c9" in capsys.readouterr().out
    assert not (data / "rapport.db").exists()
    assert main(["tokens", "revoke", "xyz"]) == 2
    assert "prefix: " in capsys.readouterr().err
    assert main(["tokens", "revoke", "abcdef123456"]) == 2
    assert "no token matches" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tokens", "create", "--clinic", "c1", "--scope", "root"])


def test_session_tokens_are_listed_only_on_request_and_purged_long_after_expiry(
        data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import datetime, timedelta, timezone

    from services.store import tokens as tokens_

    assert main(["tokens", "create", "--clinic", "c1", "--scope", "ingest"]) == 0
    parent = capsys.readouterr().out.strip().splitlines()[-1]
    with ReportStore(f"sqlite:///{data / 'rapport.db'}", KEY) as store:
        _, live = store.create_session_token(parent, clinic_id="c1", session_id="s1",
                                             participant_id="t1", role="therapist", ttl_s=600)
        long_ago = datetime.now(timezone.utc) - timedelta(days=8)
        with store.db.transaction("mint in the past") as session:
            _, old = tokens_.create_session_token(session, parent, clinic_id="c1",
                                                  session_id="s0", participant="x",
                                                  role="client", ttl_s=60, now=long_ago)
    assert main(["tokens", "list"]) == 0
    assert live.id not in capsys.readouterr().out
    assert main(["tokens", "list", "--sessions"]) == 0
    listing = capsys.readouterr().out
    assert live.id in listing and "therapist of session s1" in listing
    assert old.id in listing and "expired" in listing
    with ReportStore(f"sqlite:///{data / 'rapport.db'}", KEY) as store:
        store.create_session_token(parent, clinic_id="c1", session_id="s2",
                                   participant_id="t1", role="therapist", ttl_s=600)
    assert main(["tokens", "list", "--sessions"]) == 0
    listing = capsys.readouterr().out
    assert old.id not in listing and live.id in listing  # expired a week ago: deleted
