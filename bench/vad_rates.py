"""Voice activity detectors on files at other sample rates than 16 kHz (issue 17: "any sample
rate").

``rapport vad`` reads a file at any rate and resamples it to 16 kHz as the ingest does
(services/ingest/audio.py); at 8 kHz or less, or with nothing above 4 kHz, it runs the
narrowband path (bench/vad_narrowband.py measures that one). This script measures the rates in
between and above: each real speech set of bench/vad_narrowband.py (:data:`SETS`), clean and
with white, pink and babble noise at 20 / 10 / 5 dB (noise sample 0), is resampled from 16 kHz
to each ``--rates`` rate (soxr, very high quality), written as a 16-bit WAV and read back.

- **default**: the backend exactly as ``rapport vad FILE`` runs it
  (services/cli/audio_files.py :func:`~services.cli.audio_files.voiced_frames`: the file's
  own scan for narrowband content, the lift of a quiet file, the ingest's resampler, every
  frame decided);
- **rivals**: silero-vad and webrtcvad (modes 0-3) on the same file resampled to 16 kHz
  (soxr), which both need (webrtcvad takes 8, 16, 32 or 48 kHz; silero-vad 8 or 16 kHz).

Printed per set and condition: frame F1 after METRICS.md §2 of the default and of the best
rival, pooled over the set's recordings, then how many conditions the default is under the
best rival and by how much in all. Which sets are tuning and which validation is
bench/real_speech.py's (docs/vad.md); nothing here was fitted or ranked
on.

Usage: ``.venv/bin/python bench/vad_rates.py [--rates 11025 22050] [--sets tuning,...]``
(about five minutes per rate on one core with TEN VAD's test set; its halves are skipped
with a note when absent).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from bench import vad as bench_vad  # noqa: E402
from bench.vad import after_section2, scores  # noqa: E402
from bench.vad_fusion import ORDER, RIVALS  # noqa: E402
from bench.vad_narrowband import SETS, TITLES, set_names  # noqa: E402
from services.cli.audio_files import open_tracks, voiced_frames  # noqa: E402
from services.ingest.vad_backend import VadBackend  # noqa: E402

SR = real_speech.SR


def frames_at(rate: int, audio: np.ndarray, backend: VadBackend,
              rivals: dict[str, bench_vad.Detector], directory: Path) -> dict[str, np.ndarray]:
    """Frames after §2 of the default (``backend`` on a ``rate`` WAV of ``audio``) and of
    each rival (that WAV back at 16 kHz)."""
    low = soxr.resample(audio, SR, rate, quality="VHQ") if rate != SR else audio
    path = directory / "clip.wav"
    sf.write(path, np.clip(low, -1.0, 1.0), rate, subtype="PCM_16")
    [track] = open_tracks([str(path)])
    decided = voiced_frames(track, backend)
    out = {"default": after_section2("".join("1" if f else "0" for f in decided))}
    written, _ = sf.read(path, dtype="float32")
    back = soxr.resample(written, rate, SR, quality="VHQ") if rate != SR else written
    for name, detect in rivals.items():
        out[name] = after_section2(detect(back.astype(np.float32)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[11025, 22050],
                        help="sample rates to write the sets at (default: %(default)s)")
    parser.add_argument("--sets", default=",".join(SETS),
                        help="comma-separated sets (default: all: %(default)s)")
    args = parser.parse_args()
    names = set_names(parser, args.sets)
    print(f"# bench/vad_rates.py, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    found, missing = bench_vad.detectors()
    rivals = {name: found[name] for name in RIVALS if name in found}
    if len(rivals) < len(RIVALS):
        sys.exit(f"needs silero-vad and webrtcvad: {missing}")
    backend = VadBackend()
    print(f"default: the {backend.running} backend as rapport vad runs it")
    with tempfile.TemporaryDirectory() as scratch:
        for rate in args.rates:
            for name in names:
                recordings = SETS[name]()
                if not recordings:
                    print(f"\n## {TITLES[name]}: absent")
                    continue
                predicted: dict[tuple[str, str], list[np.ndarray]] = {}
                truth: dict[tuple[str, str], list[np.ndarray]] = {}
                for recording in recordings:
                    for condition, audio in real_speech.noisy(recording).items():
                        got = frames_at(rate, audio.astype(np.float32), backend, rivals,
                                        Path(scratch))
                        for detector, flags in got.items():
                            n = min(len(flags), len(recording.labels))
                            predicted.setdefault((condition, detector), []).append(flags[:n])
                            truth.setdefault((condition, detector), []).append(
                                recording.labels[:n])
                print(f"\n## {TITLES[name]}, at {rate} Hz ({len(recordings)} pooled): "
                      "frame F1 after §2")
                under, shortfall = 0, 0.0
                for condition in ORDER:
                    f1 = {d: scores(np.concatenate(predicted[condition, d]),
                                    np.concatenate(truth[condition, d]))["f1"]
                          for d in ("default", *rivals)}
                    best = max(rivals, key=lambda d: f1[d])
                    behind = f1["default"] < f1[best]
                    under += behind
                    shortfall += max(0.0, f1[best] - f1["default"])
                    print(f"  {condition:<9} default {f1['default']:.3f}   best rival "
                          f"{f1[best]:.3f} ({best}){'   UNDER' if behind else ''}")
                print(f"  under the best rival in {under} of {len(ORDER)}, by "
                      f"{shortfall:.4f} in all", flush=True)


if __name__ == "__main__":
    main()
