"""Bounded per-session state (issue "Rapport core": memory must not grow with session length
except for the quantile samples, METRICS.md §10) and the compact encodings it relies on."""

from __future__ import annotations

import pickle

from models.config import EngineConfig
from models.events import parse_event
from models.session import SessionEngine
from models.simulation import SimulationConfig, simulate


def _engine_after(minutes: float, max_segment_ms: int | None = None) -> SessionEngine:
    engine = SessionEngine("sim-0001", EngineConfig())
    for raw in simulate(SimulationConfig(sessions=1, minutes=minutes, seed=3)):
        if raw["type"] == "session.start" and max_segment_ms is not None:
            raw = {**raw, "max_segment_ms": max_segment_ms}
        if raw["type"] != "session.end":
            engine.ingest(parse_event(raw))
            engine.drain()
    return engine


def test_state_grows_only_by_the_quantile_samples() -> None:
    """Serialized state (what a worker checkpoints) of a 60-minute session is that of a
    30-minute one plus its extra quantile samples (§10 keeps every one, 2 bytes each). Events
    are held until the final horizon, allowed_lateness_ms + max_segment_ms behind the newest
    (§9): 10 minutes of voiced runs and network readings by default, a second for a frame
    source that declares ``max_segment_ms`` 1000."""
    half, full = (len(pickle.dumps(_engine_after(m))) for m in (30.0, 60.0))
    assert full < half * 1.5
    assert full < 40 * 1024
    half, full = (len(pickle.dumps(_engine_after(m, 1000))) for m in (30.0, 60.0))
    assert full < half * 1.5
    assert full < 16 * 1024


def test_dominance_buckets_widen_when_many_speak_at_once() -> None:
    """Eight participants speaking together for 30 s overflow 16-bit buckets (8 x 10 s = 80 s
    of talk per 10 s bucket); the therapist's share must still come out exact (1/8)."""
    pids = [f"p{i}" for i in range(8)]
    roster = [{"participant_id": p, "role": "therapist" if p == "p0" else "client"}
              for p in pids]
    config = EngineConfig().with_overrides(
        alerts={"dominance_share": 0.1, "dominance_min_speech_ms": 60_000,
                "dominance_window_ms": 30_000})
    engine = SessionEngine("g", config)
    engine.ingest(parse_event({"type": "session.start", "session_id": "g", "ts_ms": 0,
                               "clinic_id": "c", "participants": roster}))
    for p in pids:
        engine.ingest(parse_event({"type": "speech", "session_id": "g", "participant_id": p,
                                   "start_ms": 0, "end_ms": 30_000}))
    engine.ingest(parse_event({"type": "session.end", "session_id": "g", "ts_ms": 40_000}))
    report = engine.finish()
    assert report["roles"]["therapist"]["talk_share"] == 0.125
    fired = [a for a in report["alerts"] if a["type"] == "therapist_dominance"]
    assert fired and fired[0]["talk_share"] == 0.125  # 1/8 > 0.1 with 240 s of speech


def test_a_far_future_event_does_not_stall_the_engine() -> None:
    """Found by fuzzing: times may be epoch ms up to 2**53; integrating a long silence must
    not step through the session clock (a hang, not a slowdown)."""
    import time

    engine = SessionEngine("s", EngineConfig())
    engine.ingest(parse_event({"type": "session.start", "session_id": "s", "ts_ms": 0,
                               "clinic_id": "c", "participants": [
                                   {"participant_id": "t", "role": "therapist"}]}))
    engine.ingest(parse_event({"type": "speech", "session_id": "s", "participant_id": "t",
                               "start_ms": 1000, "end_ms": 200_000}))
    started = time.perf_counter()
    engine.ingest(parse_event({"type": "session.end", "session_id": "s", "ts_ms": 2**53 - 1}))
    report = engine.finish()
    assert time.perf_counter() - started < 1.0
    assert report["roles"]["therapist"]["talk_s"] == 199.0
    assert report["duration_s"] == round((2**53 - 1) / 1000, 3)
    # The dominance episode (therapist alone) cleared once the window emptied, 10 min later.
    dominance = [a for a in report["alerts"] if a["type"] == "therapist_dominance"]
    assert dominance and dominance[0]["cleared_ms"] is not None
    assert dominance[0]["cleared_ms"] <= 200_000 + 600_000 + 10_000
