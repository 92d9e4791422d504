"""Real labelled speech for bench/vad.py and tests/unit/test_vad_real.py (issue 17 point 3).

A recording is an audio file (16 kHz or any rate libsndfile reads, resampled to 16 kHz; channels
averaged) with a reference of the same stem: an RTTM file of speaker turns (speech is the union
of the turns) or a word / phone alignment (below); speech per 20 ms frame.

- **Tuning** (``tests/data/real``, read by the tests too): the pyannote.audio wheel's
  two-speaker telephone sample (tests/data/real/README.md: source, MIT licence). The silero
  backend's decision rule was tuned on it (models/vad_silero.py).
- **AMI meeting excerpts** (``tests/data/real/ami``: pyannote.audio's debugging dataset, ten
  30-s excerpts of AMI meetings, one channel for the room, with RTTM turns; MIT / CC BY 4.0,
  README there): its train split is **tuning** data too (bench/vad_rule.py re-chose the rule
  on it with the telephone sample); its development and test excerpts
  (``tests/data/real/validation/ami``) are **validation**.
- **Validation** (``tests/data/real/validation``, committed, never tuned on;
  tests/data/real/validation/README.md: sources, licences): three recordings of one speaker
  from Montreal Forced Aligner's test data (about 25 s each: read and spontaneous speech,
  fillers, long pauses, a cough, two rooms, one with a cold), with their word alignments
  (Praat TextGrid, ``words`` tier), and one CMU ARCTIC sentence (3 s, another speaker) with its
  HTS phone labels (``NAME.lab``: start and end in 100 ns units, then the label; the phone is
  between ``-`` and ``+``).
- **TEN VAD's test set** (external, never committed, never fitted on; read only when present):
  the 30 manually labelled clips (about 4 to 16 s each, 262 s in all, read and spontaneous
  speech of many speakers, near-field; from LibriSpeech, GigaSpeech, the DNS Challenge and
  others, as its README says) of the ``testset/`` directory of github.com/TEN-framework/ten-vad,
  ``testset-audio-NN.wav`` with ``testset-audio-NN.scv`` (one line: the clip's name, then
  ``start,end,label`` triples in seconds, label 1 speech). Put them in ``$RAPPORT_TEN_TESTSET``
  or ``~/.cache/rapport/ten-vad-testset`` (``git clone https://github.com/TEN-framework/ten-vad``
  and copy ``testset/``). Not committed here: they come under Agora's licence (Apache 2.0 with
  additional conditions on deploying them), so Rapport only measures on them. :func:`ten` splits
  them by number: odd clips (``ten01``, ``ten03``...) ``"choice"``, even ones ``"validation"``
  (docs/vad.md says what each half was used for).
- **Held out** (``tests/data/real/heldout``, committed; README there: source, Apache 2.0): two
  recordings of one speaker counting aloud, from pyAudioAnalysis's data, with the authors'
  hand-labelled speech segments (RTTM). Never fitted, ranked or vetoed on: first scored on
  2026-12-07, after every setting was fixed (:func:`held_out`).
- **Extra** (never fetched at run time): any ``NAME.flac``/``NAME.wav`` with ``NAME.rttm``
  in ``$RAPPORT_REAL_SPEECH`` or ``~/.cache/rapport/real-speech``, e.g. recordings of your own
  with reference timing; validation material too. Absent, bench/vad.py says so and goes on.

Labels from alignments (:func:`alignment_units`): speech is every aligned word (TextGrid) or
phone (HTS) that is not silence (an empty interval; ``sil``, ``pau``, ``sp``) or a noise mark
in angle brackets (``<vocnoise>``: a cough is not speech); pauses under ``min_pause_ms`` (200
ms) between them are bridged and units under ``min_speech_ms`` (100 ms) dropped, as
METRICS.md §2 builds IPUs from a VAD's frames: the reference is what a perfect VAD would give
the engine, so a detector is not charged for the stop closures and breaths inside an IPU that
§2 bridges anyway. RTTM turns (the tuning recording's) are taken as they are.

Noisy copies (:func:`noisy`): white and pink noise generated here (seeded numpy), babble made
of the recording's own speech (only its labelled speech, six copies time-shifted against each
other and against the recording: real voices, not synthesis), each mixed at 20 / 10 / 5 dB
SNR, SNR being the power of the labelled speech over the noise's. Since the night of
2026-12-05, speech power is measured in the speech band, above 50 Hz (:data:`SPEECH_BAND_HZ`),
and babble is made of that band; before, both took the whole band. Some recordings carry rumble
far under any voice: 95 % of the power of ``mfa_cold_corpus``'s labelled speech lies under
50 Hz (most of it under 20 Hz), 74 % of ``mfa_cold_corpus3``'s, 36 % of TEN's ``ten11``'s.
Counted as speech, that rumble made ``mfa_cold_corpus``'s "10 dB" about -3 dB for its voice,
and its babble mostly rumble. :func:`rumble_share` gives the share; the mixes keep each
recording as it is, rumble included.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "tests" / "data" / "real"
VALIDATION = COMMITTED / "validation"
AMI = {"tuning": COMMITTED / "ami", "validation": VALIDATION / "ami"}
HELD_OUT = COMMITTED / "heldout"
# Validation recordings moved to tuning on 2026-12-05, when the silero backend's head
# (models/vad_head.py, bench/vad_head.py) was fitted: tightly labelled read speech, so that
# meeting turns (AMI's loose RTTM turns) do not teach the head to bridge every pause. Their
# earlier validation figures are in docs/vad.md; from then on they are tuning data.
MOVED_TO_TUNING = ("mfa_acoustic_corpus",)
SR = 16_000
FRAME = SR // 50  # 20 ms
NOISES = ("white", "pink", "babble")
SNRS_DB = (20, 10, 5)
# METRICS.md §2 defaults (models.config.EngineConfig), applied to alignments' units.
MIN_PAUSE_S = 0.2
MIN_SPEECH_S = 0.1
SILENCES = frozenset({"", "sil", "pau", "sp", "spn", "#"})
BABBLE_TALKERS = 6
# Lower edge of the speech band for SNR and babble (module docstring): ITU-T G.722's wideband
# speech band starts at 50 Hz, under any voice's fundamental.
SPEECH_BAND_HZ = 50.0

Audio = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Recording:
    name: str
    audio: Audio  # 16 kHz mono float
    labels: npt.NDArray[np.bool_]  # speech per 20 ms frame
    use: str  # "tuning" or "validation"


def extra_dir() -> Path:
    """Where extra recordings are looked for."""
    configured = os.environ.get("RAPPORT_REAL_SPEECH")
    return Path(configured) if configured else Path.home() / ".cache" / "rapport" / "real-speech"


def rttm_turns(path: Path) -> list[tuple[float, float]]:
    """(start, end) in seconds of every ``SPEAKER`` line of an RTTM file."""
    turns = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            turns.append((start, start + duration))
    return turns


def textgrid_words(path: Path, tier: str = "words") -> list[tuple[float, float, str]]:
    """(start, end, text) of every interval of ``tier`` in a Praat TextGrid (short or long
    text format)."""
    raw = path.read_bytes()  # Praat writes UTF-8, or UTF-16 with a byte-order mark
    text = raw.decode("utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig")
    text = re.sub(r"\[\d*\]", "", text)  # the long format's item and interval indices
    found = re.findall(
        r'"((?:[^"]|"")*)"|(?<![\w.])(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.])', text)
    tokens = [quoted.replace('""', '"') if number == "" else float(number)
              for quoted, number in found]
    at = tokens.index("IntervalTier")
    while at >= 0:
        name, count = tokens[at + 1], int(tokens[at + 4])
        if name == tier:
            rows = tokens[at + 5 : at + 5 + 3 * count]
            return [(float(rows[k]), float(rows[k + 1]), str(rows[k + 2]))
                    for k in range(0, len(rows), 3)]
        at = tokens.index("IntervalTier", at + 5) if "IntervalTier" in tokens[at + 5:] else -1
    raise ValueError(f"{path}: no interval tier {tier!r}")


def hts_phones(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, phone) of an HTS label file (full-context or mono), times in 100 ns."""
    out = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3:
            label = fields[2]
            phone = label.split("-", 1)[1].split("+", 1)[0] if "-" in label else label
            out.append((int(fields[0]) / 1e7, int(fields[1]) / 1e7, phone))
    return out


def scv_intervals(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, label) of a TEN VAD test-set label file (``.scv``: the clip's name, then
    ``start,end,label`` triples; label ``1`` is speech, returned as ``"speech"``, else ``""``)."""
    fields = path.read_text().strip().split(",")[1:]
    if len(fields) % 3:
        raise ValueError(f"{path}: {len(fields)} values after the name, not start,end,label "
                         f"triples")
    return [(float(fields[k]), float(fields[k + 1]),
             "speech" if fields[k + 2].strip() == "1" else "")
            for k in range(0, len(fields), 3)]


def alignment_units(intervals: list[tuple[float, float, str]]) -> list[tuple[float, float]]:
    """Speech units of an alignment, built as METRICS.md §2 builds IPUs (module docstring)."""
    units: list[list[float]] = []
    for start, end, text in sorted(intervals):
        label = text.strip()
        if label.lower() in SILENCES or (label.startswith("<") and label.endswith(">")):
            continue
        if units and start - units[-1][1] < MIN_PAUSE_S:
            units[-1][1] = max(units[-1][1], end)
        else:
            units.append([start, end])
    return [(a, b) for a, b in units if b - a >= MIN_SPEECH_S]


def reference_turns(path: Path) -> list[tuple[float, float]]:
    """Reference speech of ``path``: RTTM turns, or units of a TextGrid / HTS alignment."""
    if path.suffix == ".rttm":
        return rttm_turns(path)
    if path.suffix == ".TextGrid":
        return alignment_units(textgrid_words(path))
    if path.suffix == ".scv":
        # Labelled by hand at the pause level, so §2's IPUs are built from it as from an
        # alignment: a detector is not charged for the pauses under 200 ms that §2 bridges.
        return alignment_units(scv_intervals(path))
    return alignment_units(hts_phones(path))


def load(audio_path: Path, reference_path: Path, use: str) -> Recording:
    data, rate = sf.read(audio_path, dtype="float32", always_2d=True)
    mono = data.mean(axis=1).astype(np.float32)
    if rate != SR:
        mono = np.asarray(soxr.resample(mono, rate, SR, quality="HQ"), dtype=np.float32)
    labels = np.zeros(len(mono) // FRAME, dtype=bool)
    for start, end in reference_turns(reference_path):
        labels[round(start * 50) : round(end * 50)] = True
    return Recording(audio_path.stem, mono, labels, use)


def _pairs(directory: Path,
           references: tuple[str, ...] = (".rttm",)) -> list[tuple[Path, Path]]:
    out = []
    for reference in sorted(p for p in directory.iterdir() if p.suffix in references):
        audio = next((p for p in (reference.with_suffix(".flac"), reference.with_suffix(".wav"))
                      if p.exists()), None)
        if audio is not None:
            out.append((audio, reference))
    return out


def committed() -> list[Recording]:
    return [load(audio, rttm, "tuning") for audio, rttm in _pairs(COMMITTED)]


def validation() -> list[Recording]:
    """The committed validation recordings (never tuned on): those of
    tests/data/real/validation but :data:`MOVED_TO_TUNING`."""
    return [load(audio, reference, "validation")
            for audio, reference in _pairs(VALIDATION, (".TextGrid", ".lab"))
            if audio.stem not in MOVED_TO_TUNING]


def moved() -> list[Recording]:
    """The recordings of tests/data/real/validation moved to tuning (:data:`MOVED_TO_TUNING`)."""
    return [load(audio, reference, "tuning")
            for audio, reference in _pairs(VALIDATION, (".TextGrid", ".lab"))
            if audio.stem in MOVED_TO_TUNING]


def held_out() -> list[Recording]:
    """The held-out recordings of tests/data/real/heldout (its README: never fitted, ranked
    or checked against a veto on; first scored on 2026-12-07)."""
    return [load(audio, rttm, "held out") for audio, rttm in _pairs(HELD_OUT)]


def ami(use: str) -> list[Recording]:
    """The AMI meeting excerpts: ``"tuning"`` (the train split) or ``"validation"`` (the
    development and test splits)."""
    return [load(audio, rttm, use) for audio, rttm in _pairs(AMI[use])]


def ten_dir() -> Path:
    """Where TEN VAD's test set is looked for (module docstring)."""
    configured = os.environ.get("RAPPORT_TEN_TESTSET")
    return Path(configured) if configured else \
        Path.home() / ".cache" / "rapport" / "ten-vad-testset"


def ten(half: str | None = None) -> list[Recording]:
    """TEN VAD's test set when present (module docstring), each clip named ``tenNN``:
    ``half`` ``"choice"`` (odd NN), ``"validation"`` (even NN) or None (all); [] if absent."""
    directory = ten_dir()
    if not directory.is_dir():
        return []
    out = []
    for audio, reference in _pairs(directory, (".scv",)):
        number = int(re.sub(r"\D", "", audio.stem) or 0)
        use = "choice" if number % 2 else "validation"
        if half in (None, use):
            recording = load(audio, reference, use)
            out.append(Recording(f"ten{number:02d}", recording.audio, recording.labels, use))
    return out


def extra() -> list[Recording]:
    directory = extra_dir()
    return [load(audio, rttm, "validation") for audio, rttm in _pairs(directory)] \
        if directory.is_dir() else []


def white(n: int, seed: int) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).standard_normal(n)


def pink(n: int, seed: int) -> npt.NDArray[np.float64]:
    """1/f power noise, by shaping white noise's spectrum."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n)


def speech_mask(recording: Recording) -> npt.NDArray[np.bool_]:
    """Per sample: inside a labelled turn."""
    mask = np.repeat(recording.labels, FRAME)
    return np.concatenate((mask, np.zeros(len(recording.audio) - len(mask), dtype=bool)))


def speech_band(audio: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """``audio`` without what lies under :data:`SPEECH_BAND_HZ` (an FFT brick-wall high-pass)."""
    spectrum = np.fft.rfft(np.asarray(audio, dtype=np.float64))
    spectrum[np.fft.rfftfreq(len(audio), 1 / SR) < SPEECH_BAND_HZ] = 0
    return np.fft.irfft(spectrum, len(audio))


def labelled_speech(recording: Recording) -> npt.NDArray[np.float64]:
    """The samples of the recording's labelled speech, in the speech band (module docstring:
    a recording's rumble under 50 Hz is neither speech power nor babble)."""
    return speech_band(recording.audio)[speech_mask(recording)]


def rumble_share(recording: Recording) -> float:
    """The share of the labelled speech's power under :data:`SPEECH_BAND_HZ`."""
    raw = recording.audio[speech_mask(recording)].astype(np.float64)
    total = float(np.sum(raw**2))
    return 1 - float(np.sum(labelled_speech(recording) ** 2)) / total if total else 0.0


def babble(recording: Recording, n: int, seed: int,
           speech: npt.NDArray[np.float64] | None = None) -> npt.NDArray[np.float64]:
    """:data:`BABBLE_TALKERS` copies of the recording's labelled speech (in the speech band;
    ``speech``, when its :func:`labelled_speech` is at hand), looped and each shifted by its
    own random offset, summed."""
    speech = labelled_speech(recording) if speech is None else speech
    rng = np.random.default_rng(seed)
    looped = np.tile(speech, n // len(speech) + 2)
    out = np.zeros(n)
    for _ in range(BABBLE_TALKERS):
        at = int(rng.integers(0, len(speech)))
        out += looped[at : at + n]
    return out


def mix(recording: Recording, noise: npt.NDArray[np.float64], snr_db: float,
        speech_power: float | None = None) -> Audio:
    """The recording plus ``noise`` scaled so that labelled speech power (in the speech band;
    ``speech_power``, when already measured) / noise power is ``snr_db``."""
    if speech_power is None:
        speech_power = float(np.mean(labelled_speech(recording) ** 2))
    gain = np.sqrt(speech_power / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    return (recording.audio + gain * noise).astype(np.float32)


def noisy(recording: Recording, seed: int = 0) -> dict[str, Audio]:
    """``{"clean": ..., "white20": ..., ..., "babble5": ...}`` for the recording."""
    n = len(recording.audio)
    speech = labelled_speech(recording)  # one FFT of the recording, not one per mix
    noises = {"white": white(n, seed), "pink": pink(n, seed + 1),
              "babble": babble(recording, n, seed + 2, speech)}
    power = float(np.mean(speech**2))
    out = {"clean": recording.audio}
    for kind in NOISES:
        for snr in SNRS_DB:
            out[f"{kind}{snr}"] = mix(recording, noises[kind], snr, power)
    return out
