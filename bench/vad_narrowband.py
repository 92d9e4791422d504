"""Voice activity detectors on narrowband (8 kHz, telephone-rate) real speech (issue 17).

Every real recording of bench/vad.py (bench/real_speech.py: the tuning recordings, the AMI
excerpts of both splits, the validation recordings and, when present, TEN VAD's test set's two
halves), clean and with white, pink and babble noise at 20 / 10 / 5 dB mixed at 16 kHz as
there, is resampled to 8 kHz (soxr, high quality): what a telephone line or an 8 kHz recording
hands Rapport. Then, per set pooled, frame F1 after METRICS.md §2 of:

- ``default``: the default backend as ``rapport vad`` runs it on an 8 kHz file: the audio
  resampled to 16 kHz by the ingest's own :class:`models.vad.Resampler`, then the silero
  backend told the audio is narrowband (models/vad_silero.py, "Narrowband audio": its 8 kHz
  network's head in place of the 16 kHz head, and that network's probability as a third
  branch);
- ``wideband path``: the same not told (what ran on 8 kHz files before 2026-12-05, and what
  the WebRTC ingest runs on a participant who dials in by telephone);
- ``silero-vad``: silero-vad itself at 8 kHz, as its authors run 8 kHz audio (the file's 8 kHz
  network, 256-sample windows, ``get_speech_timestamps``' rules: bench/vad.py's port);
- ``webrtcvad-0`` .. ``webrtcvad-3``: at 8 kHz, 20 ms frames of 16-bit PCM.

After each table, whether the default is at least the best of silero-vad and webrtcvad in
each condition (issue 17's target), and at the end the silero backend's real-time factor on
8 streams with and without the narrowband branch.

**What was chosen on what.** ``--rank`` ranks the narrowband branch's rule (:data:`RULES`, 76
of them: thresholds 0.55-0.85, releases 0.3-0.6 under them, lookahead 1-2, end trims 3 or 5,
each beside the narrowband default's other two branches) on the tuning recordings, the AMI
train excerpts and TEN VAD's choice half at 8 kHz (:data:`RANKED_ON`), by total shortfall under
the best rival per set and condition; the backend's (0.65 / 0.4, lookahead 1, trims 1 / 3) came
first on 2026-12-05, beside the 16 kHz head's branch (the narrowband head,
bench/vad_narrowband_head.py, came after it; beside that head, rules releasing at 0.6 rank a
hair ahead, 0.0029-0.0030 against 0.0038, and the rule was kept). The AMI validation excerpts,
the validation recordings and TEN VAD's validation half were not ranked on; docs/vad.md, "Narrowband
audio", says what was seen on them when.

Usage: ``.venv/bin/python bench/vad_narrowband.py [--sets tuning,ami-train,...] [--rank]
[--speed]`` (about eight minutes on one core; ``--rank`` about as long; ``--speed`` prints only
the speed section: the backend on 8 streams batched and on one stream, 1 s batches).
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from bench.vad import (  # noqa: E402
    SR,
    after_section2,
    scores,
    silero_probabilities,
    speech_timestamps_frames,
)
from models.vad import Resampler  # noqa: E402
from models.vad_bands import evidence_of  # noqa: E402
from models.vad_decision import Branch, FrameDecider  # noqa: E402
from models.vad_head import head_value  # noqa: E402
from models.vad_narrowband_head import narrowband_head_value  # noqa: E402
from models.vad_offset import OffsetTracker  # noqa: E402
from models.vad_silero import (  # noqa: E402
    CONTEXT,
    NARROWBAND_BRANCH,
    NARROWBAND_BRANCHES,
    WINDOW,
    SileroBatchVad,
    SileroModel,
    StreamingSileroVad,
    load_model,
)
from models.vad_silero_model import NARROWBAND, load_session  # noqa: E402

NARROW = NARROWBAND.rate
Detector = Callable[[np.ndarray], str]  # 8 kHz mono float audio -> "0"/"1" per 20 ms

# ``--rank``: the sets ranked on, and the narrowband branch's rules (module docstring).
RANKED_ON = ("tuning", "ami-train", "ten-choice")
RULES = [Branch("narrowband", on, off, ahead, NARROWBAND_BRANCH.trim_start, end)
         for on, off, ahead, end in itertools.product(
             (0.55, 0.65, 0.7, 0.75, 0.85), (0.3, 0.4, 0.5, 0.6), (1, 2), (3, 5)) if off < on]

SETS: dict[str, Callable[[], list[real_speech.Recording]]] = {
    "tuning": lambda: real_speech.committed() + real_speech.moved(),
    "ami-train": lambda: real_speech.ami("tuning"),
    "ten-choice": lambda: real_speech.ten("choice"),
    "ami-validation": lambda: real_speech.ami("validation"),
    "validation": real_speech.validation,
    "ten-validation": lambda: real_speech.ten("validation"),
}
TITLES = {
    "tuning": "tuning recordings (telephone sample, mfa_acoustic_corpus)",
    "ami-train": "AMI excerpts, train (tuning)",
    "ten-choice": "TEN VAD's test set, choice half (ranked on)",
    "ami-validation": "AMI excerpts, development and test (validation)",
    "validation": "validation recordings (MFA, CMU ARCTIC)",
    "ten-validation": "TEN VAD's test set, validation half",
}


def set_names(parser: argparse.ArgumentParser, value: str) -> list[str]:
    """``--sets``' comma-separated names, each one of :data:`SETS` (else the parser's error,
    naming them)."""
    names = value.split(",")
    unknown = [n for n in names if n not in SETS]
    if unknown:
        parser.error(f"unknown sets {unknown}: choose from {', '.join(SETS)}")
    return names


def to_narrowband(audio: np.ndarray) -> np.ndarray:
    return np.asarray(soxr.resample(audio, SR, NARROW, quality="HQ"), dtype=np.float32)


def upsampled(audio: np.ndarray) -> list[np.ndarray]:
    """8 kHz audio as the ingest resamples it, in its 20 ms chunks (16 kHz)."""
    resampler = Resampler(NARROW, SR)
    step = NARROW // 50
    out = [resampler.process(audio[i:i + step]) for i in range(0, len(audio), step)]
    return [*out, resampler.flush()]


def backend_detector(narrowband: bool) -> Detector:
    model = load_model()
    narrow = load_model(layout=NARROWBAND) if narrowband else None

    def detect(audio: np.ndarray) -> str:
        vad = StreamingSileroVad(model=model, narrowband=narrowband, narrowband_model=narrow)
        pending, out = [], []
        for chunk in upsampled(audio):  # one 1 s batch per call, as the ingest does
            pending.append(chunk)
            if sum(len(c) for c in pending) >= SR:
                out.append(vad.push(np.concatenate(pending)))
                pending = []
        if pending:
            out.append(vad.push(np.concatenate(pending)))
        return "".join(out) + vad.finish()  # the stream's end, as the ingest's framer ends it

    return detect


def silero_upstream_detector() -> Detector:
    """silero-vad at 8 kHz: its 8 kHz network, then ``get_speech_timestamps``' rules."""
    session = load_session()
    window, context = NARROWBAND.window, NARROWBAND.context

    def detect(audio: np.ndarray) -> str:
        probabilities = silero_probabilities(session, audio, rate=NARROW, window=window,
                                             context=context)
        return speech_timestamps_frames(probabilities, len(audio), window, NARROW)

    return detect


def webrtc_detector(mode: int) -> Detector:
    import webrtcvad

    frame = NARROW // 50

    def detect(audio: np.ndarray) -> str:
        vad = webrtcvad.Vad(mode)
        pcm = np.clip(audio * 32768, -32768, 32767).astype(np.int16)
        return "".join("1" if vad.is_speech(pcm[i * frame:(i + 1) * frame].tobytes(), NARROW)
                       else "0" for i in range(len(pcm) // frame))

    return detect


def table(title: str, recordings: list[real_speech.Recording],
          found: dict[str, Detector]) -> None:
    predicted: dict[tuple[str, str], list[np.ndarray]] = {}
    truth: dict[tuple[str, str], list[np.ndarray]] = {}
    order: list[str] = []
    for recording in recordings:
        for condition, audio in real_speech.noisy(recording).items():
            order += [] if condition in order else [condition]
            narrow = to_narrowband(audio)
            for name, detect in found.items():
                frames = after_section2(detect(narrow))
                n = min(len(frames), len(recording.labels))
                predicted.setdefault((name, condition), []).append(frames[:n])
                truth.setdefault((name, condition), []).append(recording.labels[:n])
    f1 = {key: scores(np.concatenate(predicted[key]), np.concatenate(truth[key]))["f1"]
          for key in predicted}
    print(f"\n## {title} ({len(recordings)} pooled), 8 kHz: frame F1 after §2")
    print(f"{'condition':<10}" + "".join(f"{n:>14}" for n in found))
    for c in order:
        print(f"{c:<10}" + "".join(f"{f1[(n, c)]:>14.3f}" for n in found))
    rivals = [n for n in found if n.startswith(("webrtcvad", "silero-vad"))]
    print("default vs the best of silero-vad and webrtcvad (F1 after §2):")
    for c in order:
        best = max(rivals, key=lambda n: f1[(n, c)])
        ours, theirs = f1[("default", c)], f1[(best, c)]
        print(f"  {c:<10} default {ours:.3f} vs {best} {theirs:.3f}: "
              f"{'at least' if ours >= theirs else 'UNDER'} ({ours - theirs:+.3f})")


def model_inputs(audio: np.ndarray) -> np.ndarray:
    """The model's inputs for one stream's 16 kHz ``audio``, ``(1, windows, CONTEXT +
    WINDOW)``: each whole window and the samples before it, without the stream's running
    offset (models/vad_offset.py), as the backend feeds them."""
    count = len(audio) // WINDOW
    padded = np.concatenate((np.zeros(CONTEXT, dtype=np.float32), audio))
    windows = np.stack([padded[k * WINDOW:k * WINDOW + CONTEXT + WINDOW]
                        for k in range(count)])[None]
    return OffsetTracker(1).clean(windows.copy(), [0], [count])


def window_values(audio: np.ndarray, model: SileroModel, narrow: SileroModel
                  ) -> dict[str, np.ndarray]:
    """Per 32 ms window of one stream's 16 kHz ``audio``, what the backend's rule reads
    (models/vad_silero.py ``SileroBatchVad``, computed with the same public parts at once):
    the 16 kHz network's probability (``model``), the head's value (``head``), the 8 kHz
    network's probability (``narrowband``) and its head's value (``narrowband_head``;
    ``narrow`` loaded with its head)."""
    inputs = model_inputs(audio)
    count = inputs.shape[1]
    state = np.zeros((2, 1, 128), dtype=np.float32)
    lengths = np.array([count], dtype=np.int32)
    probability, term, _ = model.run_head(inputs, state, lengths)
    narrowband, narrow_term, _ = narrow.run_head(np.ascontiguousarray(inputs[..., ::2]), state,
                                                 lengths)
    evidence = evidence_of(audio)[None, :count]
    head = head_value(probability, evidence, term)
    return {"model": probability[0], "head": head[0], "narrowband": narrowband[0],
            "narrowband_head": narrowband_head_value(narrowband, evidence, narrow_term)[0]}


def decided(values: dict[str, np.ndarray], branches: tuple[Branch, ...]) -> str:
    """The frames :class:`FrameDecider` publishes from whole-stream ``values``."""
    decider = FrameDecider(branches)
    frame = SR // 50
    last = (len(values["model"]) - decider.lookahead) * WINDOW // frame
    ats = [((f + 1) * frame - 1) // WINDOW for f in range(last)]
    return decider.decide({k: v.tolist() for k, v in values.items()}, ats)  # type: ignore[misc]


def rank(found: dict[str, Detector]) -> None:
    """The narrowband branch's rules (:data:`RULES`, with the default's two branches) ranked
    on :data:`RANKED_ON` at 8 kHz by total shortfall of F1 after §2 under the best rival per
    set and condition, then the worst margin."""
    model, narrow = load_model(), load_model(layout=NARROWBAND)
    rivals = {n: d for n, d in found.items() if n.startswith(("silero-vad", "webrtcvad"))}
    shortfall = {rule: 0.0 for rule in RULES}
    worst = {rule: 0.0 for rule in RULES}
    for name in RANKED_ON:
        clips = [(r.labels, c, to_narrowband(a)) for r in SETS[name]()
                 for c, a in real_speech.noisy(r).items()]
        if not clips:
            print(f"--rank: {TITLES[name]} absent, ranked without it")
            continue
        values = [window_values(np.concatenate(upsampled(a)), model, narrow) for _, _, a in clips]
        best = best_rivals(clips, rivals)
        for rule in RULES:
            predicted: dict[str, list[np.ndarray]] = {}
            truth: dict[str, list[np.ndarray]] = {}
            for (labels, condition, _), window in zip(clips, values, strict=True):
                frames = after_section2(decided(window, (*NARROWBAND_BRANCHES[:2], rule)))
                n = min(len(frames), len(labels))
                predicted.setdefault(condition, []).append(frames[:n])
                truth.setdefault(condition, []).append(labels[:n])
            for condition, frames in predicted.items():
                f1 = scores(np.concatenate(frames), np.concatenate(truth[condition]))["f1"]
                shortfall[rule] += max(0.0, best[condition] - f1)
                worst[rule] = min(worst[rule], f1 - best[condition])
        print(f"  ranked {TITLES[name]}", flush=True)
    order = sorted(RULES, key=lambda r: (round(shortfall[r], 4), -worst[r]))
    print(f"\n## Narrowband rules ranked on {', '.join(RANKED_ON)} ({len(RULES)} rules)")
    print("threshold release lookahead trim_end  shortfall  worst margin")
    for rule in order[:10] + ([NARROWBAND_BRANCH] if NARROWBAND_BRANCH not in order[:10] else []):
        mark = "  <- the backend's" if rule == NARROWBAND_BRANCH else ""
        print(f"{rule.threshold:>9} {rule.release:>7} {rule.lookahead:>9} {rule.trim_end:>8}"
              f"  {shortfall[rule]:9.4f}  {worst[rule]:+.4f}{mark}")


def best_rivals(clips: list[tuple[np.ndarray, str, np.ndarray]],
                rivals: dict[str, Detector]) -> dict[str, float]:
    """Per condition, the best rival's pooled F1 after §2 over ``clips`` (8 kHz)."""
    out: dict[str, float] = {}
    for detect in rivals.values():
        predicted: dict[str, list[np.ndarray]] = {}
        truth: dict[str, list[np.ndarray]] = {}
        for labels, condition, audio in clips:
            frames = after_section2(detect(audio))
            n = min(len(frames), len(labels))
            predicted.setdefault(condition, []).append(frames[:n])
            truth.setdefault(condition, []).append(labels[:n])
        for condition, frames in predicted.items():
            f1 = scores(np.concatenate(frames), np.concatenate(truth[condition]))["f1"]
            out[condition] = max(out.get(condition, 0.0), f1)
    return out


def batch_rtf(narrowband: bool, seconds: float = 60.0, streams: int = 8) -> float:
    """CPU s per s of audio of :class:`SileroBatchVad` on ``streams`` streams, 1 s batches."""
    recording = real_speech.committed()[0]
    audio = np.asarray(soxr.resample(to_narrowband(recording.audio), NARROW, SR),
                       dtype=np.float32)
    audio = np.tile(audio, int(seconds * SR) // len(audio) + 2)[: int(seconds * SR) * 2]
    vad = SileroBatchVad(streams, narrowband=narrowband)
    offsets = [k * int(seconds * SR) // streams for k in range(streams)]
    started = time.process_time()
    for i in range(0, int(seconds * SR), SR):
        vad.push([audio[o + i:o + i + SR] for o in offsets])
    return (time.process_time() - started) / (streams * seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS),
                        help="comma-separated sets to score (default: all: %(default)s)")
    parser.add_argument("--rank", action="store_true",
                        help="rank the narrowband branch's rules on the tuning sets instead "
                             "(module docstring; about ten minutes)")
    parser.add_argument("--speed", action="store_true",
                        help="print the speed section only (about 15 seconds)")
    args = parser.parse_args()
    print(f"# bench/vad_narrowband.py, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    found: dict[str, Detector] = {
        "default": backend_detector(True), "wideband path": backend_detector(False),
        "silero-vad": silero_upstream_detector(),
        **{f"webrtcvad-{mode}": webrtc_detector(mode) for mode in range(4)},
    }
    if args.rank:
        rank(found)
        return
    for name in [] if args.speed else args.sets.split(","):
        if name not in SETS:
            parser.error(f"--sets: unknown set {name!r} (one of {', '.join(SETS)})")
        recordings = SETS[name]()
        if not recordings:
            print(f"\n## {TITLES[name]}: absent (bench/real_speech.py says where to put it)")
            continue
        table(TITLES[name], recordings, found)
    print("\n## Speed: the silero backend, 1 s batches, one core: 8 streams batched, and one "
          "stream (as the ingest runs each participant)")
    for streams in (8, 1):
        for narrowband in (False, True):
            rtf = batch_rtf(narrowband, streams=streams)
            label = ("with the narrowband branch" if narrowband
                     else "wideband (no 8 kHz network)") + (", 8 streams" if streams > 1
                                                            else ", one stream")
            print(f"{label:<44} RTF {rtf:.5f}  ({1 / rtf:,.0f}x real time)")


if __name__ == "__main__":
    main()
