"""Voice activity detectors on music and other sounds that are not speech, real recordings
(issue 17): what each calls speech in them alone, and what each scores on real speech with
them underneath.

Every other noise the VAD figures mix under speech is white, pink or babble noise. A session's
microphone also hears music (a waiting room, a radio, a client's home) and other sounds; a
VAD that calls them speech gives a participant talk time and turns they never took. These are
recordings no one here made: librosa's example data (https://github.com/librosa/data,
``audio/*.hq.ogg``; each file's licence and author are in the ``.txt`` beside it there: CC BY,
CC BY-NC or public domain). They are never committed or downloaded here; put them in
``$RAPPORT_MUSIC`` or ``~/.cache/rapport/librosa-data``::

    git clone --depth 1 https://github.com/librosa/data /tmp/librosa-data
    mkdir -p ~/.cache/rapport/librosa-data
    cp /tmp/librosa-data/audio/*.hq.ogg ~/.cache/rapport/librosa-data/

:data:`SOUNDS` names the ten used: seven pieces of instrumental music (piano, string orchestra,
celesta and orchestra, jazz, drum and bass, solo trumpet) and three other sounds (a humpback
whale's song, a robin's call, a dog howling in its sleep); the song with a singer and the three
LibriSpeech readings there are left out. Each is split now, before anything is fitted on them,
into a **tuning** and a **validation** half (:data:`HALVES`), so that a fit on music can be
checked on pieces it never saw. Until then (2026-12-06) both halves were measured, nothing was
fitted or chosen on either; on 2026-12-07 the music gate was chosen on the tuning half.

Printed, in one run:

1. **Alone**: per sound, the share of its 20 ms frames each detector calls speech after the
   METRICS.md §2 rules (each sound a stream of its own, mono, resampled to 16 kHz).
2. **Under speech**: each real set of bench/vad_narrowband.py's (tuning and validation, TEN
   VAD's halves when present) with music underneath at 20 / 10 / 5 dB (speech power over the
   labelled speech, as bench/real_speech.py mixes noise; the set's k-th recording gets the k-th
   of the :data:`UNDER` pieces, from a point of its own, repeated to the recording's length):
   frame F1 after §2 pooled over the set, each detector, and the default against the best of
   silero-vad and webrtcvad.

3. **Without music**: each set clean and in white, pink and babble noise, the default without
   and with its music gate (models/vad_music.py, off by default), against the best rival.
4. **Speed**: the silero backend without and with the gate, 8 streams in 1 s batches on one
   core, on far-field speech and on music.

Detectors as in bench/vad.py: the default (the ``auto`` backend), the same with its music gate
(``music gate``: ``--vad-music-gate``), silero-vad, webrtcvad modes 0-3. The gate was chosen
on the tuning half of the sounds and the tuning sets only (docs/vad.md, "Music and other sounds").

Usage: ``.venv/bin/python bench/vad_music.py [--sets tuning,...]`` (about three minutes on one
core with TEN VAD's test set).
"""

from __future__ import annotations

import argparse
import os
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
from bench.vad import after_section2, scores  # noqa: E402
from bench.vad_fusion import RIVALS  # noqa: E402
from bench.vad_narrowband import SETS, TITLES, set_names  # noqa: E402

# Short name -> the file's name in librosa's data, less ``.hq.ogg``.
SOUNDS = {
    "waltz (piano)": "147793__setuniman__sweet-waltz-0i-22mi",
    "ragtime (piano)": "442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime",
    "Brahms (strings)": "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)",
    "Tchaikovsky (celesta)": "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy",
    "Vibe Ace (jazz)": "Kevin_MacLeod_-_Vibe_Ace",
    "drum and bass": "admiralbob77_-_Choice_-_Drum-bass",
    "trumpet solo": "sorohanro_-_solo-trumpet-06",
    "humpback whale": "glacier-bay-humpback",
    "robin": "456440__inspectorj__bird-whistling-robin-single-13",
    "dog howling": "pibble",
}
# Fixed on 2026-12-06 before any fit: alternate pieces of each kind.
HALVES = {
    "tuning": ("waltz (piano)", "Brahms (strings)", "Vibe Ace (jazz)", "trumpet solo",
               "humpback whale"),
    "validation": ("ragtime (piano)", "Tchaikovsky (celesta)", "drum and bass", "robin",
                   "dog howling"),
}
# Mixed under speech: the sounds of 20 s or more (the robin's call and the trumpet loop are a
# few seconds long).
UNDER = ("waltz (piano)", "ragtime (piano)", "Brahms (strings)", "Tchaikovsky (celesta)",
         "Vibe Ace (jazz)", "drum and bass", "humpback whale", "dog howling")
SNRS_DB = (20, 10, 5)
SR = real_speech.SR
GATED = "music gate"  # the default with models/vad_music.py's gate (off by default)


def width(name: str) -> int:
    """A table column's width for detector ``name``."""
    return max(13, len(name) + 2)


def gated_detector() -> bench_vad.Detector:
    """The default with the music gate (``music_gate=True``; ``--vad-music-gate``), run as the
    ingest runs it: 1 s batches, then the end of the stream."""
    from models.vad_silero import StreamingSileroVad, load_model
    model = load_model()

    def detect(audio: npt.NDArray[np.float32]) -> str:
        vad = StreamingSileroVad(model=model, music_gate=True)
        return "".join(vad.push(audio[i:i + SR]) for i in range(0, len(audio), SR)) \
            + vad.finish()

    return detect


def music_dir() -> Path:
    configured = os.environ.get("RAPPORT_MUSIC")
    return Path(configured) if configured else \
        Path.home() / ".cache" / "rapport" / "librosa-data"


def load_sounds() -> dict[str, npt.NDArray[np.float64]]:
    """The :data:`SOUNDS` found in :func:`music_dir`, mono, at 16 kHz."""
    import soundfile as sf
    import soxr

    out = {}
    for name, stem in SOUNDS.items():
        path = music_dir() / f"{stem}.hq.ogg"
        if not path.exists():
            continue
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        out[name] = np.asarray(soxr.resample(audio.mean(axis=1), rate, SR), dtype=np.float64)
    return out


def under(recording: real_speech.Recording, sound: npt.NDArray[np.float64], k: int
          ) -> npt.NDArray[np.float64]:
    """``sound`` from a point of the recording's own (``k``), repeated to its length."""
    start = (k * 7919 * 16) % max(1, len(sound) - len(recording.audio)) \
        if len(sound) > len(recording.audio) else 0
    return np.resize(sound[start:], len(recording.audio))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS),
                        help="comma-separated sets to mix music under (default: all: "
                             "%(default)s)")
    args = parser.parse_args()
    names = set_names(parser, args.sets)
    print(f"# bench/vad_music.py, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    sounds = load_sounds()
    if not sounds:
        sys.exit(f"no sounds in {music_dir()}: the module docstring says how to get them")
    found, missing = bench_vad.detectors()
    detectors = {name: found[name] for name in ("default", *RIVALS) if name in found}
    if "model alone" in found:  # the silero backend runs: its gate can be added
        detectors = {"default": detectors["default"], GATED: gated_detector(),
                     **{n: d for n, d in detectors.items() if n != "default"}}
    for note in missing:
        print(f"skipped {note}")

    print("\n## Alone: share of frames called speech after §2 (0: none)")
    print(f"{'sound':<24}{'half':<12}{'seconds':>8}"
          + "".join(f"{n:>{width(n)}}" for n in detectors))
    called = {n: [0, 0] for n in detectors}
    halves: dict[tuple[str, str], list[int]] = {}
    for name, sound in sounds.items():
        half = next(h for h, members in HALVES.items() if name in members)
        audio = sound.astype(np.float32)
        cells = []
        frames_of = {}
        for detector, detect in detectors.items():
            frames = frames_of[detector] = after_section2(detect(audio))
            called[detector][0] += int(frames.sum())
            called[detector][1] += len(frames)
            cells.append(f"{frames.mean():>{width(detector)}.3f}")
        print(f"{name:<24}{half:<12}{len(sound) / SR:>8.1f}" + "".join(cells), flush=True)
        for detector, frames in frames_of.items():
            held = halves.setdefault((detector, half), [0, 0])
            held[0] += int(frames.sum())
            held[1] += len(frames)
    print(f"{'all':<44}" + "".join(f"{c / max(n, 1):>{width(d)}.3f}"
                                    for d, (c, n) in called.items()))
    for half in HALVES:
        print(f"{half + ' half':<44}" + "".join(
            f"{halves[(d, half)][0] / max(halves[(d, half)][1], 1):>{width(d)}.3f}"
            for d in detectors))

    pieces = [sounds[name] for name in UNDER if name in sounds]
    print(f"\n## Under speech: frame F1 after §2 with music underneath ({len(pieces)} pieces)")
    print(f"{'set':<44}{'music':>7}" + "".join(f"{n:>{width(n)}}" for n in detectors) + "  default "
          "vs best rival")
    for set_name in names:
        recordings = SETS[set_name]()
        if not recordings:
            print(f"{TITLES[set_name]}: absent")
            continue
        for snr in SNRS_DB:
            predicted: dict[str, list[npt.NDArray[np.bool_]]] = {n: [] for n in detectors}
            truth = []
            for k, recording in enumerate(recordings):
                mixed = real_speech.mix(recording, under(recording, pieces[k % len(pieces)], k),
                                        snr)
                n = len(recording.labels)
                for detector, detect in detectors.items():
                    frames = after_section2(detect(mixed))[:n]
                    predicted[detector].append(np.pad(frames, (0, n - len(frames))))
                truth.append(recording.labels)
            labels = np.concatenate(truth)
            f1 = {d: scores(np.concatenate(p), labels)["f1"] for d, p in predicted.items()}
            best = max(f1[d] for d in detectors if d not in ("default", GATED))
            verdict = "at least" if f1["default"] >= best else "UNDER"
            print(f"{TITLES[set_name][:43]:<44}{snr:>5} dB" + "".join(
                f"{f1[d]:>{width(d)}.3f}" for d in detectors)
                + f"  {verdict} ({f1['default'] - best:+.3f})", flush=True)

    if GATED in detectors:
        gate_cost(names, detectors)
        speed(sounds)


def gate_cost(names: list[str], detectors: dict[str, bench_vad.Detector]) -> None:
    """What the music gate changes where there is no music: each set clean and in white, pink
    and babble noise (bench/real_speech.py), the default without and with it."""
    print("\n## Without music: frame F1 after §2, the default without and with the music gate")
    print(f"{'set':<44}{'condition':>10}{'default':>10}{GATED:>12}{'best rival':>12}"
          "  gate vs best rival")
    rivals = [d for d in detectors if d not in ("default", GATED)]
    for set_name in names:
        recordings = SETS[set_name]()
        predicted: dict[tuple[str, str], list[npt.NDArray[np.bool_]]] = {}
        truth: dict[str, list[npt.NDArray[np.bool_]]] = {}
        for recording in recordings:
            n = len(recording.labels)
            for condition, audio in real_speech.noisy(recording).items():
                for detector, detect in detectors.items():
                    frames = after_section2(detect(audio))[:n]
                    predicted.setdefault((detector, condition), []).append(
                        np.pad(frames, (0, n - len(frames))))
                truth.setdefault(condition, []).append(recording.labels)
        for condition, labels in truth.items():
            f1 = {d: scores(np.concatenate(predicted[(d, condition)]), np.concatenate(labels))
                  ["f1"] for d in detectors}
            best = max(f1[d] for d in rivals)
            verdict = "at least" if f1[GATED] >= best else "UNDER"
            print(f"{TITLES[set_name][:43]:<44}{condition:>10}{f1['default']:>10.3f}"
                  f"{f1[GATED]:>12.3f}{best:>12.3f}  {verdict} ({f1[GATED] - best:+.3f})",
                  flush=True)


def speed(sounds: dict[str, npt.NDArray[np.float64]], seconds: int = 60, streams: int = 8,
          runs: int = 3) -> None:
    """Audio seconds per CPU second of the silero backend without and with the music gate,
    ``streams`` streams in 1 s batches on one core (the ingest's batches): on real speech in
    the far field (the AMI train excerpts back to back, where the head fires most, so the gate
    counts peaks most) and on music (the tuning half), runs alternating."""
    from models.vad_silero import SileroBatchVad, load_model
    model = load_model()
    far = np.concatenate([r.audio for r in real_speech.ami("tuning")])
    music = np.concatenate([sounds[n] for n in HALVES["tuning"] if n in sounds])
    print(f"\n## Speed: {streams} streams, 1 s batches, one core, {seconds} s each, best of "
          f"{runs} (audio seconds per CPU second)")
    for label, audio in (("AMI train (far-field speech)", far), ("music, tuning half", music)):
        audio = np.tile(audio.astype(np.float32), 2)
        offsets = [k * len(audio) // (2 * streams) for k in range(streams)]
        best = {False: 0.0, True: 0.0}
        for _ in range(runs):
            for gate in (False, True):
                vad = SileroBatchVad(streams, model=model, music_gate=gate)
                started = time.process_time()
                for i in range(0, seconds * SR, SR):
                    vad.push([audio[o + i:o + i + SR] for o in offsets])
                used = time.process_time() - started
                best[gate] = max(best[gate], streams * seconds / used)
        print(f"{label:<32} default {best[False]:>7.0f}x   with the gate {best[True]:>7.0f}x "
              f"({best[True] / best[False] - 1:+.0%})", flush=True)


if __name__ == "__main__":
    main()
