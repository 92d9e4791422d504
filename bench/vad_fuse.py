"""The silero backend's band evidence weights, fitted again (issue 17; models/vad_bands.py).

Superseded the same day (2026-12-05) by bench/vad_head.py, whose head (models/vad_head.py)
adds the model's recurrent state; this script keeps the band fusion it chose (the constants
below) as the head's point of comparison.

The default backend combines the Silero model's speech probability ``p`` of each 512-sample
window with how far each band of :data:`models.vad_bands.BANDS_HZ` stands above its own noise
floor (``e``, dB, 0..30) in that window:

    fused = sigmoid(a * logit(p) + sum_b w_b * e_b / 10 + c)

then decides 20 ms frames with the highest fused value of the frame's window and the
``lookahead`` windows after it, and a hysteresis (speech from ``threshold``, until under
``release``). This script fits ``a``, ``w``, ``c`` by logistic regression of the windows'
reference labels on the **tuning** data only, the data bench/vad_rule.py uses:

- the telephone sample (tests/data/real/pyannote_sample.*), clean and with white, pink and
  babble noise at 20 / 10 / 5 dB, four noise samples each;
- the ten AMI train excerpts (tests/data/real/ami), the same noises with two samples.

The telephone sample's windows weigh ``--weights`` times each AMI window (5: the two sources
count alike). For each fit, every rule of a grid (threshold 0.5-0.9, release 0.3-0.8 under it,
lookahead 1-3) is scored the way bench/vad.py scores detectors (frame F1 after METRICS.md §2)
per recording and condition, noise samples pooled: 11 recordings x 10 conditions. A rule's
shortfall in a condition is how far its F1 is under the best of silero-vad and webrtcvad
(modes 0-3) there (issue 17's target: no shortfall anywhere). Rules are ranked by their total
shortfall over the 110 conditions, each telephone condition weighing ten (the two sources count
alike, as in the fit: the telephone is what a participant's own microphone sounds like, the
AMI room channel what a meeting room's does), then by the worst margin, after refusing every
rule that calls more than 5 % of a minute of babble alone (10 dB) speech (a participant who
listens in a room where others talk must not be credited with talk time) or whose talk time
on the clean telephone sample is more than 3 % off (Rapport's metrics are built on talk time
and speech boundaries: a rule that wins F1 on loosely labelled meeting turns by widening every
unit would shift them all); the model alone with every
hysteresis rule of bench/vad_rule.py is ranked the same way beside them. The first is printed
with its weights, ready for models/vad_silero.py, then scored **once** on the validation
recordings (AMI development and test; MFA and CMU ARCTIC) next to the model alone.

Usage: ``.venv/bin/python bench/vad_fuse.py [--weights 5 10 20]`` (about five minutes on one
core).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

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
)
from bench.vad_rule import (  # noqa: E402
    AMI_SEEDS,
    TELEPHONE_SEEDS,
    clips_of,
    frame_probability,
    hysteresis_rule,
)
from models.vad_bands import evidence_of, fuse  # noqa: E402
from models.vad_silero import (  # noqa: E402
    LOOKAHEAD,
    RELEASE,
    THRESHOLD,
    WINDOW,
    load_model,
)

# What this script chose and the default shipped on 2026-12-05 until models/vad_head.py's
# head replaced it the same day (bench/vad_head.py): the fit with the telephone weight 20,
# then the rule.
PROBABILITY_WEIGHT = 0.740
BAND_WEIGHTS = (0.497, 0.730, -0.321, -0.266, -0.079, 0.137, -0.095)
FUSION_BIAS = 0.662
FUSED_THRESHOLD, FUSED_RELEASE, FUSED_LOOKAHEAD = 0.8, 0.5, 1

Rule = Callable[[Clip], Flags]
# The most of a minute of babble alone (10 dB) a rule may call speech: 3 s of talk credited
# to a participant who listens in a room where others talk (the model alone: 1.8 %).
MAX_BABBLE_ALONE = 0.05
# The most talk time may be off on the clean telephone sample: Rapport's metrics are built on
# talk time, and 3 % is what issue 18 asks of a whole session's talk time per role.
MAX_TALK_ERROR = 0.03
Features = npt.NDArray[np.float64]


def features(clip: Clip) -> Features:
    """Per window: logit of the model's probability, then each band's evidence / 10."""
    evidence = evidence_of(clip.audio) / 10
    p = np.clip(clip.window_p[: len(evidence)].astype(np.float64), 1e-4, 1 - 1e-4)
    return np.column_stack((np.log(p / (1 - p)), evidence))


def window_labels(clip: Clip, count: int) -> Flags:
    """The reference label of the frame holding each window's middle sample."""
    middle = (np.arange(count) * WINDOW + WINDOW // 2) // FRAME
    return clip.labels[np.minimum(middle, len(clip.labels) - 1)]


def logistic(x: Features, y: Flags, weight: npt.NDArray[np.float64],
             ridge: float = 1e-3) -> npt.NDArray[np.float64]:
    """Weighted logistic regression by Newton's method: coefficients, the intercept last."""
    design = np.column_stack((x, np.ones(len(x))))
    beta = np.zeros(design.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (weight * (y - p)) - ridge * beta
        hessian = (design * (weight * p * (1 - p))[:, None]).T @ design
        step = np.linalg.solve(hessian + ridge * np.eye(len(beta)), gradient)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def fused_rule(beta: npt.NDArray[np.float64], on: float, off: float, lookahead: int,
               cache: dict[int, npt.NDArray[np.float32]]) -> Rule:
    def rule(clip: Clip) -> Flags:
        if id(clip) not in cache:
            evidence = evidence_of(clip.audio)
            cache[id(clip)] = fuse(clip.window_p[: len(evidence)], evidence,
                                   beta[0], beta[1:-1], beta[-1])
        view = Clip(**{**clip.__dict__, "window_p": cache[id(clip)]})
        return hysteresis(frame_probability(view, lookahead), on, off)
    return rule


def per_recording(clips: list[Clip], rule: Rule) -> dict[tuple[str, str], tuple[float, float]]:
    """Per (recording, condition), noise samples pooled: (the rule's F1, the best rival's)."""
    ours: dict[tuple[str, str], list[tuple[Flags, Flags]]] = {}
    theirs: dict[tuple[str, str], dict[str, list[tuple[Flags, Flags]]]] = {}
    for clip in clips:
        key = (clip.name, clip.condition)
        ours.setdefault(key, []).append(after_s2(clip, rule(clip)))
        row = theirs.setdefault(key, {k: [] for k in RIVALS})
        for k in RIVALS:
            row[k].append(after_s2(clip, clip.rivals[k]))
    return {k: (f1(ours[k]), max(f1(v) for v in theirs[k].values())) for k in ours}


def standing(scored: dict[tuple[str, str], tuple[float, float]]) -> tuple[float, float, float]:
    """(total shortfall, worst margin, mean margin), each condition of the telephone sample
    weighing as much as that condition over all AMI excerpts together (the two sources
    count alike, as in the fit)."""
    ami = max(1, len({name for name, _ in scored if name.startswith("ami_")}))
    weights = np.array([ami if name == "pyannote_sample" else 1 for name, _ in scored])
    margins = np.array([ours - best for ours, best in scored.values()])
    return (float(np.sum(weights * np.maximum(0.0, -margins))), float(np.min(margins)),
            float(np.average(margins, weights=weights)))


def babble_alone(found: dict[str, bench_vad.Detector], snr_db: float = 10.0) -> Clip:
    """A minute of babble alone at the telephone sample's ``snr_db`` noise level (a
    participant who listens while others talk in the room: bench/vad_fusion.py)."""
    recording = real_speech.committed()[0]
    speech = recording.audio[real_speech.speech_mask(recording)[: len(recording.audio)]]
    power = float(np.mean(speech.astype(np.float64) ** 2))
    noise = real_speech.babble(recording, 60 * real_speech.SR, 7)
    audio = (np.sqrt(power / np.mean(noise**2) / 10 ** (snr_db / 10)) * noise)
    frames = len(audio) // FRAME
    return make_clip(found, "babble alone", "noise", 0, "babble10", audio.astype(np.float32),
                     np.zeros(frames, dtype=bool))


def called_speech(clip: Clip, rule: Rule) -> float:
    """The share of ``clip`` called speech after §2."""
    return float(after_s2(clip, rule(clip))[0].mean())


def talk_ratio(clips: list[Clip], rule: Rule) -> float:
    """Talk time found after §2 over the labels' (1: exact)."""
    pairs = [after_s2(c, rule(c)) for c in clips]
    return float(sum(p.sum() for p, _ in pairs) / sum(t.sum() for _, t in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=float, nargs="+", default=[5.0, 10.0, 20.0],
                        help="weights of the telephone sample's windows to fit with")
    args = parser.parse_args()
    MODEL.append(load_model())
    found, missing = bench_vad.detectors()
    if not all(k in found for k in RIVALS):
        sys.exit(f"needs silero-vad and webrtcvad: {missing}")
    tuning = clips_of(found, [(r, s) for r in real_speech.committed() for s in TELEPHONE_SEEDS]
                      + [(r, s) for r in real_speech.ami("tuning") for s in AMI_SEEDS])
    rows = [features(c) for c in tuning]
    x = np.concatenate(rows)
    y = np.concatenate([window_labels(c, len(f)) for c, f in zip(tuning, rows, strict=True)])
    telephone = np.concatenate([np.full(len(f), c.name == "pyannote_sample")
                                for c, f in zip(tuning, rows, strict=True)])
    print(f"# Tuning: {len({c.name for c in tuning})} recordings x 10 conditions, "
          f"{len(x)} windows")
    alone = babble_alone(found)
    clean = [c for c in tuning if c.name == "pyannote_sample" and c.condition == "clean"]
    ranked: list[tuple[float, float, float, str, Rule]] = []
    refused = 0

    def rank(name: str, rule: Rule) -> None:
        nonlocal refused
        if (called_speech(alone, rule) > MAX_BABBLE_ALONE
                or abs(talk_ratio(clean, rule) - 1) > MAX_TALK_ERROR):
            refused += 1
        else:
            ranked.append((*standing(per_recording(tuning, rule)), name, rule))

    for lookahead in (1, 2, 3):
        for on in (0.4, 0.45, 0.5, 0.55, 0.6):
            for off in (0.2, 0.25, 0.3, 0.35):
                if off < on:
                    rank(f"model alone {on:g}/{off:g} lookahead {lookahead}",
                         hysteresis_rule(on, off, lookahead))
    for weight in args.weights:
        beta = logistic(x, y, np.where(telephone, weight, 1.0))
        cache: dict[int, npt.NDArray[np.float32]] = {}
        coefficients = ", ".join(f"{b:.3f}" for b in beta)
        print(f"fit, telephone weight {weight:g}: a, w (80 Hz ... 8 kHz), c = {coefficients}")
        for lookahead in (1, 2, 3):
            for on in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9):
                for off in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                    if off < on:
                        rank(f"fused (weight {weight:g}) {on:g}/{off:g} lookahead "
                             f"{lookahead} [{coefficients}]",
                             fused_rule(beta, on, off, lookahead, cache))
    ranked.sort(key=lambda row: (row[0], -row[1]))
    print(f"{refused} rules refused: they call more than {MAX_BABBLE_ALONE:.0%} of a minute of "
          f"babble alone at 10 dB speech, or find the clean telephone sample's talk time more "
          f"than {MAX_TALK_ERROR:.0%} off")
    model_alone = f"model alone {THRESHOLD:g}/{RELEASE:g} lookahead {LOOKAHEAD}"
    shipped = (f"{FUSED_THRESHOLD:g}/{FUSED_RELEASE:g} lookahead {FUSED_LOOKAHEAD} ["
               + ", ".join(f"{b:.3f}" for b in (PROBABILITY_WEIGHT, *BAND_WEIGHTS, FUSION_BIAS))
               + "]")
    print("\n# Ranked by total shortfall under the best rival (telephone conditions x 10)")
    for place, (total, worst, mean, name, _) in enumerate(ranked, 1):
        if place <= 10 or name == model_alone:
            mark = "  <- the model-alone default before" if name == model_alone else ""
            mark = "  <- shipped" if shipped in name and place <= 10 else mark
            print(f"{place:>4}. shortfall {total:.3f}  worst {worst:+.4f}  mean {mean:+.4f}  "
                  f"{name}{mark}")
    chosen = ranked[0]
    before = next(row for row in ranked if row[3] == model_alone)
    print(f"\nchosen: {chosen[3]}")
    for label, row in (("chosen", chosen), ("model alone", before)):
        print(f"  {label}: a minute of babble alone at 10 dB {called_speech(alone, row[4]):.1%} "
              f"called speech; clean telephone talk time {talk_ratio(clean, row[4]) - 1:+.1%}")

    validation = clips_of(found, [(r, 0) for r in real_speech.ami("validation")]
                          + [(r, 0) for r in real_speech.validation()])
    print("\n# Validation, scored once: F1 chosen / model alone / best rival; per recording "
          "the total shortfall")
    for label, subset in (("AMI development + test", [c for c in validation
                                                       if c.name.startswith("ami_")]),
                          ("MFA + CMU ARCTIC", [c for c in validation
                                                if not c.name.startswith("ami_")])):
        print(f"{label}, pooled:")
        for condition in ORDER:
            group = [c for c in subset if c.condition == condition]
            ours = f1([after_s2(c, chosen[4](c)) for c in group])
            theirs = f1([after_s2(c, before[4](c)) for c in group])
            best = max(f1([after_s2(c, c.rivals[k]) for c in group]) for k in RIVALS)
            print(f"  {condition:<9} {ours:.3f} / {theirs:.3f} / {best:.3f}")
        for name in sorted({c.name for c in subset}):
            group = [c for c in subset if c.name == name]
            a = standing(per_recording(group, chosen[4]))
            b = standing(per_recording(group, before[4]))
            print(f"  {name:<20} shortfall {a[0]:.3f} (model alone {b[0]:.3f}), "
                  f"worst {a[1]:+.3f} ({b[1]:+.3f})")


if __name__ == "__main__":
    main()
