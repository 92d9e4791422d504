"""Fuzzing (hypothesis) of the wire parser and the engine (METRICS.md §9: bad input gets a
clear error naming the field; nothing valid is lost; nothing crashes)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from models.config import EngineConfig
from models.errors import ValidationError
from models.events import EVENT_TYPES, Levels, parse_event, parse_json
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
# The §9 clock range and its neighbours: 0..2**53 - 1 is valid, -1 and 2**53 are not; 2**31 and
# 2**32 are where 32-bit containers overflow (issue 14: a network reading 2**31 ms after the
# first crashed the engine).
TIME_BOUNDARIES = (0, 2**31 - 1, 2**31, 2**32, 2**53 - 1, 2**53, -1)
TIME_FIELDS = ("ts_ms", "start_ms", "end_ms", "seq")
boundary_times = st.sampled_from(TIME_BOUNDARIES) | st.builds(
    lambda b, d: b + d, st.sampled_from(TIME_BOUNDARIES), st.integers(-70_000, 70_000))
FIELDS = ["type", "session_id", "participant_id", "clinic_id", "participants", "role", "seq",
          "start_ms", "end_ms", "ts_ms", "frame_ms", "voiced", "levels", "vad", "rtt_ms",
          "jitter_ms", "loss_pct", "jitter_buffer_ms"]
# Objects shaped like events, with any value in any known field: reaches deep validation paths.
event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(EVENT_TYPES)},
    optional={name: json_values | boundary_times if name in TIME_FIELDS else json_values
              for name in FIELDS if name != "type"},
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
            name = draw(st.sampled_from(FIELDS))
            garbage[name] = draw(boundary_times if name in TIME_FIELDS and draw(st.booleans())
                                 else json_values)
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


# Every time across the whole range, near its start, and at (and just past) its boundaries.
times = st.one_of(st.integers(0, 120_000), st.integers(0, 2**53 - 100_000),
                  st.integers(-(2**54), 2**54), boundary_times)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["speech", "activity", "network", "participant.mute",
                                 "participant.unmute", "participant.leave", "session.end",
                                 "participant.join"]))
    pid = draw(st.sampled_from(["t", "c", "x"]))
    base: dict[str, Any] = {"type": kind, "session_id": "s"}
    if kind == "speech":
        start = draw(times)
        end = draw(times) if draw(st.integers(0, 9)) == 0 else start + draw(
            st.integers(1, 90_000) | st.just(600_000) | st.just(600_001))
        return {**base, "participant_id": pid, "start_ms": start, "end_ms": end}
    if kind == "activity":
        return {**base, "participant_id": pid, "seq": draw(st.integers(0, 50) | times),
                "start_ms": draw(times), "frame_ms": 20,
                "voiced": draw(st.text("01", min_size=1, max_size=60))}
    if kind == "network":
        return {**base, "participant_id": pid, "ts_ms": draw(times),
                "rtt_ms": draw(st.integers(0, 2000)),
                "loss_pct": draw(st.none() | st.floats(0, 100))}
    if kind == "participant.join":
        return {**base, "participant_id": pid, "ts_ms": draw(times),
                "role": draw(st.sampled_from(["therapist", "client", "other"]))}
    if kind == "session.end":
        return {**base, "ts_ms": draw(times)}
    return {**base, "participant_id": pid, "ts_ms": draw(times)}


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_events(), max_size=30), st.integers(0, 30), times)
@example(  # issue 14: a network reading 2**31 ms after the participant's first one
    [{"type": "network", "session_id": "s", "participant_id": "c", "ts_ms": ts, "rtt_ms": 100}
     for ts in (0, 2**31)], 0, 0)
@example(  # the clock's two ends, and both just past them
    [{"type": "network", "session_id": "s", "participant_id": "c", "ts_ms": ts, "rtt_ms": 100}
     for ts in (-1, 0, 2**53 - 1, 2**53)], 0, 0)
def test_engine_handles_extreme_times_in_any_order(events: list[dict[str, Any]],
                                                   start_at: int, start_ms: int) -> None:
    """Events at any time, inside the §9 range 0..2**53 - 1 and beyond it, in any order: every
    call returns or raises a ValidationError quickly (deadline), and finish gives a report or
    a clear error."""
    start = {"type": "session.start", "session_id": "s", "ts_ms": start_ms, "clinic_id": "c",
             "participants": [{"participant_id": "t", "role": "therapist"},
                              {"participant_id": "c", "role": "client"}]}
    stream = [*events[:start_at], start, *events[start_at:]]
    engine = SessionEngine("s", EngineConfig())
    for raw in stream:
        try:
            engine.ingest(parse_event(raw))
        except ValidationError as error:
            assert_clear_error(error)
            _assert_range_named(raw, error)
    outcome = _outcome(engine)
    if isinstance(outcome, dict):
        assert outcome["duration_s"] >= 0


def _assert_range_named(raw: dict[str, Any], error: ValidationError) -> None:
    """A time outside 0..2**53 - 1 is rejected naming that field (the first one checked)."""
    name = error.field.rsplit(".", 1)[-1]
    if name in ("ts_ms", "start_ms", "end_ms") and not 0 <= raw[name] <= 2**53 - 1:
        assert "0..9007199254740991" in error.reason, error


TEMPLATES: dict[str, dict[str, Any]] = {
    "session.start": {"type": "session.start", "session_id": "s", "ts_ms": 0, "clinic_id": "c"},
    "session.end": {"type": "session.end", "session_id": "s", "ts_ms": 0},
    "speech": {"type": "speech", "session_id": "s", "participant_id": "t", "start_ms": 1000,
               "end_ms": 2000},
    "activity": {"type": "activity", "session_id": "s", "participant_id": "t", "seq": 0,
                 "start_ms": 0, "frame_ms": 20, "voiced": "0110"},
    "network": {"type": "network", "session_id": "s", "participant_id": "t", "ts_ms": 0,
                "rtt_ms": 100},
    "participant.join": {"type": "participant.join", "session_id": "s", "participant_id": "t",
                         "role": "client", "ts_ms": 0},
    **{kind: {"type": kind, "session_id": "s", "participant_id": "t", "ts_ms": 0}
       for kind in ("participant.mute", "participant.unmute", "participant.leave")},
    "voice": {"type": "voice", "session_id": "s", "participant_id": "t", "ts_ms": 0,
              "speaking": True},
    # A levels batch's times are its samples' (ts_ms stands for the one sample's time).
    "levels": {"type": "levels", "session_id": "s", "participant_id": "t", "scale": "linear",
               "ts_ms": 0},
}


@FUZZ
@given(st.sampled_from(EVENT_TYPES), st.sampled_from(TIME_FIELDS), boundary_times)
def test_every_time_field_is_accepted_in_range_or_rejected_naming_it(
    kind: str, name: str, value: int
) -> None:
    """§9: an event of each type with one time field set to (or near) a boundary value parses
    when the value is in 0..2**53 - 1 and the event keeps its shape (speech end > start, an
    activity batch ending inside the range); otherwise it is rejected, and a value outside
    the range is rejected naming that field and the range."""
    raw = dict(TEMPLATES[kind])
    if name not in raw:
        return
    raw[name] = value
    if kind == "levels":
        raw["samples"] = [[raw.pop("ts_ms"), 0.5]]
    in_range = 0 <= value <= 2**53 - 1
    if kind == "speech":
        shaped = raw["end_ms"] > raw["start_ms"]
    else:  # an activity batch of 4 frames of 20 ms must end inside the range
        shaped = kind != "activity" or raw["start_ms"] + 4 * 20 <= 2**53 - 1
    try:
        event = parse_event(raw)
    except ValidationError as error:
        assert_clear_error(error)
        assert not (in_range and shaped), error
        if not in_range:
            field = "levels.samples[0][0]" if kind == "levels" else f"{kind}.{name}"
            assert error.field == field
            assert "0..9007199254740991" in error.reason or name == "seq", error
        return
    assert in_range and shaped
    got = event.first_ms if isinstance(event, Levels) else getattr(event, name)
    assert got == value
