"""Per-participant pre-processing (METRICS.md §2): voiced intervals -> inter-pausal units.

Intervals may be added in any order; :meth:`IpuBuilder.advance` consumes, in start order, only
those that begin before the finalized horizon, so the IPUs it closes never depend on the order
in which events arrived.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any


class IpuBuilder:
    """Merges a participant's voiced intervals into IPUs (§2.1–2.3).

    Touching or overlapping intervals merge; silences shorter than ``min_pause_ms`` are bridged;
    IPUs shorter than ``min_speech_ms`` are dropped as clicks. ``emit(start_ms, end_ms)`` is
    called for each surviving IPU once it is final.
    """

    __slots__ = ("_base", "_buffer", "_end", "_sorted", "_start", "dropped", "min_pause",
                 "min_speech")

    def __init__(self, min_pause_ms: int, min_speech_ms: int) -> None:
        self.min_pause = min_pause_ms
        self.min_speech = min_speech_ms
        # Intervals not yet consumed, flattened (start, end, start, end, ...), as offsets from
        # _base (the first start added): 8 bytes an interval while they are within ±24.8 days
        # of it, 16 once one is not (widened, METRICS.md §9 allows 0..2**53-1 ms). They wait
        # up to allowed_lateness_ms + max_segment_ms (10 minutes by default).
        self._base: int | None = None
        self._buffer = array("i")
        self._sorted = True
        self._start = -1  # open IPU, or -1 when none
        self._end = -1
        self.dropped = 0  # IPUs dropped as shorter than min_speech_ms

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/state_codec.py); the thresholds come from the config.
        Intervals are written as absolute 64-bit times (as in checkpoint format 3)."""
        base = self._base or 0
        absolute = array("q", (value + base for value in self._buffer))
        return [absolute.tobytes(), self._sorted, self._start, self._end, self.dropped]

    @classmethod
    def from_state(cls, state: Any, min_pause_ms: int, min_speech_ms: int) -> IpuBuilder:
        builder = cls(min_pause_ms, min_speech_ms)
        buffer, builder._sorted, builder._start, builder._end, builder.dropped = state
        absolute = array("q")
        absolute.frombytes(buffer)
        if absolute:
            builder._base = absolute[0]
            builder._store(array("q", (value - absolute[0] for value in absolute)))
        return builder

    def _store(self, values: array[int]) -> None:
        """Keep ``values`` (offsets from _base) as 32-bit items if they fit, else 64-bit."""
        try:
            self._buffer = array("i", values)
        except OverflowError:
            self._buffer = array("q", values)

    def add(self, intervals: list[tuple[int, int]]) -> None:
        if not intervals:
            return
        base = self._base
        if base is None:
            base = self._base = intervals[0][0]
        buffer = self._buffer
        for start, end in intervals:
            start -= base
            end -= base
            if buffer:
                if start < buffer[-2]:
                    self._sorted = False
                elif start <= buffer[-1]:
                    # Touches or overlaps the last interval (a voiced run continuing across
                    # two frame batches): their union is one interval, and it makes the same
                    # IPUs whatever else arrives, clipped at any session end alike. Less than
                    # half the intervals a frame source sends are left to hold.
                    if end > buffer[-1]:
                        try:
                            buffer[-1] = end
                        except OverflowError:
                            buffer = self._buffer = array("q", buffer)
                            buffer[-1] = end
                    continue
            try:
                buffer.append(start)
            except OverflowError:
                buffer = self._buffer = array("q", buffer)
                buffer.append(start)
            try:
                buffer.append(end)
            except OverflowError:
                buffer = self._buffer = array("q", buffer)
                buffer.append(end)

    @property
    def open_ipu(self) -> tuple[int, int] | None:
        """The IPU still growing, as ``(start_ms, end_so_far_ms)``. Its end may lie past the
        horizon it was consumed up to (a segment, or merged runs, reaching beyond it)."""
        return (self._start, self._end) if self._start >= 0 else None

    def advance(self, horizon_ms: int, emit: Callable[[int, int], None]) -> None:
        """Consume every interval starting before ``horizon_ms`` (all of them are known) and
        close the open IPU if no speech can still bridge into it."""
        buffer = self._buffer
        if buffer:
            if not self._sorted:
                pairs = sorted(zip(buffer[::2], buffer[1::2], strict=True))
                self._buffer = buffer = array(buffer.typecode,
                                              [x for pair in pairs for x in pair])
                self._sorted = True
            base = self._base or 0
            taken = 0
            for i in range(0, len(buffer), 2):
                start, end = buffer[i] + base, buffer[i + 1] + base
                if start >= horizon_ms:
                    break
                taken += 2
                if self._start < 0:
                    self._start, self._end = start, end
                elif start - self._end < self.min_pause:  # bridged, touching or overlapping
                    if end > self._end:
                        self._end = end
                else:
                    self._close(emit)
                    self._start, self._end = start, end
            if taken:
                del buffer[:taken]
        if self._start >= 0 and self._end + self.min_pause <= horizon_ms:
            self._close(emit)

    def finish(self, end_ms: int | None, emit: Callable[[int, int], None]) -> None:
        """Close everything at session end, clipping speech to ``end_ms`` when given."""
        if end_ms is None:
            self.advance(2**62, emit)
            return
        buffer = self._buffer
        base = self._base or 0
        clipped = [
            (start + base, min(end + base, end_ms))
            for start, end in zip(buffer[::2], buffer[1::2], strict=True)
            if start + base < end_ms
        ]
        self._buffer = array("i")
        self._base = None
        self._sorted = True
        self.add(sorted(clipped))
        if self._start >= 0 and self._end > end_ms:
            self._end = end_ms
        self.advance(2**62, emit)

    def _close(self, emit: Callable[[int, int], None]) -> None:
        if self._end - self._start >= self.min_speech:
            emit(self._start, self._end)
        else:
            self.dropped += 1
        self._start = self._end = -1
