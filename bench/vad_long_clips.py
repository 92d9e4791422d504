"""Long streams for the heads' fit (issue 17; docs/vad.md, "Long streams").

bench/vad_long.py measures what every detector scores on a real recording when it has been
running for minutes before it. This module gives bench/vad_narrowband_head.py (and so
bench/vad_wideband_head.py) the same streams as clips (bench/vad_head_clips.py) that its fit
and ranking read: per window, the 16 kHz network's probability and state and the band evidence
as the backend computes them in such a stream, its states restarting by
models/vad_restart.py's rule, and which frames are scored.

A long stream of a set is made as bench/vad_long.py makes it (its :func:`~bench.vad_long.
long_frames`): ``concat``, the set's recordings back to back, repeated to at least ``seconds``
(180 s), each recording scored in the last repetition; ``loop``, each recording repeated to at
least ``seconds`` (90 s), scored in its last repetition. Only the tail of each stream is kept
(from :data:`MARGIN` windows before the first scored frame): the states there are those of the
whole stream, and the decision rule forgets anything older than a second.

Nothing here fits or ranks: the caller says what is fitted on (the tuning sets) and what is
ranked on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import real_speech
from bench import vad as bench_vad
from bench.vad import scores
from bench.vad_head_clips import Clip
from bench.vad_long import FRAME, long_frames, whole_frames
from bench.vad_narrowband import model_inputs
from models.vad_bands import evidence_of
from models.vad_head import head_value
from models.vad_restart import Restarts, heard
from models.vad_silero import CONTEXT, WINDOW, SileroModel

Floats = npt.NDArray[np.float32]
Bools = npt.NDArray[np.bool_]
MODES = {"concat": 180.0, "loop": 90.0}  # how a long stream is made, and its least length
BATCH = 31  # windows per call, about the ingest's 1 s batches (restarts do not depend on it)
# Windows kept before a tail's first scored frame (2.4 s, a multiple of 5 windows so that the
# tail starts on a frame boundary: 5 windows of 512 samples are 8 frames of 320).
MARGIN = 75


def with_restarts(model: SileroModel, hidden: Any, inputs: Floats
                  ) -> tuple[Floats, Floats, npt.NDArray[np.float32]]:
    """One stream's cleaned ``inputs`` ``(1, windows, CONTEXT + WINDOW)`` run as the backend
    runs them (models/vad_silero.py ``SileroBatchVad._run_all``), restarts included: per window
    the probability and the head's state term (``model``, loaded with its head), and the 128
    state values the model's last layer reads (``hidden``: :func:`bench.vad_head.
    state_session`, fed the same inputs and states)."""
    count = inputs.shape[1]
    restarts = Restarts(1, CONTEXT + WINDOW)
    probability = np.empty(count, dtype=np.float32)
    term = np.empty(count, dtype=np.float32)
    states = np.empty((count, 128), dtype=np.float32)
    state = np.zeros((2, 1, 128), dtype=np.float32)

    def run(batch: Floats, given: Floats, at: int) -> Floats:
        lengths = np.array([batch.shape[1]], dtype=np.int32)
        p, t, after = model.run_head(batch, given, lengths)
        h = hidden.run(None, {"windows": batch, "state": given, "lengths": lengths})[-1]
        n = batch.shape[1]
        probability[at:at + n], term[at:at + n] = p[0], t[0]
        states[at:at + n] = np.asarray(h, dtype=np.float32).reshape(n, 128)
        return np.asarray(after, dtype=np.float32)

    for done in range(0, count, BATCH):
        batch = np.ascontiguousarray(inputs[:, done:done + BATCH])
        n = batch.shape[1]
        state = run(batch, state, done)
        due = restarts.due(0, done, probability[done:done + n], 0)
        while due is not None:
            at = due.window
            recent = restarts.recent(0, batch[0], at)
            fresh = np.zeros((2, 1, 128), dtype=np.float32)
            warm = np.empty(0, dtype=np.float32)
            if len(recent):
                warm, fresh = model.run(np.ascontiguousarray(recent[None]), fresh,
                                        np.array([len(recent)], dtype=np.int32))
            if not due.probe or heard(warm.reshape(-1)):  # a probe hearing nothing: no change
                state = run(np.ascontiguousarray(batch[:, at:]), fresh, done + at)
                restarts.restarted(0, done + at)
            due = restarts.due(0, done, probability[done:done + n], at + 1)
        restarts.ran(0, batch[0], probability[done:done + n])
    return probability, term, states


def streams(clips: list[Floats], labels: list[Bools], mode: str
            ) -> list[tuple[Floats, Bools, Bools]]:
    """The long streams of ``clips`` (each cut to whole frames) by ``mode``: per stream its
    audio, its labels per frame and the frames scored (each recording's last repetition, where
    its labels reach)."""
    seconds = MODES[mode]
    groups = [[k] for k in range(len(clips))] if mode == "loop" else [list(range(len(clips)))]
    out = []
    for group in groups:
        once = np.concatenate([clips[k] for k in group])
        times = max(2, math.ceil(seconds * real_speech.SR / len(once)))
        frame_labels, frame_valid = [], []
        for k in group:
            n = len(clips[k]) // FRAME
            got = labels[k][:n]
            frame_labels.append(np.pad(got, (0, n - len(got))))
            frame_valid.append(np.arange(n) < len(got))
        per = np.concatenate(frame_labels)
        valid = np.concatenate(frame_valid)
        scored = np.concatenate((np.zeros((times - 1) * len(per), dtype=bool), valid))
        out.append((np.tile(once, times), np.tile(per, times), scored))
    return out


def tail_of(name: str, condition: str, audio: Floats, labels: Bools, scored: Bools,
            model: SileroModel, hidden: Any) -> Clip:
    """The tail of one long stream (16 kHz ``audio``) as the 16 kHz path hears it: per window
    from the tail's start the network's probability, the shipped head's value and the fit's
    features (logit p, the seven bands' evidence / 10, the 128 state values); per 20 ms frame
    from the same start the labels and which frames are scored."""
    inputs = model_inputs(audio)
    count = inputs.shape[1]
    probability, term, states = with_restarts(model, hidden, inputs)
    evidence = evidence_of(audio)[:count]
    value = head_value(probability[None], evidence[None], term[None])[0]
    first = int(np.argmax(scored))
    start = max(0, (first * FRAME // WINDOW - MARGIN) // 5 * 5)  # window; 5 windows = 8 frames
    frame0 = start * WINDOW // FRAME
    p = np.clip(probability[start:].astype(np.float64), 1e-4, 1 - 1e-4)
    features = np.column_stack((np.log(p / (1 - p)), evidence[start:] / 10,
                                states[start:].astype(np.float64)))
    return Clip(name, condition, 0, labels[frame0:], probability[start:], value[start:],
                np.zeros(0, dtype=np.float32), features, scored[frame0:])


def tails(name: str, recordings: list[real_speech.Recording], mode: str,
          model: SileroModel, hidden: Any, seed: int = 0) -> list[Clip]:
    """Every condition's long streams of the set ``name`` by ``mode`` (noise sample
    ``seed``)."""
    mixes = [real_speech.noisy(r, seed) for r in recordings]
    out = []
    for condition in mixes[0]:
        clips = [whole_frames(mix[condition]) for mix in mixes]
        for audio, labels, scored in streams(clips, [r.labels for r in recordings], mode):
            out.append(tail_of(f"{name} {mode}", condition, audio, labels, scored, model,
                               hidden))
    return out


def window_mask(clip: Clip) -> Bools:
    """A long stream's tail's windows whose middle sample lies in a scored frame."""
    count = len(clip.features)
    assert clip.scored is not None
    middle = (np.arange(count) * WINDOW + WINDOW // 2) // FRAME
    return clip.scored[np.minimum(middle, len(clip.scored) - 1)]


def best_rivals(recordings: list[real_speech.Recording], mode: str,
                rivals: dict[str, bench_vad.Detector], seed: int = 0) -> dict[str, float]:
    """Per condition, the best rival's pooled F1 after §2 on ``recordings`` in long streams by
    ``mode`` (bench/vad_long.py's scoring)."""
    mixes = [real_speech.noisy(r, seed) for r in recordings]
    out: dict[str, float] = {}
    for condition in mixes[0]:
        clips = [whole_frames(mix[condition]) for mix in mixes]
        for detect in rivals.values():
            frames = long_frames(detect, clips, mode, MODES[mode])
            n = [min(len(f), len(r.labels)) for f, r in zip(frames, recordings, strict=True)]
            f1 = scores(np.concatenate([f[:k] for f, k in zip(frames, n, strict=True)]),
                        np.concatenate([r.labels[:k] for r, k in zip(recordings, n,
                                                                     strict=True)]))["f1"]
            out[condition] = max(out.get(condition, 0.0), f1)
    return out


def long_sets(names: list[str], sets: dict[str, Any], model: SileroModel, hidden: Any,
              rivals: dict[str, bench_vad.Detector]
              ) -> list[tuple[str, str, list[Clip], dict[str, float]]]:
    """Per set of ``names`` present (``sets``: name -> its recordings) and per mode of
    :data:`MODES`: the set's name, the key it is ranked under (``"NAME MODE"``), its long
    streams' tails (:func:`tail_of`) in every condition and the best rival's F1 there per
    condition."""
    out = []
    for name in names:
        recordings = sets[name]()
        if not recordings:
            continue
        for mode in MODES:
            out.append((name, f"{name} {mode}", tails(name, recordings, mode, model, hidden),
                        best_rivals(recordings, mode, rivals)))
            print(f"  {name}, long streams ({mode}): {len(out[-1][2])} streams", flush=True)
    return out
