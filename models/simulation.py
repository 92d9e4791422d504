"""Deterministic simulator of telehealth therapy sessions, emitting wire-v1 events.

``simulate(config)`` streams the events that Rapport's ingest would receive for synthetic
sessions: ``session.start``, per-participant ``activity`` batches (or ``speech`` segments),
``network`` samples, mute/unmute pairs, late joins and ``session.end``. Sessions are generated
lazily and merged by emission time, so memory stays constant per session whatever the length.

The conversation model (documented in docs/simulator.md) works in integer milliseconds on each
session's clock: alternating turns made of inter-pausal units (IPUs) and pauses, speaker changes
with ~200 ms gaps, listener backchannels, interruptions and latency-induced collisions. The wire
side (``models.simulation_wire``) quantises it to frames and adds VAD artefacts.

All randomness comes from ``random.Random`` instances seeded from ``config.seed`` and the session
index, one stream per concern, so that e.g. the encoding or the jitter never changes who speaks.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final, Literal, get_args

from models.simulation_shapes import PARTICIPANT_SHAPES, SHAPES, Shape, ShapeRenderer
from models.simulation_wire import (
    Event,
    LevelTables,
    Timed,
    VadTrack,
    deliver,
    merge_by_time,
    render_voiced,
)

Style = Literal[
    "balanced", "therapist-heavy", "client-narrative", "interruptive", "laggy", "group", "mixed"
]
Encoding = Literal["voiced", "levels", "speech"]
Role = Literal["therapist", "client"]

STYLES: Final[tuple[Style, ...]] = get_args(Style)
ENCODINGS: Final[tuple[Encoding, ...]] = get_args(Encoding)
FRAME_SIZES_MS: Final = (10, 20, 30)

# Hard bounds of the model, in ms (see docs/simulator.md for where they come from).
_MIN_IPU_MS: Final = 250
_GAP_CLIP_MS: Final = (-900, 2500)
_OWN_CLEARANCE_MS: Final = 300  # > min_pause_ms: a participant's separate IPUs stay separate
_BC_EDGE_MS: Final = 500  # backchannels sit this far inside the speaker's IPU
_BC_LAST_IPU_EDGE_MS: Final = 1300  # ... more in the last IPU, which a -900 ms gap may overlap
_BC_MIN_MS: Final = 200
_BC_MAX_MS: Final = 700
_COLLISION_MIN_PAUSE_MS: Final = 1000
_MUTE_MIN_TURN_MS: Final = 20_000

# Event order among equal emission times: a session opens before anything else at its start
# and closes after the batches that end with it.
_PRIO_START, _PRIO_JOIN, _PRIO_NET, _PRIO_MUTE, _PRIO_VOICE, _PRIO_END = range(6)
_ORDER: Final = itemgetter(0, 1, 2)  # (time, priority, participant); sorts are stable


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Times in ms; ``minutes`` per session; rates are probabilities."""

    sessions: int = 1
    minutes: float = 10.0
    seed: int = 0
    style: Style = "balanced"
    encoding: Encoding = "voiced"
    # The v1.1 input shape each participant sends (models/simulation_shapes.py): "frames"
    # renders ``encoding``; "mixed" draws one of frames/segments/voice/levels per participant.
    shape: Shape = "frames"
    frame_ms: int = 20
    batch_ms: int = 1000
    network_interval_ms: int = 5000
    jitter_ms: int = 0
    duplicate_rate: float = 0.0
    session_stagger_ms: int = 60_000
    session_id_prefix: str = "sim"

    def __post_init__(self) -> None:
        if self.sessions < 1:
            raise ValueError(f"sessions must be >= 1, got {self.sessions}")
        if not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise ValueError(f"minutes must be a positive number, got {self.minutes}")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {self.style!r}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        if self.frame_ms not in FRAME_SIZES_MS:
            raise ValueError(f"frame_ms must be 10, 20 or 30, got {self.frame_ms}")
        if self.batch_ms < self.frame_ms or self.batch_ms % self.frame_ms:
            raise ValueError(
                f"batch_ms must be a positive multiple of frame_ms ({self.frame_ms}), "
                f"got {self.batch_ms}"
            )
        if self.network_interval_ms < 1:
            raise ValueError(f"network_interval_ms must be >= 1, got {self.network_interval_ms}")
        if self.jitter_ms < 0:
            raise ValueError(f"jitter_ms must be >= 0, got {self.jitter_ms}")
        if not 0.0 <= self.duplicate_rate <= 1.0:
            raise ValueError(f"duplicate_rate must be within [0, 1], got {self.duplicate_rate}")
        if self.session_stagger_ms < 0:
            raise ValueError(f"session_stagger_ms must be >= 0, got {self.session_stagger_ms}")
        if not self.session_id_prefix:
            raise ValueError("session_id_prefix must not be empty")

    @property
    def duration_ms(self) -> int:
        """Session length in ms: ``minutes`` rounded to whole frames (at least one frame)."""
        frames = round(self.minutes * 60_000 / self.frame_ms)
        return max(1, frames) * self.frame_ms


@dataclass(frozen=True)
class StyleParams:
    """Distribution parameters of one conversation style (ms, rates per minute of talk)."""

    therapist_turn_ms: float  # median turn length (lognormal)
    client_turn_ms: float
    turn_sigma: float = 0.8
    ipu_ms: float = 2000.0  # median IPU length (lognormal)
    ipu_sigma: float = 0.6
    pause_ms: float = 500.0  # median within-turn pause (lognormal)
    pause_sigma: float = 0.5
    long_pause_p: float = 0.03  # a pause is a 3-8 s "therapeutic" pause
    lapse_p: float = 0.004  # a pause is a 5-40 s long silence
    gap_mean_ms: float = 200.0  # speaker-change gap before network delay, N(mean, sd)
    gap_sd_ms: float = 250.0
    therapist_bc_per_min: float = 3.0  # backchannels per minute of the partner's IPU time
    client_bc_per_min: float = 2.0
    therapist_int_per_min: float = 0.3  # interruption attempts per minute of partner's IPUs
    client_int_per_min: float = 0.2
    int_success_p: float = 0.6
    collision_p: float = 0.04  # per pause >= 1 s: the listener starts too, within its RTT
    mute_p: float = 0.1  # per listener, per partner turn >= 20 s
    rtt_base_ms: tuple[int, int] = (40, 150)
    net_jitter_base_ms: tuple[int, int] = (2, 20)
    loss_base_pct: tuple[float, float] = (0.0, 1.0)
    loss_max_pct: float = 2.0
    clients: tuple[int, int] = (1, 1)
    late_join_p: float = 0.0
    vad_dropouts_per_min: float = 8.0  # per minute of speech
    vad_blips_per_min: float = 2.0  # per minute of silence

    def turn_ms(self, role: Role) -> float:
        return self.therapist_turn_ms if role == "therapist" else self.client_turn_ms

    def bc_per_min(self, role: Role) -> float:
        return self.therapist_bc_per_min if role == "therapist" else self.client_bc_per_min

    def int_per_min(self, role: Role) -> float:
        return self.therapist_int_per_min if role == "therapist" else self.client_int_per_min


STYLE_PARAMS: Final[dict[str, StyleParams]] = {
    "balanced": StyleParams(therapist_turn_ms=8000, client_turn_ms=8000),
    "therapist-heavy": StyleParams(
        therapist_turn_ms=17000, client_turn_ms=5500, therapist_bc_per_min=2.0,
        client_bc_per_min=2.5,
    ),
    "client-narrative": StyleParams(
        therapist_turn_ms=5500, client_turn_ms=17000, therapist_bc_per_min=4.0,
    ),
    "interruptive": StyleParams(
        therapist_turn_ms=9000, client_turn_ms=7000, therapist_int_per_min=2.5,
        client_int_per_min=1.0, int_success_p=0.7, gap_mean_ms=100.0,
    ),
    "laggy": StyleParams(
        therapist_turn_ms=8000, client_turn_ms=8000, collision_p=0.2,
        rtt_base_ms=(250, 700), net_jitter_base_ms=(20, 80), loss_base_pct=(1.0, 5.0),
        loss_max_pct=12.0,
    ),
    "group": StyleParams(
        therapist_turn_ms=8000, client_turn_ms=7000, client_bc_per_min=1.0,
        clients=(2, 3), late_join_p=0.3,
    ),
}
_BASE_STYLES: Final = tuple(STYLE_PARAMS)


def _grid(t: int, origin: int, frame_ms: int) -> int:
    """``t`` rounded to the nearest frame boundary of a clock whose frame 0 starts at origin."""
    return origin + (t - origin + frame_ms // 2) // frame_ms * frame_ms


class _Link:
    """A participant's network path: mean-reverting random walk sampled every interval."""

    __slots__ = (
        "_base", "_end", "_interval", "_jit", "_jit_base", "_last_rtt", "_loss", "_loss_base",
        "_loss_max", "_next_ts", "_pid", "_queue", "_rng", "_rtt", "_sid",
    )

    def __init__(
        self, rng: random.Random, p: StyleParams, sid: str, pid: str, first_ms: int,
        end_ms: int, interval_ms: int,
    ) -> None:
        self._rng = rng
        self._sid = sid
        self._pid = pid
        self._base = rng.uniform(*p.rtt_base_ms)
        self._rtt = self._base
        self._jit_base = rng.uniform(*p.net_jitter_base_ms)
        self._jit = self._jit_base
        self._loss_base = rng.uniform(*p.loss_base_pct)
        self._loss = self._loss_base
        self._loss_max = p.loss_max_pct
        self._next_ts = first_ms
        self._end = end_ms
        self._interval = interval_ms
        self._queue: deque[tuple[int, int, Event]] = deque()
        self._last_rtt = round(self._base)

    def _step(self) -> None:
        rand = self._rng.random
        base = self._base
        # Each step pulls 30 % of the way back to the base and adds zero-mean noise (a sum of
        # two uniforms: bell-shaped, bounded, and much cheaper to draw than a Gaussian).
        self._rtt = min(2.5 * base, max(0.5 * base, self._rtt + 0.3 * (base - self._rtt)
                                        + (rand() + rand() - 1.0) * 0.25 * base))
        self._jit = max(0.0, self._jit + 0.3 * (self._jit_base - self._jit)
                        + (rand() + rand() - 1.0) * 0.5 * self._jit_base)
        self._loss = min(self._loss_max, max(0.0, self._loss + 0.3 * (self._loss_base - self._loss)
                                             + (rand() - 0.5) * max(self._loss_base, 0.2)))
        rtt = max(1, round(self._rtt))
        ts = self._next_ts
        self._queue.append((ts, rtt, {
            "type": "network", "session_id": self._sid, "participant_id": self._pid,
            "ts_ms": ts, "rtt_ms": rtt, "jitter_ms": round(self._jit),
            "loss_pct": round(self._loss, 2),
        }))
        self._next_ts += self._interval

    def _fill(self, t: int) -> None:
        while self._next_ts <= t and self._next_ts < self._end:
            self._step()

    def rtt_at(self, t: int) -> int:
        """RTT in ms of the latest sample at or before ``t`` (the first one before any)."""
        self._fill(t)
        for ts, rtt, _ in reversed(self._queue):
            if ts <= t:
                return rtt
        return self._last_rtt

    def pop_until(self, t: int) -> Iterator[tuple[int, Event]]:
        """Samples with ``ts_ms <= t`` not yet popped, oldest first."""
        self._fill(t)
        queue = self._queue
        while queue and queue[0][0] <= t:
            ts, self._last_rtt, event = queue.popleft()
            yield ts, event


class _Conversation:
    """Turn-taking model. ``run()`` yields horizons: no speech added later starts before one.

    Between yields it appends ``(participant, start_ms, end_ms)`` to ``speech`` and mute
    windows to ``mutes``; the caller drains both lists.
    """

    def __init__(
        self, rng: random.Random, p: StyleParams, roles: list[Role], joins: list[int],
        start: int, end: int, links: list[_Link], frame_ms: int,
    ) -> None:
        self.rng = rng
        self.p = p
        self.roles = roles
        self.joins = joins
        self.start = start
        self.end = end
        self.links = links
        self.frame_ms = frame_ms
        self.speech: list[tuple[int, int, int]] = []
        self.mutes: list[tuple[int, int, int]] = []
        self.last_end = [-(10**9)] * len(roles)  # latest end of each participant's speech

    def _lognorm(self, median: float, sigma: float) -> int:
        return int(median * math.exp(sigma * self.rng.gauss(0.0, 1.0)))

    def _pause(self) -> int:
        u = self.rng.random()
        if u < self.p.lapse_p:
            return self.rng.randint(5000, 40_000)
        if u < self.p.lapse_p + self.p.long_pause_p:
            return self.rng.randint(3000, 8000)
        return self._lognorm(self.p.pause_ms, self.p.pause_sigma)

    def _present(self, t: int) -> list[int]:
        return [i for i, joined in enumerate(self.joins) if joined <= t]

    def _next_speaker(self, spk: int, t: int) -> int:
        others = [i for i in self._present(t) if i != spk]
        if len(others) == 1:
            return others[0]
        clients = [i for i in others if self.roles[i] == "client"]
        # In a group the therapist moderates: clients mostly hand the floor back to them.
        if self.roles[spk] == "client" and self.rng.random() < 0.5:
            return 0
        return self.rng.choice(clients)

    def run(self) -> Iterator[int]:
        rng = self.rng
        t = self.start + rng.randint(300, 2000)
        spk = 0 if rng.random() < 0.7 else self._next_speaker(0, t)
        min_first = 0
        while t < self.end:
            t, spk, min_first = self._turn(spk, t, min_first)
            yield t

    def _turn(self, spk: int, t0: int, min_first: int) -> tuple[int, int, int]:
        """One turn of ``spk`` from ``t0``; returns (next turn start, next speaker, its min IPU)."""
        rng, p, roles, links = self.rng, self.p, self.roles, self.links
        last_end = self.last_end
        target = self._lognorm(p.turn_ms(roles[spk]), p.turn_sigma)
        listeners = [i for i in self._present(t0) if i != spk]
        own: dict[int, list[tuple[int, int]]] = {i: [] for i in listeners}
        ipus: list[tuple[int, int]] = []
        forced: tuple[int, int, int] | None = None
        cur = t0
        while True:
            d = max(_MIN_IPU_MS, self._lognorm(p.ipu_ms, p.ipu_sigma))
            if not ipus and d < min_first:
                d = min_first + rng.randint(200, 1500)
            s, e = cur, cur + d
            if (ipus and listeners and s - ipus[-1][1] >= _COLLISION_MIN_PAUSE_MS
                    and rng.random() < p.collision_p):
                # Both resume after a silence within the later one's RTT: neither heard the other.
                li = rng.choice(listeners)
                onset = s + int(rng.random() * 0.8 * links[li].rtt_at(s))
                if onset >= last_end[li] + _OWN_CLEARANCE_MS:
                    if rng.random() < 0.5:  # the speaker backs off; the listener has the floor
                        e = max(s + rng.randint(300, 900), onset + 200)
                        forced = (li, onset, e - onset + 300)
                    else:  # the listener backs off after talking over for more than 1 s
                        le = onset + rng.randint(1100, 1800)
                        own[li].append((onset, le))
                        e = max(e, le + rng.randint(300, 1000))
            elif listeners and d >= 1500:
                for li in listeners:
                    if rng.random() >= p.int_per_min(roles[li]) * d / 60_000:
                        continue
                    # Start late enough that the listener did hear this IPU begin; otherwise it
                    # would be a collision, not an interruption.
                    lo = max(s + 500 + links[li].rtt_at(s), last_end[li] + _OWN_CLEARANCE_MS)
                    if lo >= e - 300:
                        break
                    onset = rng.randint(lo, e - 300)
                    if rng.random() < p.int_success_p:
                        overlap = rng.randint(500, 2000)
                        e = onset + overlap
                        forced = (li, onset, overlap + 300)
                    else:
                        # Longer than bc_max_ms (1 s) or the consumer would see a backchannel.
                        le = onset + rng.randint(1100, 2000)
                        own[li].append((onset, le))
                        e = max(e, le + rng.randint(300, 800))
                    break
            ipus.append((s, e))
            cur = e
            if forced is not None or cur - t0 >= target or cur >= self.end:
                break
            cur += self._pause()

        turn_end = ipus[-1][1]
        if forced is not None:
            own[forced[0]].append((forced[1], 10**15))
        bcs = self._backchannels(listeners, ipus, own)
        self._mute_listeners(listeners, t0, turn_end, own, bcs)

        for s, e in ipus:
            self.speech.append((spk, s, e))
        last_end[spk] = max(last_end[spk], turn_end)
        for li in listeners:
            for s, e in own[li] + bcs[li]:
                if e < 10**15:
                    self.speech.append((li, s, e))
                    last_end[li] = max(last_end[li], e)

        if forced is not None:
            return forced[1], forced[0], forced[2]
        nxt = self._next_speaker(spk, turn_end)
        gap = min(_GAP_CLIP_MS[1], max(_GAP_CLIP_MS[0], int(rng.gauss(p.gap_mean_ms, p.gap_sd_ms))))
        # Observed at the ingest clock, the responder's gap includes its round trip (METRICS §4).
        start = max(turn_end + gap + links[nxt].rtt_at(turn_end), ipus[-1][0] + 300,
                    last_end[nxt] + _OWN_CLEARANCE_MS)
        return start, nxt, 0

    def _backchannels(
        self, listeners: list[int], ipus: list[tuple[int, int]],
        own: dict[int, list[tuple[int, int]]],
    ) -> dict[int, list[tuple[int, int]]]:
        rng = self.rng
        bcs: dict[int, list[tuple[int, int]]] = {i: [] for i in listeners}
        last = len(ipus) - 1
        # Where a backchannel may start: well inside an IPU, leaving room for its own length.
        slots = [(s + _BC_EDGE_MS,
                  e - (_BC_LAST_IPU_EDGE_MS if k == last else _BC_EDGE_MS) - _BC_MAX_MS)
                 for k, (s, e) in enumerate(ipus)]
        slots = [(a, b) for a, b in slots if b > a]
        room = sum(b - a for a, b in slots)
        if not room:
            return bcs
        talk = sum(e - s for s, e in ipus)
        for li in listeners:
            # The nominal rate is per minute of the partner's talk; concentrate it on the
            # slots, since short IPUs and IPU edges cannot host a backchannel.
            rate = self.p.bc_per_min(self.roles[li]) / 60_000 * talk / room
            if rate <= 0:
                continue
            blocked = [*own[li], (-(10**15), self.last_end[li])]
            for a, b in slots:
                x = a + rng.expovariate(rate)
                while x < b:
                    bs = int(x)
                    be = bs + rng.randint(_BC_MIN_MS, _BC_MAX_MS)
                    if not any(bs < oe + _OWN_CLEARANCE_MS and os < be + _OWN_CLEARANCE_MS
                               for os, oe in blocked):
                        bcs[li].append((bs, be))
                        blocked.append((bs, be))
                    x += rng.expovariate(rate)
        return bcs

    def _mute_listeners(
        self, listeners: list[int], t0: int, turn_end: int,
        own: dict[int, list[tuple[int, int]]], bcs: dict[int, list[tuple[int, int]]],
    ) -> None:
        """Listeners who only listen through a long turn sometimes mute, as people do on calls."""
        if turn_end - t0 < _MUTE_MIN_TURN_MS:
            return
        rng = self.rng
        for li in listeners:
            if own[li] or rng.random() >= self.p.mute_p:
                continue
            m0 = _grid(max(t0, self.last_end[li]) + rng.randint(1000, 4000), self.start,
                       self.frame_ms)
            m1 = _grid(turn_end - rng.randint(1500, 4000), self.start, self.frame_ms)
            if m1 - m0 < 5000 or m1 >= self.end:
                continue
            self.mutes.append((li, m0, m1))
            bcs[li] = [(s, e) for s, e in bcs[li]
                       if e + _OWN_CLEARANCE_MS <= m0 or s >= m1 + _OWN_CLEARANCE_MS]


def _session(config: SimulationConfig, index: int) -> Iterator[list[Timed]]:
    """One session's ``(emission_ms, event)`` pairs, in sorted rounds of non-decreasing time."""
    tag = f"rapport-sim:{config.seed}:{index}"
    rng = random.Random(tag)
    style = rng.choice(_BASE_STYLES) if config.style == "mixed" else config.style
    p = STYLE_PARAMS[style]
    f = config.frame_ms
    fpb = config.batch_ms // f
    sid = f"{config.session_id_prefix}-{index + 1:04d}"
    offset = rng.randrange(config.session_stagger_ms) if config.session_stagger_ms else 0
    end = offset + config.duration_ms
    end_f = config.duration_ms // f

    n_clients = rng.randint(*p.clients)
    client: Role = "client"
    roles: list[Role] = ["therapist", *([client] * n_clients)]
    pids = [f"{sid}-t"] + [f"{sid}-c{k}" for k in range(1, n_clients + 1)]
    joins = [offset] * len(roles)
    n_batches = -(-end_f // fpb)
    if rng.random() < p.late_join_p and n_batches >= 6:
        # Joins land on a batch boundary so the newcomer's batches stay aligned with the others'.
        roles.append("client")
        pids.append(f"{sid}-c{n_clients + 1}")
        joins.append(offset + rng.randint(n_batches // 6, n_batches // 2) * config.batch_ms)

    points: list[tuple[int, int, int, Event]] = []  # (ts, priority, counter, event)
    points.append((offset, _PRIO_START, 0, {
        "type": "session.start", "session_id": sid, "ts_ms": offset,
        "clinic_id": f"clinic-{rng.randint(1, 5)}",
        "participants": [{"participant_id": pid, "role": role}
                         for pid, role, j in zip(pids, roles, joins, strict=True) if j == offset],
    }))
    for i in range(len(roles)):
        if joins[i] > offset:
            points.append((joins[i], _PRIO_JOIN, i, {
                "type": "participant.join", "session_id": sid, "participant_id": pids[i],
                "role": roles[i], "ts_ms": joins[i]}))
    points.append((end, _PRIO_END, 0, {"type": "session.end", "session_id": sid, "ts_ms": end}))
    heapq.heapify(points)
    n_points = len(points)

    links = [_Link(random.Random(f"{tag}:net:{i}"), p, sid, pids[i], joins[i], end,
                   config.network_interval_ms) for i in range(len(roles))]
    tracks = [VadTrack(random.Random(f"{tag}:vad:{i}"), (joins[i] - offset) // f, end_f, f,
                       p.vad_dropouts_per_min, p.vad_blips_per_min) for i in range(len(roles))]
    levels = ([LevelTables(random.Random(f"{tag}:levels:{i}"), fpb) for i in range(len(roles))]
              if config.encoding == "levels" else [])
    seqs = [0] * len(roles)
    shape_rng = random.Random(f"{tag}:shape")
    shapes = [shape_rng.choice(PARTICIPANT_SHAPES) if config.shape == "mixed" else config.shape
              for _ in roles]
    renderers = [
        None if shapes[i] == "frames" else ShapeRenderer(
            shapes[i], random.Random(f"{tag}:shape:{i}"), session_id=sid, participant_id=pids[i],
            offset=offset, frame_ms=f, end_f=end_f)
        for i in range(len(roles))
    ]
    conv = _Conversation(random.Random(f"{tag}:talk"), p, roles, joins, offset, end, links, f)
    encoding = config.encoding
    half = f // 2
    silent = "0" * fpb  # shared by every silent batch: strings are immutable

    def emit(horizon_f: int) -> list[Timed]:
        for tr in tracks:
            tr.advance(horizon_f)
        safe_f = min(tr.ready for tr in tracks)
        safe = offset + safe_f * f
        out: list[tuple[int, int, int, Event]] = []
        for i, tr in enumerate(tracks):
            pid = pids[i]
            seq = seqs[i]
            b0 = tr.first + seq * fpb
            while b0 < end_f:
                b1 = b0 + fpb
                if b1 > end_f:
                    b1 = end_f
                if b1 > safe_f:
                    break
                runs = tr.batch_runs(b0, b1)
                t1 = offset + b1 * f
                renderer = renderers[i]
                if renderer is not None:
                    out.extend((t1, _PRIO_VOICE, i, event)
                               for event in renderer.batch(runs, b0, b1))
                elif encoding == "voiced":
                    out.append((t1, _PRIO_VOICE, i, {
                        "type": "activity", "session_id": sid, "participant_id": pid,
                        "seq": seq, "start_ms": offset + b0 * f, "frame_ms": f,
                        "voiced": render_voiced(runs, b0, b1) if runs or b1 - b0 < fpb
                        else silent}))
                elif encoding == "levels":
                    out.append((t1, _PRIO_VOICE, i, {
                        "type": "activity", "session_id": sid, "participant_id": pid,
                        "seq": seq, "start_ms": offset + b0 * f, "frame_ms": f,
                        "levels": levels[i].render(runs, b0, b1)}))
                else:
                    for a, b in runs:
                        out.append((t1, _PRIO_VOICE, i, {
                            "type": "speech", "session_id": sid, "participant_id": pid,
                            "start_ms": offset + a * f, "end_ms": offset + b * f}))
                seq += 1
                b0 = b1
            seqs[i] = seq
            for ts, event in links[i].pop_until(safe):
                out.append((ts, _PRIO_NET, i, event))
        while points and points[0][0] <= safe:
            ts, prio, k, event = heapq.heappop(points)
            out.append((ts, prio, k, event))
        out.sort(key=_ORDER)
        return [(item[0], item[3]) for item in out]

    for horizon in conv.run():
        for i, s, e in conv.speech:
            tracks[i].add_speech((s - offset + half) // f, (e - offset + half) // f)
        conv.speech.clear()
        for i, m0, m1 in conv.mutes:
            tracks[i].add_mute((m0 - offset) // f, (m1 - offset) // f)
            for ts, kind in ((m0, "participant.mute"), (m1, "participant.unmute")):
                n_points += 1
                heapq.heappush(points, (ts, _PRIO_MUTE, n_points, {
                    "type": kind, "session_id": sid, "participant_id": pids[i], "ts_ms": ts}))
        conv.mutes.clear()
        batch = emit((horizon - offset) // f)
        if batch:
            yield batch
    yield emit(end_f + 1)


def simulate_timed(config: SimulationConfig) -> Iterator[tuple[int, Event]]:
    """Like ``simulate`` but yields ``(delivery_ms, event)``; delivery = emission + jitter delay.

    Emission time is the end of its batch for ``activity``/``speech`` and ``ts_ms`` otherwise.
    """
    streams = [
        deliver(_session(config, k), random.Random(f"rapport-sim:{config.seed}:{k}:delivery"),
                config.jitter_ms, config.duplicate_rate)
        for k in range(config.sessions)
    ]
    for window in merge_by_time(streams):
        yield from window


def simulate(config: SimulationConfig) -> Iterator[dict[str, Any]]:
    """Wire-v1 event dicts of ``config.sessions`` sessions, merged in delivery-time order.

    Deterministic for a given config: the same seed yields byte-identical output.
    """
    for window in merge_by_time([
        deliver(_session(config, k), random.Random(f"rapport-sim:{config.seed}:{k}:delivery"),
                config.jitter_ms, config.duplicate_rate)
        for k in range(config.sessions)
    ]):
        for item in window:
            yield item[1]
