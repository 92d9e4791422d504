"""Frame placement and batching for the WebRTC ingest (pure: no I/O, no clock of its own).

Frames sit on a fixed grid per participant: frame ``i`` covers ``[origin_ms + i·frame_ms,
+frame_ms)`` on the session clock (the ingest's receive clock, METRICS.md §1), where
``origin_ms`` is when the participant's first RTP packet arrived, or would have arrived with
the least delay any packet of the first batch had (:class:`FrameZero`). A frame's index comes from
the media's own timestamp (RTP timestamp, or a decoded frame's ``pts``), never from counting
packets: Opus DTX sends no packets during silence and the network loses some, and counting
would pull everything after a gap earlier. Frames nobody filled are silence (level 127, or
``0``).

:class:`FrameBatcher` turns placed frames into ``activity`` batches of ``batch_ms`` with ``seq``
increasing; :class:`RtpLevelFramer` places RFC 6464 levels read from RTP headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

SILENT_LEVEL = 127  # RFC 6464: -127 dBov, digital silence
RTP_WRAP = 1 << 32
MIN_PACKETS_FOR_SPAN = 10
# The most a participant's first packet may have been delayed more than later ones (FrameZero).
MAX_FIRST_DELAY_MS = 1000

FrameKind = Literal["levels", "voiced"]


def rtp_delta(timestamp: int, reference: int) -> int:
    """RTP ticks from ``reference`` to the 32-bit ``timestamp``, across a wrap-around: the
    nearer of the two ways round (reordering allowed both ways)."""
    delta = (timestamp - reference) % RTP_WRAP
    return delta - RTP_WRAP if delta >= RTP_WRAP // 2 else delta


@dataclass(frozen=True, slots=True)
class FrameBatch:
    """Consecutive frames of one participant: levels (bytes 0..127) or voiced (``b"0"/b"1"``)."""

    seq: int
    start_ms: int
    frame_ms: int
    data: bytes
    kind: FrameKind

    @property
    def end_ms(self) -> int:
        return self.start_ms + len(self.data) * self.frame_ms

    def to_event(self, session_id: str, participant_id: str) -> dict[str, Any]:
        """The wire-v1 ``activity`` event (METRICS.md §9)."""
        event: dict[str, Any] = {
            "type": "activity", "session_id": session_id, "participant_id": participant_id,
            "seq": self.seq, "start_ms": self.start_ms, "frame_ms": self.frame_ms}
        if self.kind == "levels":
            event["levels"] = list(self.data)
        else:
            event["voiced"] = self.data.decode("ascii")
        return event


class FrameBatcher:
    """Frames placed by index, emitted in batches of ``batch_ms`` once complete.

    :meth:`put` may arrive out of order (reordered packets) as long as the frame's batch is not
    emitted yet; later frames are counted in :attr:`late` and dropped. :meth:`ready` emits every
    full batch before a given index; :meth:`flush` also the partial last one.
    """

    def __init__(self, origin_ms: int, frame_ms: int, batch_ms: int, kind: FrameKind, *,
                 first_seq: int = 0) -> None:
        if frame_ms <= 0 or batch_ms < frame_ms:
            raise ValueError("frame_ms must be > 0 and batch_ms >= frame_ms")
        self.origin_ms = origin_ms
        self.frame_ms = frame_ms
        self.batch_frames = batch_ms // frame_ms
        self.kind: FrameKind = kind
        self.fill = SILENT_LEVEL if kind == "levels" else ord("0")
        self.next_seq = first_seq
        self.late = 0  # frames that arrived after their batch was emitted
        self._next_index = 0  # first frame not yet emitted
        self._buffer = bytearray()  # frames from _next_index on

    @property
    def emitted_frames(self) -> int:
        return self._next_index

    def move_origin(self, origin_ms: int) -> None:
        """An earlier start of frame 0, as long as no batch carries the old one."""
        if self._next_index == 0:
            self.origin_ms = min(self.origin_ms, origin_ms)

    def put(self, index: int, values: bytes) -> None:
        if index < self._next_index:
            skip = self._next_index - index
            self.late += min(skip, len(values))
            values, index = values[skip:], self._next_index
            if not values:
                return
        offset = index - self._next_index
        end = offset + len(values)
        if end > len(self._buffer):
            self._buffer.extend(bytes([self.fill]) * (end - len(self._buffer)))
        self._buffer[offset:end] = values

    def put_missing(self, index: int, values: bytes) -> None:
        """Like :meth:`put`, but only into frames still unset (silent)."""
        start = max(index, self._next_index)
        for position in range(start, index + len(values)):
            offset = position - self._next_index
            if offset >= len(self._buffer) or self._buffer[offset] == self.fill:
                self.put(position, values[position - index : position - index + 1])

    def ready(self, complete_index: int) -> list[FrameBatch]:
        """Full batches whose frames all lie before ``complete_index``."""
        out: list[FrameBatch] = []
        while complete_index - self._next_index >= self.batch_frames:
            out.append(self._emit(self.batch_frames))
        return out

    def flush(self, end_index: int) -> list[FrameBatch]:
        """Everything before ``end_index`` (the last batch may be short)."""
        out = self.ready(end_index)
        if end_index > self._next_index:
            out.append(self._emit(end_index - self._next_index))
        return out

    def _emit(self, frames: int) -> FrameBatch:
        data = bytes(self._buffer[:frames])
        if len(data) < frames:
            data += bytes([self.fill]) * (frames - len(data))
        del self._buffer[:frames]
        batch = FrameBatch(self.next_seq, self.origin_ms + self._next_index * self.frame_ms,
                           self.frame_ms, data, self.kind)
        self._next_index += frames
        self.next_seq += 1
        return batch


class FrameZero:
    """When frame 0 of an RTP stream began on the session clock: the least, over its packets,
    of arrival time minus the packet's media time since the first packet.

    The first packet's arrival alone is late by whatever delayed that one packet: the ingest's
    event loop busy at that moment (a start-up, another participant's offer) or a sender slow
    to start. Later packets that arrive on time correct it; a packet never arrives before its
    media time, so the estimate never runs early, unless the sender's timestamps jump ahead:
    a correction of more than ``MAX_FIRST_DELAY_MS`` is taken for such a jump and ignored.
    Used until a participant's first batch is published (:meth:`FrameBatcher.move_origin`);
    after that frame 0 stays where it is.
    """

    def __init__(self, clock_rate: int = 48_000) -> None:
        self.clock_rate = clock_rate
        self.ms: int | None = None
        self._first_ts = 0
        self._first_arrival_ms = 0

    def packet(self, timestamp: int, arrival_ms: int) -> int:
        """A packet's 32-bit RTP timestamp and arrival (ms); returns the estimate so far."""
        if self.ms is None:
            self._first_ts = timestamp
            self.ms = self._first_arrival_ms = arrival_ms
            return arrival_ms
        delta = rtp_delta(timestamp, self._first_ts)  # < 0: reordered before the first
        candidate = arrival_ms - delta * 1000 // self.clock_rate
        if self._first_arrival_ms - MAX_FIRST_DELAY_MS <= candidate < self.ms:
            self.ms = candidate
        return self.ms


class RtpLevelFramer:
    """RFC 6464 levels of one RTP stream on the frame grid, placed by RTP timestamp.

    Each packet's level covers the frames of its own duration (the stream's packet time, the
    smallest timestamp step seen; 20 ms for Chromium's Opus, one frame). Frames in a gap (DTX, loss)
    stay silent. The V bit is not read at all: Chromium sets it on nearly every packet, so the
    engine decides voicing from the level (METRICS.md §1, ``level_voiced_dbov``).

    Batches are emitted once the stream is ``hold_ms`` past their end, which leaves time for
    reordered packets. Where the stream is comes from the media clock: the end of the newest
    packet (by timestamp) plus the wall-clock time since it arrived, so a DTX silence still
    emits silent frames without waiting for the next packet. It is capped by the wall clock
    since the first packet, so a timestamp jump ahead cannot emit the future at once. Not the
    wall clock alone: a sender running behind real time (an overloaded machine, a browser tab
    in the background) would otherwise see every frame dropped as late once it trails by more
    than the hold, while placing by timestamp keeps each frame where it belongs.
    """

    def __init__(self, *, clock_rate: int = 48_000, frame_ms: int = 20, batch_ms: int = 1000,
                 hold_ms: int = 200, first_seq: int = 0) -> None:
        self.clock_rate = clock_rate
        self.frame_ms = frame_ms
        self.batch_ms = batch_ms
        self.hold_ms = hold_ms
        self.first_seq = first_seq
        self.ticks_per_frame = clock_rate * frame_ms / 1000
        self.batcher: FrameBatcher | None = None
        self.packets = 0
        self.missing_level = 0  # packets without the extension (their frames stay silent)
        self._first_ts = 0
        self._last_ts = 0  # extended (unwrapped) timestamp of the newest packet
        self._step: int | None = None  # smallest positive timestamp step: the packet time
        self._end_index = 0  # one past the last frame placed
        self._newest_end = 0  # one past the frames of the newest packet (by timestamp)
        self._newest_arrival_ms = 0  # when that packet arrived
        self.zero = FrameZero(clock_rate)

    @property
    def origin_ms(self) -> int | None:
        return None if self.batcher is None else self.batcher.origin_ms

    @property
    def next_seq(self) -> int:
        return self.first_seq if self.batcher is None else self.batcher.next_seq

    def _extend(self, timestamp: int) -> int:
        """Unwrap a 32-bit RTP timestamp next to the newest one (reordering allowed)."""
        return self._last_ts + rtp_delta(timestamp, self._last_ts)

    def packet(self, timestamp: int, level: int | None, arrival_ms: int) -> list[FrameBatch]:
        """One RTP packet: its timestamp, its level (``-dBov`` 0..127, or None without the
        extension) and when it arrived (session clock, ms). Returns batches now complete."""
        self.packets += 1
        zero = self.zero.packet(timestamp, arrival_ms)
        newest = self.batcher is None
        if self.batcher is None:
            self.batcher = FrameBatcher(arrival_ms, self.frame_ms, self.batch_ms, "levels",
                                        first_seq=self.first_seq)
            self._first_ts = self._last_ts = timestamp
            extended = timestamp
        else:
            extended = self._extend(timestamp)
            step = abs(extended - self._last_ts)  # a reordered packet tells the step too
            if step and (self._step is None or step < self._step):
                self._step = step
            newest = extended > self._last_ts
            self._last_ts = max(self._last_ts, extended)
            self.batcher.move_origin(zero)
        index = int((extended - self._first_ts) // self.ticks_per_frame)
        span = self._span()
        if newest:
            self._newest_end = index + span
            self._newest_arrival_ms = arrival_ms
        if level is None:
            self.missing_level += 1
        elif index >= 0:
            value = bytes([min(max(level, 0), SILENT_LEVEL)])
            self.batcher.put(index, value)
            if span > 1:  # the packet's later frames, unless another packet set them
                self.batcher.put_missing(index + 1, value * (span - 1))
            self._end_index = max(self._end_index, index + span)
        return self.tick(arrival_ms)

    def tick(self, now_ms: int) -> list[FrameBatch]:
        """Batches complete at wall-clock ``now_ms`` (call periodically, e.g. every 250 ms)."""
        if self.batcher is None:
            return []
        return self.batcher.ready(self._position_at(now_ms - self.hold_ms))

    def finish(self, now_ms: int) -> list[FrameBatch]:
        """The stream ends at ``now_ms``: everything up to then, the last batch short."""
        if self.batcher is None:
            return []
        return self.batcher.flush(max(self._position_at(now_ms), self._end_index))

    def _span(self) -> int:
        """Frames one packet covers: 1 until ``MIN_PACKETS_FOR_SPAN`` packets all stepped by
        more than a frame (a lost or reordered packet early on must not stretch levels)."""
        if self._step is None or self.packets < MIN_PACKETS_FOR_SPAN:
            return 1
        return max(1, round(self._step / self.ticks_per_frame))

    def _position_at(self, ms: int) -> int:
        """The frame the stream has reached at wall-clock ``ms``: by the media clock (the
        newest packet plus the time since it arrived), at most the wall clock's frame."""
        assert self.batcher is not None
        by_wall_clock = (ms - self.batcher.origin_ms) // self.frame_ms
        by_media = self._newest_end + (ms - self._newest_arrival_ms) // self.frame_ms
        return max(min(by_wall_clock, by_media), 0)
