"""Voice activity detectors on real speech recorded quietly (issue 17): how far each holds as
a recording's level falls.

Each real recording (the tuning recordings, the validation recordings and the AMI
development and test excerpts: bench/real_speech.py), clean and with white or babble noise at
10 dB (mixed at 16 kHz as bench/vad.py mixes them, so the signal-to-noise ratio stays), is
scaled by a gain (``--gains``, dB), clipped to full scale and rounded to 16-bit steps (what a
file holds), then run through the default backend, silero-vad and webrtcvad (modes 0-3) as
bench/vad.py runs them. Per set and condition, pooled: frame F1 after METRICS.md §2 of the
default and of the best rival, and whether the default is at least that.

Levels for scale (speech power over the labelled speech, dB full scale): the AMI excerpts -29
to -45, the telephone sample -32, the MFA recordings -26 to -30, CMU ARCTIC -19. A gain of
-10 dB puts the AMI development and test excerpts at -39 to -51.

Usage: ``.venv/bin/python bench/vad_levels.py [--gains -20 -10 0 12]`` (about two minutes per
gain on one core).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from bench.vad import after_section2, detectors, scores  # noqa: E402

CONDITIONS = ("clean", "white10", "babble10")


def quantised(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """``audio`` times the gain, clipped to full scale and rounded to 16-bit steps."""
    scaled = np.clip(audio * 10 ** (gain_db / 20), -1.0, 32767 / 32768)
    return (np.round(scaled * 32768) / 32768).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gains", type=float, nargs="+", default=[-20.0, -10.0, 0.0, 12.0],
                        help="gains to score at, dB (default: %(default)s)")
    args = parser.parse_args()
    print(f"# bench/vad_levels.py, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    found, _ = detectors()
    names = ["default", "silero-vad"] + [n for n in found if n.startswith("webrtcvad")]
    missing = [n for n in names if n not in found]
    if missing:
        sys.exit(f"bench/vad_levels.py: {', '.join(missing)} missing (pip install -e '.[bench]')")
    sets = {"tuning": real_speech.committed() + real_speech.moved(),
            "validation": real_speech.validation(),
            "AMI dev+test": real_speech.ami("validation")}
    print(f"{'gain':>5}  {'set':<13} {'condition':<9} {'default':>8}  best rival")
    for gain in args.gains:
        for title, recordings in sets.items():
            for condition in CONDITIONS:
                predicted: dict[str, list[np.ndarray]] = {n: [] for n in names}
                truth = []
                for recording in recordings:
                    audio = quantised(real_speech.noisy(recording)[condition], gain)
                    for name in names:
                        voiced = after_section2(found[name](audio))
                        frames = np.zeros(len(recording.labels), dtype=bool)
                        n = min(len(voiced), len(frames))
                        frames[:n] = voiced[:n]
                        predicted[name].append(frames)
                    truth.append(recording.labels)
                labels = np.concatenate(truth)
                f1 = {n: scores(np.concatenate(p), labels)["f1"] for n, p in predicted.items()}
                best, rival = max((v, n) for n, v in f1.items() if n != "default")
                verdict = "at least" if f1["default"] >= best else "UNDER"
                print(f"{gain:>+5.0f}  {title:<13} {condition:<9} {f1['default']:>8.3f}  "
                      f"{rival} {best:.3f}: {verdict}", flush=True)


if __name__ == "__main__":
    main()
