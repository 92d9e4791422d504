"""Participant ids are pseudonymized at the store's edge (issue 5; docs/configuration.md,
"Participant pseudonyms"): HMAC-SHA256 with the deployment's key, everywhere an id appears."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest

from models.errors import ConfigError
from services.store.pseudonyms import KEY_FILE, Pseudonymizer, load_key

KEY = b"0123456789abcdef-test-key"


def test_pseudonym_is_the_documented_hmac() -> None:
    expected = hmac.new(KEY, b"therapist-42", hashlib.sha256).hexdigest()
    assert Pseudonymizer(KEY)("therapist-42") == expected
    assert len(expected) == 64


def test_pseudonyms_are_stable_per_key_and_differ_across_keys() -> None:
    one, same, other = Pseudonymizer(KEY), Pseudonymizer(KEY), Pseudonymizer(KEY + b"!")
    assert one("p1") == same("p1") != other("p1")
    assert one("p1") != one("p2")


def test_apply_replaces_every_participant_id_and_nothing_else() -> None:
    hide = Pseudonymizer(KEY)
    record = {
        "participant_id": "t1", "role": "therapist", "session_id": "s1", "clinic_id": "c1",
        "speaker_change": {"from": "t1", "from_role": "therapist", "to": "p1", "to_role": "client"},
        "interruption": {"by": "p1", "of": "t1", "direction": "client_to_therapist"},
        "lapse": {"preceded_by": "t1", "broken_by": "p1", "broken_by_role": "client"},
        "quality": {"participants": {"t1": {"role": "therapist"}, "p1": {"role": "client"}}},
        "alerts": [{"type": "network_degraded", "participant_id": "p1", "ts_ms": 5}],
        "lapses": {"preceded_by": {"therapist": 2}},  # keyed by role: unchanged
    }
    out = hide.apply(record)
    assert out["participant_id"] == hide("t1")
    assert out["speaker_change"] == {"from": hide("t1"), "from_role": "therapist",
                                     "to": hide("p1"), "to_role": "client"}
    assert (out["interruption"]["by"], out["interruption"]["of"]) == (hide("p1"), hide("t1"))
    assert (out["lapse"]["preceded_by"], out["lapse"]["broken_by"]) == (hide("t1"), hide("p1"))
    assert set(out["quality"]["participants"]) == {hide("t1"), hide("p1")}
    assert out["alerts"][0]["participant_id"] == hide("p1")
    assert out["lapses"] == {"preceded_by": {"therapist": 2}}
    assert (out["session_id"], out["clinic_id"], out["role"]) == ("s1", "c1", "therapist")
    assert "t1" not in repr(out).replace("'t1'", "") and "'p1'" not in repr(out)
    assert record["participant_id"] == "t1"  # the input is not modified


def test_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = load_key(None, data)
    path = data / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(None, data) == first  # a restart keeps the pseudonyms
    assert len(first) >= 32
    assert load_key("configured-key-of-some-length", data) == b"configured-key-of-some-length"
    assert not list(data.glob(".pseudonym.key.*"))  # no temporary file left


def test_short_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        Pseudonymizer(b"short")
    assert raised.value.field == "RAPPORT_PSEUDONYM_KEY"
    (tmp_path / KEY_FILE).write_text("x\n")
    with pytest.raises(ConfigError):
        load_key(None, tmp_path)
