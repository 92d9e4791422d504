"""Benchmark of Rapport's voice activity detector (issue 4). Prints, in one run:

1. Real-time factor (CPU seconds per second of audio, one core, ``time.process_time``) of
   :class:`models.vad.StreamingVad` for one participant, with audio pushed in 20 ms, 100 ms and
   1 s chunks (the ingest's 48 kHz frames are 20 ms; its activity batches 1 s), and of the
   48 → 16 kHz :class:`models.vad.Resampler` in 20 ms chunks.
2. Frame accuracy, precision, recall and F1 against the labels on the generated set (clean, and
   white / pink / babble noise at 20 / 10 / 5 dB SNR), both for the VAD's raw frames and after
   METRICS.md §2 (segments bridged under ``min_pause_ms``, IPUs under ``min_speech_ms``
   dropped, through the engine's own :class:`models.speech.IpuBuilder`): the labels are IPUs,
   so the second is the like-for-like figure.

The labelled set comes from ``scripts/make_test_audio.py --set bench`` (generated into
``build/vad-audio`` on first use; espeak-ng and sox needed). Not yet compared here: webrtcvad
and silero-vad (the issue's full comparison).

Usage: ``.venv/bin/python bench/vad.py [--audio DIR] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.config import EngineConfig  # noqa: E402
from models.speech import IpuBuilder  # noqa: E402
from models.vad import Resampler, StreamingVad, VadConfig  # noqa: E402

SR = 16_000


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


def evaluate(clips: list[Clip], config: VadConfig | None = None) -> dict[str, dict[str, float]]:
    """Pooled frame scores per condition, raw (``cond``) and after §2 (``cond+§2``)."""
    predicted: dict[str, list[np.ndarray]] = defaultdict(list)
    truth: dict[str, list[np.ndarray]] = defaultdict(list)
    for clip in clips:
        voiced = run_vad(clip.audio, config)
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


def resampler_rtf(seconds: float) -> float:
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(48_000 * seconds))).astype(np.float32)
    resampler = Resampler(48_000, SR)
    started = time.process_time()
    for i in range(0, len(audio), 960):
        resampler.process(audio[i : i + 960])
    resampler.flush()
    return (time.process_time() - started) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audio", type=Path, default=ROOT / "build" / "vad-audio")
    parser.add_argument("--quick", action="store_true", help="fewer timing repeats")
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
    print(f"# VAD benchmark — {cpu}, Python {platform.python_version()}")
    clean = [c for c in clips if c.condition == "clean"]
    print(f"labelled set: {args.audio} — {len(clean)} clean clips, {len(clips)} clips in all, "
          f"{sum(len(c.audio) for c in clean) / SR:.0f} s clean audio per condition")

    audio = np.concatenate([c.audio for c in clips])  # every condition, back to back
    seconds = len(audio) / SR
    repeat = 1 if args.quick else 3
    print(f"\n## Real-time factor (CPU s per s of audio, one participant, {seconds:.0f} s)")
    for label, chunk in (("20 ms", 320), ("100 ms", 1600), ("1 s", SR)):
        rtf = real_time_factor(audio, chunk, repeat)
        print(f"VAD, {label:>6} chunks: RTF {rtf:.5f}  ({1 / rtf:,.0f}x real time)")
    rtf = resampler_rtf(60.0)
    print(f"Resampler 48->16 kHz, 20 ms chunks: RTF {rtf:.5f}  ({1 / rtf:,.0f}x real time)")

    results = evaluate(clips)
    print("\n## Frame scores vs labels (20 ms frames, pooled per condition)")
    print(f"{'condition':<12} {'acc':>6} {'prec':>6} {'rec':>6} {'F1':>6}   "
          f"{'acc §2':>6} {'prec':>6} {'rec':>6} {'F1 §2':>6}")
    order = ["clean"] + [f"{n}{s}" for n in ("white", "pink", "babble") for s in (20, 10, 5)]
    for condition in order:
        if condition not in results:
            continue
        r, s = results[condition], results[condition + "+§2"]
        print(f"{condition:<12} {r['accuracy']:6.3f} {r['precision']:6.3f} {r['recall']:6.3f} "
              f"{r['f1']:6.3f}   {s['accuracy']:6.3f} {s['precision']:6.3f} {s['recall']:6.3f} "
              f"{s['f1']:6.3f}")


if __name__ == "__main__":
    main()
