"""The clips a head's fit reads (issue 17; bench/vad_narrowband_head.py fits the narrowband
head with them, bench/vad_wideband_head.py the 16 kHz head): each real recording in each
condition as a path of the silero backend hears it (:class:`HeadPath`), run as the backend
runs it, with per window what the decision rules and the fit read (:class:`Clip`), and the
F1 and talk time of the backend's frames on them after METRICS.md §2. bench/vad_long_clips.py
makes such clips of long streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import real_speech
from bench.vad import after_section2, scores
from bench.vad_narrowband import decided, model_inputs, to_narrowband, upsampled
from models.vad_bands import BANDS_HZ, evidence_of
from models.vad_decision import Branch
from models.vad_head import STATE_CAP
from models.vad_silero import (
    DEFAULT_BRANCHES,
    NARROWBAND_BRANCHES,
    WINDOW,
    SileroModel,
)

Matrix = npt.NDArray[np.float64]
NARROW_BANDS = len(BANDS_HZ) - 1  # the 4-8 kHz band is empty at 8 kHz


@dataclass(frozen=True)
class HeadPath:
    """Which head is fitted: the narrowband head (the 8 kHz network's state, six bands, audio
    through 8 kHz) or, for bench/vad_wideband_head.py, the 16 kHz head (that network's state,
    seven bands, audio as it is)."""

    name: str
    key: str  # the branch whose value the fitted head replaces
    bands: int  # band evidence columns the head reads
    current: tuple[Branch, ...]  # the default's branches on this path

    @property
    def narrow(self) -> bool:
        return self.key == "narrowband_head"

    def branches(self, rule: tuple[float, float, int, int, int]) -> tuple[Branch, ...]:
        """The default's branches with the fitted head's branch deciding by ``rule``."""
        return tuple(Branch(self.key, *rule) if b.source == self.key else b
                     for b in self.current)

    def heard(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """16 kHz ``audio`` as this path's backend reads it."""
        return np.concatenate(upsampled(to_narrowband(audio))) if self.narrow else audio

    def for_rivals(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """What the rivals read: the 8 kHz audio itself on the narrowband path."""
        return to_narrowband(audio) if self.narrow else audio


NARROWBAND_PATH = HeadPath("narrowband", "narrowband_head", NARROW_BANDS, NARROWBAND_BRANCHES)
WIDEBAND_PATH = HeadPath("wideband (16 kHz)", "head", len(BANDS_HZ), DEFAULT_BRANCHES)
# Before a fit, the narrowband path's default ran the 16 kHz head's branch in the narrowband


@dataclass
class Clip:
    """One recording in one condition as a path hears it: what the rules read per window."""

    name: str
    condition: str
    seed: int
    labels: npt.NDArray[np.bool_]  # per 20 ms frame
    model: npt.NDArray[np.float32]  # the 16 kHz network's probability
    head: npt.NDArray[np.float32]  # the default's head (models/vad_head.py)
    narrowband: npt.NDArray[np.float32]  # the 8 kHz network's probability (narrowband path)
    features: Matrix  # logit p, the path's bands' evidence / 10, the network's 128 state values
    scored: npt.NDArray[np.bool_] | None = None  # frames scored (a long stream's tail), or all


def window_labels(labels: npt.NDArray[np.bool_], count: int) -> npt.NDArray[np.bool_]:
    middle = (np.arange(count) * WINDOW + WINDOW // 2) // (real_speech.SR // 50)
    return labels[np.minimum(middle, len(labels) - 1)]


def clip_of(name: str, condition: str, seed: int, labels: npt.NDArray[np.bool_],
            audio: npt.NDArray[np.float32], model: SileroModel, hidden: Any,
            path: HeadPath = NARROWBAND_PATH) -> Clip:
    """``audio`` (16 kHz) as ``rapport vad`` reads it on ``path`` (at 8 kHz: through 8 kHz),
    run as the backend runs it (models/vad_silero.py ``SileroBatchVad``, its public parts at
    once); ``hidden`` is :func:`bench.vad_head.state_session` of the path's network."""
    from models.vad_head import head_value

    up = path.heard(audio)
    inputs = model_inputs(up)
    count = inputs.shape[1]
    state = np.zeros((2, 1, 128), dtype=np.float32)
    lengths = np.array([count], dtype=np.int32)
    probability, term, _ = model.run_head(inputs, state, lengths)
    evidence = evidence_of(up)[:count]
    if path.narrow:
        own, _, h = hidden.run(None, {"windows": np.ascontiguousarray(inputs[..., ::2]),
                                      "state": state, "lengths": lengths})
        narrow = own[0]
    else:  # the 16 kHz network's probability and state, as the backend read them
        own, _, h = hidden.run(None, {"windows": inputs, "state": state, "lengths": lengths})
        narrow = np.zeros(0, dtype=np.float32)
    p = np.clip(own[0].astype(np.float64), 1e-4, 1 - 1e-4)
    features = np.column_stack((np.log(p / (1 - p)), evidence[:, :path.bands] / 10,
                                np.asarray(h, dtype=np.float64).reshape(count, 128)))
    return Clip(name, condition, seed, labels, probability[0],
                head_value(probability, evidence[None], term)[0], narrow, features)




def head_values(clip: Clip, beta: Matrix) -> npt.NDArray[np.float32]:
    x = clip.features
    free = x.shape[1] - 128  # the logit and the bands; the state values after them
    state = np.minimum(x[:, free:] @ beta[free:-1], STATE_CAP)
    score = x[:, :free] @ beta[:free] + state + beta[-1]
    return (1 / (1 + np.exp(-score))).astype(np.float32)


def frames(clip: Clip, branches: tuple[Branch, ...],
           value: npt.NDArray[np.float32] | None) -> npt.NDArray[np.bool_]:
    """The frames the backend decides on ``clip`` with ``branches`` after METRICS.md §2, the
    fitted head's ``value`` (if any) as the narrowband head's or, without that branch, as the
    16 kHz head's."""
    values = {"model": clip.model, "head": clip.head}
    if len(clip.narrowband):
        values["narrowband"] = clip.narrowband
    if value is not None:
        narrow = any(b.source == "narrowband_head" for b in branches)
        values["narrowband_head" if narrow else "head"] = value
    return after_section2(decided(values, branches))


def pooled_f1(clips: list[Clip], branches: tuple[Branch, ...],
              values: dict[int, npt.NDArray[np.float32]] | None) -> dict[str, float]:
    predicted: dict[str, list[npt.NDArray[np.bool_]]] = {}
    truth: dict[str, list[npt.NDArray[np.bool_]]] = {}
    for clip in clips:
        got, labels = scored_frames(clip, branches, values)
        predicted.setdefault(clip.condition, []).append(got)
        truth.setdefault(clip.condition, []).append(labels)
    return {c: scores(np.concatenate(p), np.concatenate(truth[c]))["f1"]
            for c, p in predicted.items()}


def talk_ratio(clips: list[Clip], branches: tuple[Branch, ...],
               values: dict[int, npt.NDArray[np.float32]] | None) -> float:
    """Talk time found after §2 over the labels' (1: exact)."""
    found = labelled = 0
    for clip in clips:
        got, labels = scored_frames(clip, branches, values)
        found += int(got.sum())
        labelled += int(labels.sum())
    return found / labelled


def scored_frames(clip: Clip, branches: tuple[Branch, ...],
                  values: dict[int, npt.NDArray[np.float32]] | None
                  ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """:func:`frames` of ``clip`` and its labels, both where scored."""
    got = frames(clip, branches, None if values is None else values[id(clip)])
    n = min(len(got), len(clip.labels))
    if clip.scored is None:
        return got[:n], clip.labels[:n]
    keep = clip.scored[:n]
    return got[:n][keep], clip.labels[:n][keep]

