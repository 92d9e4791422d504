"""Crosstalk between the channels of one recorded session (issue 17: ``rapport analyze --audio``
on per-participant recordings): one participant's voice picked up, fainter, by another's
microphone, and called speech there too.

Two lapel or headset microphones in one room each carry the other voice 10 to 30 dB down; a
remote participant's stream can carry the far end's voice that echo cancellation left. Each
channel's VAD hears a fainter copy of a voice and calls it speech: measured, the default VAD
called speech in 80 % of another channel's speech frames with that voice 30 dB down, 95 % at
20 dB (docs/vad.md, "Crosstalk"). Every such frame becomes overlap in the report (METRICS.md §4),
and the listener seems to talk whenever the speaker does.

No single channel can tell a faint voice from a far one; two channels can. Where a voice
bleeds from channel ``a`` into channel ``b``, the level difference of the two channels in that
voice's frames, ``d = level_a - level_b`` (dB, per 20 ms frame), stays near one value, the
coupling: the path's attenuation and the two microphones' gains. So :func:`coupling` reads the
frames both channels' VADs called speech: if enough of them are, and many of those frames'
differences sit in one narrow peak at least 6 dB from 0 (:class:`CrosstalkRule`), that peak
is a voice bleeding one way (a positive peak: ``a``'s voice into ``b``), and a second such
peak on the other side the other way. True overlap (both participants speaking at once, each
loudest in their own microphone) spreads over every difference and seldom forms such a peak.

:func:`without_crosstalk` then drops, in each frame both channels call speech, the fainter
channel's frame when the difference is within 7 dB of the bleed peak or beyond it (its own
voice there would have to be as faint in its own microphone as the other voice's bleed), and
the rest of any run of speech frames 70 % of which were so dropped, but for the frames where
that channel's own voice was found bleeding the other way: the VAD holds speech a little past
a voice, and the other room's reverberant tail outlasts it, so a bleed's last frames are
seldom at the bleed's level. A pair with no such peak (separate rooms, or too little shared
speech to tell) is left as it is.

Pure code: numpy only, no I/O. Frames are the VAD's 20 ms grid (METRICS.md §1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.errors import ValidationError

FRAME_MS = 20
SILENT_DB = -120.0  # the level of a frame of digital silence


@dataclass(frozen=True, slots=True)
class CrosstalkRule:
    """What counts as a bleed, and what is dropped for it (module docstring). The half-width
    and the run share were ranked on sessions of the tuning voices by bench/crosstalk.py, the
    flank ratio among 2-4 in an earlier round; the rest are set, not ranked (docs/vad.md,
    "Crosstalk")."""

    min_shared_frames: int = 150  # 3 s both channels call speech: fewer, nothing to tell
    min_coupling_db: float = 6.0  # a peak nearer 0 is not a bleed (its voice is as loud)
    half_width_db: float = 7.0  # of the peak's window, and how near the peak a frame drops
    min_peak_share: float = 0.3  # of the shared frames on its side, within the window
    min_peak_frames: int = 100  # and at least 2 s of them
    flank_ratio: float = 3.0  # times as many as the same window on either flank
    run_share: float | None = 0.7  # a run of speech this much bleed is bleed throughout

    def __post_init__(self) -> None:
        if self.half_width_db <= 0:
            raise ValidationError("half_width_db", f"must be > 0, got {self.half_width_db}")
        if self.run_share is not None and not 0 < self.run_share <= 1:
            raise ValidationError("run_share", f"must be in (0, 1], got {self.run_share}")


DEFAULT_RULE = CrosstalkRule()

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Coupling:
    """How the voices of two channels ``a`` and ``b`` reach each other: the level difference
    ``level_a - level_b`` (dB) of a voice of ``a`` bleeding into ``b`` (``a_into_b``, > 0)
    and of ``b``'s into ``a`` (``b_into_a``, < 0); ``None`` where no such bleed was found."""

    a_into_b: float | None
    b_into_a: float | None
    shared_frames: int

    @property
    def found(self) -> bool:
        return self.a_into_b is not None or self.b_into_a is not None


def frame_levels_db(samples: npt.ArrayLike, rate: int, frame_ms: int = FRAME_MS) -> FloatArray:
    """The power of each whole ``frame_ms`` frame of ``samples`` (mono, at ``rate``, full
    scale 1.0) in dB full scale, frame ``i`` starting at sample ``floor(i * rate * frame_ms /
    1000)`` (the VAD's grid at any rate); :data:`SILENT_DB` for digital silence."""
    if rate <= 0:
        raise ValidationError("rate", f"must be > 0, got {rate}")
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    count = (len(x) * 1000) // (rate * frame_ms)
    if count <= 0:
        return np.zeros(0)
    starts = (np.arange(count + 1) * rate * frame_ms) // 1000
    sums = np.add.reduceat(np.square(x[: starts[-1]]), starts[:-1])
    power = sums / np.diff(starts)
    levels: FloatArray = np.maximum(10 * np.log10(np.maximum(power, 1e-30)), SILENT_DB)
    return levels


def _peak(differences: FloatArray, side: int, rule: CrosstalkRule) -> float | None:
    """The level difference of a bleed on one side of 0 (``side`` +1 or -1), or ``None``.

    A bleed is a narrow peak: the densest window (``rule.half_width_db`` either way) centred
    at least ``rule.min_coupling_db`` out that holds ``rule.min_peak_frames`` at least,
    ``rule.min_peak_share`` of the differences that far out, and ``rule.flank_ratio`` times
    as many as the window of the same width on either flank. True overlap spreads (two voices'
    levels move independently frame by frame) and has no such flanks."""
    d = np.sort(differences * side)
    w = rule.half_width_db

    def within(low: FloatArray, high: FloatArray) -> npt.NDArray[np.int64]:
        counts: npt.NDArray[np.int64] = (np.searchsorted(d, high, side="right")
                                         - np.searchsorted(d, low, side="left"))
        return counts

    centres = d[d >= rule.min_coupling_db]
    if not centres.size:
        return None
    held = within(centres - w, centres + w)
    flank = np.maximum(within(centres - 3 * w, centres - w), within(centres + w, centres + 3 * w))
    held = np.where(held >= rule.flank_ratio * flank, held, 0)
    best = int(np.argmax(held))
    if held[best] < max(rule.min_peak_share * len(centres), rule.min_peak_frames):
        return None
    inside = d[np.abs(d - centres[best]) <= w]
    return side * float(np.median(inside))


def coupling(levels_a: npt.ArrayLike, levels_b: npt.ArrayLike, voiced_a: npt.ArrayLike,
             voiced_b: npt.ArrayLike, rule: CrosstalkRule = DEFAULT_RULE) -> Coupling:
    """The bleed between channels ``a`` and ``b`` (module docstring) from their frames'
    levels (:func:`frame_levels_db`) and their VADs' decisions, frame by frame from frame 0
    (the shorter channel decides how many are compared)."""
    la, lb, va, vb = _aligned(levels_a, levels_b, voiced_a, voiced_b)
    shared = va & vb
    count = int(shared.sum())
    if count < rule.min_shared_frames:
        return Coupling(None, None, count)
    d = la[shared] - lb[shared]
    return Coupling(_peak(d, +1, rule), _peak(d, -1, rule), count)


def without_crosstalk(voiced: Sequence[npt.ArrayLike], levels: Sequence[npt.ArrayLike],
                      rule: CrosstalkRule = DEFAULT_RULE
                      ) -> tuple[list[BoolArray], dict[tuple[int, int], Coupling]]:
    """Each channel's decisions with the frames that are another channel's voice dropped
    (module docstring), and the coupling found for each pair of channels ``(i, j)``, ``i <
    j``. Channels may differ in length; each keeps its own."""
    if len(voiced) != len(levels):
        raise ValidationError("levels", f"one per channel: {len(levels)} for "
                                        f"{len(voiced)} channels")
    decided = [np.asarray(v, dtype=bool).reshape(-1).copy() for v in voiced]
    level = [np.asarray(v, dtype=np.float64).reshape(-1) for v in levels]
    for i, (v, lv) in enumerate(zip(decided, level, strict=True)):
        if len(v) > len(lv):
            raise ValidationError("levels", f"channel {i} has {len(lv)} levels for {len(v)} "
                                            "frames")
    original = [v.copy() for v in decided]
    own = [np.zeros(len(v), dtype=bool) for v in decided]  # frames its voice was found in
    found: dict[tuple[int, int], Coupling] = {}
    for i in range(len(decided)):
        for j in range(i + 1, len(decided)):
            pair = coupling(level[i], level[j], original[i], original[j], rule)
            found[(i, j)] = pair
            if not pair.found:
                continue
            n = min(len(original[i]), len(original[j]))
            shared = original[i][:n] & original[j][:n]
            d = level[i][:n] - level[j][:n]
            if pair.a_into_b is not None:  # i's voice in j: drop j's frame
                bleed = shared & (d >= pair.a_into_b - rule.half_width_db)
                decided[j][:n] &= ~bleed
                own[i][:n] |= bleed
            if pair.b_into_a is not None:
                bleed = shared & (d <= pair.b_into_a + rule.half_width_db)
                decided[i][:n] &= ~bleed
                own[j][:n] |= bleed
    if rule.run_share is not None:
        decided = [_whole_runs(*channel, rule.run_share)
                   for channel in zip(original, decided, own, strict=True)]
    return decided, found


def _whole_runs(before: BoolArray, after: BoolArray, own: BoolArray, share: float
                ) -> BoolArray:
    """Drop the rest of each run of speech frames (as the VAD called it) whose frames were
    mostly dropped as bleed, but for the frames where this channel's own voice was found
    bleeding into another: the VAD holds speech a little past a voice, and the other
    microphone's reverberant tail outlasts the voice in its own, so a bleed's last frames
    are seldom shared or at the bleed's level."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], before.astype(np.int8), [0]))))
    out = after.copy()
    for start, end in edges.reshape(-1, 2):
        dropped = int(np.sum(~after[start:end]))
        if dropped and dropped >= share * (end - start):
            out[start:end] &= own[start:end]
    return out


def _aligned(levels_a: npt.ArrayLike, levels_b: npt.ArrayLike, voiced_a: npt.ArrayLike,
             voiced_b: npt.ArrayLike) -> tuple[FloatArray, FloatArray, BoolArray, BoolArray]:
    la = np.asarray(levels_a, dtype=np.float64).reshape(-1)
    lb = np.asarray(levels_b, dtype=np.float64).reshape(-1)
    va = np.asarray(voiced_a, dtype=bool).reshape(-1)
    vb = np.asarray(voiced_b, dtype=bool).reshape(-1)
    n = min(len(la), len(lb), len(va), len(vb))
    return la[:n], lb[:n], va[:n], vb[:n]
