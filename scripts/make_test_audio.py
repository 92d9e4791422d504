"""Generate labelled test audio for the voice activity detector (issue 4, part 3).

Speech comes from ``espeak-ng`` (several voices, speeds and levels), resampled by ``sox`` to
16 kHz mono; white and pink noise come from ``sox synth`` in repeatable mode (``-R``); babble
is six ``espeak-ng`` talkers summed. Install the tools with ``apt-get install -y espeak-ng sox``.

Every clean clip is built from known parts: a leading silence, then utterances separated by
silences of known lengths, then a trailing silence. Its ground truth is therefore exact up to
where each utterance's sound really starts and stops, which is read off the *clean* utterance
by an energy threshold (10 ms windows, 5 ms hop; a window is sound when its energy is within
``TRIM_DB`` of the utterance's loudest window and above ``FLOOR_DBFS``). Silences inside an
utterance of at least ``min_pause_ms`` (200, METRICS.md §2.2) split it, so the labels are the
clip's inter-pausal units as §2 defines them; shorter ones are speech.

Noisy copies add white, pink or babble noise at 20, 10 and 5 dB SNR, where SNR is the clean
clip's mean power over its labelled speech divided by the noise's mean power (an active speech
level, in the spirit of ITU-T P.56). Labels of a noisy copy are those of its clean clip.

Each clip ``NAME.flac`` (16 kHz, mono, 16-bit) has ``NAME.json`` beside it::

    {"clip": NAME, "source": clean clip, "sample_rate": 16000, "duration_ms": ...,
     "speech_ms": [[start, end], ...], "frame_ms": 20, "voiced": "0011...",
     "voice": ..., "speed_wpm": ..., "gain_db": ..., "noise": null | {"type", "snr_db"}}

``voiced`` marks a 20 ms frame as speech when its centre lies inside a speech interval.

Two sets, both deterministic for a given espeak-ng/sox version (fixed seeds, ``sox -R``):

- ``--set tests`` (default) writes the small set the unit tests use into ``tests/data/audio/``
  (committed; kept under 2 MB);
- ``--set bench --out DIR`` writes a larger set (default 12 clean clips and all their noisy
  copies) for ``bench/vad.py``; it is not committed (``build/`` is git-ignored).

Usage::

    .venv/bin/python scripts/make_test_audio.py                      # tests/data/audio
    .venv/bin/python scripts/make_test_audio.py --set bench --out build/vad-audio
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SR = 16_000
FRAME_MS = 20
MIN_PAUSE_MS = 200  # METRICS.md §2.2
TRIM_DB = 40.0  # a window within this many dB of the utterance's loudest one is sound
FLOOR_DBFS = -65.0  # and above this absolute level
SNRS_DB = (20, 10, 5)
NOISES = ("white", "pink", "babble")

SENTENCES = (
    "How have you been feeling since we last spoke",
    "I keep waking up at night and I cannot get back to sleep",
    "That sounds exhausting",
    "Mm hm",
    "Can you tell me more about what goes through your mind then",
    "Mostly work, and whether I said the wrong thing to my sister",
    "Yeah",
    "It seems like those worries follow you into the night",
    "I suppose they do",
    "What would you like to be different by the end of the month",
    "Right",
    "I would like to feel calmer in the mornings",
    "Let us try a small exercise together before we finish",
    "Okay, I can do that",
    "Sometimes I think nobody notices how hard I try",
    "You said that quietly. What is it like to say it out loud",
)
BABBLE_TEXT = (
    "The weather report said it would rain all afternoon across the northern hills",
    "Please remember to bring the documents to the office on Thursday morning",
    "We walked along the river until the lights of the town came on",
    "The committee will publish its findings after the summer holidays",
    "She bought three oranges, a loaf of bread and some fresh cheese",
    "Every evening the train to the coast is delayed by a few minutes",
    "He plays the piano in a small band that meets on Fridays",
    "The library closes early during the winter months this year",
)
VOICES = (
    "en-us+f3",
    "en-gb+m3",
    "en-us+m1",
    "en-gb-scotland+f2",
    "en+klatt2",
    "en-029+f4",
)
BABBLE_VOICES = ("en-us+m2", "en-gb+f1", "en-us+f2", "en-gb+m4", "en+klatt3", "en-us+m6")
SPEEDS_WPM = (130, 160, 195)
GAINS_DB = (-3.0, -12.0, -22.0)  # utterance peak level, dBFS
SILENCES_MS = (250, 400, 700, 1000, 1500, 2500)


@dataclass(frozen=True)
class ClipSpec:
    name: str
    seed: int
    voice: str
    speed_wpm: int
    gain_db: float
    utterances: int
    # Fixed sentence indices and silences (lead, between..., trail) in ms; drawn when None.
    texts: tuple[int, ...] | None = None
    silences_ms: tuple[int, ...] | None = None


def require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: apt-get install -y espeak-ng sox")


def _wav_to_array(data: bytes) -> np.ndarray:
    samples, rate = sf.read(io.BytesIO(data), dtype="float64", always_2d=False)
    assert rate == SR, rate
    return np.asarray(samples, dtype=np.float64)


def synthesize(text: str, voice: str, speed_wpm: int) -> np.ndarray:
    """One utterance from espeak-ng, resampled by sox to 16 kHz mono (float64, -1..1)."""
    tts = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed_wpm), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    wav = subprocess.run(
        ["sox", "-t", "wav", "-", "-r", str(SR), "-c", "1", "-b", "16", "-t", "wav", "-"],
        input=tts,
        check=True,
        capture_output=True,
    ).stdout
    return _wav_to_array(wav)


def sox_noise(kind: str, seconds: float) -> np.ndarray:
    """White or pink noise from ``sox synth`` in repeatable mode (same samples every run)."""
    wav = subprocess.run(
        ["sox", "-R", "-n", "-r", str(SR), "-c", "1", "-b", "16", "-t", "wav", "-",
         "synth", f"{seconds:.3f}", f"{kind}noise"],
        check=True,
        capture_output=True,
    ).stdout
    noise = _wav_to_array(wav)
    return noise - noise.mean()


def sound_intervals(utterance: np.ndarray) -> list[tuple[int, int]]:
    """Where a clean utterance really sounds, in samples, with gaps < min_pause_ms bridged."""
    win, hop = SR // 100, SR // 200  # 10 ms windows, 5 ms hop
    if len(utterance) < win:
        return []
    frames = np.lib.stride_tricks.sliding_window_view(utterance, win)[::hop]
    energy_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    loud = (energy_db >= energy_db.max() - TRIM_DB) & (energy_db >= FLOOR_DBFS)
    intervals: list[tuple[int, int]] = []
    index = np.flatnonzero(loud)
    if not index.size:
        return []
    run_start = prev = int(index[0])
    for i in index[1:]:
        i = int(i)
        if (i - prev) * hop - win >= MIN_PAUSE_MS * SR // 1000:
            intervals.append((run_start * hop, prev * hop + win))
            run_start = i
        prev = i
    intervals.append((run_start * hop, prev * hop + win))
    return intervals


def frame_labels(speech_ms: list[list[int]], duration_ms: int) -> str:
    centres = np.arange(duration_ms // FRAME_MS) * FRAME_MS + FRAME_MS / 2
    voiced = np.zeros(len(centres), dtype=bool)
    for start, end in speech_ms:
        voiced |= (centres >= start) & (centres < end)
    return "".join("1" if v else "0" for v in voiced)


def build_clean(spec: ClipSpec) -> tuple[np.ndarray, list[list[int]]]:
    """Silence, utterances and silences of known lengths; labels from the construction."""
    rng = np.random.default_rng(spec.seed)
    parts: list[np.ndarray] = []
    speech: list[list[int]] = []
    cursor = 0

    def silence(ms: int) -> None:
        nonlocal cursor
        parts.append(np.zeros(ms * SR // 1000))
        cursor += ms * SR // 1000

    texts = spec.texts or tuple(
        int(i) for i in rng.choice(len(SENTENCES), size=spec.utterances, replace=False)
    )
    gaps = spec.silences_ms or (
        int(rng.choice((300, 600, 900))),
        *(int(rng.choice(SILENCES_MS)) for _ in texts[1:]),
        int(rng.choice((500, 800))),
    )
    assert len(gaps) == len(texts) + 1
    silence(gaps[0])
    for k, index in enumerate(texts):
        utterance = synthesize(SENTENCES[int(index)], spec.voice, spec.speed_wpm)
        # Each utterance at the clip's level, +-3 dB of variation between utterances.
        peak_db = spec.gain_db + float(rng.uniform(-3.0, 3.0))
        utterance *= 10 ** (peak_db / 20) / max(np.abs(utterance).max(), 1e-9)
        for start, end in sound_intervals(utterance):
            speech.append([(cursor + start) * 1000 // SR, -(-(cursor + end) * 1000 // SR)])
        parts.append(utterance)
        cursor += len(utterance)
        silence(gaps[k + 1])
    return np.concatenate(parts), speech


def babble(seconds: float, seed: int) -> np.ndarray:
    """Six talkers, each reading sentences back to back, at equal power, summed."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    total = np.zeros(n)
    for t, voice in enumerate(BABBLE_VOICES):
        stream: list[np.ndarray] = []
        length = 0
        order = rng.permutation(len(BABBLE_TEXT))
        k = 0
        while length < n + SR:
            text = BABBLE_TEXT[int(order[k % len(order)])]
            utt = synthesize(text, voice, int(SPEEDS_WPM[t % 3]))
            utt = utt[slice(*_trim(utt))]
            stream.append(utt)
            length += len(utt)
            k += 1
        talker = np.concatenate(stream)
        offset = int(rng.integers(0, SR))
        talker = talker[offset : offset + n]
        total += talker / np.sqrt(np.mean(talker**2))
    return total - total.mean()


def _trim(utt: np.ndarray) -> tuple[int, int]:
    intervals = sound_intervals(utt)
    return (intervals[0][0], intervals[-1][1]) if intervals else (0, len(utt))


def mix(clean: np.ndarray, noise: np.ndarray, speech: list[list[int]], snr_db: float) -> np.ndarray:
    """``clean`` + ``noise`` scaled so that speech power / noise power = ``snr_db``."""
    mask = np.zeros(len(clean), dtype=bool)
    for start, end in speech:
        mask[start * SR // 1000 : end * SR // 1000] = True
    speech_power = float(np.mean(clean[mask] ** 2))
    noise_power = float(np.mean(noise**2))
    gain = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    mixed = clean + gain * noise
    peak = float(np.abs(mixed).max())
    if peak > 0.999:  # never clip: scale the whole mixture (SNR unchanged)
        mixed *= 0.999 / peak
    return mixed


def write_clip(
    out: Path, name: str, audio: np.ndarray, speech: list[list[int]], meta: dict[str, object]
) -> None:
    duration_ms = len(audio) * 1000 // SR
    sf.write(out / f"{name}.flac", audio, SR, subtype="PCM_16", format="FLAC")
    label = {
        "clip": name,
        **meta,
        "sample_rate": SR,
        "duration_ms": duration_ms,
        "speech_ms": speech,
        "frame_ms": FRAME_MS,
        "voiced": frame_labels(speech, duration_ms),
    }
    (out / f"{name}.json").write_text(json.dumps(label, indent=1) + "\n")


def specs_for(which: str, count: int) -> list[ClipSpec]:
    if which == "tests":
        return [
            ClipSpec("f_us_fast_loud", 11, "en-us+f3", 195, -3.0, 3, (0, 3, 8),
                     (300, 700, 400, 500)),
            ClipSpec("m_gb_slow_quiet", 12, "en-gb+m3", 130, -22.0, 3, (2, 6, 12),
                     (600, 1000, 250, 500)),
            ClipSpec("f_scot_mid", 13, "en-gb-scotland+f2", 160, -12.0, 3, (7, 3, 10),
                     (500, 700, 300, 500)),
        ]
    rng = np.random.default_rng(2024)
    return [
        ClipSpec(
            f"bench{i:02d}",
            1000 + i,
            VOICES[i % len(VOICES)],
            int(rng.choice(SPEEDS_WPM)),
            float(rng.choice(GAINS_DB)),
            int(rng.integers(4, 7)),
        )
        for i in range(count)
    ]


def generate(which: str, out: Path, count: int, noisy: set[str] | None) -> None:
    """Write the clean clips of ``which`` and the noisy copies of those named in ``noisy``
    (all when None)."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("*.flac"), *out.glob("*.json")]:
        stale.unlink()
    specs = specs_for(which, count)
    built = {spec.name: (spec, *build_clean(spec)) for spec in specs}
    longest = max(len(audio) for _, audio, _ in built.values()) / SR + 2
    noises = {
        "white": sox_noise("white", longest),
        "pink": sox_noise("pink", longest),
        "babble": babble(longest, seed=7),
    }
    for name, (spec, audio, speech) in built.items():
        meta = {"source": name, "voice": spec.voice, "speed_wpm": spec.speed_wpm,
                "gain_db": spec.gain_db}
        write_clip(out, name, audio, speech, {**meta, "noise": None})
        if noisy is not None and name not in noisy:
            continue
        rng = np.random.default_rng(spec.seed)
        for kind in NOISES:
            offset = int(rng.integers(0, len(noises[kind]) - len(audio) + 1))
            noise = noises[kind][offset : offset + len(audio)]
            for snr in SNRS_DB:
                write_clip(
                    out, f"{name}__{kind}{snr}", mix(audio, noise, speech, snr), speech,
                    {**meta, "noise": {"type": kind, "snr_db": snr}},
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=("tests", "bench"), default="tests")
    parser.add_argument("--out", type=Path, help="output directory")
    parser.add_argument("--clips", type=int, default=12, help="clean clips in the bench set")
    args = parser.parse_args(argv)
    require_tools()
    if args.set == "tests":
        out = args.out or ROOT / "tests" / "data" / "audio"
        # Noisy copies of one clip only: noise does not compress, and the set must stay small.
        generate("tests", out, 0, noisy={"f_scot_mid"})
    else:
        out = args.out or ROOT / "build" / "vad-audio"
        generate("bench", out, args.clips, noisy=None)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"{out}: {len(list(out.glob('*.flac')))} clips, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
