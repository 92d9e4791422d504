"""The narrowband head, fitted on the tuning recordings at 8 kHz (issue 17;
models/vad_narrowband_head.py).

At 8 kHz the default's head (models/vad_head.py) reads the 16 kHz network's state on audio
with nothing above 4 kHz, which that network never saw in training: on the AMI development
and test excerpts at 8 kHz the default fell under webrtcvad in 6 of 10 conditions (docs/vad.md,
"Narrowband audio"). This script fits a head of the **8 kHz network's own**: logistic
regression of the windows' reference labels (the frame holding each window's middle sample)
on the 8 kHz network's logit, the band evidence of the six bands under 4 kHz (/ 10 dB; the
4-8 kHz band is empty) and that network's 128 state values (the ReLU of its LSTM's output,
which its own output layer reads), a ridge (``--ridge``, several) on the state weights only,

    narrowband head = sigmoid(a * logit(p8) + sum_b w_b * e_b / 10 + sum_k v_k * h8_k + c)

on the **tuning** recordings alone, resampled to 8 kHz (soxr) and back to 16 kHz by the
ingest's resampler as ``rapport vad`` reads an 8 kHz file: the telephone sample and
`mfa_acoustic_corpus` (each window weighing ``--weight`` times an AMI window) and the ten AMI
train excerpts, each clean and with white, pink and babble noise at 20 / 10 / 5 dB, with two
noise samples (:data:`SEEDS`).

Each fit's head then replaces the 16 kHz head's branch of the narrowband default (the model
branch and the 8 kHz network's branch stay) with each rule of :data:`RULES` (threshold,
release, lookahead, and the frames each unit loses at its start and end), its state term capped
at :data:`models.vad_head.STATE_CAP`, and the rules are ranked by total shortfall of F1 after
METRICS.md §2 under the best of silero-vad (at 8 kHz) and webrtcvad (modes 0-3, at 8 kHz) per
set and condition, on the tuning recordings, the AMI train excerpts and TEN VAD's choice half
(:data:`RANKED_ON`; noise sample 0, as bench/vad_narrowband.py scores them), after refusing
rules that call more than 5 % of a minute of babble alone speech or put the talk time of the
tuning recordings silenced between phrases (what a platform's noise suppression sends) more
than 3 % off the labels (bench/vad_fuse.py's refusals). The current default (the 16 kHz head's
branch) is scored beside them. The first not refused is the one to ship (``--save`` writes it;
models/vad_narrowband_head.py holds it); the three best refused are printed too. The AMI
development and test excerpts, the validation recordings and TEN VAD's validation half are
never read here; bench/vad_narrowband.py scores them.

**Noise steps** (:func:`noise_steps`; docs/vad.md, "A step in the background noise"): a stationary
noise switching on 15-45 dB louder, alone or 3 s after one of the two tuning recordings (16
steps, two noise samples). Every head's speech in the louder noise is printed; with
``--step-weight W`` (several: each a fit of its own) their windows join the fit as non-speech,
each weighing ``W`` (0: measured only). The shipped head was fitted with ridge 3 and weight 5
(models/vad_narrowband_head.py).

**Music and other sounds** (docs/vad.md, "Music and other sounds"): the tuning half of
bench/vad_music.py's recordings, when present, each a stream of its own; every head's share of
their frames called speech is printed, and with ``--music-weight W`` (several: each a fit of
its own) their windows join the fit as non-speech, each weighing ``W``. Their validation half
is never read here.

**Long streams** (docs/vad.md, "Long streams"; 16 kHz head only): with ``--long`` the ranked sets
are also ranked in long streams, back to back (180 s) and looped (90 s), each condition scored
in its last repetition against the best rival's F1 there (bench/vad_long_clips.py, made as
bench/vad_long.py makes them; like the fresh clips here, on the frames the rule has decided by
the stream's end; the shortfall printed in brackets is theirs); with
``--long-weight W`` (several: each a fit of its own) the windows scored there of the fitted
sets' long streams join the fit too, each weighing ``W`` times its set's weight.

``--keep-within F1`` also refuses a rule that leaves any ranked set and condition more than
``F1`` under the default before the fit (a total shortfall under the rivals does not see a
margin over them given away); ``--max-steps S`` a rule calling more than ``S`` seconds of the
noise steps speech, ``--max-music F`` one calling more than ``F`` of the music's tuning half
speech. ``--least-probability-weight A`` bounds the weight the fit gives the network's own
logit (a fit under it is fitted again with the weight fixed at A): a negative weight makes the
head lean on the model's smallest probabilities, which a DC offset moves (docs/vad.md, "Long
streams"); ``--probability-floor P`` makes the head read the logit of the larger of ``p`` and
``P`` instead (the backend clips at 1e-4), so such a weight cannot reach them. Each refused rule
is printed with why (for ``--keep-within``, the set and condition it gives most away in). The
same code fits the 16 kHz head (:data:`bench.vad_head_clips.WIDEBAND_PATH`;
bench/vad_wideband_head.py).

Usage: ``.venv/bin/python bench/vad_narrowband_head.py [--ridge 1 3 10] [--step-weight 0 5]
[--music-weight 0 2] [--keep-within 0.01] [--max-steps 7] [--max-music 0.1]
[--least-probability-weight 0] [--probability-floor 0.01] [--save head.json]`` (about
fifteen minutes on one core for three ridges and one weight; with ``--long``, six more minutes
and about two per fit).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from bench import vad as bench_vad  # noqa: E402
from bench.vad_fuse import MAX_BABBLE_ALONE, MAX_TALK_ERROR  # noqa: E402
from bench.vad_fusion import RIVALS  # noqa: E402
from bench.vad_head import fit, state_session  # noqa: E402
from bench.vad_head_clips import (  # noqa: E402
    NARROWBAND_PATH,
    Clip,
    HeadPath,
    clip_of,
    frames,
    head_values,
    pooled_f1,
    talk_ratio,
    window_labels,
)
from bench.vad_long_clips import window_mask  # noqa: E402
from bench.vad_narrowband import (  # noqa: E402
    SETS,
    TITLES,
    best_rivals,
    silero_upstream_detector,
    webrtc_detector,
)
from models import vad_narrowband_head  # noqa: E402
from models.vad_bands import BANDS_HZ  # noqa: E402
from models.vad_decision import Branch  # noqa: E402
from models.vad_silero import (  # noqa: E402
    DEFAULT_BRANCHES,
    NARROWBAND_BRANCH,
    load_model,
)
from models.vad_silero_model import NARROWBAND, WIDEBAND  # noqa: E402

Matrix = npt.NDArray[np.float64]
FITTED_ON = ("tuning", "ami-train")
RANKED_ON = ("tuning", "ami-train", "ten-choice")
SEEDS = (0, 10)  # noise samples fitted on
# The head's rule: threshold, release (under it), lookahead in windows, then the frames each
# unit loses at its start and end (the state remembers a phrase for a while after it).
RULES = [(on, off, ahead, *trims) for ahead in (1, 2) for on in (0.85, 0.9, 0.93, 0.95, 0.97)
         for off in (0.6, 0.7, 0.8, 0.9) if off < on
         for trims in ((0, 0), (0, 2), (1, 3), (0, 4))]


# head's place: what "the default before this head" is scored with.
BEFORE = {"narrowband_head": (*DEFAULT_BRANCHES, NARROWBAND_BRANCH)}


def noise_steps(recording: real_speech.Recording, seed: int
                ) -> list[tuple[str, npt.NDArray[np.bool_], npt.NDArray[np.float32], int]]:
    """A stationary noise switching on, as a fan or an air conditioner does (docs/vad.md, "A step in
    the background noise"): 3 s of faint noise, then 7 s of the same kind 15-45 dB louder,
    alone or 3 s after the recording's speech. White, pink, brown noise, or a 100-400 Hz hum
    over pink noise. Returns (kind, labels per 20 ms frame, 16 kHz audio, first frame of the
    louder noise) per step."""
    rng = np.random.default_rng(seed)
    sr = real_speech.SR
    out = []
    for k, kind in enumerate(("white", "pink", "brown", "hum")):
        for after in (False, True):
            n = 10 * sr
            base = rng.standard_normal(n) if kind == "white" else real_speech.pink(n, seed + k)
            if kind == "brown":
                base = np.cumsum(rng.standard_normal(n))
                base -= np.convolve(base, np.ones(801) / 801, mode="same")
            if kind == "hum":
                t = np.arange(n) / sr
                f0 = rng.uniform(100, 400)
                base = base / np.std(base) * 0.3 + sum(
                    np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
            base = base / np.sqrt(np.mean(base**2))
            quiet = 10 ** (rng.uniform(-65, -45) / 20)
            loud = quiet * 10 ** (rng.uniform(15, 45) / 20)
            noise = np.concatenate((base[:3 * sr] * quiet, base[3 * sr:] * loud))
            lead = recording.audio.astype(np.float64) if after else np.zeros(0)
            labels = np.concatenate((recording.labels[: len(lead) // (sr // 50)] if after
                                     else np.zeros(0, dtype=bool),
                                     np.zeros(n // (sr // 50), dtype=bool)))
            audio = np.concatenate((lead, noise)).astype(np.float32)
            out.append((f"{kind}{'-after' if after else ''}", labels, audio,
                        (len(lead) + 3 * sr) // (sr // 50)))
    return out



def main() -> None:
    run(NARROWBAND_PATH, __doc__, rules=RULES)


def run(path: HeadPath, doc: str, rules: list[tuple[float, float, int, int, int]],
        shipped: tuple[float, tuple[float, float, int, int, int]] | None = None) -> None:
    """Fit heads for ``path`` and rank them with ``rules`` (``shipped``: the ridge and rule of
    the head the backend ships, marked in the table; on the narrowband path the narrowband
    head's by default)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--ridge", type=float, nargs="+", default=[1.0, 3.0, 10.0],
                        help="ridge penalties on the state weights to fit with")
    parser.add_argument("--weight", type=float, default=20.0,
                        help="weight of a tuning recording's window against an AMI window")
    parser.add_argument("--step-weight", type=float, nargs="+", default=[0.0],
                        help="weight of a noise step's window in the fit (0: measured, not "
                             "fitted on); each value is a fit of its own")
    parser.add_argument("--music-weight", type=float, nargs="+", default=[0.0],
                        help="weight of a window of the tuning half of bench/vad_music.py's "
                             "sounds in the fit, as non-speech (0: measured, not fitted on; "
                             "each value a fit of its own; needs those recordings)")
    parser.add_argument("--long", action="store_true",
                        help="also rank on the ranked sets in long streams, back to back "
                             "(180 s) and looped (90 s), as bench/vad_long.py makes them "
                             "(16 kHz head only)")
    parser.add_argument("--long-weight", type=float, nargs="+", default=[0.0],
                        help="weight of a window of the fitted sets' long streams (their "
                             "scored part) in the fit, times the set's own weight (0: not "
                             "fitted on; each value a fit of its own; implies --long)")
    parser.add_argument("--keep-within", type=float, default=1.0, metavar="F1",
                        help="also refuse a rule whose F1 in any ranked set and condition is "
                             "more than this under the default before the fit's (default 1: "
                             "no such refusal): a shortfall under the rivals does not see a "
                             "margin over them given away")
    parser.add_argument("--least-probability-weight", type=float, default=-np.inf,
                        metavar="A",
                        help="the least weight the fit may give the network's own logit: a "
                             "fit under it is fitted again with that weight fixed at A (the "
                             "optimum under the bound, the loss being convex); default: none")
    parser.add_argument("--probability-floor", type=float, default=1e-4, metavar="P",
                        help="the least probability whose logit the head reads (default "
                             "%(default)s, the backend's clip): at a higher floor the "
                             "model's smallest, least stable probabilities all read as it")
    parser.add_argument("--max-steps", type=float, default=float("inf"), metavar="SECONDS",
                        help="also refuse a rule calling more than this of the noise steps "
                             "speech (default: no such refusal)")
    parser.add_argument("--max-music", type=float, default=1.0, metavar="SHARE",
                        help="also refuse a rule calling more than this share of the music's "
                             "tuning half speech (default 1: no such refusal)")
    parser.add_argument("--save", type=Path,
                        help="write the head ranked first (not refused) to this JSON")
    args = parser.parse_args()
    print(f"# {Path(sys.argv[0]).name}, {path.name} head, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    model = load_model()
    hidden = state_session(NARROWBAND if path.narrow else WIDEBAND)
    if path.narrow:
        rivals = {"silero-vad": silero_upstream_detector(),
                  **{f"webrtcvad-{mode}": webrtc_detector(mode) for mode in range(4)}}
    else:
        found, missing = bench_vad.detectors()
        rivals = {name: found[name] for name in RIVALS if name in found}
        if len(rivals) < len(RIVALS):
            sys.exit(f"needs silero-vad and webrtcvad: {missing}")
    fitted: list[Clip] = []
    ranked: dict[str, tuple[list[Clip], dict[str, float]]] = {}
    for name in RANKED_ON:
        recordings = SETS[name]()
        if not recordings:
            print(f"{TITLES[name]}: absent, ranked without it")
            continue
        seeds = SEEDS if name in FITTED_ON else (0,)
        clips = [clip_of(r.name, c, seed, r.labels, a, model, hidden, path)
                 for r in recordings for seed in seeds
                 for c, a in real_speech.noisy(r, seed).items()]
        fitted += clips if name in FITTED_ON else []
        scored = [c for c in clips if c.seed == 0]
        best = best_rivals([(r.labels, c, path.for_rivals(a)) for r in recordings
                            for c, a in real_speech.noisy(r).items()], rivals)
        ranked[name] = (scored, best)
        print(f"  {TITLES[name]}: {len(clips)} clips", flush=True)
    # Long streams (docs/vad.md, "Long streams"): ranked on with --long, fitted on with
    # --long-weight (each window weighing as its set's do, times the weight).
    long_fitted: list[tuple[Clip, float]] = []
    if args.long or any(w > 0 for w in args.long_weight):
        if path.narrow:
            sys.exit("--long: the 16 kHz head only (bench/vad_wideband_head.py)")
        from bench import vad_long_clips
        for name, key, clips, best in vad_long_clips.long_sets(list(RANKED_ON), SETS, model,
                                                              hidden, rivals):
            ranked[key] = (clips, best)
            long_fitted += [(c, 1.0 if name.startswith("ami") else args.weight)
                            for c in clips if name in FITTED_ON]
    tuning = real_speech.committed() + real_speech.moved()
    silenced = [clip_of(r.name, "silenced", 0, r.labels,
                        (r.audio * real_speech.speech_mask(r)).astype(np.float32), model, hidden,
                        path)
                for r in tuning]
    recording = tuning[0]
    speech = recording.audio[real_speech.speech_mask(recording)[:len(recording.audio)]]
    noise = real_speech.babble(recording, 60 * real_speech.SR, 7)
    noise *= np.sqrt(float(np.mean(speech.astype(np.float64) ** 2)) / np.mean(noise**2) / 10)
    alone = clip_of("babble alone", "babble10", 0, np.zeros(3000, dtype=bool),
                    noise.astype(np.float32), model, hidden, path)

    # Noise steps after the tuning recordings' speech and alone, two noise samples: what
    # each head calls speech in the louder noise is measured (and, with --step-weight,
    # fitted on as non-speech).
    steps: list[tuple[Clip, int]] = []
    for seed in SEEDS:
        for kind, labels, audio, first in noise_steps(tuning[seed // 10 % len(tuning)], seed):
            steps.append((clip_of(f"step {kind}", "step", seed, labels, audio, model, hidden,
                                  path), first))

    # Music and other sounds, the tuning half of bench/vad_music.py's (the validation half is
    # never read here): what each head calls speech in them (and, with --music-weight, fitted
    # on as non-speech).
    from bench.vad_music import HALVES, load_sounds
    sounds = load_sounds()
    music = [clip_of(name, "music", 0, np.zeros(len(sound) // (real_speech.SR // 50), bool),
                     sound.astype(np.float32), model, hidden, path)
             for name, sound in sounds.items() if name in HALVES["tuning"]]
    if not music and any(w > 0 for w in args.music_weight):
        sys.exit("--music-weight needs bench/vad_music.py's recordings (its docstring)")

    def music_called(branches: tuple[Branch, ...],
                     values: dict[int, npt.NDArray[np.float32]] | None) -> float:
        if not music:
            return float("nan")
        got = [frames(c, branches, None if values is None else values[id(c)]) for c in music]
        return float(np.concatenate(got).mean())

    def step_speech_s(branches: tuple[Branch, ...],
                      values: dict[int, npt.NDArray[np.float32]] | None) -> float:
        return sum(float(frames(c, branches, None if values is None else values[id(c)])
                         [first:].sum()) for c, first in steps) / 50

    if not 1e-4 <= args.probability_floor < 0.5:
        sys.exit("--probability-floor: from 1e-4 to under 0.5")
    if args.probability_floor > 1e-4:  # every clip's logit column, fitted and ranked alike
        floor = float(np.log(args.probability_floor / (1 - args.probability_floor)))
        every_clip = {id(c): c for c in [*fitted, *(c for clips, _ in ranked.values()
                                                     for c in clips), *silenced, alone,
                                         *(c for c, _ in steps), *music,
                                         *(c for c, _ in long_fitted)]}
        for clip in every_clip.values():
            clip.features[:, 0] = np.maximum(clip.features[:, 0], floor)
    y_real = np.concatenate([window_labels(c.labels, len(c.features)) for c in fitted])
    w_real = np.concatenate([np.full(len(c.features), 1.0 if c.name.startswith("ami")
                                     else args.weight) for c in fitted])
    x_real = np.concatenate([c.features for c in fitted])
    x_steps = np.concatenate([c.features for c, _ in steps])
    y_steps = np.concatenate([window_labels(c.labels, len(c.features)) for c, _ in steps])
    x_music = np.concatenate([c.features for c in music]) if music else x_steps[:0]
    masks = [window_mask(c) for c, _ in long_fitted]
    x_long = np.concatenate([c.features[m] for (c, _), m in zip(long_fitted, masks,
                                                                strict=True)]) \
        if long_fitted else x_steps[:0]
    y_long = np.concatenate([window_labels(c.labels, len(c.features))[m]
                             for (c, _), m in zip(long_fitted, masks, strict=True)]) \
        if long_fitted else y_steps[:0]
    w_long = np.concatenate([np.full(int(m.sum()), w) for (_, w), m in zip(long_fitted, masks,
                                                                           strict=True)]) \
        if long_fitted else np.zeros(0)
    print(f"fitted on {len(fitted)} clips, {len(y_real):,} windows; {len(steps)} noise steps; "
          f"{len(music)} sounds ({len(x_music):,} windows); long streams "
          f"{len(long_fitted)} tails ({len(y_long):,} windows)")

    def standing(branches: tuple[Branch, ...], values: dict[int, npt.NDArray[np.float32]] | None
                 ) -> tuple[float, float, dict[tuple[str, str], float]]:
        shortfall, worst, each = 0.0, 0.0, {}
        for name, (clips, best) in ranked.items():
            for condition, f1 in pooled_f1(clips, branches, values).items():
                shortfall += max(0.0, best[condition] - f1)
                worst = min(worst, f1 - best[condition])
                each[name, condition] = f1
        return shortfall, worst, each

    def long_shortfall(each: dict[tuple[str, str], float]) -> float:
        """The part of a total shortfall in long streams."""
        return sum(max(0.0, ranked[name][1][condition] - f1)
                   for (name, condition), f1 in each.items() if " " in name)

    current = BEFORE.get(path.key, path.current)
    shortfall, worst, before_f1 = standing(current, None)
    before = "the 16 kHz head" if path.narrow else "the shipped head"
    print(f"\nthe default before this head ({before}'s branch): shortfall "
          f"{shortfall:.4f}, worst margin {worst:+.4f}, babble alone "
          f"{float(frames(alone, current, None).mean()):.3f}, silenced talk time "
          f"{talk_ratio(silenced, current, None):.3f}, noise steps "
          f"{step_speech_s(current, None):.1f} s, music (tuning half) "
          f"{music_called(current, None):.3f}, in long streams "
          f"{long_shortfall(before_f1):.4f}")
    results = []
    for ridge, step_weight, music_weight, long_weight in itertools.product(
            args.ridge, args.step_weight, args.music_weight, args.long_weight):
        x, y, weight = x_real, y_real, w_real
        if long_weight > 0:
            x = np.concatenate((x, x_long))
            y = np.concatenate((y, y_long))
            weight = np.concatenate((weight, w_long * long_weight))
        if step_weight > 0:
            x = np.concatenate((x, x_steps))
            y = np.concatenate((y, y_steps))
            weight = np.concatenate((weight, np.full(len(y_steps), step_weight)))
        if music_weight > 0:
            x = np.concatenate((x, x_music))
            y = np.concatenate((y, np.zeros(len(x_music), dtype=bool)))
            weight = np.concatenate((weight, np.full(len(x_music), music_weight)))
        beta = fit(x, y, weight, ridge, free=1 + path.bands)
        if beta[0] < args.least_probability_weight:
            least = args.least_probability_weight
            beta = np.concatenate(([least], fit(x[:, 1:], y, weight, ridge, free=path.bands,
                                                offset=least * x[:, 0])))
        print(f"  ridge {ridge}, step weight {step_weight}, music weight {music_weight}, "
              f"long weight {long_weight}: the logit's weight {beta[0]:.3f}", flush=True)
        every = [c for clips, _ in ranked.values() for c in clips] + silenced + [alone] + \
            [c for c, _ in steps] + music
        values = {id(c): head_values(c, beta) for c in every}
        for on, off, ahead, start, end in rules:
            branches = path.branches((on, off, ahead, start, end))
            called = float(frames(alone, branches, values[id(alone)]).mean())
            ratio = talk_ratio(silenced, branches, values)
            shortfall, worst, each = standing(branches, values)
            where = max(each, key=lambda k: before_f1[k] - each[k])
            lost = before_f1[where] - each[where]
            stepped, mus = step_speech_s(branches, values), music_called(branches, values)
            # Why a rule is refused, each refusal that applies (printed beside it).
            why = [text for text, applies in (
                ("babble alone", called > MAX_BABBLE_ALONE),
                ("silenced talk", abs(ratio - 1) > MAX_TALK_ERROR),
                (f"keep-within: {' '.join(where)} -{lost:.3f}", lost > args.keep_within),
                ("noise steps", stepped > args.max_steps),
                ("music", mus > args.max_music)) if applies]
            refused = bool(why)
            results.append((refused, round(shortfall, 4), -worst, ridge,
                            (on, off, ahead, start, end), called, ratio,
                            stepped, step_weight, music_weight, mus, long_weight,
                            long_shortfall(each), "; ".join(why), beta))
        print(f"  ridge {ridge}, step weight {step_weight}, music weight {music_weight}, "
              f"long weight {long_weight} ranked", flush=True)
    results.sort(key=lambda r: r[:3])
    others = " and the 8 kHz network's" if path.narrow else ""
    print(f"\n## {path.name.capitalize()} heads ranked (the head's rule beside the model "
          f"branch{others}), on {', '.join(RANKED_ON)}")
    print("ridge steps music long threshold release lookahead trims  shortfall (long)  worst"
          "  babble alone  silenced talk  noise steps  music called")
    if shipped is None and path.narrow:
        shipped = (vad_narrowband_head.RIDGE, (
            vad_narrowband_head.THRESHOLD, vad_narrowband_head.RELEASE,
            vad_narrowband_head.LOOKAHEAD, vad_narrowband_head.TRIM_START,
            vad_narrowband_head.TRIM_END))
    unrefused = [r for r in results if not r[0]]
    for (refused, shortfall, worst, ridge, rule, called, ratio, stepped, step_weight,
         music_weight, mus, long_weight, in_long, why, _) in \
            itertools.chain(unrefused[:10],
                            [r for r in results if r[3:5] == shipped
                             and r[8] == r[9] == r[11] == 0 and r not in unrefused[:10]],
                            [r for r in results if r[0]][:3]):
        on, off, ahead, start, end = rule
        mark = f"  REFUSED ({why})" if refused else ""
        mark += "  <- the backend's" if (ridge, rule) == shipped and step_weight == 0 \
            and music_weight == 0 and long_weight == 0 else ""
        print(f"{ridge:>5} {step_weight:>5} {music_weight:>5} {long_weight:>4} {on:>9} {off:>7} "
              f"{ahead:>9} {start}/{end}  {shortfall:9.4f} ({in_long:.4f})  {-worst:+.4f}  "
              f"{called:12.3f}  {ratio:13.3f}  {stepped:9.1f} s  {mus:12.3f}{mark}")
    if args.save and not unrefused:
        print(f"\nevery rule refused: nothing written to {args.save}")
    elif args.save:
        first = unrefused[0]
        beta = first[-1]
        on, off, ahead, start, end = first[4]
        args.save.write_text(json.dumps({
            "ridge": first[3], "threshold": on, "release": off, "lookahead": ahead,
            "trim_start": start, "trim_end": end, "probability_weight": beta[0],
            "probability_floor": args.probability_floor,
            "band_weights": [*beta[1:1 + path.bands].tolist(),
                             *[0.0] * (len(BANDS_HZ) - path.bands)],
            "state_weights": beta[1 + path.bands:-1].tolist(), "bias": beta[-1]}, indent=1))
        print(f"\nwrote {args.save}")


if __name__ == "__main__":
    main()
