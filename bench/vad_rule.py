"""The silero backend's decision rule, chosen again on the enlarged tuning set (issue 17).

Since 2026-12-05 the backend fuses the model's probability with band evidence, weights and
rule chosen by bench/vad_fuse.py; this script covers the model alone (``bands=False``), which
is what "the default" means below.

models/vad_silero.py turns the Silero model's speech probabilities into frames with a
hysteresis (speech from ``threshold``, until under ``release``) over each frame's window and
the ``lookahead`` windows after it. This script scores every rule of a grid the way
bench/vad.py scores detectors (frame F1 after METRICS.md §2, 20 ms frames) on the **tuning**
data only:

- the telephone sample (tests/data/real/pyannote_sample.*), clean and with white, pink and
  babble noise at 20 / 10 / 5 dB, four noise samples each: 40 conditions;
- the ten AMI meeting excerpts of tests/data/real/ami (one channel for the room), the same
  noises with two samples, each condition pooled over the ten: 20 conditions.

A rule's margin in a condition is its F1 minus the best of silero-vad and webrtcvad (modes
0-3) there (issue 17's target is a margin of at least 0 everywhere). Rules are ranked by
their worst margin over the 60 conditions, then by the mean. The best is then scored
**once** on the validation recordings (AMI development and test excerpts; the Montreal Forced
Aligner and CMU ARCTIC recordings), next to the default.

``--webrtc`` adds two families that use webrtcvad as a second detector (not adopted:
docs/vad.md): ``or`` (the default, or webrtcvad mode ``m`` where the
probability is at least ``low``) and ``soft`` (the default's hysteresis on the probability
plus ``w`` where webrtcvad mode ``m`` says speech).

``--gain`` adds rules that raise the input in front of the model while the background is
steady (the model hears quiet speech better when it is louder, but takes louder babble for
speech too; docs/vad.md): ``gain G dB, steady S dB`` multiplies a 32 ms window by ``G`` dB when
the quietest 256 ms block of the last 3 s has its 90th-percentile window energy within ``S``
dB of its median, and ``gain G dB, noise known`` applies ``G`` everywhere but in the babble
conditions: an oracle no detector can run, printed to show what a perfect steady-noise gate
would be worth. Not adopted (docs/vad.md).

``--hangover`` adds every hysteresis rule with a hangover: a unit held ``H`` ms (40-300)
after its release, the classic way to keep a unit through the pauses inside a turn (AMI's
turns hold some). Not adopted: none ranks above the default (docs/vad.md).

Usage: ``.venv/bin/python bench/vad_rule.py [--webrtc] [--gain] [--hangover]`` (about two
minutes on one core, four with ``--gain``, four with ``--hangover``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from bench import vad as bench_vad  # noqa: E402
from bench.vad_fusion import (  # noqa: E402
    FRAME,
    MODEL,
    ORDER,
    RIVALS,
    Clip,
    Flags,
    after_s2,
    f1,
    hysteresis,
    make_clip,
    probabilities,
)
from models.vad_silero import LOOKAHEAD, RELEASE, THRESHOLD, WINDOW, load_model  # noqa: E402

Rule = Callable[[Clip], Flags]
TELEPHONE_SEEDS = (0, 10, 20, 30)
AMI_SEEDS = (0, 10)


def frame_probability(clip: Clip, lookahead: int) -> np.ndarray:
    """Per frame, the highest probability of its window and the ``lookahead`` after it."""
    windows = clip.window_p
    frames = max(len(windows) - lookahead, 0) * WINDOW // FRAME
    at = ((np.arange(frames) + 1) * FRAME - 1) // WINDOW
    return np.max([windows[at + k] for k in range(lookahead + 1)], axis=0)


def held(flags: Flags, frames: int) -> Flags:
    """``flags`` with each unit held ``frames`` more frames after its end (causal)."""
    out = flags.copy()
    last = -frames - 1
    for i, speech in enumerate(flags):
        if speech:
            last = i
        elif i - last <= frames:
            out[i] = True
    return out


def hysteresis_rule(on: float, off: float, lookahead: int, hangover: int = 0) -> Rule:
    return lambda clip: held(hysteresis(frame_probability(clip, lookahead), on, off), hangover)


def webrtc(clip: Clip, mode: int) -> Flags:
    flags = clip.rivals[f"webrtcvad-{mode}"][: len(clip.frame_p)]
    return np.concatenate((flags, np.zeros(len(clip.frame_p) - len(flags), dtype=bool)))


def default(clip: Clip) -> Flags:
    return hysteresis(clip.frame_p, THRESHOLD, RELEASE)


def steady_gain(audio: np.ndarray, gain_db: float, spread_db: float,
                history_s: float = 3.0) -> np.ndarray:
    """``audio`` raised by ``gain_db`` in each 512-sample window decided (from blocks already
    complete) to lie in a steady background; clipped to full scale."""
    count = len(audio) // WINDOW
    energy = (audio[:count * WINDOW].astype(np.float64).reshape(count, WINDOW) ** 2).mean(1)
    energy += 1e-12
    sub = 8  # windows per 256 ms block
    medians = [float(np.median(energy[j * sub:(j + 1) * sub])) for j in range(count // sub)]
    spreads = [10 * np.log10(np.percentile(energy[j * sub:(j + 1) * sub], 90) / medians[j])
               for j in range(count // sub)]
    span = int(history_s * 1000 / 256)
    gain = np.ones(len(audio))
    for i in range(count):
        done = i // sub
        if done:
            first = max(0, done - span)
            quietest = first + int(np.argmin(medians[first:done]))
            if spreads[quietest] < spread_db:
                gain[i * WINDOW:(i + 1) * WINDOW] = 10 ** (gain_db / 20)
    return np.clip(audio * gain, -1, 1).astype(np.float32)


def gain_rule(gain_db: float, spread_db: float | None) -> Rule:
    """The default's hysteresis on the model's probabilities of the raised audio
    (``spread_db`` None: raised outside the babble conditions, the oracle)."""
    def rule(clip: Clip) -> Flags:
        if spread_db is None:
            audio = clip.audio if clip.condition.startswith("babble") else np.clip(
                clip.audio * 10 ** (gain_db / 20), -1, 1).astype(np.float32)
        else:
            audio = steady_gain(clip.audio, gain_db, spread_db)
        return hysteresis(probabilities(audio)[1], THRESHOLD, RELEASE)
    return rule


def grid(with_webrtc: bool, with_gain: bool = False,
         with_hangover: bool = False) -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    hangovers = (0, 2, 4, 6, 8, 10, 15) if with_hangover else (0,)
    for lookahead in (1, 2, 3):
        for on in (0.4, 0.45, 0.5, 0.55, 0.6):
            for off in (0.2, 0.25, 0.3, 0.35):
                for hold in hangovers:
                    if off < on:
                        name = f"hysteresis {on:g}/{off:g} lookahead {lookahead}"
                        name += f" hangover {hold * 20} ms" if hold else ""
                        rules[name] = hysteresis_rule(on, off, lookahead, hold)
    if with_webrtc:
        for mode in range(4):
            for low in (0.05, 0.1, 0.2, 0.3, 0.4):
                rules[f"or webrtcvad-{mode} p>={low:g}"] = (
                    lambda c, m=mode, q=low: default(c) | (webrtc(c, m) & (c.frame_p >= q)))
            for w in (0.05, 0.1, 0.2, 0.3):
                rules[f"soft webrtcvad-{mode} w={w:g}"] = (
                    lambda c, m=mode, x=w: hysteresis(c.frame_p + x * webrtc(c, m),
                                                      THRESHOLD, RELEASE))
    if with_gain:
        for gain_db in (6, 12):
            rules[f"gain {gain_db} dB, noise known"] = gain_rule(gain_db, None)
            for spread_db in (1.5, 2.5, 4.0):
                rules[f"gain {gain_db} dB, steady {spread_db:g} dB"] = \
                    gain_rule(gain_db, spread_db)
    return rules


def margins(clips: list[Clip], rule: Rule,
            key: Callable[[Clip], object]) -> dict[object, tuple[float, float]]:
    """Per group of ``key``: (the rule's F1, the best rival's), frames pooled."""
    ours: dict[object, list[tuple[Flags, Flags]]] = {}
    theirs: dict[object, dict[str, list[tuple[Flags, Flags]]]] = {}
    for clip in clips:
        group = key(clip)
        ours.setdefault(group, []).append(after_s2(clip, rule(clip)))
        row = theirs.setdefault(group, {k: [] for k in RIVALS})
        for k in RIVALS:
            row[k].append(after_s2(clip, clip.rivals[k]))
    return {g: (f1(ours[g]), max(f1(v) for v in theirs[g].values())) for g in ours}


def tuning_key(clip: Clip) -> object:
    source = "telephone" if clip.name == "pyannote_sample" else "ami"
    return source, clip.seed, clip.condition


def clips_of(found: dict[str, bench_vad.Detector],
             recordings: list[tuple[real_speech.Recording, int]]) -> list[Clip]:
    return [make_clip(found, r.name, r.use, seed, condition, audio, r.labels)
            for r, seed in recordings
            for condition, audio in real_speech.noisy(r, seed).items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webrtc", action="store_true",
                        help="also the families with webrtcvad as a second detector")
    parser.add_argument("--gain", action="store_true",
                        help="also a gain in front of the model while the background is steady")
    parser.add_argument("--hangover", action="store_true",
                        help="also every hysteresis rule with a hangover of 40-300 ms")
    args = parser.parse_args()
    MODEL.append(load_model())
    found, missing = bench_vad.detectors()
    if not all(k in found for k in RIVALS):
        sys.exit(f"needs silero-vad and webrtcvad: {missing}")
    tuning = clips_of(found, [(r, s) for r in real_speech.committed() for s in TELEPHONE_SEEDS]
                      + [(r, s) for r in real_speech.ami("tuning") for s in AMI_SEEDS])
    print(f"# Tuning: {len({c.name for c in tuning})} recordings, "
          f"{len({tuning_key(c) for c in tuning})} conditions (margin = F1 after §2 minus the "
          f"best of {', '.join(RIVALS)})")
    ranked = []
    for name, rule in grid(args.webrtc, args.gain, args.hangover).items():
        scored = margins(tuning, rule, tuning_key)
        gaps = [ours - best for ours, best in scored.values()]
        ranked.append((min(gaps), float(np.mean(gaps)), sum(g < 0 for g in gaps), name, rule))
    ranked.sort(key=lambda row: (-row[0], -row[1]))
    current = f"hysteresis {THRESHOLD:g}/{RELEASE:g} lookahead {LOOKAHEAD}"
    for place, (worst, mean, under, name, _) in enumerate(ranked, 1):
        if place <= 12 or name == current or name.startswith("gain"):
            mark = "  <- the default" if name == current else ""
            print(f"{place:>3}. {name:<50} worst {worst:+.4f}  mean {mean:+.4f}  "
                  f"under in {under}{mark}")
    chosen = next(row for row in ranked if "noise known" not in row[3])  # buildable rules
    print(f"\nchosen: {chosen[3]}")

    validation = clips_of(found, [(r, 0) for r in real_speech.ami("validation")]
                          + [(r, 0) for r in real_speech.validation()])
    print("\n# Validation, scored once: chosen / default / best rival (F1 after §2)")
    for label, subset in (("AMI development + test", [c for c in validation
                                                       if c.name.startswith("ami_")]),
                          ("MFA + CMU ARCTIC", [c for c in validation
                                                if not c.name.startswith("ami_")])):
        picked = margins(subset, chosen[4], lambda c: c.condition)
        base = margins(subset, default, lambda c: c.condition)
        print(f"{label}:")
        for condition in ORDER:
            (ours, best), (theirs, _) = picked[condition], base[condition]
            print(f"  {condition:<9} {ours:.3f} / {theirs:.3f} / {best:.3f}")


if __name__ == "__main__":
    main()
