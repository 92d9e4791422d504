"""Fuzzing (hypothesis) of the wire parser and the engine (METRICS.md §9: bad input gets a
clear error naming the field; nothing valid is lost; nothing crashes)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.config import EngineConfig
from models.errors import ValidationError
from models.events import EVENT_TYPES, parse_event, parse_json
from models.session import SessionEngine
from models.simulation import SimulationConfig, simulate

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=5),
    max_leaves=20,
)
FIELDS = ["type", "session_id", "participant_id", "clinic_id", "participants", "role", "seq",
          "start_ms", "end_ms", "ts_ms", "frame_ms", "voiced", "levels", "vad", "rtt_ms",
          "jitter_ms", "loss_pct", "jitter_buffer_ms"]
# Objects shaped like events, with any value in any known field: reaches deep validation paths.
event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(EVENT_TYPES)},
    optional={name: json_values for name in FIELDS if name != "type"},
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_clear_error(error: ValidationError) -> None:
    assert error.field and error.reason
    assert str(error) == f"{error.field}: {error.reason}"


@FUZZ
@given(json_values | event_like)
def test_parser_raises_only_validation_errors_with_a_reason(value: Any) -> None:
    try:
        parse_event(value)
    except ValidationError as error:
        assert_clear_error(error)


@FUZZ
@given(st.binary(max_size=300))
def test_parser_survives_arbitrary_bytes(data: bytes) -> None:
    try:
        parse_json(data)
    except ValidationError as error:
        assert_clear_error(error)


def _session_events() -> list[dict[str, Any]]:
    return list(simulate(SimulationConfig(sessions=1, minutes=1.0, seed=7, network_interval_ms=
                                          5000)))


VALID = _session_events()


@st.composite
def corrupted_streams(draw: st.DrawFn) -> list[Any]:
    """The valid session with garbage inserted: arbitrary values, and valid events with one
    field replaced by an arbitrary value."""
    stream: list[Any] = list(VALID)
    for _ in range(draw(st.integers(1, 15))):
        position = draw(st.integers(0, len(stream)))
        if draw(st.booleans()):
            garbage: Any = draw(json_values)
        else:
            garbage = copy.deepcopy(VALID[draw(st.integers(0, len(VALID) - 1))])
            garbage[draw(st.sampled_from(FIELDS))] = draw(json_values)
        stream.insert(position, garbage)
    return stream


def _feed(engine: SessionEngine, stream: list[Any]) -> list[Any]:
    accepted = []
    for raw in stream:
        try:
            event = parse_event(raw)
            if event.session_id != engine.session_id:
                continue
            engine.ingest(event)
        except ValidationError as error:
            assert_clear_error(error)
            continue
        accepted.append(raw)
    return accepted


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_streams())
def test_engine_never_crashes_and_rejections_lose_no_state(stream: list[Any]) -> None:
    session_id = VALID[0]["session_id"]
    engine = SessionEngine(session_id, EngineConfig())
    accepted = _feed(engine, stream)
    # Replaying only what was accepted gives the same outcome: a rejected event left no trace.
    # (A valid event far ahead of session.start can make the start itself late; then both
    # runs end with the same error instead of a report.)
    clean = SessionEngine(session_id, EngineConfig())
    assert _feed(clean, accepted) == accepted
    assert _outcome(clean) == _outcome(engine)


def _outcome(engine: SessionEngine) -> Any:
    try:
        return engine.finish()
    except ValidationError as error:
        assert_clear_error(error)
        return str(error)


times = st.one_of(st.integers(0, 120_000), st.integers(0, 2**53 - 100_000))


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["speech", "activity", "network", "participant.mute",
                                 "participant.unmute", "participant.leave", "session.end",
                                 "participant.join"]))
    pid = draw(st.sampled_from(["t", "c", "x"]))
    base: dict[str, Any] = {"type": kind, "session_id": "s"}
    if kind == "speech":
        start = draw(times)
        return {**base, "participant_id": pid, "start_ms": start,
                "end_ms": start + draw(st.integers(1, 90_000))}
    if kind == "activity":
        return {**base, "participant_id": pid, "seq": draw(st.integers(0, 50)),
                "start_ms": draw(times), "frame_ms": 20,
                "voiced": draw(st.text("01", min_size=1, max_size=60))}
    if kind == "network":
        return {**base, "participant_id": pid, "ts_ms": draw(times),
                "rtt_ms": draw(st.integers(0, 2000))}
    if kind == "participant.join":
        return {**base, "participant_id": pid, "ts_ms": draw(times),
                "role": draw(st.sampled_from(["therapist", "client", "other"]))}
    if kind == "session.end":
        return {**base, "ts_ms": draw(times)}
    return {**base, "participant_id": pid, "ts_ms": draw(times)}


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_events(), max_size=30), st.integers(0, 30))
def test_engine_handles_extreme_times_in_any_order(events: list[dict[str, Any]],
                                                   start_at: int) -> None:
    """Well-formed events at any time up to 2**53, in any order: every call returns or raises
    a ValidationError quickly (deadline), and finish gives a report or a clear error."""
    start = {"type": "session.start", "session_id": "s", "ts_ms": 0, "clinic_id": "c",
             "participants": [{"participant_id": "t", "role": "therapist"},
                              {"participant_id": "c", "role": "client"}]}
    stream = [*events[:start_at], start, *events[start_at:]]
    engine = SessionEngine("s", EngineConfig())
    for raw in stream:
        try:
            engine.ingest(parse_event(raw))
        except ValidationError as error:
            assert_clear_error(error)
    outcome = _outcome(engine)
    if isinstance(outcome, dict):
        assert outcome["duration_s"] >= 0
