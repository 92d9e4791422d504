"""Benchmark of voice activity detectors on real and generated labelled speech (issues 4, 17).
Prints, in one run:

1. Real-time factor (CPU seconds per second of audio, one core, ``time.process_time``; how many
   times faster than real time in brackets) of :class:`models.vad.StreamingVad` for one
   participant (20 ms, 100 ms, 200 ms and 1 s chunks, and the chunk the WebRTC ingest feeds:
   ``AudioVadFramer``, one ``batch_ms`` batch), of the 48 -> 16 kHz :class:`models.vad.Resampler`,
   of webrtcvad (each mode), of silero-vad itself (one stream) and of Rapport's ``silero``
   backend (:class:`models.vad_silero.SileroBatchVad`) across 8 streams batched (onnxruntime
   on one thread), at 100 ms and 1 s chunks (the ingest's batch).
2. Frame F1 on **real speech** (bench/real_speech.py), clean and with white / pink / babble
   (the recording's own voices) noise at 20 / 10 / 5 dB: the **tuning** recordings (the
   committed pyannote.audio telephone sample, and `mfa_acoustic_corpus`, moved from
   validation: bench/real_speech.py ``MOVED_TO_TUNING``), then each **validation** recording
   (tests/data/real/validation: two Montreal Forced Aligner test recordings and a CMU ARCTIC
   sentence, with alignments; never fitted on) and any extra ones with RTTM in
   ``$RAPPORT_REAL_SPEECH`` or ``~/.cache/rapport/real-speech`` (nothing is downloaded), then
   those validation recordings pooled; then the AMI meeting excerpts pooled, the ten of the
   **tuning** split (tests/data/real/ami) and the four of the **validation** split
   (tests/data/real/validation/ami), with one line per excerpt; then, when present (never
   committed or downloaded here: bench/real_speech.py says how to get it), TEN VAD's test set
   (30 hand-labelled near-field clips of many speakers), its two halves apart, the same way;
   then the **held-out** recordings (tests/data/real/heldout: pyAudioAnalysis's counting
   recordings with their authors' hand labels; never tuned, ranked or vetoed on).
   The silero backend's head
   (models/vad_head.py) was fitted on the tuning recordings and excerpts (bench/vad_head.py).
   After each
   table, whether the default backend is at least the best of silero-vad and webrtcvad (any
   mode) in each condition (issue 17's target).
3. The same on the **generated set** (espeak-ng voices; Rapport's own VAD was tuned on it, the
   silero rule validated on it), pooled per condition, after §2 and raw.

F1 is per 20 ms frame after METRICS.md §2 (segments bridged under ``min_pause_ms``, IPUs under
``min_speech_ms`` dropped, by the engine's own :class:`models.speech.IpuBuilder`): what the
engine makes of a VAD's frames.

Detectors: ``default`` (the ``auto`` backend: Rapport's silero backend, models/vad_silero.py,
the Silero model with Rapport's head, when installed, else ``rapport``; the line above the
tables says which), ``model alone`` (that backend without the head, the default until
2026-12-05; not a rival in the verdicts), ``rapport``
(models/vad.py), ``webrtcvad-0`` .. ``webrtcvad-3`` (``webrtcvad-wheels``; 20 ms frames of
16-bit PCM, a fresh instance per clip), ``silero-vad`` (the model as its authors use it,
offline: window probabilities through ``get_speech_timestamps``' rules, threshold 0.5, 250 ms
minimum speech, 100 ms minimum silence, 30 ms padding; ported here because the ``silero_vad``
package imports torch), and ``ten-vad`` when importable (TEN VAD as its examples run it:
bench/vad_ten.py; not a Rapport dependency, docs/vad.md, "Also tried"; never one of issue 17's
rivals in the verdicts). Install the comparison with ``pip install -e '.[bench]'`` and ``pip
install --no-deps silero-vad`` (its metadata asks for torch, never needed here); missing ones
are skipped with a note. Rapport's VADs run as the ingest runs them, one 1 s batch per call.

The generated set comes from ``scripts/make_test_audio.py --set bench`` (generated into
``build/vad-audio`` on first use; espeak-ng and sox needed).

Usage: ``.venv/bin/python bench/vad.py [--audio DIR] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from models.config import EngineConfig  # noqa: E402
from models.speech import IpuBuilder  # noqa: E402
from models.vad import Resampler, StreamingVad, VadConfig  # noqa: E402
from services.ingest.vad_backend import VadBackend  # noqa: E402

SR = 16_000
EVERY_FRAME = "every frame"  # the column of :func:`every_frame`


@dataclass(frozen=True)
class Clip:
    name: str
    condition: str  # "clean", "white10", ...
    audio: np.ndarray
    labels: np.ndarray  # bool per 20 ms frame


def load_clips(directory: Path) -> list[Clip]:
    clips = []
    for path in sorted(directory.glob("*.json")):
        meta = json.loads(path.read_text())
        audio, rate = sf.read(path.with_suffix(".flac"), dtype="float32")
        assert rate == SR
        noise = meta["noise"]
        condition = "clean" if noise is None else f"{noise['type']}{noise['snr_db']}"
        labels = np.frombuffer(meta["voiced"].encode(), dtype=np.uint8) == ord("1")
        clips.append(Clip(meta["clip"], condition, audio, labels))
    return clips


def run_vad(audio: np.ndarray, config: VadConfig | None = None, chunk: int = SR) -> str:
    vad = StreamingVad(config)
    return "".join(vad.push(audio[i : i + chunk]) for i in range(0, len(audio), chunk))


def after_section2(voiced: str, frame_ms: int = 20) -> np.ndarray:
    """Frames covered by the IPUs METRICS.md §2 builds from ``voiced`` (default thresholds)."""
    engine = EngineConfig()
    builder = IpuBuilder(engine.min_pause_ms, engine.min_speech_ms)
    flags = np.frombuffer(voiced.encode(), dtype=np.uint8) == ord("1")
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    builder.add([(int(s) * frame_ms, int(e) * frame_ms) for s, e in edges.reshape(-1, 2)])
    out = np.zeros(len(flags), dtype=bool)

    def emit(start: int, end: int) -> None:
        out[start // frame_ms : end // frame_ms] = True

    builder.finish(None, emit)
    return out


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int(np.sum(predicted & truth))
    fp = int(np.sum(predicted & ~truth))
    fn = int(np.sum(~predicted & truth))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float(np.mean(predicted == truth))
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}


Detector = Callable[[np.ndarray], str]  # 16 kHz mono float audio -> "0"/"1" per 20 ms


def webrtc_detector(mode: int) -> Detector | None:
    try:
        import webrtcvad
    except ImportError:
        return None
    frame = SR // 50

    def detect(audio: np.ndarray) -> str:
        vad = webrtcvad.Vad(mode)  # a fresh one per clip: its noise estimate is state
        pcm = np.clip(audio * 32768, -32768, 32767).astype(np.int16)
        count = len(pcm) // frame
        return "".join("1" if vad.is_speech(pcm[i * frame:(i + 1) * frame].tobytes(), SR)
                       else "0" for i in range(count))

    return detect


def silero_probabilities(session: Any, audio: np.ndarray, rate: int = SR, window: int = 512,
                         context: int = 64) -> list[float]:
    """Silero v5 speech probability per ``window``-sample window (512 at 16 kHz, 256 at
    8 kHz, with ``context`` samples before it), one stream, as upstream runs it."""
    state = np.zeros((2, 1, 128), dtype=np.float32)
    previous = np.zeros(context, dtype=np.float32)
    sample_rate = np.array(rate, dtype=np.int64)
    out = []
    for i in range(0, len(audio) - window + 1, window):
        x = np.concatenate((previous, audio[i:i + window]))[None, :].astype(np.float32)
        prob, state = session.run(None, {"input": x, "state": state, "sr": sample_rate})
        previous = x[0, -context:]
        out.append(float(prob[0, 0]))
    return out


def silero_upstream_detector() -> Detector | None:
    """silero-vad itself: window probabilities through get_speech_timestamps' default rules."""
    try:
        from models.vad_silero import WINDOW, load_session
        session = load_session()
    except Exception:
        return None

    def detect(audio: np.ndarray) -> str:
        return speech_timestamps_frames(silero_probabilities(session, audio), len(audio),
                                        WINDOW)

    return detect


def speech_timestamps_frames(probabilities: list[float], samples: int, window: int,
                             rate: int = SR) -> str:
    """silero-vad's offline rule (``get_speech_timestamps``: threshold 0.5, release 0.35,
    250 ms minimum speech, 100 ms minimum silence, 30 ms padding) over per-``window``
    probabilities of ``samples`` samples at ``rate``, as 20 ms frames."""
    ms = rate // 1000
    min_speech, min_silence, pad = 250 * ms, 100 * ms, 30 * ms
    speeches: list[tuple[int, int]] = []
    start: int | None = None
    silence_from: int | None = None
    for k, p in enumerate(probabilities):
        at = k * window
        if p >= 0.5:
            silence_from = None
            if start is None:
                start = at
        elif p < 0.35 and start is not None:
            silence_from = at if silence_from is None else silence_from
            if at + window - silence_from >= min_silence:
                if silence_from - start > min_speech:
                    speeches.append((start, silence_from))
                start, silence_from = None, None
    if start is not None and samples - start > min_speech:
        speeches.append((start, samples))
    frame = 20 * ms
    frames = np.zeros(samples // frame, dtype=bool)
    for a, b in speeches:
        frames[max(a - pad, 0) // frame:min(b + pad, samples) // frame] = True
    return "".join("1" if f else "0" for f in frames)


def ten_detector() -> Detector | None:
    """TEN VAD (``ten-vad``, not a Rapport dependency: docs/vad.md, "Also tried") as its examples
    run it: 256-sample hops of 16-bit PCM, speech where the probability is at least 0.5, a
    fresh instance per clip; each 20 ms frame takes the hop holding its last sample."""
    try:
        from ten_vad import TenVad
        TenVad(256, 0.5)  # loads the native library (it needs the system's libc++1)
    except (ImportError, OSError):
        return None
    hop = 256

    def detect(audio: np.ndarray) -> str:
        vad = TenVad(hop, 0.5)
        pcm = np.clip(audio * 32768, -32768, 32767).astype(np.int16)
        flags = [vad.process(pcm[i:i + hop])[1] for i in range(0, len(pcm) - hop + 1, hop)]
        frames = len(pcm) // (SR // 50)
        at = [min(((f + 1) * (SR // 50) - 1) // hop, len(flags) - 1) for f in range(frames)]
        return "".join("1" if flags[k] == 1 else "0" for k in at) if flags else "0" * frames

    return detect


def backend_detector(backend: VadBackend) -> Detector:
    """A backend's VAD as the ingest runs it: a fresh one per clip, one 1 s batch per call,
    then the end of the stream (``finish``: its last frames)."""

    def detect(audio: np.ndarray) -> str:
        vad = backend.create()
        return "".join(vad.push(audio[i:i + SR]) for i in range(0, len(audio), SR)) \
            + vad.finish()

    return detect


def model_alone_detector() -> Detector:
    """The silero backend without its head (``head=False``: the Silero model's
    probability alone, with the rule it had before, the default until 2026-12-05), run as
    the ingest runs the default."""
    from models.vad_silero import StreamingSileroVad, load_model
    model = load_model()

    def detect(audio: np.ndarray) -> str:
        vad = StreamingSileroVad(model=model, head=False)
        return "".join(vad.push(audio[i:i + SR]) for i in range(0, len(audio), SR)) \
            + vad.finish()

    return detect


def detectors() -> tuple[dict[str, Detector], list[str]]:
    """Every detector available here, and notes on those that are not."""
    default = VadBackend()  # auto: logs a WARNING when it falls back
    found: dict[str, Detector] = {"default": backend_detector(default), "rapport": run_vad}
    missing = []
    if default.running != "silero":
        missing.append("default = rapport (silero extra missing): pip install -e "
                       "'.[silero]' && pip install --no-deps silero-vad")
    else:
        found["model alone"] = model_alone_detector()
    detect = silero_upstream_detector()
    if detect is None:
        missing.append("silero-vad: pip install -e '.[silero]' && pip install --no-deps "
                       "silero-vad")
    else:
        found["silero-vad"] = detect
    for mode in range(4):
        webrtc = webrtc_detector(mode)
        if webrtc is None:
            missing.append("webrtcvad: pip install -e '.[bench]' (webrtcvad-wheels)")
            break
        found[f"webrtcvad-{mode}"] = webrtc
    ten = ten_detector()
    if ten is None:
        missing.append("ten-vad (optional, for comparison): pip install --no-deps ten-vad, "
                       "apt-get install libc++1")
    else:
        found["ten-vad"] = ten
    return found, missing


def evaluate(clips: list[Clip], detect: Detector = run_vad) -> dict[str, dict[str, float]]:
    """Pooled frame scores per condition, raw (``cond``) and after §2 (``cond+§2``)."""
    predicted: dict[str, list[np.ndarray]] = defaultdict(list)
    truth: dict[str, list[np.ndarray]] = defaultdict(list)
    for clip in clips:
        voiced = detect(clip.audio)
        raw = np.frombuffer(voiced.encode(), dtype=np.uint8) == ord("1")
        n = min(len(raw), len(clip.labels))
        section2 = after_section2(voiced)
        for key, frames in ((clip.condition, raw), (clip.condition + "+§2", section2)):
            predicted[key].append(frames[:n])
            truth[key].append(clip.labels[:n])
    return {
        key: scores(np.concatenate(predicted[key]), np.concatenate(truth[key]))
        for key in predicted
    }


def real_time_factor(audio: np.ndarray, chunk: int, repeat: int) -> float:
    StreamingVad().push(audio[:SR])  # warm librosa (numba) and caches
    best = float("inf")
    for _ in range(repeat):
        vad = StreamingVad()
        started = time.process_time()
        for i in range(0, len(audio), chunk):
            vad.push(audio[i : i + chunk])
        best = min(best, time.process_time() - started)
    return best / (len(audio) / SR)


def detector_rtf(detect: Detector, audio: np.ndarray) -> float:
    started = time.process_time()
    detect(audio)
    return (time.process_time() - started) / (len(audio) / SR)


def silero_batch_rtf(audio: np.ndarray, streams: int = 8, chunk_ms: int = 1000,
                     head: bool = True) -> float | None:
    """CPU s per s of audio of :class:`SileroBatchVad` on ``streams`` streams fed together
    (``head=False``: the model alone, without models/vad_head.py's head)."""
    try:
        from models.vad_silero import SileroBatchVad
        vad = SileroBatchVad(streams, head=head)
    except Exception:
        return None
    chunk = SR * chunk_ms // 1000
    # Each stream its own stretch of audio (streams never in lockstep by content).
    offsets = [k * len(audio) // streams for k in range(streams)]
    looped = np.concatenate((audio, audio))
    started = time.process_time()
    for i in range(0, len(audio), chunk):
        vad.push([looped[o + i:o + i + chunk] for o in offsets])
    return (time.process_time() - started) / (streams * len(audio) / SR)


def resampler_rtf(seconds: float) -> float:
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(48_000 * seconds))).astype(np.float32)
    resampler = Resampler(48_000, SR)
    started = time.process_time()
    for i in range(0, len(audio), 960):
        resampler.process(audio[i : i + 960])
    resampler.flush()
    return (time.process_time() - started) / seconds


def rtf_line(label: str, rtf: float) -> str:
    return f"{label:<44} RTF {rtf:.5f}  ({1 / rtf:,.0f}x real time)"


def f1_table(title: str, results: dict[str, dict[str, dict[str, float]]],
             order: list[str], suffix: str = "+§2") -> None:
    names = list(results)
    print(f"\n## {title}")
    print(f"{'condition':<10}" + "".join(f"{n:>13}" for n in names))
    for condition in order:
        print(f"{condition:<10}" + "".join(
            f"{results[n][condition + suffix]['f1']:>13.3f}" for n in names))


def every_frame(audio: np.ndarray) -> str:
    """Not a detector: every frame called speech. Its F1 is ``2p / (1 + p)`` for a share ``p``
    of speech, the least a detector should beat; where the best rival scores about that, it
    is over the default by calling nearly everything speech (babble at 5 dB, mostly)."""
    return "1" * (len(audio) // (SR // 50))


def verdicts(results: dict[str, dict[str, dict[str, float]]], order: list[str]) -> None:
    """The default against the best of silero-vad and webrtcvad, per condition (issue 17);
    where the default is under, what calling every frame speech scores there."""
    rivals = [n for n in results if n.startswith(("webrtcvad", "silero-vad"))]
    if not rivals:
        return
    print("default vs the best of silero-vad and webrtcvad (F1 after §2):")
    for condition in order:
        best = max(rivals, key=lambda n: results[n][condition + "+§2"]["f1"])
        ours = results["default"][condition + "+§2"]["f1"]
        theirs = results[best][condition + "+§2"]["f1"]
        verdict = "at least" if ours >= theirs else "UNDER"
        trivial = results.get(EVERY_FRAME, {}).get(condition + "+§2", {}).get("f1")
        note = f"; every frame speech {trivial:.3f}" \
            if trivial is not None and ours < theirs else ""
        print(f"  {condition:<10} default {ours:.3f} vs {best} {theirs:.3f}: {verdict} "
              f"({ours - theirs:+.3f}{note})")


def real_clips(recordings: list[real_speech.Recording], seed: int = 0) -> list[Clip]:
    return [Clip(recording.name, condition, audio, recording.labels)
            for recording in recordings
            for condition, audio in real_speech.noisy(recording, seed).items()]


def other_seeds(recordings: list[real_speech.Recording], found: dict[str, Detector],
                order: list[str], seeds: int) -> None:
    """The verdicts again with other noise samples (seeds 10, 20...): how much of the margin
    is the particular noise."""
    rivals = [n for n in found if n.startswith(("webrtcvad", "silero-vad"))]
    if seeds < 2 or not rivals:
        return
    print("\ndefault vs the best of silero-vad and webrtcvad with other noise samples "
          "(conditions where it is under marked !):")
    for seed in range(10, 10 * seeds, 10):
        results = {name: evaluate(real_clips(recordings, seed), detect)
                   for name, detect in found.items() if name == "default" or name in rivals}
        marks = []
        for condition in order:
            ours = results["default"][condition + "+§2"]["f1"]
            best = max(results[n][condition + "+§2"]["f1"] for n in rivals)
            marks.append(f"{condition} {ours:.3f}/{best:.3f}" + ("" if ours >= best else "!"))
        print(f"  seed {seed}: " + ", ".join(marks))


def pooled_tables(title: str, recordings: list[real_speech.Recording],
                  found: dict[str, Detector], order: list[str]) -> None:
    """A set of recordings (the AMI excerpts of one split, a half of TEN VAD's test set)
    pooled, then each recording on one line: the default's F1 and the best rival's per
    condition (``!`` where the default is under)."""
    if not recordings:
        return
    rivals = [n for n in found if n.startswith(("webrtcvad", "silero-vad"))]
    per_excerpt = []
    pooled_clips = []
    for recording in recordings:
        clips = real_clips([recording])
        pooled_clips += clips
        results = {name: evaluate(clips, found[name]) for name in ["default", *rivals]}
        cells = []
        for condition in order:
            ours = results["default"][condition + "+§2"]["f1"]
            best = max((results[n][condition + "+§2"]["f1"] for n in rivals), default=ours)
            cells.append(f"{condition} {ours:.3f}/{best:.3f}" + ("!" if ours < best else ""))
        per_excerpt.append(f"  {recording.name} ({recording.labels.mean():.0%} speech): "
                           + ", ".join(cells))
    results = {name: evaluate(pooled_clips, detect) for name, detect in found.items()}
    f1_table(f"Real speech, {title} ({len(recordings)} pooled): frame F1 after §2", results,
             order)
    verdicts(results, order)
    print("each excerpt, default / best of silero-vad and webrtcvad:")
    print("\n".join(per_excerpt))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audio", type=Path, default=ROOT / "build" / "vad-audio")
    parser.add_argument("--quick", action="store_true", help="fewer timing repeats")
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="real speech: also N-1 other noise samples (verdicts only)")
    args = parser.parse_args()
    if not any(args.audio.glob("*.json")):
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "make_test_audio.py"), "--set", "bench",
             "--out", str(args.audio)],
            check=True,
        )
    clips = load_clips(args.audio)
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )
    print(f"# VAD benchmark — {cpu}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    clean = [c for c in clips if c.condition == "clean"]
    print(f"generated set: {args.audio} — {len(clean)} clean clips, {len(clips)} clips in all, "
          f"{sum(len(c.audio) for c in clean) / SR:.0f} s clean audio per condition")
    tuning, extra = real_speech.committed() + real_speech.moved(), real_speech.extra()
    validation = real_speech.validation() + extra
    ami = {"tuning": real_speech.ami("tuning"), "validation": real_speech.ami("validation")}
    ten = {half: real_speech.ten(half) for half in ("choice", "validation")}
    for recording in (tuning + validation + ami["tuning"] + ami["validation"]
                      + real_speech.held_out()):
        print(f"real speech ({recording.use}): {recording.name}, "
              f"{len(recording.audio) / SR:.1f} s, {recording.labels.mean():.0%} speech")
    if not extra:
        print(f"real speech (extra validation): none in {real_speech.extra_dir()} (NAME.flac "
              f"or NAME.wav with NAME.rttm; nothing is downloaded)")
    if ten["choice"] or ten["validation"]:
        for half, recordings in ten.items():
            print(f"real speech (TEN VAD's test set, {half} half): {len(recordings)} clips, "
                  f"{sum(len(r.audio) for r in recordings) / SR:.0f} s, "
                  f"{np.mean(np.concatenate([r.labels for r in recordings])):.0%} speech")
    else:
        print(f"real speech (TEN VAD's test set): none in {real_speech.ten_dir()} "
              f"(bench/real_speech.py says how to get it; never downloaded here)")
    found, missing = detectors()
    for note in missing:
        print(f"skipped {note}")

    audio = np.concatenate([c.audio for c in clips])  # every condition, back to back
    seconds = len(audio) / SR
    repeat = 1 if args.quick else 3
    print(f"\n## Real-time factor (CPU s per s of audio, one core; {seconds:.0f} s of audio)")
    from services.ingest.audio import AudioVadFramer
    ingest = AudioVadFramer(0).chunk_samples  # what the WebRTC ingest feeds (batch-aligned)
    for chunk in sorted({320, 1600, 3200, SR, ingest}):
        label = f"{chunk * 1000 // SR} ms chunks" + (" (the ingest's)" if chunk == ingest else "")
        rtf = real_time_factor(audio, chunk, repeat)
        print(rtf_line(f"rapport, one stream, {label}", rtf))
    print(rtf_line("Resampler 48->16 kHz, 20 ms chunks", resampler_rtf(60.0)))
    sample = audio[: SR * 120]  # two minutes for the slower detectors
    for name, detect in found.items():
        if name != "rapport":
            print(rtf_line(f"{name}, one stream" + (", 1 s chunks" if name == "default" else ""),
                           detector_rtf(detect, sample)))
    for head in (True, False):
        for chunk_ms in (100, 1000):
            batch = silero_batch_rtf(sample, chunk_ms=chunk_ms, head=head)
            if batch is not None:
                label = "silero backend" if head else "model alone"
                print(rtf_line(f"{label}, 8 streams batched, {chunk_ms} ms", batch))

    order = ["clean"] + [f"{n}{s}" for n in ("white", "pink", "babble") for s in (20, 10, 5)]
    found[EVERY_FRAME] = every_frame  # a floor in every table below, not timed
    for recording in tuning + validation:
        results = {name: evaluate(real_clips([recording]), detect)
                   for name, detect in found.items()}
        f1_table(f"Real speech, {recording.name} ({recording.use}): frame F1 after "
                 f"METRICS.md §2", results, order)
        verdicts(results, order)
        other_seeds([recording], found, order, args.seeds)
    if len(validation) > 1:
        results = {name: evaluate(real_clips(validation), detect)
                   for name, detect in found.items()}
        f1_table("Real speech, validation recordings pooled: frame F1 after §2", results,
                 order)
        verdicts(results, order)
    for use, recordings in ami.items():
        pooled_tables(f"AMI meeting excerpts ({use})", recordings, found, order)
    for half, recordings in ten.items():
        pooled_tables(f"TEN VAD's test set, {half} half (external)", recordings, found, order)
    pooled_tables("held out (pyAudioAnalysis's counting recordings; never tuned, ranked or "
                  "vetoed on)", real_speech.held_out(), found, order)

    results = {name: evaluate(clips, detect) for name, detect in found.items()}
    order = [c for c in order if c + "+§2" in results["rapport"]]
    f1_table("Generated set (espeak-ng): frame F1 after METRICS.md §2, pooled per condition",
             results, order)
    verdicts(results, order)
    f1_table("Generated set: frame F1 of the raw frames", results, order, suffix="")


if __name__ == "__main__":
    main()
