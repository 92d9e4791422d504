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

``--ceilings`` (dBFS, ``none``) ranks level ceilings instead, with models/vad_level.py's
floor: a file whose speech peaks over the ceiling is lowered to it before the VAD
(models/vad_level.py ``level_gain_db``). Tried on 2026-12-06 and left out (docs/vad.md, "Quiet and
loud recordings").

Usage: ``.venv/bin/python bench/vad_levels.py [--gains -20 -10 0 12] [--floors none -45 -40
-35 -30 -25] [--ceilings none -20]`` (about five minutes on one core; ``--floors none`` alone
is the detectors-against-level table of before the lift).
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
from models.vad_level import LEVEL_FLOOR_DB, gain, level_gain_db, loud_level_db  # noqa: E402

CONDITIONS = ("clean", "white10", "babble10")
Floor = float | None
# A level rule: (floor, ceiling), either None for none (models/vad_level.py level_gain_db).
Rule = tuple[Floor, Floor]


def quantised(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """``audio`` times the gain, clipped to full scale and rounded to 16-bit steps."""
    scaled = np.clip(audio * 10 ** (gain_db / 20), -1.0, 32767 / 32768)
    return (np.round(scaled * 32768) / 32768).astype(np.float32)


def lifted(audio: np.ndarray, rule: Rule) -> np.ndarray:
    """``audio`` as ``rapport vad`` hands it to the VAD with ``rule``'s level floor and
    ceiling (services/cli/audio_files.py: the level of the whole file)."""
    floor, ceiling = rule
    if floor is None and ceiling is None:
        return audio
    change = level_gain_db(loud_level_db(audio, SR), floor_db=floor, ceiling_db=ceiling)
    return audio if change == 0 else (audio * np.float32(gain(change))).astype(np.float32)


def frames(voiced: str, labels: np.ndarray) -> np.ndarray:
    out = np.zeros(len(labels), dtype=bool)
    decided = after_section2(voiced)
    n = min(len(decided), len(out))
    out[:n] = decided[:n]
    return out


def score_set(recordings: list[real_speech.Recording], gain_db: float, rules: list[Rule],
              found: dict[str, Callable[[np.ndarray], str]], rivals: list[str]
              ) -> dict[str, tuple[float, dict[Rule, float]]]:
    """Per condition: the best rival's pooled F1, and the default's per level rule."""
    out = {}
    for condition in CONDITIONS:
        predicted: dict[object, list[np.ndarray]] = {}
        truth = []
        for recording in recordings:
            audio = quantised(real_speech.noisy(recording)[condition], gain_db)
            for name in rivals:
                predicted.setdefault(name, []).append(frames(found[name](audio),
                                                             recording.labels))
            for rule in rules:
                predicted.setdefault(("default", rule), []).append(
                    frames(found["default"](lifted(audio, rule)), recording.labels))
            truth.append(recording.labels)
        labels = np.concatenate(truth)
        f1 = {key: scores(np.concatenate(p), labels)["f1"] for key, p in predicted.items()}
        best = max(f1[name] for name in rivals)
        out[condition] = (best, {rule: f1[("default", rule)] for rule in rules})
    return out


def rule_name(rule: Rule) -> str:
    floor, ceiling = rule
    if floor is None and ceiling is None:
        return "none"
    return " / ".join(f"{what} {value:+.0f} dB" for what, value in (("floor", floor),
                                                                   ("ceiling", ceiling))
                      if value is not None)


def level(text: str) -> Floor:
    return None if text == "none" else float(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gains", type=float, nargs="+", default=[-20.0, -10.0, 0.0, 12.0],
                        help="gains to score at, dB (default: %(default)s)")
    parser.add_argument("--floors", nargs="+", default=["none", "-45", "-40", "-35", "-30",
                                                        "-25"],
                        help="level floors to rank, dBFS, 'none' for no lift "
                             "(default: %(default)s)")
    parser.add_argument("--ceilings", nargs="+", default=["none"],
                        help="level ceilings to rank, dBFS, 'none' for no lowering; with "
                             "ceilings the floor is models/vad_level.py's unless --floors "
                             "is given too (default: %(default)s)")
    args = parser.parse_args()
    ceilings = [level(c) for c in args.ceilings]
    floor_texts = args.floors
    if ceilings != [None] and "--floors" not in sys.argv:
        floor_texts = [str(LEVEL_FLOOR_DB)]
    rules: list[Rule] = [(level(f), c) for c in ceilings for f in floor_texts]
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

    print("\n## Tuning sets: default per level rule (best rival)")
    shortfall = {rule: 0.0 for rule in rules}
    worst = {rule: 0.0 for rule in rules}
    for gain_db in args.gains:
        for title, recordings in tuning.items():
            for condition, (best, by_rule) in score_set(recordings, gain_db, rules, found,
                                                        rivals).items():
                cells = " ".join(f"{v:.3f}{'' if v >= best else '!'}" for v in by_rule.values())
                print(f"{gain_db:>+5.0f}  {title:<18} {condition:<9} {cells}  ({best:.3f})",
                      flush=True)
                for rule, value in by_rule.items():
                    shortfall[rule] += max(best - value, 0.0)
                    worst[rule] = max(worst[rule], best - value)
    print(f"# columns: {', '.join(rule_name(r) for r in rules)}; ! under the rival")
    # Fewer changes first among equals: no ceiling, then the highest; no floor, then the
    # lowest.
    order = sorted(rules, key=lambda r: (round(shortfall[r], 4),
                                         -1e9 if r[1] is None else -r[1],
                                         -1e9 if r[0] is None else r[0]))
    print("\n## Level rules ranked on the tuning sets (total shortfall, worst)")
    for rule in order:
        print(f"{rule_name(rule):>28}  {shortfall[rule]:.4f}  {worst[rule]:.4f}")
    chosen = order[0]
    shown = [chosen] if chosen == (None, None) else [(None, None), chosen]
    print(f"\n## Validation sets: default with no level rule and with the chosen one "
          f"({rule_name(chosen)}) (best rival)")
    for gain_db in args.gains:
        for title, recordings in validation.items():
            for condition, (best, by_rule) in score_set(recordings, gain_db, shown, found,
                                                        rivals).items():
                cells = " ".join(f"{v:.3f}{'' if v >= best else '!'}" for v in by_rule.values())
                print(f"{gain_db:>+5.0f}  {title:<22} {condition:<9} {cells}  ({best:.3f})",
                      flush=True)


if __name__ == "__main__":
    main()
