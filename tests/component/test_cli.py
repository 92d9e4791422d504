"""The ``rapport`` command line: analyze and simulate as a user runs them."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.cli import main

SESSION = [
    {"type": "session.start", "session_id": "s1", "ts_ms": 0, "clinic_id": "c1",
     "participants": [{"participant_id": "t", "role": "therapist"},
                      {"participant_id": "c", "role": "client"}]},
    {"type": "speech", "session_id": "s1", "participant_id": "t", "start_ms": 1000,
     "end_ms": 4000},
    {"type": "speech", "session_id": "s1", "participant_id": "c", "start_ms": 4200,
     "end_ms": 8000},
    {"type": "session.end", "session_id": "s1", "ts_ms": 20_000},
]


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(b"".join(
        (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines))
    return path


def test_analyze_json_prints_one_report_per_session(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    other = [dict(e, session_id="s2") for e in SESSION]
    # Interleave two sessions line by line: sessions may be mixed in any order.
    mixed = [e for pair in zip(SESSION, other, strict=True) for e in pair]
    path = write_jsonl(tmp_path / "events.jsonl", mixed)
    assert main(["analyze", "--json", str(path)]) == 0
    reports = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["session_id"] for r in reports] == ["s1", "s2"]
    for report in reports:
        assert report["duration_s"] == 20.0
        assert report["roles"]["therapist"]["talk_s"] == 3.0
        assert report["roles"]["client"]["gaps"] == {"count": 1, "median_ms": 200.0}
        assert set(report) >= {"session_id", "clinic_id", "duration_s", "roles", "session",
                               "quality", "alerts"}


def test_invalid_lines_are_reported_with_line_and_reason_and_the_rest_analyzed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[Any] = [SESSION[0], b"{not json", SESSION[1],
                        {"type": "speech", "session_id": "s1", "participant_id": "c",
                         "start_ms": 5000, "end_ms": 4000},
                        {"type": "activity", "session_id": "s1", "participant_id": "c",
                         "seq": 0, "start_ms": 4200, "frame_ms": 20, "voiced": "01x"},
                        {"type": "hello", "session_id": "s1"},
                        *SESSION[2:]]
    path = write_jsonl(tmp_path / "events.jsonl", lines)
    assert main(["analyze", "--json", str(path)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1
    errors = captured.err
    assert "line 2: json: not valid JSON" in errors
    assert "line 4: session s1: speech.end_ms: must be > start_ms (4000 <= 5000)" in errors
    assert "line 5: session s1: activity.voiced: must be a non-empty string of 0/1" in errors
    assert "line 6: session s1: type: unknown event type 'hello'" in errors
    assert "4 rejected" in errors


def test_exit_codes_for_unusable_input(tmp_path: Path) -> None:
    assert main(["analyze", str(tmp_path / "missing.jsonl")]) == 2
    garbage = write_jsonl(tmp_path / "garbage.jsonl", [b"[]", b"nope", {"type": "speech"}])
    assert main(["analyze", str(garbage)]) == 1
    # Events but no session.start: nothing can be reported either.
    orphan = write_jsonl(tmp_path / "orphan.jsonl", SESSION[1:])
    assert main(["analyze", str(orphan)]) == 1


def test_analyze_reads_standard_input(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    data = b"".join(orjson.dumps(e) + b"\n" for e in SESSION)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["analyze", "--json", "-"]) == 0
    assert orjson.loads(capsys.readouterr().out)["session_id"] == "s1"


def test_summary_table_is_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", SESSION)
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "session s1  clinic c1  duration 20.0 s" in out
    assert "therapist" in out and "client" in out
    assert "gaps (median)" in out and "1 (200 ms)" in out


def test_set_overrides_a_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", SESSION)
    assert main(["--set", "min_speech_ms=3500", "analyze", "--json", str(path)]) == 0
    report = orjson.loads(capsys.readouterr().out)
    # 3000 ms of therapist speech is now shorter than min_speech_ms: dropped as noise.
    assert report["roles"]["therapist"]["talk_s"] == 0.0
    assert report["roles"]["client"]["talk_s"] == 3.8


def test_simulate_then_analyze_round_trip(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "sim.jsonl"
    assert main(["simulate", "--sessions", "3", "--minutes", "2", "--seed", "4",
                 "--style", "mixed", "-o", str(events)]) == 0
    capsys.readouterr()
    assert main(["analyze", "--json", str(events)]) == 0
    captured = capsys.readouterr()
    reports = [orjson.loads(line) for line in captured.out.splitlines()]
    assert len(reports) == 3
    assert "0 rejected" in captured.err
    for report in reports:
        assert report["duration_s"] == pytest.approx(120.0, abs=0.05)
        assert report["session"]["speaker_changes"] > 0


@pytest.mark.parametrize("command", [[], ["analyze"], ["simulate"]])
def test_help_is_available(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: rapport" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["reports", "run"])
def test_a_port_in_use_is_one_error_line_naming_it(command: str, tmp_path: Path) -> None:
    """A second `rapport run --port 8000` on a machine must say the port is taken (exit 2),
    not print an OSError traceback."""
    import os
    import socket
    import subprocess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        extra = ["--sessions", "1", "--minutes", "1"] if command == "run" else []
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", command, "--port", str(port), *extra],
            capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
            env={**os.environ, "RAPPORT_DATA_DIR": str(tmp_path)}, check=False)
    assert done.returncode == 2, done.stderr
    assert f"rapport {command}: error: --port: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
