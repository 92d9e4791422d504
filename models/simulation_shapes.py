"""The simulator's v1.1 input shapes (METRICS.md §1, §9): what a platform that is not a frame
source sends for one participant's voiced timeline.

The conversation model and :class:`~models.simulation_wire.VadTrack` decide the voiced runs on
the frame grid, batch by batch; a :class:`ShapeRenderer` turns them into one participant's
events as the platforms named in docs/ingest.md send them:

- ``segments``: whole speech segments, each sent when it ends (a platform's VAD segmenter
  cannot know a segment's end before it comes), so long segments arrive long after they began;
- ``voice``: speaking-state changes, ``true`` at a run's onset, ``false`` at its offset;
- ``levels``: level samples every ``period_ms`` in one of the six scales, one batch per frame
  batch, voiced samples at 15..45 -dBov and unvoiced at 60..127 (clear of the default 50).

Every event is emitted at the end of the frame batch in which it became known. Pure: driven by
the ``random.Random`` the caller passes.
"""

from __future__ import annotations

import math
import random
from typing import Any, Final, Literal

Event = dict[str, Any]
Run = tuple[int, int]
Shape = Literal["frames", "segments", "voice", "levels", "mixed"]
SHAPES: Final[tuple[Shape, ...]] = ("frames", "segments", "voice", "levels", "mixed")
PARTICIPANT_SHAPES: Final = ("frames", "segments", "voice", "levels")
SCALES: Final = ("dbov", "dbfs", "dbvo", "linear", "byte", "int16")
# Sample periods platforms use (Daily and LiveKit ~100 ms, the browser 20-50 ms polls,
# mediasoup's AudioLevelObserver 250 ms and more); all divide the default 1 s batch.
LEVEL_PERIODS_MS: Final = (50, 100, 200, 250)
_VOICED_DBOV: Final = (15, 45)
_UNVOICED_DBOV: Final = (60, 127)


def from_dbov(scale: str, dbov: int) -> float:
    """A -dBov level written in ``scale`` (the inverse of METRICS.md §1's conversion, up to
    the rounding of the integer scales)."""
    if scale == "dbov":
        return dbov
    if scale in ("dbfs", "dbvo"):
        return -dbov
    amplitude = 0.0 if dbov >= 127 else math.pow(10.0, -dbov / 20.0)
    if scale == "linear":
        return round(amplitude, 6)
    return round(amplitude * (255 if scale == "byte" else 32767))


class ShapeRenderer:
    """One participant's events in ``shape`` from its voiced runs (frame indices, half-open)."""

    __slots__ = ("_open", "_period_f", "_rng", "end_f", "frame_ms", "offset", "participant_id",
                 "scale", "session_id", "shape")

    def __init__(self, shape: str, rng: random.Random, *, session_id: str, participant_id: str,
                 offset: int, frame_ms: int, end_f: int) -> None:
        self.shape = shape
        self.session_id = session_id
        self.participant_id = participant_id
        self.offset = offset
        self.frame_ms = frame_ms
        self.end_f = end_f
        self._rng = rng
        self._open = -1  # onset (frame) of a run that reached the end of the last batch
        self.scale = rng.choice(SCALES) if shape == "levels" else ""
        period = rng.choice(LEVEL_PERIODS_MS)
        self._period_f = max(1, period // frame_ms)

    def _ms(self, frame: int) -> int:
        return self.offset + frame * self.frame_ms

    def _event(self, kind: str, **fields: Any) -> Event:
        return {"type": kind, "session_id": self.session_id,
                "participant_id": self.participant_id, **fields}

    def batch(self, runs: list[Run], b0: int, b1: int) -> list[Event]:
        """Events of the frame batch ``[b0, b1)`` whose voiced runs are ``runs``."""
        if self.shape == "levels":
            return [self._levels(runs, b0, b1)]
        out: list[Event] = []
        if self._open >= 0 and not (runs and runs[0][0] == b0):
            self._close(b0, out)  # the run that reached the batch boundary ended there
        for a, b in runs:
            onset = self._open if self._open >= 0 and a == b0 else a
            if self.shape == "voice" and onset == a:
                out.append(self._event("voice", ts_ms=self._ms(a), speaking=True))
            self._open = onset
            if b < b1 or b1 >= self.end_f:
                if b1 >= self.end_f and b >= self.end_f:
                    # Speech to the session's end: a segment source sends it then; an open
                    # speaking state is closed by session.end itself (§1).
                    if self.shape == "segments":
                        self._close(b, out)
                    self._open = -1
                else:
                    self._close(b, out)
        return out

    def _close(self, end: int, out: list[Event]) -> None:
        start, self._open = self._open, -1
        if self.shape == "segments":
            out.append(self._event("speech", start_ms=self._ms(start), end_ms=self._ms(end)))
        else:
            out.append(self._event("voice", ts_ms=self._ms(end), speaking=False))

    def _levels(self, runs: list[Run], b0: int, b1: int) -> Event:
        period = self._period_f
        first = -(-b0 // period) * period  # samples sit on the period's grid
        samples = []
        index = 0
        uniform = self._rng.randint
        for frame in range(first, b1, period):
            while index < len(runs) and runs[index][1] <= frame:
                index += 1
            voiced = index < len(runs) and runs[index][0] <= frame
            dbov = uniform(*_VOICED_DBOV) if voiced else uniform(*_UNVOICED_DBOV)
            samples.append([self._ms(frame), from_dbov(self.scale, dbov)])
        if not samples:  # a batch shorter than the period: one sample at its start
            voiced = bool(runs) and runs[0][0] <= b0
            dbov = uniform(*_VOICED_DBOV) if voiced else uniform(*_UNVOICED_DBOV)
            samples.append([self._ms(b0), from_dbov(self.scale, dbov)])
        return self._event("levels", scale=self.scale, samples=samples)
