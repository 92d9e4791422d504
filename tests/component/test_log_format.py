"""``rapport --log-format`` / ``RAPPORT_LOG_FORMAT``: what a process writes on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from services.cli import main

ROOT = Path(__file__).resolve().parents[2]
SESSION = [
    {"type": "session.start", "session_id": "s1", "ts_ms": 0, "clinic_id": "c1",
     "participants": [{"participant_id": "t", "role": "therapist"},
                      {"participant_id": "c", "role": "client"}]},
    {"type": "speech", "session_id": "s1", "participant_id": "t", "start_ms": 1000,
     "end_ms": 4000},
    {"type": "session.end", "session_id": "s1", "ts_ms": 20_000},
]


def analyze(tmp_path: Path, *options: str, env: dict[str, str] | None = None) -> list[str]:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in SESSION))
    environment = {k: v for k, v in os.environ.items() if k != "RAPPORT_LOG_FORMAT"}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "--log-level", "INFO", *options, "analyze",
         "--json", str(events)],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120, check=True)
    assert orjson.loads(done.stdout.splitlines()[0])["session_id"] == "s1"
    # The command's own summary line is printed, not logged: every other line is a log line.
    return [line for line in done.stderr.splitlines()
            if line.strip() and not line.startswith("rapport analyze:")]


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    lines = analyze(tmp_path, "--log-format", "json")
    entries = [json.loads(line) for line in lines]
    analyzed = [e for e in entries if e["logger"] == "services.cli.analyze"]
    assert analyzed and analyzed[0]["level"] == "INFO"
    assert analyzed[0]["message"].startswith("analyzed 3 lines")
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)


def test_the_environment_selects_json_and_the_option_wins(tmp_path: Path) -> None:
    by_env = analyze(tmp_path, env={"RAPPORT_LOG_FORMAT": "json"})
    assert by_env and all(line.startswith("{") for line in by_env)
    by_option = analyze(tmp_path, "--log-format", "text", env={"RAPPORT_LOG_FORMAT": "json"})
    assert any(" INFO services.cli.analyze: analyzed 3 lines" in line for line in by_option)
    assert not any(line.startswith("{") for line in by_option)


def test_text_is_the_default(tmp_path: Path) -> None:
    lines = analyze(tmp_path)
    assert any(" INFO services.cli.analyze: analyzed" in line for line in lines)


def test_a_bad_format_in_the_environment_is_a_usage_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RAPPORT_LOG_FORMAT", "xml")
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", "-"])
    assert exit_.value.code == 2
    assert "RAPPORT_LOG_FORMAT" in capsys.readouterr().err
