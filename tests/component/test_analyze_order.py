"""``rapport analyze FILE`` reads a file as a whole, in any order (METRICS.md §9 "Final and
live": a file is analyzed as a whole; the final report depends only on the set of accepted
events), and ``--as-stream`` keeps the streaming worker's file-order semantics."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from services.cli import main


def _simulate(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[bytes]:
    events = tmp_path / "sim.jsonl"
    assert main(["simulate", "--sessions", "2", "--minutes", "3", "--seed", "7",
                 "--style", "mixed", "-o", str(events), *extra]) == 0
    capsys.readouterr()
    return [line for line in events.read_bytes().splitlines() if line.strip()]


def _analyze(path: Path, capsys: pytest.CaptureFixture[str],
             *extra: str) -> tuple[dict[str, dict[str, object]], str]:
    assert main(["analyze", "--json", *extra, str(path)]) == 0
    captured = capsys.readouterr()
    reports = {r["session_id"]: r for r in map(orjson.loads, captured.out.splitlines())}
    return reports, captured.err


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _participant(line: bytes) -> tuple[str, str]:
    event = orjson.loads(line)
    return event["session_id"], event.get("participant_id", "")


@pytest.mark.parametrize("encoding", ["speech", "voiced"])
def test_per_participant_blocks_analyze_like_the_file_in_time_order(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], encoding: str) -> None:
    """A per-track export: each participant's events in one block, sessions one after the
    other. Read as a stream, most of a block is minutes behind the previous block (late);
    read as a whole, it is the same session as the file in time order."""
    lines = _simulate(tmp_path, capsys, "--encoding", encoding)
    ordered = _write(tmp_path / "ordered.jsonl", lines)
    # Session control events (no participant) first, then one block per participant.
    blocks = sorted(lines, key=lambda line: (_participant(line)[0],
                                             _participant(line)[1] != "",
                                             _participant(line)[1]))
    assert blocks != lines
    blocked = _write(tmp_path / "blocks.jsonl", blocks)

    expected, err = _analyze(ordered, capsys)
    assert " 0 rejected" in err
    got, err = _analyze(blocked, capsys)
    assert " 0 rejected" in err
    assert got == expected
    # The worker's semantics reject most of each later block as late: that is what the
    # whole-file reading is for (and what --as-stream still shows).
    _, err = _analyze(blocked, capsys, "--as-stream")
    assert "late" in err or "allowed_lateness_ms" in err
    assert " 0 rejected" not in err


def test_a_shuffled_file_with_duplicates_analyzes_like_the_sorted_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _simulate(tmp_path, capsys, "--encoding", "voiced")
    expected, _ = _analyze(_write(tmp_path / "ordered.jsonl", lines), capsys)
    rng = random.Random(3)
    shuffled = lines + rng.sample(lines, len(lines) // 10)  # at-least-once: repeats
    rng.shuffle(shuffled)
    got, err = _analyze(_write(tmp_path / "shuffled.jsonl", shuffled), capsys)
    assert " 0 rejected" in err
    assert f"{len(lines) // 10} duplicates" in err or "duplicates" in err
    assert got == expected


def test_whole_file_reading_keeps_rejecting_invalid_events(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Order no longer matters, validity still does: an event before its session.start in
    time (not in the file: here the start is on a later line) and one after session.end are
    rejected with the field."""
    lines = [
        {"type": "session.end", "session_id": "s1", "ts_ms": 20_000},
        {"type": "speech", "session_id": "s1", "participant_id": "c", "start_ms": 25_000,
         "end_ms": 26_000},
        {"type": "speech", "session_id": "s1", "participant_id": "t", "start_ms": 1_000,
         "end_ms": 4_000},
        {"type": "session.start", "session_id": "s1", "ts_ms": 500, "clinic_id": "c1",
         "participants": [{"participant_id": "t", "role": "therapist"},
                          {"participant_id": "c", "role": "client"}]},
        {"type": "speech", "session_id": "s1", "participant_id": "t", "start_ms": 100,
         "end_ms": 300},
    ]
    path = _write(tmp_path / "events.jsonl", [orjson.dumps(e) for e in lines])
    reports, err = _analyze(path, capsys)
    assert reports["s1"]["roles"]["therapist"]["talk_s"] == 3.0
    assert "line 2: session s1: speech.start_ms" in err and "session.end" in err
    assert "line 5: session s1: speech.start_ms: 100 is before session.start (500)" in err
    assert " 2 rejected" in err
