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

    __slots__ = ("_buffer", "_end", "_sorted", "_start", "dropped", "min_pause", "min_speech")

    def __init__(self, min_pause_ms: int, min_speech_ms: int) -> None:
        self.min_pause = min_pause_ms
        self.min_speech = min_speech_ms
        # Intervals not yet consumed, flattened (start, end, start, end, ...): 16 bytes each
        # instead of ~110 for a tuple of two ints; they wait up to allowed_lateness_ms.
        self._buffer = array("q")
        self._sorted = True
        self._start = -1  # open IPU, or -1 when none
        self._end = -1
        self.dropped = 0  # IPUs dropped as shorter than min_speech_ms

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/state_codec.py); the thresholds come from the config."""
        return [self._buffer.tobytes(), self._sorted, self._start, self._end, self.dropped]

    @classmethod
    def from_state(cls, state: Any, min_pause_ms: int, min_speech_ms: int) -> IpuBuilder:
        builder = cls(min_pause_ms, min_speech_ms)
        buffer, builder._sorted, builder._start, builder._end, builder.dropped = state
        builder._buffer.frombytes(buffer)
        return builder

    def add(self, intervals: list[tuple[int, int]]) -> None:
        buffer = self._buffer
        for start, end in intervals:
            if buffer:
                if start < buffer[-2]:
                    self._sorted = False
                elif start <= buffer[-1]:
                    # Touches or overlaps the last interval (a voiced run continuing across
                    # two frame batches): their union is one interval, and it makes the same
                    # IPUs whatever else arrives, clipped at any session end alike. Less than
                    # half the intervals a frame source sends are left to hold.
                    if end > buffer[-1]:
                        buffer[-1] = end
                    continue
            buffer.append(start)
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
                self._buffer = buffer = array("q", [x for pair in pairs for x in pair])
                self._sorted = True
            taken = 0
            for i in range(0, len(buffer), 2):
                start, end = buffer[i], buffer[i + 1]
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
        clipped = [
            (start, min(end, end_ms))
            for start, end in zip(buffer[::2], buffer[1::2], strict=True)
            if start < end_ms
        ]
        self._buffer = array("q")
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
