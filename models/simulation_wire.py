"""Wire side of the session simulator: VAD artefacts, frame rendering, delivery, merging.

The conversation model (``models.simulation``) decides who speaks when, in milliseconds. This
module turns each participant's speech into what a real voice-activity pipeline would emit:
frame-quantised timelines with VAD fragmentation, rendered per batch as ``voiced`` strings,
``levels`` lists or ``speech`` segments, then delivered with network jitter and at-least-once
duplicates, and merged across sessions by time. Everything is pure and driven by the
``random.Random`` instances the caller passes in.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections import deque
from collections.abc import Iterator
from operator import itemgetter
from typing import Any, Final

Event = dict[str, Any]
Run = tuple[int, int]
Timed = tuple[int, Event]  # (emission or delivery time in ms, event)

# A blip must sit at least this far from the participant's own speech and from other blips:
# the consumer bridges silences shorter than min_pause_ms (200), so a blip any closer would be
# glued to speech (lengthening an IPU) instead of being dropped as noise.
BLIP_CLEARANCE_MS: Final = 300
# Dropouts stay this many frames away from a speech interval's edges, so they never shorten or
# split off the ends of an IPU (which would move onsets and offsets the metrics depend on).
DROPOUT_EDGE_FRAMES: Final = 3

_TIME: Final = itemgetter(0)
# Streams are merged one window of this many ms at a time (see merge_by_time).
_MERGE_WINDOW_MS: Final = 5000

# Frame levels in -dBov (RFC 6464: 0 loudest, 127 silence). Voiced frames stay in 15..45 and
# unvoiced in 60..127 so that both sit well clear of the consumer's default threshold (50).
_LEVEL_TABLE_LEN: Final = 1021
_VOICED_DBOV: Final = (15, 45)
_UNVOICED_DBOV: Final = (60, 127)


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


class VadTrack:
    """One participant's voiced timeline on the frame grid, built incrementally.

    Frame indices count ``frame_ms`` frames from the session start; intervals are half-open
    ``[a, b)``. The conversation model adds speech and mute windows (in frames); ``advance(h)``
    is its promise that no speech added later starts before frame ``h``. That lets the track
    merge, cut out mutes, add VAD artefacts (dropouts inside speech, blips in silence) and move
    ``ready``: every frame before ``ready`` is final and may be rendered.
    """

    __slots__ = (
        "_blip_from",
        "_blip_rate",
        "_clear",
        "_dropout_rate",
        "_mutes",
        "_pending",
        "_rng",
        "done",
        "end",
        "first",
        "ready",
    )

    def __init__(
        self,
        rng: random.Random,
        first: int,
        end: int,
        frame_ms: int,
        dropouts_per_min: float,
        blips_per_min: float,
    ) -> None:
        """``first``/``end``: presence window in frames; rates per minute of speech/silence."""
        self._rng = rng
        self.first = first
        self.end = end
        self.ready = first
        self.done: deque[Run] = deque()
        self._pending: list[Run] = []
        self._mutes: list[Run] = []
        self._blip_from = first
        self._clear = -(-BLIP_CLEARANCE_MS // frame_ms)
        frames_per_min = 60_000 / frame_ms
        self._dropout_rate = dropouts_per_min / frames_per_min
        self._blip_rate = blips_per_min / frames_per_min

    def add_speech(self, a: int, b: int) -> None:
        """Add raw speech frames ``[a, b)``; clipped to the presence window."""
        a = max(a, self.first)
        b = min(b, self.end)
        if a < b:
            if a < self.ready:
                raise ValueError(f"speech at frame {a} precedes the final frame {self.ready}")
            self._pending.append((a, b))

    def add_mute(self, a: int, b: int) -> None:
        """Declare frames ``[a, b)`` muted: they will render unvoiced whatever was said."""
        if a < self.ready:
            raise ValueError(f"mute at frame {a} precedes the final frame {self.ready}")
        self._mutes.append((a, b))

    def advance(self, horizon: int) -> None:
        """Finalize everything that speech starting at frame >= ``horizon`` cannot change."""
        pending = sorted(self._pending)
        merged: list[list[int]] = []
        for a, b in pending:
            if merged and a <= merged[-1][1]:
                if b > merged[-1][1]:
                    merged[-1][1] = b
            else:
                merged.append([a, b])
        remaining: list[Run] = []
        for a, b in merged:
            # Strictly before the horizon: speech starting exactly at `b` would extend it.
            if b < horizon and not remaining:
                self._finalize(a, b)
            else:
                remaining.append((a, b))
        self._pending = remaining
        if not remaining and horizon >= self.end:
            self._blips(self.end)
            self.ready = self.end
        else:
            # Future speech starts at `limit` at the earliest (the next known onset when it
            # precedes the horizon): the silence before it, less the clearance, is closed.
            limit = remaining[0][0] if remaining and remaining[0][0] < horizon else horizon
            self._blips(limit - self._clear)
            if limit < horizon:
                # Keep later blips out of what is declared ready, even if a mute later cuts
                # the start of the pending interval.
                self._blip_from = max(self._blip_from, limit)
            self.ready = max(self.ready, min(self._blip_from, limit))
        if self._mutes:
            keep_after = min(self.ready, remaining[0][0]) if remaining else self.ready
            self._mutes = [m for m in self._mutes if m[1] > keep_after]

    def batch_runs(self, b0: int, b1: int) -> list[Run]:
        """Voiced runs within frames ``[b0, b1)`` (requires ``b1 <= ready``), clipped to it."""
        done = self.done
        while done and done[0][1] <= b0:
            done.popleft()
        runs: list[Run] = []
        for a, b in done:
            if a >= b1:
                break
            runs.append((a if a > b0 else b0, b if b < b1 else b1))
        return runs

    def _finalize(self, a: int, b: int) -> None:
        for ma, mb in sorted(self._mutes):
            if mb <= a or ma >= b:
                continue
            if ma > a:
                self._finalize_piece(a, ma)
            a = max(a, mb)
            if a >= b:
                return
        self._finalize_piece(a, b)

    def _finalize_piece(self, a: int, b: int) -> None:
        self._blips(a - self._clear)
        rng = self._rng
        done = self.done
        rate = self._dropout_rate
        if rate > 0:
            edge = DROPOUT_EDGE_FRAMES
            pos = a + edge + rng.expovariate(rate)
            while True:
                start = int(pos)
                length = 1 if rng.random() < 0.5 else 2
                if start + length > b - edge:
                    break
                done.append((a, start))
                a = start + length
                pos = a + edge + rng.expovariate(rate)
        done.append((a, b))
        self._blip_from = b + self._clear

    def _blips(self, hi: int) -> None:
        """Place spurious 1–3-frame blips in the silence ``[_blip_from, hi)`` (Poisson)."""
        lo = self._blip_from
        rate = self._blip_rate
        if hi <= lo or rate <= 0:
            return
        rng = self._rng
        pos = lo + rng.expovariate(rate)
        while True:
            start = int(pos)
            length = rng.randint(1, 3)
            if start + length > hi:
                break
            if any(ma < start + length and start < mb for ma, mb in self._mutes):
                pos += rng.expovariate(rate)
                continue
            self.done.append((start, start + length))
            lo = start + length + self._clear
            pos = lo + rng.expovariate(rate)
        # The next blip, even in a later call, keeps its distance from the last one placed.
        self._blip_from = max(lo, hi)


def render_voiced(runs: list[Run], b0: int, b1: int) -> str:
    """The ``voiced`` string ('0'/'1' per frame) of frames ``[b0, b1)`` given its voiced runs."""
    n = b1 - b0
    if not runs:
        return "0" * n
    parts: list[str] = []
    pos = b0
    for a, b in runs:
        if a > pos:
            parts.append("0" * (a - pos))
        parts.append("1" * (b - a))
        pos = b
    if pos < b1:
        parts.append("0" * (b1 - pos))
    return "".join(parts)


class LevelTables:
    """Pre-drawn noisy -dBov levels, sliced per batch so rendering needs one draw per batch."""

    __slots__ = ("_rng", "unvoiced", "voiced")

    def __init__(self, rng: random.Random, frames_per_batch: int) -> None:
        size = _LEVEL_TABLE_LEN + frames_per_batch
        self._rng = rng
        self.voiced = [_clamp(rng.gauss(30.0, 6.0), *_VOICED_DBOV) for _ in range(size)]
        # Background noise around -85 dBov, with stretches of digital silence (127).
        self.unvoiced = [
            127 if rng.random() < 0.15 else _clamp(rng.gauss(85.0, 12.0), *_UNVOICED_DBOV)
            for _ in range(size)
        ]

    def render(self, runs: list[Run], b0: int, b1: int) -> list[int]:
        """The ``levels`` list of frames ``[b0, b1)``; voiced exactly on ``runs``."""
        o = self._rng.randrange(_LEVEL_TABLE_LEN) - b0
        unvoiced = self.unvoiced
        voiced = self.voiced
        out: list[int] = []
        pos = b0
        for a, b in runs:
            if a > pos:
                out += unvoiced[o + pos : o + a]
            out += voiced[o + a : o + b]
            pos = b
        if pos < b1:
            out += unvoiced[o + pos : o + b1]
        return out


def deliver(
    rounds: Iterator[list[Timed]],
    rng: random.Random,
    jitter_ms: int,
    duplicate_rate: float,
) -> Iterator[list[Timed]]:
    """Delay each ``(emission_ms, event)`` by uniform ``[0, jitter_ms]`` and re-sort.

    With probability ``duplicate_rate`` an event is delivered a second time (a copy) at its own
    independent delay. Input: sorted rounds, each starting no earlier than the previous one
    ended; output: the same shape, in delivery time. Memory: the events of one jitter window.
    """
    if jitter_ms <= 0 and duplicate_rate <= 0:
        yield from rounds
        return
    span = jitter_ms + 1
    heap: list[tuple[int, int, Event]] = []
    n = 0
    rand = rng.random
    push = heapq.heappush
    pop = heapq.heappop
    for items in rounds:
        for t, event in items:
            push(heap, (t + int(rand() * span), n, event))
            n += 1
            if duplicate_rate > 0 and rand() < duplicate_rate:
                push(heap, (t + int(rand() * span), n, dict(event)))
                n += 1
        if not items:
            continue
        # Later rounds emit no earlier than this one's last event, so whatever is due by then
        # precedes everything still to come ((time, arrival) order breaks ties).
        now = items[-1][0]
        out: list[Timed] = []
        while heap and heap[0][0] <= now:
            due, _, event = pop(heap)
            out.append((due, event))
        if out:
            yield out
    out = []
    while heap:
        due, _, event = pop(heap)
        out.append((due, event))
    if out:
        yield out


def merge_by_time(streams: list[Iterator[list[Timed]]]) -> Iterator[list[Timed]]:
    """Stable merge by time of streams of sorted, non-decreasing rounds.

    Works one time window at a time: it gathers every stream's items of the window and sorts
    them in C (stable, so ties keep session order, then stream order), instead of paying a
    Python-level heap step per event as ``heapq.merge`` would.
    """
    if len(streams) == 1:
        yield from streams[0]
        return
    heads: list[list[Timed]] = [[] for _ in streams]
    live = list(range(len(streams)))
    window_end = 0
    while live:
        window: list[Timed] = []
        exhausted: list[int] = []
        for k in live:
            head = heads[k]
            while True:
                if not head:
                    fresh = next(streams[k], None)
                    if fresh is None:
                        exhausted.append(k)
                        break
                    head = fresh
                    continue
                if head[-1][0] < window_end:
                    window += head
                    head = []
                    continue
                cut = bisect.bisect_left(head, window_end, key=_TIME)
                window += head[:cut]
                head = head[cut:]
                break
            heads[k] = head
        if exhausted:
            live = [k for k in live if k not in exhausted]
        if window:
            window.sort(key=_TIME)
            yield window
            window_end += _MERGE_WINDOW_MS
        else:
            firsts = [heads[k][0][0] for k in live if heads[k]]
            window_end = (min(firsts) if firsts else window_end) + _MERGE_WINDOW_MS
