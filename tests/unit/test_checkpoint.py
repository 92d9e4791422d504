"""Checkpoints (crash safety of the streaming workers; models/checkpoint.py): restoring an
engine's state at any point and carrying on gives exactly the report, outputs and live numbers
of an uninterrupted run; anything that is not a checkpoint of this format version is refused
with ``CheckpointError``, never misread."""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_properties import SESSION, sessions, wire_events, within_lateness

from models import checkpoint
from models.classified import Output, Rejection
from models.config import EngineConfig
from models.events import parse_event
from models.session import SessionEngine
from models.simulation import SimulationConfig, simulate
from models.stream_session import ClosedSession, StreamSession, load_state


def comparable(output: Output) -> Any:
    """Rejections hold an exception, which compares by identity: compare what it says."""
    if isinstance(output, Rejection):
        return (output.event, type(output.error), str(output.error), output.tag)
    return output


def _run(events: list[dict[str, Any]], restore_at: set[int], exclusive: bool = False,
         ) -> tuple[Any, list[Any], list[Any]]:
    engine = SessionEngine(SESSION, EngineConfig())
    outputs: list[Any] = []
    snapshots = []
    for index, raw in enumerate(events):
        if index in restore_at:
            data = checkpoint.dump(engine)
            engine = checkpoint.load(data)
            assert checkpoint.dump(engine) == data  # the state round-trips whole
            snapshots.append(engine.snapshot())
        elif restore_at:
            engine.snapshot()  # keeps the live copy warm, as the workers do
        if exclusive and raw["type"] == "session.start":
            raw = {**raw, "exclusive": True}
        engine.ingest(parse_event(raw), index)
        outputs.extend(comparable(o) for o in engine.drain())
    report = engine.finish()
    outputs.extend(comparable(o) for o in engine.drain())
    return report, outputs, snapshots


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions(), st.sampled_from(["frames", "segments", "voice", "levels:dbov"]),
       st.booleans(), st.randoms(use_true_random=False),
       st.sets(st.integers(0, 400), max_size=6))
def test_restoring_anywhere_changes_nothing(session: dict[str, Any], encoding: str,
                                            exclusive: bool, rng: random.Random,
                                            restore_at: set[int]) -> None:
    events = within_lateness(wire_events(session, encoding), rng, duplicate_rate=0.1)
    report, outputs, snapshots = _run(events, restore_at, exclusive)
    # Live numbers right after a restore are those of the engine never interrupted.
    uninterrupted = SessionEngine(SESSION, EngineConfig())
    expected_snapshots = []
    for index, raw in enumerate(events):
        if index in restore_at:
            expected_snapshots.append(uninterrupted.snapshot())
        if exclusive and raw["type"] == "session.start":
            raw = {**raw, "exclusive": True}
        uninterrupted.ingest(parse_event(raw), index)
    assert (report, outputs) == _run(events, set(), exclusive)[:2]
    assert snapshots == expected_snapshots


def test_undrained_outputs_and_rejections_survive_a_checkpoint() -> None:
    engine = SessionEngine("s", EngineConfig())
    for raw in ({"type": "speech", "session_id": "s", "participant_id": "x", "start_ms": 100,
                 "end_ms": 900},
                {"type": "session.start", "session_id": "s", "ts_ms": 0, "clinic_id": "c",
                 "participants": [{"participant_id": "t", "role": "therapist"}]},
                {"type": "speech", "session_id": "s", "participant_id": "t", "start_ms": 0,
                 "end_ms": 3000}):
        engine.ingest(parse_event(raw), f"line-{raw['type']}")
    engine.finish()
    outputs = engine._out[:]
    assert any(isinstance(o, Rejection) for o in outputs)
    restored = checkpoint.load(checkpoint.dump(engine))
    assert [comparable(o) for o in restored.drain()] == [comparable(o) for o in outputs]


def _fifty_minutes(shape: str) -> SessionEngine:
    events = list(simulate(SimulationConfig(sessions=1, minutes=50, seed=4, shape=shape,
                                            jitter_ms=2000)))
    engine = SessionEngine(events[0]["session_id"], EngineConfig(), advance_step_ms=1000)
    for raw in events[: len(events) * 49 // 50]:
        engine.ingest(parse_event(raw))
        engine.drain()
    return engine


@pytest.mark.parametrize("shape", ["frames", "levels"])
def test_a_fifty_minute_session_checkpoints_in_under_half_its_pickle(shape: str) -> None:
    """Under a third of the pickle until the engine itself held network readings and voiced
    runs compactly (issue 14 point 4): the pickle shrank more than the checkpoint did
    (frames 39 -> 23 KB pickled, 10.2 -> 7.9 KB checkpointed)."""
    engine = _fifty_minutes(shape)
    data = checkpoint.dump(engine)
    assert len(data) < len(pickle.dumps(engine, 5)) / 2
    restored = checkpoint.load(data)
    assert restored.finish() == engine.finish()


def test_stream_session_wrappers_round_trip() -> None:
    engine = SessionEngine("s", EngineConfig())
    engine.ingest(parse_event({"type": "session.start", "session_id": "s", "ts_ms": 0,
                               "clinic_id": "c", "participants": []}))
    open_state = StreamSession(engine, 3, 41, 2, 1_000, None, 5_000, 7)
    restored = load_state(checkpoint.dump(open_state))
    assert isinstance(restored, StreamSession)
    assert checkpoint.dump(restored) == checkpoint.dump(open_state)
    closed = ClosedSession("s", 3, 41, 2, 9_000, "idle_timeout")
    assert load_state(checkpoint.dump(closed)) == closed
    with pytest.raises(checkpoint.CheckpointError, match="not the state expected"):
        checkpoint.load(checkpoint.dump(closed))  # an engine was expected


def test_other_versions_and_foreign_bytes_are_refused() -> None:
    engine = SessionEngine("s", EngineConfig())
    data = checkpoint.dump(engine)
    assert isinstance(checkpoint.load(data), SessionEngine)
    with pytest.raises(checkpoint.CheckpointError, match="format 9 cannot be read"):
        checkpoint.load(data[:3] + bytes((9,)) + data[4:])
    # Versions 1 and 2 were pickles of the engine: refused, not misread.
    pickled = b"RPT" + bytes((2, 5)) + pickle.dumps(engine, 5)
    with pytest.raises(checkpoint.CheckpointError, match="format 2 cannot be read"):
        checkpoint.load(pickled)
    with pytest.raises(checkpoint.CheckpointError, match="not a Rapport"):
        checkpoint.load(b"{}")
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.load(data[:40])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_corruption_is_a_checkpoint_error(data: st.DataObject) -> None:
    """Whatever happens to the bytes (a flipped bit, a truncation, garbage appended), loading
    raises CheckpointError and nothing else: the worker dead-letters exactly that."""
    closed = ClosedSession("s", 1, 2, 0, 3, "session.end")
    state = data.draw(st.sampled_from([closed, _STREAM]))
    good = checkpoint.dump(state)
    how = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    if how == "flip":
        position = data.draw(st.integers(3, len(good) - 1))
        bit = data.draw(st.integers(0, 7))
        bad = good[:position] + bytes((good[position] ^ (1 << bit),)) + good[position + 1:]
    elif how == "truncate":
        bad = good[: data.draw(st.integers(0, len(good) - 1))]
    else:
        bad = good + data.draw(st.binary(min_size=1, max_size=8))
    with pytest.raises(checkpoint.CheckpointError):
        load_state(bad)


def _stream_session() -> StreamSession:
    events = list(simulate(SimulationConfig(sessions=1, minutes=1, seed=2, shape="mixed")))
    engine = SessionEngine(events[0]["session_id"], EngineConfig())
    for raw in events[: len(events) // 2]:
        engine.ingest(parse_event(raw))
    return StreamSession(engine, 0, 10, 0)


_STREAM = _stream_session()
