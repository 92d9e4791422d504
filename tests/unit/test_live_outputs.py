"""Live behaviour of the engine: snapshots while a session runs, and classified events coming
out as soon as they are decidable (issue "Rapport core", engine requirements)."""

from __future__ import annotations

from typing import Any

from models.classified import Classified
from models.config import EngineConfig
from models.events import parse_event
from models.session import SessionEngine

START = {"type": "session.start", "session_id": "s", "ts_ms": 0, "clinic_id": "c",
         "participants": [{"participant_id": "t", "role": "therapist"},
                          {"participant_id": "c", "role": "client"}]}
# A frame source declares that nothing it sends spans more than a batch (§9): events are then
# final max_segment_ms = 1 s after the lateness bound instead of 10 minutes.
FRAMES_START = {**START, "max_segment_ms": 1000}


def frames(pid: str, seq: int, voiced: str) -> dict[str, Any]:
    return {"type": "activity", "session_id": "s", "participant_id": pid, "seq": seq,
            "start_ms": seq * 1000, "frame_ms": 20, "voiced": voiced}


def feed_until(engine: SessionEngine, seconds: int) -> list[Any]:
    """1 s batches for both participants: t talks during 0-3 s, c during 3.2-8 s."""
    out = []
    for seq in range(seconds):
        t_voiced = "1" * 50 if seq < 3 else "0" * 50
        c_voiced = "0" * 50 if seq < 3 else ("0" * 10 + "1" * 40 if seq == 3 else
                                              "1" * 50 if seq < 8 else "0" * 50)
        for pid, voiced in (("t", t_voiced), ("c", c_voiced)):
            engine.ingest(parse_event(frames(pid, seq, voiced)))
        out.extend(engine.drain())
    return out


def test_snapshot_reports_running_metrics_before_the_end() -> None:
    engine = SessionEngine("s", EngineConfig())
    engine.ingest(parse_event(START))
    feed_until(engine, 20)
    snapshot = engine.snapshot()
    assert snapshot["final"] is False
    # The live floor sweep trails the newest known time (the end of the last batch, 20 s) by
    # lateness 5 s + look-ahead 2.3 s.
    assert snapshot["duration_s"] == 20.0 - 5.0 - 2.3
    assert snapshot["roles"]["therapist"]["talk_s"] == 3.0
    assert snapshot["roles"]["client"]["talk_s"] == 4.8  # 3.2 s .. 8 s
    assert snapshot["session"]["speaker_changes"] == 1
    # A snapshot changes nothing: the final report is what it would have been without it.
    engine.ingest(parse_event({"type": "session.end", "session_id": "s", "ts_ms": 20_000}))
    final = engine.finish()
    assert final["final"] is True and final["duration_s"] == 20.0
    assert final["roles"]["client"]["talk_s"] == 4.8


def test_classified_events_come_out_once_decidable_not_at_the_end() -> None:
    """The speaker change at 3.2 s is final once the final horizon (newest known time - 5 s -
    the session's max_segment_ms, 1 s) passes 3.2 s + 2.3 s of look-ahead: with 1 s batches,
    after the batch ending at 12 s."""
    engine = SessionEngine("s", EngineConfig())
    engine.ingest(parse_event(FRAMES_START))
    early = [o for o in feed_until(engine, 11) if isinstance(o, Classified)]
    assert not [o for o in early if o.kind == "speaker_change"]
    engine = SessionEngine("s", EngineConfig())
    engine.ingest(parse_event(FRAMES_START))
    later = [o for o in feed_until(engine, 12) if isinstance(o, Classified)]
    changes = [o for o in later if o.kind == "speaker_change"]
    assert len(changes) == 1
    assert changes[0].detail["latency_ms"] == 200
    assert changes[0].detail["transition"] == "gap"


def test_repeated_session_end_is_a_duplicate_and_a_different_one_an_error() -> None:
    """At-least-once delivery repeats events: a repeated session.end changes nothing (it is
    not rejected); a second end at another time contradicts the first."""
    from models.errors import SessionStateError

    engine = SessionEngine("s", EngineConfig())
    engine.ingest(parse_event(START))
    feed_until(engine, 59)
    end = {"type": "session.end", "session_id": "s", "ts_ms": 60_000}
    assert engine.ingest(parse_event(end)) is True
    assert engine.ingest(parse_event(end)) is False
    try:
        engine.ingest(parse_event(dict(end, ts_ms=61_000)))
    except SessionStateError as error:
        assert error.field == "session.end.ts_ms"
    else:
        raise AssertionError("a second, different session.end must be rejected")
    assert engine.finish()["duration_s"] == 60.0
