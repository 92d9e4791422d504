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
