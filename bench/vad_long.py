"""Voice activity detectors in long streams (issue 17): what each real recording scores when
the detector has been running for minutes before it, against what it scores alone.

Every other VAD figure here scores each recording as a stream of its own: 3 to 30 s from a
fresh start. A therapy session is a stream of 50 minutes. The Silero network is recurrent,
and its state after minutes of audio is not the zero state a stream starts from: some of its
cell values keep growing with what it has heard (their magnitude rises from about 15 in a
fresh 30 s to 100 over a few minutes of AMI's meetings), the drift other users of the model
report in never-ending streams (silero-vad issue 725). The default's head reads that state
(models/vad_head.py), and its weights were fitted on fresh recordings of 30 s at most.

Two ways of making a long stream of a set (``--mode``):

- ``concat`` (the default): the set's recordings back to back, in order, the whole sequence
  repeated until it lasts at least ``--seconds`` (180 s), one stream; each recording is scored
  in the last repetition, so it comes after at least that much of the set's other speech. A
  meeting recording of many sources, each change a cut.
- ``loop``: each recording repeated until it lasts at least ``--seconds``, its own stream,
  scored in its last repetition: one participant, one room, one microphone, each repetition
  a cut back to its start.

Detectors: the default (the ``auto`` backend, as the ingest runs it: 1 s batches, then the
end of the stream; its networks restart at the first pause after 30 s, models/vad_silero.py
"Long streams"), the
same **never restarted** (its state carried through the whole stream, as until 2026-12-06),
silero-vad (its own rule over the whole stream, its state carried as its
``get_speech_timestamps`` carries it) and webrtcvad modes 0-3. Conditions: clean, white, pink
and babble noise at 20 / 10 / 5 dB (noise sample 0, mixed per recording before the stream is
made). Printed per set and condition: frame F1 after METRICS.md §2 pooled over the set's
recordings, alone and in the long stream, for the default and the best rival, and how many
conditions the default is under the best rival either way. Which sets are tuning and which
validation is bench/real_speech.py's (docs/vad.md); nothing here was
fitted or ranked on.

``--rank`` ranks the restart rules of :data:`RULES` instead (models/vad_restart.py: never,
and after 30 s with 1 s of warm-up, waiting for 0, 8, 16 or 31 quiet windows; then waiting
for 8, probing after 1, 2 or 4 s of quiet, and then at doubling lengths; then probing after
1 s with 1.5, 2, 2.5 or 3 s of warm-up) on ``--sets``
(default: the tuning sets): each condition alone, back to back (180 s) and looped (90 s), by
total shortfall of F1 under the best of silero-vad and webrtcvad, with the conditions under
counted (docs/vad.md, "Long streams", says what it chose and how validation was then looked at).

``--speed`` measures what the restarts and probes cost instead (:func:`speed`).

Detectors beside the default in the tables: the default never restarted, and as it was on
2026-12-06 (restarts with 1 s of warm-up, no probes; models/vad_restart.py), each scored as
the default is.

Usage: ``.venv/bin/python bench/vad_long.py [--mode concat|loop] [--seconds 180]
[--sets tuning,...] [--rank] [--speed]`` (on one core with TEN VAD's test set: about seven
minutes with ``--mode concat``, fourteen with ``--mode loop --seconds 90``; its halves are
skipped with a note when absent).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from bench import vad as bench_vad  # noqa: E402
from bench.vad import after_section2, scores  # noqa: E402
from bench.vad_fusion import ORDER, RIVALS  # noqa: E402
from bench.vad_narrowband import SETS, TITLES  # noqa: E402

FRAME = real_speech.SR // 50  # samples of one 20 ms frame
# ``--rank``: restart rules (restart, warm, pause, probe in windows; models/vad_restart.py) and the
# sets they are ranked on by default.
RULES = [(0, 0, 0, 0), (938, 31, 0, 0), (938, 31, 8, 0), (938, 31, 16, 0), (938, 31, 31, 0),
         (938, 31, 8, 31), (938, 31, 8, 62), (938, 31, 8, 125),
         (938, 47, 8, 31), (938, 62, 8, 31), (938, 78, 8, 31), (938, 94, 8, 31)]
RANKED_ON = ("tuning", "ami-train", "ten-choice")


def whole_frames(audio: np.ndarray) -> np.ndarray:
    """``audio`` cut to whole 20 ms frames, so that recordings put back to back keep their
    frames where they were."""
    return np.asarray(audio[: len(audio) // FRAME * FRAME], dtype=np.float32)


def long_frames(detect: bench_vad.Detector, clips: list[np.ndarray], mode: str,
                seconds: float) -> list[np.ndarray]:
    """Per clip, its frames after §2 in the last repetition of the long stream (module
    docstring)."""
    if mode == "loop":
        out = []
        for clip in clips:
            times = max(2, math.ceil(seconds * real_speech.SR / len(clip)))
            frames = after_section2(detect(np.tile(clip, times)))
            out.append(frames[(times - 1) * (len(clip) // FRAME):])
        return out
    total = sum(len(clip) for clip in clips)
    times = max(2, math.ceil(seconds * real_speech.SR / total))
    frames = after_section2(detect(np.tile(np.concatenate(clips), times)))
    at = (times - 1) * (total // FRAME)
    out = []
    for clip in clips:
        out.append(frames[at:at + len(clip) // FRAME])
        at += len(clip) // FRAME
    return out


def never_restarted() -> bench_vad.Detector:
    """The default without its restarts (``restart=0``): the network's state carried through
    the whole stream, as the backend ran it until 2026-12-06 and as silero-vad runs it."""
    from models.vad_silero import StreamingSileroVad, load_model
    model = load_model()

    def detect(audio: np.ndarray) -> str:
        vad = StreamingSileroVad(model=model, restart=0)
        return "".join(vad.push(audio[i:i + real_speech.SR])
                       for i in range(0, len(audio), real_speech.SR)) + vad.finish()

    return detect


def restarting(restart: int, warm: int, pause: int, probe: int) -> bench_vad.Detector:
    """The default with the restart rule given (models/vad_restart.py), 1 s batches."""
    from models.vad_silero import StreamingSileroVad, load_model
    model = load_model()

    def detect(audio: np.ndarray) -> str:
        vad = StreamingSileroVad(model=model, restart=restart, warm=warm, pause=pause,
                                 probe=probe)
        return "".join(vad.push(audio[i:i + real_speech.SR])
                       for i in range(0, len(audio), real_speech.SR)) + vad.finish()

    return detect


def pooled_f1(frames: list[np.ndarray], recordings: list[real_speech.Recording]) -> float:
    n = [min(len(f), len(r.labels)) for f, r in zip(frames, recordings, strict=True)]
    return scores(np.concatenate([f[:k] for f, k in zip(frames, n, strict=True)]),
                  np.concatenate([r.labels[:k] for r, k in zip(recordings, n, strict=True)])
                  )["f1"]


def rank(names: list[str], rivals: dict[str, bench_vad.Detector]) -> None:
    """``--rank`` (module docstring)."""
    views = {"alone": None, "concat": 180.0, "loop": 90.0}
    detectors = {rule: restarting(*rule) for rule in RULES}
    short = {rule: dict.fromkeys(views, 0.0) for rule in RULES}
    under = {rule: dict.fromkeys(views, 0) for rule in RULES}
    for name in names:
        recordings = SETS[name]()
        if not recordings:
            print(f"{TITLES[name]}: absent")
            continue
        mixes = [real_speech.noisy(recording) for recording in recordings]
        for condition in ORDER:
            clips = [whole_frames(mix[condition]) for mix in mixes]

            def f1(detect: bench_vad.Detector, view: str, clips: list[np.ndarray] = clips,
                   recordings: list[real_speech.Recording] = recordings) -> float:
                seconds = views[view]
                frames = ([after_section2(detect(clip)) for clip in clips] if seconds is None
                          else long_frames(detect, clips, view, seconds))
                return pooled_f1(frames, recordings)

            best = {view: max(f1(d, view) for d in rivals.values()) for view in views}
            cells = []
            for rule, detect in detectors.items():
                for view in views:
                    got = f1(detect, view)
                    short[rule][view] += max(0.0, best[view] - got)
                    under[rule][view] += got < best[view]
                    cells.append(f"{got:.3f}")
            print(f"{name} {condition}: best rival {' / '.join(f'{best[v]:.3f}' for v in views)};"
                  f" rules {' '.join(cells)}", flush=True)
    print("\nrule (restart, warm, pause, probe): shortfall alone / back to back / looped "
          "(conditions "
          "under) | total")
    for rule in sorted(RULES, key=lambda r: sum(short[r].values())):
        print(rule, " / ".join(f"{short[rule][v]:.4f} ({under[rule][v]})" for v in views),
              f"| {sum(short[rule].values()):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("concat", "loop"), default="concat",
                        help="how a long stream is made (module docstring; default: "
                             "%(default)s)")
    parser.add_argument("--seconds", type=float, default=180.0,
                        help="the least length of a long stream (default: %(default)s)")
    parser.add_argument("--sets", default=None,
                        help="comma-separated sets (default: all, or with --rank the tuning "
                             f"sets; choose from {', '.join(SETS)})")
    parser.add_argument("--speed", action="store_true",
                        help="measure what the restarts and probes cost instead (about two "
                             "minutes; :func:`speed`)")
    parser.add_argument("--rank", action="store_true",
                        help="rank the restart rules instead (module docstring)")
    args = parser.parse_args()
    names = (args.sets.split(",") if args.sets
             else list(RANKED_ON) if args.rank else list(SETS))
    unknown = [n for n in names if n not in SETS]
    if unknown:
        parser.error(f"unknown sets {unknown}: choose from {', '.join(SETS)}")
    view = "--speed" if args.speed else "--rank" if args.rank else f"--mode {args.mode}"
    print(f"# bench/vad_long.py {view} "
          f"--seconds {args.seconds:g}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")
    if args.speed:
        speed()
        return
    found, missing = bench_vad.detectors()
    if args.rank:
        rank(names, {name: found[name] for name in RIVALS if name in found})
        return
    detectors = {name: found[name] for name in ("default", *RIVALS) if name in found}
    if len(detectors) < 1 + len(RIVALS) or "model alone" not in found:
        sys.exit(f"needs the silero default, silero-vad and webrtcvad: {missing}")
    # The default as it was: never restarted, and as on 2026-12-06 (restarts with 1 s of
    # warm-up, no probes).
    variants = {"never restarted": never_restarted(), "2026-12-06": restarting(938, 31, 8, 0)}
    detectors.update(variants)
    under = {label: {"alone": 0, "long": 0} for label in ("default", *variants)}
    shortfall = {label: {"alone": 0.0, "long": 0.0} for label in ("default", *variants)}
    for name in names:
        recordings = SETS[name]()
        if not recordings:
            print(f"\n## {TITLES[name]}: absent")
            continue
        print(f"\n## {TITLES[name]} ({len(recordings)} pooled): frame F1 after §2, alone -> "
              "in the long stream")
        mixes = [real_speech.noisy(recording) for recording in recordings]
        for condition in ORDER:
            clips = [whole_frames(mix[condition]) for mix in mixes]
            f1: dict[str, dict[str, float]] = {}
            for detector, detect in detectors.items():
                alone = [after_section2(detect(clip)) for clip in clips]
                long = long_frames(detect, clips, args.mode, args.seconds)
                f1[detector] = {key: pooled_f1(frames, recordings)
                                for key, frames in (("alone", alone), ("long", long))}
            cells = []
            for key in ("alone", "long"):
                rival = {d: f1[d][key] for d in RIVALS}
                best = max(rival, key=rival.__getitem__)
                for label in under:
                    under[label][key] += f1[label][key] < f1[best][key]
                    shortfall[label][key] += max(0.0, f1[best][key] - f1[label][key])
                behind = f1["default"][key] < f1[best][key]
                cells.append(f"{key}: default {f1['default'][key]:.3f} best rival "
                             f"{f1[best][key]:.3f} ({best}){' UNDER' if behind else ''}")
            silero = f1["silero-vad"]
            print(f"  {condition:<9} " + "   ".join(cells) + "   ["
                  + "; ".join(f"{label} {f1[label]['alone']:.3f} -> {f1[label]['long']:.3f}"
                              for label in variants)
                  + f"; silero-vad {silero['alone']:.3f} -> {silero['long']:.3f}]", flush=True)
    for label in under:
        counts, totals = under[label], shortfall[label]
        print(f"\n{label}: under the best rival alone in {counts['alone']} conditions "
              f"({totals['alone']:.4f} in all), in the long stream in {counts['long']} "
              f"({totals['long']:.4f})")


def speed(minutes: float = 5.0, streams: int = 8, runs: int = 3) -> None:
    """``--speed``: what the restarts and their probes cost. Each of ``streams`` streams is a
    participant's channel of ``minutes``: the telephone sample's 30 s of speech, then 30 s of
    near silence (white noise 60 dB under full scale, where the probes run), over and over,
    each stream starting elsewhere in that cycle; the silero backend in 1 s batches on one
    core, audio seconds per CPU second, best of ``runs``: never restarting, restarting as on
    2026-12-06 (1 s of warm-up, no probes), and the default."""
    from models.vad_silero import SileroBatchVad, load_model
    speech = real_speech.committed()[0].audio.astype(np.float32)[: 30 * real_speech.SR]
    quiet = (np.random.default_rng(0).standard_normal(len(speech)) * 1e-3).astype(np.float32)
    cycle = np.concatenate((speech, quiet))
    seconds = int(minutes * 60)
    length = seconds * real_speech.SR
    audio = np.tile(cycle, length // len(cycle) + 2)
    offsets = [k * len(cycle) // streams for k in range(streams)]
    model = load_model()
    print(f"\n## Speed: {streams} streams of {minutes:g} min (30 s of speech, 30 s of quiet), "
          f"1 s batches, one core, best of {runs} (audio seconds per CPU second)")
    for label, options in (("never restarted", {"restart": 0}),
                           ("restarts as on 2026-12-06", {"warm": 31, "probe": 0}),
                           ("default (restarts and probes)", {})):
        best = 0.0
        for _ in range(runs):
            vad = SileroBatchVad(streams, model=model, **options)
            started = time.process_time()
            for i in range(0, length, real_speech.SR):
                vad.push([audio[o + i:o + i + real_speech.SR] for o in offsets])
            vad.finish()
            best = max(best, streams * seconds / (time.process_time() - started))
        print(f"  {label:<32} {best:,.0f}x", flush=True)

if __name__ == "__main__":
    main()
