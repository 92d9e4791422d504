"""Voice-activity sources that are not intervals, turned into voiced intervals (METRICS.md §1).

Two of §1's input shapes describe a participant's voice activity by state over time rather than
by intervals: speaking-state changes (``voice`` events: LiveKit ``SpeakingChanged``, Janus
``talking``/``stopped-talking``, Zoom ``isTalking``) and level samples (``levels`` events:
Daily, Agora, Chime, mediasoup, the browser's ``getSynchronizationSources()``). A track per
participant follows that state as the session engine applies the events in canonical order and
hands the IPU builder (§2) the voiced intervals it implies:

- a ``voice`` track: ``speaking: true`` at ``ts`` opens a segment, ``false`` closes it; a
  repeated state changes nothing; an open segment is closed by the participant's mute or leave,
  or the session's end, at that time;
- a ``levels`` track: each sample covers ``[ts_i, min(ts_{i+1}, ts_i + level_hold_ms))`` and
  that time is voiced when the sample's -dBov is at or below ``level_voiced_dbov``; uncovered
  time is silence.

Open state (a segment still speaking, a sample whose next one has not been applied) is handed
over up to the engine's horizon on every advance (:meth:`extend`): every event before the
horizon has been applied, so that much is final, and the pieces touch, so the builder merges
them into the same IPU however often the engine advanced. The result depends only on the events.
"""

from __future__ import annotations

from typing import Any

from models.events import Levels
from models.state_codec import StateError

Interval = tuple[int, int]
_NONE = -1


class VoiceTrack:
    """One participant's speaking state from ``voice`` events."""

    __slots__ = ("open_from",)

    def __init__(self) -> None:
        self.open_from = _NONE  # start of the segment still open (ms), or -1

    @property
    def speaking(self) -> bool:
        return self.open_from != _NONE

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/state_codec.py): ``["voice", open_from]``."""
        return ["voice", self.open_from]

    def change(self, ts: int, speaking: bool) -> list[Interval]:
        """Apply a state change at ``ts``; returns the interval it closes, if any."""
        if speaking:
            if self.open_from == _NONE:
                self.open_from = ts
            return []
        return self.close(ts)

    def close(self, ts: int) -> list[Interval]:
        """End an open segment at ``ts`` (``false``, mute, leave, session end, or another
        speaker's onset on an exclusive source)."""
        start = self.open_from
        if start == _NONE:
            return []
        self.open_from = _NONE
        return [(start, ts)] if ts > start else []

    def extend(self, horizon: int) -> list[Interval]:
        """Hand over the open segment up to ``horizon``; it stays open from there."""
        start = self.open_from
        if start == _NONE or horizon <= start:
            return []
        self.open_from = horizon
        return [(start, horizon)]


class LevelTrack:
    """One participant's level samples (already in -dBov) as voiced intervals."""

    __slots__ = ("covered_ms", "hold", "last_ts", "pending_from", "pending_until",
                 "pending_voiced", "threshold")

    def __init__(self, level_hold_ms: int, level_voiced_dbov: int) -> None:
        self.hold = level_hold_ms
        self.threshold = level_voiced_dbov
        self.last_ts = _NONE  # newest sample applied
        # The newest sample's coverage not yet handed over: [pending_from, pending_until).
        self.pending_from = _NONE
        self.pending_until = _NONE
        self.pending_voiced = False
        self.covered_ms = 0  # time covered by samples so far (quality coverage, §6)

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/state_codec.py); hold and threshold come from the config."""
        return ["levels", self.last_ts, self.pending_from, self.pending_until,
                self.pending_voiced, self.covered_ms]

    def add(self, batch: Levels) -> list[Interval]:
        """Apply a batch (its samples increase in time and follow every earlier sample);
        returns the voiced intervals it settles."""
        out: list[Interval] = []
        threshold = self.threshold
        for ts, level in zip(batch.sample_times(), batch.dbov, strict=True):
            self._settle(ts, out)
            self.pending_from = ts
            self.pending_until = ts + self.hold
            self.pending_voiced = level <= threshold
            self.last_ts = ts
        return _merged(out)

    def extend(self, horizon: int) -> list[Interval]:
        """Hand over the newest sample's coverage up to ``horizon`` (no sample before it can
        still arrive, so none can cut it shorter)."""
        out: list[Interval] = []
        self._settle(horizon, out)
        return out

    def close(self, ts: int) -> list[Interval]:
        """The track ends at ``ts`` (session end): settle what is covered before it."""
        out: list[Interval] = []
        self._settle(ts, out)
        self.pending_from = self.pending_until = _NONE
        return out

    def _settle(self, upto: int, out: list[Interval]) -> None:
        start = self.pending_from
        if start == _NONE:
            return
        end = min(upto, self.pending_until)
        if end <= start:
            return
        self.covered_ms += end - start
        if self.pending_voiced:
            out.append((start, end))
        if end >= self.pending_until:
            self.pending_from = self.pending_until = _NONE
        else:
            self.pending_from = end


def _merged(intervals: list[Interval]) -> list[Interval]:
    """Touching intervals as one (fewer entries in the builder's buffer; same IPUs)."""
    if len(intervals) < 2:
        return intervals
    merged = [intervals[0]]
    for start, end in intervals[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def track_from_state(state: Any, level_hold_ms: int,
                     level_voiced_dbov: int) -> VoiceTrack | LevelTrack | None:
    """A track from its ``to_state()`` form (``None`` for none)."""
    if state is None:
        return None
    kind, *values = state
    if kind == "voice":
        voice = VoiceTrack()
        (voice.open_from,) = values
        return voice
    if kind == "levels":
        levels = LevelTrack(level_hold_ms, level_voiced_dbov)
        (levels.last_ts, levels.pending_from, levels.pending_until, levels.pending_voiced,
         levels.covered_ms) = values
        return levels
    raise StateError(f"unknown track kind {kind!r}")
