"""Voice activity detectors on real speech recorded quietly or loudly (issue 17): how far each
holds as a recording's level moves, and the lift a quiet file gets (models/vad_level.py).

Each real recording, clean and with white or babble noise at 10 dB (mixed at 16 kHz as
bench/vad.py mixes them, so the signal-to-noise ratio stays), is scaled by a gain (``--gains``,
dB), clipped to full scale and rounded to 16-bit steps (what a file holds), then run through
silero-vad and webrtcvad (modes 0-3) as bench/vad.py runs them, and through the default
backend after the lift ``rapport vad`` gives a file at that level: models/vad_level.py's,
with each ``--floors`` value as its floor ("none": no lift, the backend as the ingest runs it).
Per set and condition, pooled: frame F1 after METRICS.md §2 of the default and of the best
rival.

The sets come in two groups (bench/real_speech.py says what each is):

- **tuning**: the telephone sample and ``mfa_acoustic_corpus``, the AMI train excerpts, TEN
  VAD's choice half (when present). The floors are ranked on these only: by total shortfall
  under the best rival over every gain and condition, then by the smallest lift (the higher
  floor wins a tie only if it is ahead).
- **validation**: the validation recordings, the AMI development and test excerpts, TEN
  VAD's validation half. Printed for the first-ranked floor and for no lift only.

Levels for scale (models/vad_level.py ``loud_level_db``, speech near its loud end, dB full
scale): tuning recordings -7 to -45 (AMI train -28 to -45), validation -4 to -35 (AMI
development and test -22 to -35). A gain of -20 dB puts the AMI development and test excerpts
at -42 to -55.

Usage: ``.venv/bin/python bench/vad_levels.py [--gains -20 -10 0 12] [--floors none -45 -40
-35 -30 -25]`` (about five minutes on one core; ``--floors none`` alone is the
detectors-against-level table of before the lift).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from bench.vad import SR, after_section2, detectors, scores  # noqa: E402
from models.vad_level import gain, lift_db, loud_level_db  # noqa: E402

CONDITIONS = ("clean", "white10", "babble10")
Floor = float | None


def quantised(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """``audio`` times the gain, clipped to full scale and rounded to 16-bit steps."""
    scaled = np.clip(audio * 10 ** (gain_db / 20), -1.0, 32767 / 32768)
    return (np.round(scaled * 32768) / 32768).astype(np.float32)


def lifted(audio: np.ndarray, floor: Floor) -> np.ndarray:
    """``audio`` as ``rapport vad`` hands it to the VAD with ``floor`` as the level floor
    (services/cli/audio_files.py: the level of the whole file)."""
    if floor is None:
        return audio
    lift = lift_db(loud_level_db(audio, SR), floor_db=floor)
    return audio if lift == 0 else (audio * np.float32(gain(lift))).astype(np.float32)


def frames(voiced: str, labels: np.ndarray) -> np.ndarray:
    out = np.zeros(len(labels), dtype=bool)
    decided = after_section2(voiced)
    n = min(len(decided), len(out))
    out[:n] = decided[:n]
    return out


def score_set(recordings: list[real_speech.Recording], gain_db: float, floors: list[Floor],
              found: dict[str, Callable[[np.ndarray], str]], rivals: list[str]
              ) -> dict[str, tuple[float, dict[Floor, float]]]:
    """Per condition: the best rival's pooled F1, and the default's per floor."""
    out = {}
    for condition in CONDITIONS:
        predicted: dict[object, list[np.ndarray]] = {}
        truth = []
        for recording in recordings:
            audio = quantised(real_speech.noisy(recording)[condition], gain_db)
            for name in rivals:
                predicted.setdefault(name, []).append(frames(found[name](audio),
                                                             recording.labels))
            for floor in floors:
                predicted.setdefault(("default", floor), []).append(
                    frames(found["default"](lifted(audio, floor)), recording.labels))
            truth.append(recording.labels)
        labels = np.concatenate(truth)
        f1 = {key: scores(np.concatenate(p), labels)["f1"] for key, p in predicted.items()}
        best = max(f1[name] for name in rivals)
        out[condition] = (best, {floor: f1[("default", floor)] for floor in floors})
    return out


def floor_name(floor: Floor) -> str:
    return "none" if floor is None else f"{floor:+.0f} dB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gains", type=float, nargs="+", default=[-20.0, -10.0, 0.0, 12.0],
                        help="gains to score at, dB (default: %(default)s)")
    parser.add_argument("--floors", nargs="+", default=["none", "-45", "-40", "-35", "-30",
                                                        "-25"],
                        help="level floors to rank, dBFS, 'none' for no lift "
                             "(default: %(default)s)")
    args = parser.parse_args()
    floors: list[Floor] = [None if f == "none" else float(f) for f in args.floors]
    print(f"# bench/vad_levels.py, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    found, _ = detectors()
    rivals = ["silero-vad"] + [n for n in found if n.startswith("webrtcvad")]
    missing = [n for n in ["default", *rivals] if n not in found]
    if missing or len(rivals) < 2:
        sys.exit("bench/vad_levels.py: silero-vad or webrtcvad missing "
                 "(pip install -e '.[bench]')")
    tuning = {"tuning recordings": real_speech.committed() + real_speech.moved(),
              "AMI train": real_speech.ami("tuning"), "TEN choice": real_speech.ten("choice")}
    validation = {"validation recordings": real_speech.validation(),
                  "AMI dev+test": real_speech.ami("validation"),
                  "TEN validation": real_speech.ten("validation")}
    for group in (tuning, validation):
        for title in [t for t, recordings in group.items() if not recordings]:
            print(f"# {title}: absent (bench/real_speech.py says where it is looked for)")
            del group[title]

    print("\n## Tuning sets: default per floor (best rival)")
    shortfall = {floor: 0.0 for floor in floors}
    worst = {floor: 0.0 for floor in floors}
    for gain_db in args.gains:
        for title, recordings in tuning.items():
            for condition, (best, by_floor) in score_set(recordings, gain_db, floors, found,
                                                         rivals).items():
                cells = " ".join(f"{v:.3f}{'' if v >= best else '!'}" for v in by_floor.values())
                print(f"{gain_db:>+5.0f}  {title:<18} {condition:<9} {cells}  ({best:.3f})",
                      flush=True)
                for floor, value in by_floor.items():
                    shortfall[floor] += max(best - value, 0.0)
                    worst[floor] = max(worst[floor], best - value)
    print(f"# columns: floors {', '.join(floor_name(f) for f in floors)}; ! under the rival")
    # Fewer lifts first among equals: no lift, then the lowest floor.
    order = sorted(floors, key=lambda f: (round(shortfall[f], 4), -1e9 if f is None else f))
    print("\n## Floors ranked on the tuning sets (total shortfall, worst)")
    for floor in order:
        print(f"{floor_name(floor):>8}  {shortfall[floor]:.4f}  {worst[floor]:.4f}")
    chosen = order[0]
    shown = [chosen] if chosen is None else [None, chosen]
    print(f"\n## Validation sets: default with no lift and with the chosen floor "
          f"({floor_name(chosen)}) (best rival)")
    for gain_db in args.gains:
        for title, recordings in validation.items():
            for condition, (best, by_floor) in score_set(recordings, gain_db, shown, found,
                                                         rivals).items():
                cells = " ".join(f"{v:.3f}{'' if v >= best else '!'}" for v in by_floor.values())
                print(f"{gain_db:>+5.0f}  {title:<22} {condition:<9} {cells}  ({best:.3f})",
                      flush=True)


if __name__ == "__main__":
    main()
