"""Plain-data forms of the values a session's state holds, for checkpoints
(:mod:`models.checkpoint`; issue 15, point 4).

The stateful classes of the engine each have ``to_state()`` (a tree of lists, ints, floats,
strs, bools, bytes and ``None``) and a ``from_state()`` classmethod; the values they hold that
are not plain data themselves (buffered events, their source tags, undrained outputs, the
engine's configuration, typed arrays, canonical keys) are converted here, once. Sequences
come back from the codec as lists: :func:`tuples` restores the tuples that keys and heap
entries compare as.
"""

from __future__ import annotations

from array import array
from dataclasses import asdict
from typing import Any

from models.classified import AlertEvent, Classified, Output, Rejection
from models.config import AlertRules, EngineConfig
from models.errors import (
    ConfigError,
    LateEventError,
    RapportError,
    SessionStateError,
    ValidationError,
)
from models.events import (
    Activity,
    Event,
    Levels,
    Network,
    Participant,
    ParticipantJoin,
    ParticipantState,
    SessionEnd,
    SessionStart,
    Speech,
    Voice,
)
from models.records import Source


class StateError(RapportError, ValueError):
    """A state tree does not have the shape its ``from_state`` expects (a corrupt or foreign
    checkpoint body); :mod:`models.checkpoint` turns it into a ``CheckpointError``."""


def tuples(value: Any) -> Any:
    """``value`` with every list, at any depth, turned back into a tuple."""
    if isinstance(value, list):
        return tuple(tuples(item) for item in value)
    return value


def ints_to_state(values: array[int]) -> list[Any]:
    """A typed integer array: ``[typecode, native bytes]``."""
    return [values.typecode, values.tobytes()]


def ints_from_state(state: Any) -> array[int]:
    typecode, data = state
    if typecode not in ("h", "H", "i", "q") or not isinstance(data, bytes):
        raise StateError(f"not an integer array: {typecode!r}")
    values = array(typecode)
    values.frombytes(data)
    return values


# --- configuration ---------------------------------------------------------------------------

def config_to_state(config: EngineConfig) -> dict[str, Any]:
    return asdict(config)


def config_from_state(state: Any) -> EngineConfig:
    if not isinstance(state, dict) or not isinstance(state.get("alerts"), dict):
        raise StateError("not an engine configuration")
    try:
        return EngineConfig(**{**state, "alerts": AlertRules(**state["alerts"])})
    except (TypeError, ConfigError) as error:
        raise StateError(f"engine configuration: {error}") from None


# --- events ------------------------------------------------------------------------------------
# An event is [type, its fields in constructor order (type excluded)]: the wire type names it.

_EVENT_CLASSES: dict[str, type[Any]] = {
    "session.start": SessionStart, "session.end": SessionEnd, "speech": Speech,
    "activity": Activity, "voice": Voice, "levels": Levels, "network": Network,
    "participant.join": ParticipantJoin, "participant.mute": ParticipantState,
    "participant.unmute": ParticipantState, "participant.leave": ParticipantState,
}


def event_to_state(event: Event) -> list[Any]:
    if isinstance(event, SessionStart):
        roster = [[p.participant_id, p.role] for p in event.participants]
        return [event.type, event.session_id, event.ts_ms, event.clinic_id, roster,
                event.exclusive, event.max_segment_ms]
    if isinstance(event, ParticipantState):
        return [event.type, event.session_id, event.participant_id, event.ts_ms]
    fields = type(event).__slots__
    return [event.type, *(getattr(event, name) for name in fields if name != "type")]


def event_from_state(state: Any) -> Event:
    kind, *values = state
    cls = _EVENT_CLASSES.get(kind)
    if cls is None:
        raise StateError(f"unknown event type {kind!r}")
    try:
        if cls is SessionStart:
            session_id, ts, clinic, roster, exclusive, max_segment = values
            return SessionStart(session_id, ts, clinic,
                                tuple(Participant(pid, role) for pid, role in roster),
                                exclusive, max_segment)
        if cls is ParticipantState:
            return ParticipantState(kind, *values)
        event: Event = cls(*values)
    except (TypeError, ValueError) as error:
        raise StateError(f"{kind} event: {error}") from None
    return event


# --- tags: what a caller passed to SessionEngine.ingest --------------------------------------

def tag_to_state(tag: Any) -> Any:
    if isinstance(tag, Source):
        return [tag.topic, tag.partition, tag.offset, tag.timestamp_ms, tag.raw, tag.index]
    if tag is None or isinstance(tag, int | str):
        return tag
    raise TypeError(f"cannot checkpoint an event tag of type {type(tag).__name__}")


def tag_from_state(state: Any) -> Any:
    if isinstance(state, list):
        return Source(*state)
    return state


# --- outputs not yet drained ------------------------------------------------------------------

_ERRORS: dict[str, type[ValidationError]] = {
    cls.__name__: cls for cls in (ValidationError, LateEventError, SessionStateError,
                                  ConfigError)}


def output_to_state(output: Output) -> list[Any]:
    if isinstance(output, Classified):
        return ["c", output.kind, output.ts_ms, output.detail]
    if isinstance(output, AlertEvent):
        return ["a", output.alert, output.cleared, output.ts_ms, output.detail]
    error = output.error
    return ["r", event_to_state(output.event), type(error).__name__, error.field, error.reason,
            tag_to_state(output.tag)]


def output_from_state(state: Any) -> Output:
    kind, *values = state
    if kind == "c":
        return Classified(*values)
    if kind == "a":
        return AlertEvent(*values)
    if kind == "r":
        event, error_type, field, reason, tag = values
        error_class = _ERRORS.get(error_type)
        if error_class is None:
            raise StateError(f"unknown error type {error_type!r}")
        return Rejection(event_from_state(event), error_class(field, reason),
                         tag_from_state(tag))
    raise StateError(f"unknown output kind {kind!r}")
