"""Wire format v1.1 (METRICS.md §9): event types and their validating parser.

Every event is a frozen dataclass. :func:`parse_event` turns a decoded JSON value into one,
or raises :class:`~models.errors.ValidationError` naming the field (``activity.voiced``) and
the reason; the caller keeps the raw input for the dead-letter store.

Frame data stays in compact C-level form (``str`` of ``0``/``1``, ``bytes`` of levels):
converting a 50-frame batch into speech runs is a string scan, never a Python loop per frame,
which is what lets ``rapport analyze`` pass two million frames per second.
"""

from __future__ import annotations

import functools
import math
import operator
import re
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final, Literal, TypeAlias, TypeVar

import orjson

from models.errors import ValidationError

Role = Literal["therapist", "client", "other"]
ROLES: Final[tuple[Role, ...]] = ("therapist", "client", "other")

# Upper bounds that separate "unusual" from "absurd". Times may be epoch milliseconds, so the
# clock itself is only bounded by what every JSON reader carries exactly: integers up to
# 2**53 - 1 (a float64 mantissa; JavaScript's Number.MAX_SAFE_INTEGER). Every time field
# (``ts_ms``, ``start_ms``, ``end_ms``, an activity batch's end) and ``seq`` is an integer in
# 0..MAX_TIME_MS; the engine keeps them in Python ints or 64-bit arrays, never narrower.
MAX_TIME_MS: Final = 2**53 - 1
TIME_RANGE: Final = f"0..{MAX_TIME_MS} (2**53 - 1)"
MAX_BATCH_MS: Final = 60_000  # activity batches are meant to be ~1 s
MAX_RTT_MS: Final = 60_000
MAX_PARTICIPANTS: Final = 64
MAX_ID_LENGTH: Final = 128
FRAME_SIZES_MS: Final = (10, 20, 30)

_ID_PATTERN: Final = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
_VOICED_RUN: Final = re.compile(r"1+")
_VOICED_RUN_BYTES: Final = re.compile(rb"1+")


T = TypeVar("T")

_FIELD_GETTERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def _field_getter(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    getter = _FIELD_GETTERS.get(cls)
    if getter is None:
        getter = _FIELD_GETTERS[cls] = operator.attrgetter(*cls.__dict__["__slots__"])
    return getter


def maker(cls: type[T]) -> Callable[..., T]:
    """A constructor of ``cls``, a frozen slots dataclass without ``__post_init__``, taking
    every field positionally (defaults included), for the per-event path: the generated
    ``__init__`` of a frozen dataclass sets each field through ``object.__setattr__``, which
    costs about twice as much as setting the slots directly (0.9 against 0.5 µs for six
    fields). The object is the same as ``cls(*values)`` makes (equality, hash, pickling)."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    scope.update({f"_set_{name}": cls.__dict__[name].__set__ for name in names})
    lines = [f"def make({', '.join(names)}):", "    obj = _new(_cls)"]
    lines += [f"    _set_{name}(obj, {name})" for name in names]
    lines.append("    return obj")
    exec("\n".join(lines), scope)  # as dataclasses builds __init__
    make: Callable[..., T] = scope["make"]
    return make


class Compact:
    """Base of frozen slots dataclasses that are pickled often (events buffered in session
    checkpoints). dataclasses' own ``__getstate__`` for slots classes walks ``fields()`` in
    Python on every object; reducing to (class, field values) through a C ``attrgetter``
    pickles them several times faster. Field order is constructor order."""

    __slots__ = ()

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return type(self), _field_getter(type(self))(self)


@dataclass(frozen=True, slots=True)
class Participant(Compact):
    participant_id: str
    role: Role


@dataclass(frozen=True, slots=True)
class SessionStart(Compact):
    """``exclusive``: the source reports one speaker at a time (METRICS.md §1)."""

    session_id: str
    ts_ms: int
    clinic_id: str
    participants: tuple[Participant, ...] = ()
    exclusive: bool = False
    # A bound, smaller than the engine's, on this session's segment and batch spans (§9):
    # events are final sooner (see models/session.py). ``None``: the engine's bound.
    max_segment_ms: int | None = None
    type: Literal["session.start"] = "session.start"


@dataclass(frozen=True, slots=True)
class SessionEnd(Compact):
    session_id: str
    ts_ms: int
    type: Literal["session.end"] = "session.end"


@dataclass(frozen=True, slots=True)
class Speech(Compact):
    """A voiced segment ``[start_ms, end_ms)`` from a platform's own VAD."""

    session_id: str
    participant_id: str
    start_ms: int
    end_ms: int
    type: Literal["speech"] = "speech"


# The last batch's voiced runs (event, level table, runs): an engine and its live copy
# (models/session.py, with a copy of the table) take the same event one after the other.
# Callers only read the list.
_RUNS_MEMO: list[tuple[Any, bytes, list[tuple[int, int]]]] = [(None, b"", [])]


@dataclass(frozen=True, slots=True)
class Activity(Compact):
    """A batch of frames from ``start_ms``, each ``frame_ms`` long.

    Exactly one of ``voiced`` (``"0110…"``) and ``levels`` (bytes of -dBov, 0 = loudest,
    127 = silence) is set. ``vad`` optionally carries the RFC 6464 V bit per level frame:
    ``1``/``0`` decide that frame, ``-`` leaves it to the level threshold.
    """

    session_id: str
    participant_id: str
    seq: int
    start_ms: int
    frame_ms: int
    voiced: str | None = None
    levels: bytes | None = None
    vad: str | None = None
    type: Literal["activity"] = "activity"

    @property
    def frames(self) -> int:
        data = self.voiced if self.voiced is not None else self.levels
        return len(data) if data is not None else 0

    @property
    def end_ms(self) -> int:
        data = self.voiced if self.voiced is not None else self.levels  # frames, inlined
        return self.start_ms + (len(data) if data is not None else 0) * self.frame_ms

    def voiced_runs(self, level_table: bytes) -> list[tuple[int, int]]:
        """Voiced runs as ``[start_ms, end_ms)`` intervals (METRICS.md §1: consecutive voiced
        frames form a segment). ``level_table`` maps a level byte to ``b"1"``/``b"0"`` (see
        :func:`level_translation`)."""
        memo = _RUNS_MEMO[0]  # one tuple, read and replaced whole (threads)
        if memo[0] is self and memo[1] == level_table:
            return memo[2]
        start, frame = self.start_ms, self.frame_ms
        if self.voiced is not None:
            runs = [
                (start + m.start() * frame, start + m.end() * frame)
                for m in _VOICED_RUN.finditer(self.voiced)
            ]
        else:
            assert self.levels is not None
            flags = self.levels.translate(level_table)
            if self.vad is not None:
                flags = _overlay_vad(flags, self.vad)
            runs = [
                (start + m.start() * frame, start + m.end() * frame)
                for m in _VOICED_RUN_BYTES.finditer(flags)
            ]
        _RUNS_MEMO[0] = (self, level_table, runs)
        return runs


@dataclass(frozen=True, slots=True)
class Voice(Compact):
    """A speaking-state change at ``ts_ms`` (LiveKit, Janus, Zoom; METRICS.md §1)."""

    session_id: str
    participant_id: str
    ts_ms: int
    speaking: bool
    type: Literal["voice"] = "voice"


LevelScale = Literal["dbov", "dbfs", "dbvo", "linear", "byte", "int16"]
LEVEL_SCALES: Final[tuple[LevelScale, ...]] = ("dbov", "dbfs", "dbvo", "linear", "byte", "int16")


@dataclass(frozen=True, slots=True)
class Levels(Compact):
    """Level samples at irregular times (METRICS.md §1), already converted to -dBov.

    ``times`` holds the sample times and ``dbov`` their levels (0 = loudest, 127 = silence),
    both compact: ``times`` as native 8-byte integers (``array("q")`` bytes), ``dbov`` one
    byte per sample. ``scale`` is the one the source declared (kept for the record).
    """

    session_id: str
    participant_id: str
    scale: LevelScale
    times: bytes
    dbov: bytes
    type: Literal["levels"] = "levels"

    def sample_times(self) -> array[int]:
        stamps = array("q")
        stamps.frombytes(self.times)
        return stamps

    @property
    def first_ms(self) -> int:
        return int.from_bytes(self.times[:8], sys.byteorder, signed=True)

    @property
    def last_ms(self) -> int:
        return int.from_bytes(self.times[-8:], sys.byteorder, signed=True)


@dataclass(frozen=True, slots=True)
class Network(Compact):
    """Network state of one participant at ``ts_ms`` (RTT to the ingest point, ms)."""

    session_id: str
    participant_id: str
    ts_ms: int
    rtt_ms: float
    jitter_ms: float | None = None
    loss_pct: float | None = None
    jitter_buffer_ms: float | None = None
    type: Literal["network"] = "network"

    @property
    def rtt_rounded_ms(self) -> int:
        """RTT alone, whole ms: what the quality block and network alert judge (§6, §7)."""
        return round(self.rtt_ms)

    @property
    def round_trip_ms(self) -> int:
        """RTT plus jitter-buffer delay when reported (METRICS.md §4), rounded to whole ms."""
        return round(self.rtt_ms + (self.jitter_buffer_ms or 0.0))


@dataclass(frozen=True, slots=True)
class ParticipantJoin(Compact):
    session_id: str
    participant_id: str
    role: Role
    ts_ms: int
    type: Literal["participant.join"] = "participant.join"


ParticipantChange = Literal["participant.mute", "participant.unmute", "participant.leave"]


@dataclass(frozen=True, slots=True)
class ParticipantState(Compact):
    """A participant mutes, unmutes or leaves at ``ts_ms``."""

    type: ParticipantChange
    session_id: str
    participant_id: str
    ts_ms: int


Event: TypeAlias = (
    SessionStart
    | SessionEnd
    | Speech
    | Activity
    | Voice
    | Levels
    | Network
    | ParticipantJoin
    | ParticipantState
)
EVENT_TYPES: Final = (
    "session.start",
    "session.end",
    "speech",
    "activity",
    "voice",
    "levels",
    "network",
    "participant.join",
    "participant.mute",
    "participant.unmute",
    "participant.leave",
)


@functools.lru_cache(maxsize=8)
def level_translation(level_voiced_dbov: int) -> bytes:
    """A ``bytes.translate`` table: level byte -> ``b"1"`` when voiced (level <= threshold)."""
    return bytes(49 if level <= level_voiced_dbov else 48 for level in range(256))


def _overlay_vad(flags: bytes, vad: str) -> bytes:
    if "-" not in vad:
        return vad.encode("ascii")
    # Rare path (V bit on some frames only): keep the level decision where vad is "-".
    return bytes(
        f if v == 45 else v for f, v in zip(flags, vad.encode("ascii"), strict=True)
    )


# --- parsing -----------------------------------------------------------------------------


def decode_json(line: bytes | str) -> Any:
    """Decode one JSONL line, or raise ``ValidationError("json", …)``."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("json", f"not valid JSON ({exc})") from None


def parse_json(line: bytes | str) -> Event:
    """Parse one JSON-encoded wire event (a JSONL line)."""
    return parse_event(decode_json(line))


def parse_event(value: object) -> Event:
    """Validate a decoded JSON value as a wire-v1 event (METRICS.md §9).

    Raises ``ValidationError(field, reason)`` for any problem; unknown extra fields are
    ignored so producers can add fields without breaking older workers.
    """
    if not isinstance(value, dict):
        raise ValidationError("event", f"must be a JSON object, got {_kind(value)}")
    kind = value.get("type")
    if not isinstance(kind, str):
        raise ValidationError("type", f"must be one of {', '.join(EVENT_TYPES)}")
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ValidationError("type", f"unknown event type {kind[:40]!r}")
    return parser(value, kind)


_new_activity = maker(Activity)


def _parse_activity(v: dict[str, Any], kind: str) -> Activity:
    # The checks of _ident, _int and _time inlined for valid values (nearly every event of a
    # frame source); anything else goes through them, for their errors.
    session_id = v.get("session_id")
    session_id = _KNOWN_IDS.get(session_id) if type(session_id) is str else None
    if session_id is None:
        session_id = _ident(v, kind, "session_id")
    participant_id = v.get("participant_id")
    participant_id = _KNOWN_IDS.get(participant_id) if type(participant_id) is str else None
    if participant_id is None:
        participant_id = _ident(v, kind, "participant_id")
    seq = v.get("seq")  # a counter, kept like times (int64 ranges)
    if type(seq) is not int or not 0 <= seq <= MAX_TIME_MS:
        seq = _int(v, kind, "seq", 0, MAX_TIME_MS)
    start = v.get("start_ms")
    if type(start) is not int or not 0 <= start <= MAX_TIME_MS:
        start = _time(v, kind, "start_ms")
    frame_ms = v.get("frame_ms")
    if type(frame_ms) is not int or frame_ms not in FRAME_SIZES_MS:
        raise ValidationError(f"{kind}.frame_ms", "must be 10, 20 or 30")
    voiced = v.get("voiced")
    raw_levels = v.get("levels")
    levels: bytes | None = None
    vad: str | None = None
    max_frames = MAX_BATCH_MS // frame_ms
    if voiced is not None:
        if raw_levels is not None:
            raise ValidationError(f"{kind}.levels", "give either voiced or levels, not both")
        if type(voiced) is not str or not voiced or voiced.strip("01"):
            raise ValidationError(f"{kind}.voiced", "must be a non-empty string of 0/1")
        frames = len(voiced)
    elif raw_levels is not None:
        if type(raw_levels) is not list or not raw_levels:
            raise ValidationError(f"{kind}.levels", "must be a non-empty list of integers 0..127")
        # set(map(type, ...)) and bytes(...) run in C: validation stays off the per-frame path.
        if set(map(type, raw_levels)) != {int}:
            raise ValidationError(f"{kind}.levels", "must contain integers 0..127 only")
        try:
            levels = bytes(raw_levels)
        except ValueError:
            raise ValidationError(f"{kind}.levels", "levels must be in 0..127 (-dBov)") from None
        if max(levels) > 127:
            raise ValidationError(f"{kind}.levels", "levels must be in 0..127 (-dBov)")
        frames = len(levels)
        raw_vad = v.get("vad")
        if raw_vad is not None:
            if type(raw_vad) is not str or raw_vad.strip("01-") or len(raw_vad) != frames:
                raise ValidationError(
                    f"{kind}.vad", "must be a string of 0/1/- as long as levels"
                )
            vad = raw_vad
    else:
        raise ValidationError(f"{kind}.voiced", "one of voiced or levels is required")
    if frames > max_frames:
        raise ValidationError(
            f"{kind}.{'voiced' if voiced is not None else 'levels'}",
            f"batch of {frames} frames spans more than {MAX_BATCH_MS} ms",
        )
    if start + frames * frame_ms > MAX_TIME_MS:
        raise ValidationError(
            f"{kind}.start_ms",
            f"batch ends at {start + frames * frame_ms}, beyond the clock range {TIME_RANGE} ms",
        )
    return _new_activity(session_id, participant_id, seq, start, frame_ms, voiced, levels, vad,
                         "activity")


def _parse_speech(v: dict[str, Any], kind: str) -> Speech:
    session_id = _ident(v, kind, "session_id")
    participant_id = _ident(v, kind, "participant_id")
    start = _time(v, kind, "start_ms")
    end = _time(v, kind, "end_ms")
    if end <= start:
        raise ValidationError(f"{kind}.end_ms", f"must be > start_ms ({end} <= {start})")
    # The length limit is configuration (max_segment_ms, METRICS.md §1): the engine checks it.
    return Speech(session_id, participant_id, start, end)


def _parse_voice(v: dict[str, Any], kind: str) -> Voice:
    session_id = _ident(v, kind, "session_id")
    participant_id = _ident(v, kind, "participant_id")
    ts = _time(v, kind, "ts_ms")
    speaking = v.get("speaking")
    if type(speaking) is not bool:
        raise ValidationError(f"{kind}.speaking", f"must be true or false, got {_kind(speaking)}")
    return Voice(session_id, participant_id, ts, speaking)


# Each scale's valid range (inclusive) and its conversion to -dBov before rounding (§1).
_SCALE_RANGES: Final[dict[str, tuple[float, float]]] = {
    "dbov": (0.0, 127.0),
    "dbfs": (-127.0, 0.0),
    "dbvo": (-127.0, 0.0),
    "linear": (0.0, 1.0),
    "byte": (0.0, 255.0),
    "int16": (0.0, 32767.0),
}
_SCALE_FULL: Final[dict[str, float]] = {"linear": 1.0, "byte": 255.0, "int16": 32767.0}
MAX_LEVEL_SAMPLES: Final = 6_000  # 60 s (MAX_BATCH_MS) at one sample per 10 ms


def to_dbov(scale: str, value: float) -> int:
    """One level sample in ``scale`` as -dBov (METRICS.md §1): rounded half up to an integer
    and clamped to 0..127, so silence (amplitude 0) is 127."""
    if scale == "dbov":
        dbov = value
    elif scale in ("dbfs", "dbvo"):
        dbov = -value
    else:
        amplitude = value / _SCALE_FULL[scale]
        if amplitude <= 0.0:
            return 127
        dbov = -20.0 * math.log10(amplitude)
    return min(127, max(0, math.floor(dbov + 0.5)))


def _parse_levels(v: dict[str, Any], kind: str) -> Levels:
    session_id = _ident(v, kind, "session_id")
    participant_id = _ident(v, kind, "participant_id")
    scale = v.get("scale")
    if scale not in _SCALE_RANGES:
        raise ValidationError(f"{kind}.scale", f"must be one of {', '.join(LEVEL_SCALES)}")
    samples = v.get("samples")
    if type(samples) is not list or not samples:
        raise ValidationError(f"{kind}.samples", "must be a non-empty list of [ts_ms, level]")
    if len(samples) > MAX_LEVEL_SAMPLES:
        raise ValidationError(f"{kind}.samples", f"more than {MAX_LEVEL_SAMPLES} samples")
    low, high = _SCALE_RANGES[scale]
    times = array("q")
    dbov = bytearray()
    previous = -1
    for index, sample in enumerate(samples):
        where = f"{kind}.samples[{index}]"
        if type(sample) is not list or len(sample) != 2:
            raise ValidationError(where, "must be a pair [ts_ms, level]")
        ts, level = sample
        if type(ts) is not int:
            raise ValidationError(f"{where}[0]", f"ts_ms must be an integer, got {_kind(ts)}")
        if not 0 <= ts <= MAX_TIME_MS:
            raise ValidationError(f"{where}[0]", f"ts_ms must be in 0..{MAX_TIME_MS}, got {ts}")
        if ts <= previous:
            raise ValidationError(
                f"{where}[0]", f"samples must increase in time ({ts} after {previous})"
            )
        if type(level) not in (int, float) or not math.isfinite(level):
            raise ValidationError(f"{where}[1]", f"level must be a finite number, got "
                                  f"{_kind(level)}")
        if not low <= level <= high:
            raise ValidationError(
                f"{where}[1]", f"level {level} is outside the {scale} scale ({low:g}..{high:g})"
            )
        previous = ts
        times.append(ts)
        dbov.append(to_dbov(scale, level))
    if times[-1] - times[0] > MAX_BATCH_MS:
        raise ValidationError(
            f"{kind}.samples", f"batch spans {times[-1] - times[0]} ms, more than {MAX_BATCH_MS}"
        )
    return Levels(session_id, participant_id, scale, times.tobytes(), bytes(dbov))


def _parse_network(v: dict[str, Any], kind: str) -> Network:
    return Network(
        _ident(v, kind, "session_id"),
        _ident(v, kind, "participant_id"),
        _time(v, kind, "ts_ms"),
        _number(v, kind, "rtt_ms", MAX_RTT_MS, required=True),  # type: ignore[arg-type]
        _number(v, kind, "jitter_ms", MAX_RTT_MS),
        _number(v, kind, "loss_pct", 100.0),
        _number(v, kind, "jitter_buffer_ms", MAX_RTT_MS),
    )


def _parse_start(v: dict[str, Any], kind: str) -> SessionStart:
    session_id = _ident(v, kind, "session_id")
    ts = _time(v, kind, "ts_ms")
    clinic_id = _ident(v, kind, "clinic_id")
    raw = v.get("participants", [])
    if type(raw) is not list:
        raise ValidationError(f"{kind}.participants", "must be a list")
    if len(raw) > MAX_PARTICIPANTS:
        raise ValidationError(f"{kind}.participants", f"more than {MAX_PARTICIPANTS}")
    participants: list[Participant] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"{kind}.participants[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(where, "must be an object with participant_id and role")
        pid = _ident(item, where, "participant_id")
        if pid in seen:
            raise ValidationError(f"{where}.participant_id", f"duplicate participant {pid!r}")
        seen.add(pid)
        participants.append(Participant(pid, _role(item, where)))
    exclusive = v.get("exclusive", False)
    if type(exclusive) is not bool:
        raise ValidationError(f"{kind}.exclusive", f"must be true or false, got "
                              f"{_kind(exclusive)}")
    max_segment = v.get("max_segment_ms")
    if max_segment is not None:
        max_segment = _int(v, kind, "max_segment_ms", 1, MAX_TIME_MS)
    return SessionStart(session_id, ts, clinic_id, tuple(participants), exclusive, max_segment)


def _parse_end(v: dict[str, Any], kind: str) -> SessionEnd:
    return SessionEnd(_ident(v, kind, "session_id"), _time(v, kind, "ts_ms"))


def _parse_join(v: dict[str, Any], kind: str) -> ParticipantJoin:
    return ParticipantJoin(
        _ident(v, kind, "session_id"),
        _ident(v, kind, "participant_id"),
        _role(v, kind),
        _time(v, kind, "ts_ms"),
    )


def _parse_state(v: dict[str, Any], kind: str) -> ParticipantState:
    return ParticipantState(
        kind,  # type: ignore[arg-type]  # dispatch guarantees one of the three kinds
        _ident(v, kind, "session_id"),
        _ident(v, kind, "participant_id"),
        _time(v, kind, "ts_ms"),
    )


_PARSERS: Final[dict[str, Callable[[dict[str, Any], str], Event]]] = {
    "session.start": _parse_start,
    "session.end": _parse_end,
    "speech": _parse_speech,
    "activity": _parse_activity,
    "voice": _parse_voice,
    "levels": _parse_levels,
    "network": _parse_network,
    "participant.join": _parse_join,
    "participant.mute": _parse_state,
    "participant.unmute": _parse_state,
    "participant.leave": _parse_state,
}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_identifier(value: str) -> bool:
    """Whether ``value`` is a valid wire id (session, clinic, participant)."""
    return _ID_PATTERN.fullmatch(value) is not None


# Ids already validated, each as its interned string: ids repeat in every event, and a look-up
# costs less than the pattern. Cleared when full, so it stays small whatever the input.
_KNOWN_IDS: dict[str, str] = {}
_KNOWN_IDS_MAX = 65_536


def _ident(v: dict[str, Any], kind: str, name: str) -> str:
    value = v.get(name)
    if type(value) is str:
        known = _KNOWN_IDS.get(value)
        if known is not None:
            return known
    if type(value) is not str:
        raise ValidationError(f"{kind}.{name}", f"must be a string, got {_kind(value)}")
    if _ID_PATTERN.fullmatch(value) is None:
        raise ValidationError(
            f"{kind}.{name}", f"must be 1..{MAX_ID_LENGTH} printable ASCII characters, no spaces"
        )
    # Ids repeat in every event and are kept in session state (keys, buffers): one shared
    # string per id instead of one per parsed event.
    value = sys.intern(value)
    if len(_KNOWN_IDS) >= _KNOWN_IDS_MAX:
        _KNOWN_IDS.clear()
    _KNOWN_IDS[value] = value
    return value


def _int(v: dict[str, Any], kind: str, name: str, low: int, high: int) -> int:
    value = v.get(name)
    if type(value) is not int:
        raise ValidationError(f"{kind}.{name}", f"must be an integer, got {_kind(value)}")
    if not low <= value <= high:
        if value < low:
            raise ValidationError(f"{kind}.{name}", f"must be >= {low}, got {value}")
        raise ValidationError(f"{kind}.{name}", f"must be <= {high}, got {value}")
    return value


def _time(v: dict[str, Any], kind: str, name: str) -> int:
    """An integer ms in 0..2**53 - 1 (METRICS.md §9). Booleans and floats (even ``5.0``) are
    not integers here: a time with a fraction has no exact place on the ms clock."""
    value = v.get(name)
    if type(value) is not int:
        got = repr(value) if type(value) is float else _kind(value)
        raise ValidationError(f"{kind}.{name}", f"must be an integer ms in {TIME_RANGE}, got {got}")
    if not 0 <= value <= MAX_TIME_MS:
        raise ValidationError(
            f"{kind}.{name}", f"must be an integer ms in {TIME_RANGE}, got {value}"
        )
    return value


def _number(
    v: dict[str, Any], kind: str, name: str, high: float, *, required: bool = False
) -> float | None:
    value = v.get(name)
    if value is None:
        if required:
            raise ValidationError(f"{kind}.{name}", "is required")
        return None
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValidationError(f"{kind}.{name}", f"must be a finite number, got {_kind(value)}")
    if not 0 <= value <= high:
        raise ValidationError(f"{kind}.{name}", f"must be in 0..{high:g}, got {value}")
    return float(value)


def _role(v: dict[str, Any], kind: str) -> Role:
    role = v.get("role")
    if role not in ROLES:
        raise ValidationError(f"{kind}.role", f"must be one of {', '.join(ROLES)}")
    return role  # type: ignore[no-any-return]
