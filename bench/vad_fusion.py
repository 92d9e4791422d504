"""Experiment (issue 17): combine the Silero model with Rapport's own VAD. Not adopted.

Written before the band evidence (bench/vad_fuse.py, adopted 2026-12-05): "the default" below
is the model alone (models/vad_silero.py ``bands=False``).

The default ``auto`` backend (models/vad_silero.py) is under issue 17's target on one
validation recording, ``mfa_cold_corpus``, at white / pink 10 and 5 dB and babble 5 dB: the
model gives its speech near-zero probability there. This script scores fusion rules of the
model's window probabilities with Rapport's own VAD (models/vad.py) or a frame-energy
feature, the way bench/vad.py scores detectors (frame F1 after METRICS.md §2, 20 ms frames):

- ``gate``: when no window has reached the default's start threshold for ``T`` frames (and
  the stream is at least ``T`` frames old), frames Rapport's VAD has called speech for at
  least ``M`` frames in a row are speech too ("the model has gone deaf, let the own VAD in");
- ``and``: a frame is speech when the default says so, or when Rapport's VAD does and the
  model's probability is at least ``low``;
- ``soft``: the default's hysteresis on the probability plus ``w`` where Rapport's VAD says
  speech;
- ``adaptive``: the default's thresholds times ``factor`` where the frame energy's spread
  over the last 5 s (95th over 10th percentile, dB) is under ``spread_db`` (loud noise);
- ``denoise``: the model run on the audio after a Wiener-style noise reduction (gain at
  least ``gain_floor``; the noise per bin the running minimum over 1.5 s of its smoothed
  power, times 1.5), applied only while the noise looks steady (the quietest 250 ms of the
  last 3 s has a broadband 90th percentile within ``spread_db`` of its median, as Rapport's
  VAD measures babble against hiss; ``inf``: always).

Rules and parameters are chosen on the **tuning** recording only (pyannote sample, four noise
samples: 40 conditions), against the default and the best of silero-vad and webrtcvad. The
best of each family that does not lose on tuning is then scored on the **validation**
recordings once (``--validate``), pooled and per recording, with a check on a minute of noise
alone (a participant listening in a noisy room). Results:
docs/vad.md, "Also tried".

Usage: ``.venv/bin/python bench/vad_fusion.py [--validate] [--speed]`` (a few minutes).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from bench import vad as bench_vad  # noqa: E402
from models.vad import StreamingVad  # noqa: E402
from models.vad_silero import (  # noqa: E402
    CONTEXT,
    LOOKAHEAD,
    RELEASE,
    THRESHOLD,
    WINDOW,
    SileroBatchVad,
    SileroModel,
    load_model,
)

SR = 16_000
FRAME = SR // 50
RIVALS = ("silero-vad", "webrtcvad-0", "webrtcvad-1", "webrtcvad-2", "webrtcvad-3")
ORDER = ["clean"] + [f"{n}{s}" for n in ("white", "pink", "babble") for s in (20, 10, 5)]
Flags = npt.NDArray[np.bool_]


@dataclass
class Clip:
    name: str
    use: str
    seed: int
    condition: str
    labels: Flags
    audio: npt.NDArray[np.float32]
    window_p: npt.NDArray[np.float32]  # per 512-sample window
    frame_p: npt.NDArray[np.float32]  # per frame, lookahead included (the default's input)
    own_p: npt.NDArray[np.float32]  # per frame, the frame's own window only
    rapport: Flags
    energy_db: npt.NDArray[np.float64]
    rivals: dict[str, Flags]


def hysteresis(p: npt.NDArray[np.float32], on: npt.ArrayLike, off: npt.ArrayLike) -> Flags:
    on_, off_ = np.broadcast_to(on, p.shape), np.broadcast_to(off, p.shape)
    out = np.zeros(len(p), dtype=bool)
    speaking = False
    for i, q in enumerate(p):
        speaking = bool(q >= (off_[i] if speaking else on_[i]))
        out[i] = speaking
    return out


def flags(voiced: str) -> Flags:
    return np.frombuffer(voiced.encode(), dtype=np.uint8) == ord("1")


def past_max(x: npt.NDArray[np.float32], width: int) -> npt.NDArray[np.float32]:
    """Max of ``x`` over the last ``width`` frames, the current one included (causal)."""
    out = np.empty_like(x)
    queue: deque[int] = deque()
    for i, value in enumerate(x):
        while queue and x[queue[-1]] <= value:
            queue.pop()
        queue.append(i)
        if queue[0] <= i - width:
            queue.popleft()
        out[i] = x[queue[0]]
    return out


MODEL: list[SileroModel] = []  # loaded once in main()


def probabilities(audio: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], ...]:
    """The model's per-window probabilities of ``audio`` (one stream), and per frame: the
    default's input (its window and LOOKAHEAD after) and its own window's."""
    count = len(audio) // WINDOW
    padded = np.concatenate((np.zeros(CONTEXT, np.float32), audio))
    windows = np.stack([padded[k * WINDOW:(k + 1) * WINDOW + CONTEXT] for k in range(count)])
    state = np.zeros((2, 1, 128), dtype=np.float32)
    window_p = MODEL[0].run(windows[None], state, np.array([count], np.int32))[0][0]
    frames = max(count - LOOKAHEAD, 0) * WINDOW // FRAME
    at = ((np.arange(frames) + 1) * FRAME - 1) // WINDOW
    frame_p = np.max([window_p[at + k] for k in range(LOOKAHEAD + 1)], axis=0)
    return window_p, frame_p, window_p[at]


def make_clip(found: dict[str, bench_vad.Detector], name: str, use: str, seed: int,
              condition: str, audio: npt.NDArray[np.float32], labels: Flags) -> Clip:
    window_p, frame_p, own_p = probabilities(audio)
    frames = len(frame_p)
    samples = audio[: frames * FRAME].reshape(frames, FRAME).astype(np.float64)
    return Clip(name, use, seed, condition, labels, audio, window_p, frame_p, own_p,
                flags(bench_vad.run_vad(audio))[:frames],
                10 * np.log10(np.mean(samples**2, axis=1) + 1e-12),
                {k: flags(found[k](audio)) for k in RIVALS})


def default(clip: Clip) -> Flags:
    return hysteresis(clip.frame_p, THRESHOLD, RELEASE)


def gate(clip: Clip, frames: int = 400, run: int = 5) -> Flags:
    deaf = past_max(clip.own_p, frames) < THRESHOLD
    deaf[:frames] = False
    runs = np.zeros(len(clip.rapport), dtype=int)
    length = 0
    for i, speech in enumerate(clip.rapport):
        length = length + 1 if speech else 0
        runs[i] = length
    return default(clip) | (deaf & (runs >= run))


def both(clip: Clip, low: float = 0.3) -> Flags:
    return default(clip) | (clip.rapport & (clip.frame_p >= low))


def soft(clip: Clip, w: float = 0.03) -> Flags:
    return hysteresis(clip.frame_p + w * clip.rapport, THRESHOLD, RELEASE)


def adaptive(clip: Clip, spread_db: float = 10.0, factor: float = 0.5) -> Flags:
    e = clip.energy_db
    spread = np.array([np.percentile(e[max(0, i - 249):i + 1], 95)
                       - np.percentile(e[max(0, i - 249):i + 1], 10) for i in range(len(e))])
    scale = np.where(spread < spread_db, factor, 1.0)
    return hysteresis(clip.frame_p, THRESHOLD * scale, RELEASE * scale)


def noise_reduced(audio: npt.NDArray[np.float32], gain_floor: float,
                  spread_db: float) -> npt.NDArray[np.float32]:
    """``audio`` after the ``denoise`` rule's noise reduction (see the module docstring)."""
    size, hop = 512, 256
    window = np.sqrt(np.hanning(size + 1)[:size])
    padded = np.concatenate((np.zeros(size), audio.astype(np.float64), np.zeros(size)))
    count = (len(padded) - size) // hop + 1
    spectrum = np.fft.rfft(padded[np.arange(size) + hop * np.arange(count)[:, None]] * window)
    power = np.abs(spectrum) ** 2
    smoothed = power.copy()
    for i in range(1, count):
        smoothed[i] = 0.7 * smoothed[i - 1] + 0.3 * power[i]
    span = int(1.5 * SR / hop)
    noise = 1.5 * np.stack([smoothed[max(0, i - span + 1):i + 1].min(axis=0)
                            for i in range(count)])
    gain = np.maximum(1 - noise / np.maximum(power, 1e-20), gain_floor)
    wide, sub = power.sum(axis=1), 16  # sub-windows of 16 hops (256 ms)
    medians = [float(np.median(wide[j * sub:(j + 1) * sub])) for j in range(count // sub)]
    spreads = [10 * np.log10(np.percentile(wide[j * sub:(j + 1) * sub], 90)
                             / max(medians[j], 1e-20)) for j in range(count // sub)]
    for i in range(count):
        done = i // sub  # sub-windows complete before hop i
        quietest = max(0, done - 12) + int(np.argmin(medians[max(0, done - 12):done])) \
            if done else -1
        if quietest < 0 or not spreads[quietest] < spread_db:
            gain[i] = 1.0
    frames = np.fft.irfft(spectrum * gain, n=size, axis=1) * window
    out = np.zeros(len(padded))
    for i in range(count):
        out[i * hop:i * hop + size] += frames[i]
    return out[size:size + len(audio)].astype(np.float32)


def denoise(clip: Clip, gain_floor: float = 0.3, spread_db: float = float("inf")) -> Flags:
    frame_p = probabilities(noise_reduced(clip.audio, gain_floor, spread_db))[1]
    return hysteresis(frame_p, THRESHOLD, RELEASE)


Rule = Callable[[Clip], Flags]


def f1(pairs: list[tuple[Flags, Flags]]) -> float:
    predicted = np.concatenate([p for p, _ in pairs])
    truth = np.concatenate([t for _, t in pairs])
    return float(2 * np.sum(predicted & truth) / (predicted.sum() + truth.sum()))


def after_s2(clip: Clip, frames: Flags) -> tuple[Flags, Flags]:
    section2 = bench_vad.after_section2("".join("1" if f else "0" for f in frames))
    n = min(len(section2), len(clip.labels))
    return section2[:n], clip.labels[:n]


def table(clips: list[Clip], rule: Rule,
          key: Callable[[Clip], object]) -> dict[object, dict[str, float]]:
    """F1 after §2 of ``rule``, the default and each rival, clips pooled by ``key``."""
    pooled: dict[object, dict[str, list[tuple[Flags, Flags]]]] = {}
    for clip in clips:
        row = pooled.setdefault(key(clip), {"rule": [], "default": [], **{k: [] for k in RIVALS}})
        row["rule"].append(after_s2(clip, rule(clip)))
        row["default"].append(after_s2(clip, default(clip)))
        for k in RIVALS:
            row[k].append(after_s2(clip, clip.rivals[k]))
    return {group: {k: f1(v) for k, v in row.items()} for group, row in pooled.items()}


def summary(scores: dict[object, dict[str, float]]) -> str:
    to_default = [s["rule"] - s["default"] for s in scores.values()]
    to_best = [s["rule"] - max(s[k] for k in RIVALS) for s in scores.values()]
    return (f"vs default: worst {min(to_default):+.4f}, mean {np.mean(to_default):+.4f}; "
            f"vs best rival: worst {min(to_best):+.4f}, mean {np.mean(to_best):+.4f}, "
            f"under in {sum(d < 0 for d in to_best)}/{len(to_best)}")


GRID: list[tuple[str, Rule, list[dict[str, float]]]] = [
    ("gate", gate, [{"frames": t, "run": m} for t in (100, 250, 300, 350, 400, 500)
                    for m in (1, 5, 10)]),
    ("and", both, [{"low": low} for low in (0.02, 0.05, 0.1, 0.2, 0.3)]),
    ("soft", soft, [{"w": w} for w in (0.03, 0.05, 0.1, 0.2, 0.3, 0.45)]),
    ("adaptive", adaptive, [{"spread_db": s, "factor": f} for s in (10, 15, 20)
                            for f in (0.1, 0.3, 0.5)]),
    ("denoise", denoise, [{"gain_floor": g, "spread_db": s} for g in (0.1, 0.3)
                          for s in (1.5, 2.5, float("inf"))]),
]
# The best of each family on tuning that loses nothing there beyond noise: scored on
# validation once each.
CHOSEN: list[tuple[str, Rule, dict[str, float]]] = [
    ("gate", gate, {"frames": 400, "run": 5}),
    ("soft", soft, {"w": 0.03}),
]


def noise_alone(rule: Rule, name: str) -> None:
    """A minute of noise alone at the tuning recording's 10 and 5 dB levels: the share of it
    called speech after §2 (a participant who listens in a noisy room)."""
    recording = real_speech.committed()[0]
    speech = recording.audio[real_speech.speech_mask(recording)[: len(recording.audio)]]
    power = float(np.mean(speech.astype(np.float64) ** 2))
    n = SR * 60
    for kind, noise in (("white", real_speech.white(n, 5)), ("pink", real_speech.pink(n, 6)),
                        ("babble", real_speech.babble(recording, n, 7))):
        for snr in (10, 5):
            gain = np.sqrt(power / np.mean(noise**2) / 10 ** (snr / 10))
            audio = (gain * noise).astype(np.float32)
            clip = make_clip(FOUND, "noise", "noise", 0, kind, audio,
                             np.zeros(n // FRAME, dtype=bool))
            share = {label: after_s2(clip, frames)[0].mean() for label, frames in
                     (("default", default(clip)), (name, rule(clip)),
                      ("rapport", clip.rapport))}
            print(f"  {kind}{snr}: " + ", ".join(f"{k} {v:.1%}" for k, v in share.items()))


def auc(score: npt.NDArray[np.float64], truth: Flags) -> float:
    """How often a speech frame scores above a non-speech frame (ties count half)."""
    ranks = np.empty(len(score))
    order = np.argsort(score, kind="stable")
    ranks[order] = np.arange(1, len(score) + 1)
    for value in np.unique(score):  # average ranks over ties
        tied = score == value
        ranks[tied] = ranks[tied].mean()
    positives, negatives = int(truth.sum()), int((~truth).sum())
    return float((ranks[truth].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def separability(clips: list[Clip]) -> None:
    """AUC of the model's probability (the frame's own window) and of frame energy against
    the labels, per condition: whether either carries the speech at all."""
    for clip in clips:
        n = min(len(clip.own_p), len(clip.labels))
        model = auc(clip.own_p[:n].astype(np.float64), clip.labels[:n])
        energy = auc(clip.energy_db[:n], clip.labels[:n])
        print(f"  {clip.condition:<9} model {model:.3f}  energy {energy:.3f}")


def speed(seconds: int = 120, streams: int = 8) -> None:
    """CPU time per audio time of the silero backend and of Rapport's VAD, both fed 1 s
    chunks of ``streams`` streams (what running both as one detector would cost)."""
    recording = real_speech.committed()[0]
    audio = np.concatenate(list(real_speech.noisy(recording, 0).values()))[: SR * seconds]
    offsets = [k * len(audio) // streams for k in range(streams)]
    looped = np.concatenate((audio, audio))
    batch = SileroBatchVad(streams, model=MODEL[0])
    StreamingVad().push(audio[:SR])  # warm librosa
    own = [StreamingVad() for _ in range(streams)]
    silero = rapport = 0.0
    for i in range(0, len(audio), SR):
        started = time.process_time()
        batch.push([looped[o + i:o + i + SR] for o in offsets])
        middle = time.process_time()
        for vad, o in zip(own, offsets, strict=True):
            vad.push(looped[o + i:o + i + SR])
        silero += middle - started
        rapport += time.process_time() - middle
    total = streams * len(audio) / SR
    print(f"{streams} streams, 1 s chunks: silero backend {total / silero:,.0f}x real time, "
          f"Rapport's VAD {total / rapport:,.0f}x, both {total / (silero + rapport):,.0f}x")


FOUND: dict[str, bench_vad.Detector] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validate", action="store_true",
                        help="also score the chosen rules on the validation recordings")
    parser.add_argument("--speed", action="store_true",
                        help="also time both VADs together on 8 streams")
    args = parser.parse_args()
    MODEL.append(load_model())
    if args.speed:
        speed()
    found, missing = bench_vad.detectors()
    if missing or not all(k in found for k in RIVALS):
        sys.exit(f"needs silero and webrtcvad: {missing}")
    FOUND.update(found)
    recordings = [(r, s) for r in real_speech.committed() for s in (0, 10, 20, 30)]
    if args.validate:
        recordings += [(r, 0) for r in real_speech.validation()]
    clips = [make_clip(found, r.name, r.use, seed, condition, audio, r.labels)
             for r, seed in recordings
             for condition, audio in real_speech.noisy(r, seed).items()]
    tuning = [c for c in clips if c.use == "tuning"]
    print("# Tuning recording, 4 noise samples x 10 conditions (F1 after §2)")
    print(f"default        {summary(table(tuning, default, lambda c: (c.seed, c.condition)))}")
    for family, rule, grid in GRID:
        for params in grid:
            label = f"{family} " + " ".join(f"{k}={v:g}" for k, v in params.items())
            scores = table(tuning, lambda c, r=rule, p=params: r(c, **p),
                           lambda c: (c.seed, c.condition))
            print(f"{label:<22} {summary(scores)}")
    if not args.validate:
        return
    validation = [c for c in clips if c.use == "validation"]
    for family, rule, params in CHOSEN:
        def chosen(c: Clip, r: Rule = rule, p: dict[str, float] = params) -> Flags:
            return r(c, **p)

        print(f"\n# Validation, {family} {params}: rule / default / best rival (F1 after §2)")
        pooled = table(validation, chosen, lambda c: c.condition)
        cold = table([c for c in validation if c.name == "mfa_cold_corpus"], chosen,
                     lambda c: c.condition)
        rest = table([c for c in validation if c.name != "mfa_cold_corpus"], chosen,
                     lambda c: c.condition)
        for condition in ORDER:
            cells = []
            for label, scores in (("pooled", pooled), ("mfa_cold_corpus", cold),
                                  ("the other three", rest)):
                s = scores[condition]
                cells.append(f"{label} {s['rule']:.3f} / {s['default']:.3f} / "
                             f"{max(s[k] for k in RIVALS):.3f}")
            print(f"  {condition:<9} " + "; ".join(cells))
        print("Noise alone, share of a minute called speech after §2:")
        noise_alone(chosen, family)
    print("\n# mfa_cold_corpus: AUC of the model's probability and of frame energy")
    separability([c for c in validation if c.name == "mfa_cold_corpus"])


if __name__ == "__main__":
    main()
