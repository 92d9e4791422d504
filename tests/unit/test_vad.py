"""The streaming VAD (models/vad.py) against labelled audio and its streaming contract.

The clips in ``tests/data/audio`` come from ``scripts/make_test_audio.py`` (espeak-ng + sox,
fixed seeds); each ``NAME.json`` holds the ground truth derived from how the clean clip was
built (see that script). Accuracy is per 20 ms frame, after METRICS.md §2 (bridging under
``min_pause_ms``, dropping IPUs under ``min_speech_ms``, through the engine's own
:class:`~models.speech.IpuBuilder`), because the labels are §2 IPUs and §2 is what the engine
applies to the VAD's frames. Raw-frame figures are printed by ``bench/vad.py``.

Thresholds are measured, not wished for (committed clips, default config, §2 accuracy):
clean 0.997 / 0.996 / 0.997 (pooled 0.997); white 0.986 / 0.983 / 0.931 and pink 0.983 /
0.983 / 0.936 at 20 / 10 / 5 dB; babble 0.939 / 0.879 / 0.830. Babble is speech-shaped noise,
so its thresholds are lower. Each assertion sits ~0.01–0.03 under the measurement, room for
platform rounding in the resampling of the test audio, not for regressions of the detector.
Babble 10 and 5 dB on this one short clip were 0.931 and 0.882 before the noise statistics
were gated and the floor window lengthened (models/vad.py, step 2): its first half second of
babble is learnt from a single sub-window, and the floor of a 5 s window lies lower under
babble. On the 12-clip bench set (bench/vad.py) the same change raised babble 10 / 5 dB F1
from 0.888 / 0.783 to 0.935 / 0.871; the minima below were lowered to the new measurements.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from models.config import EngineConfig
from models.errors import ConfigError
from models.speech import IpuBuilder
from models.vad import Resampler, StreamingVad, VadConfig, pcm16_to_mono

AUDIO = Path(__file__).resolve().parents[1] / "data" / "audio"
SR = 16_000
FRAME = 320  # samples per 20 ms frame


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(float32 audio, bool label per 20 ms frame) of a committed clip."""
    audio, rate = sf.read(AUDIO / f"{name}.flac", dtype="float32")
    assert rate == SR
    meta = json.loads((AUDIO / f"{name}.json").read_text())
    labels = np.frombuffer(meta["voiced"].encode(), dtype=np.uint8) == ord("1")
    return audio, labels


def run(audio: np.ndarray, chunk: int = SR, config: VadConfig | None = None) -> str:
    vad = StreamingVad(config)
    return "".join(vad.push(audio[i : i + chunk]) for i in range(0, len(audio), chunk))


def section2(voiced: str) -> np.ndarray:
    """Frames inside the IPUs that METRICS.md §2 builds from ``voiced`` (default thresholds)."""
    engine = EngineConfig()
    builder = IpuBuilder(engine.min_pause_ms, engine.min_speech_ms)
    flags = np.frombuffer(voiced.encode(), dtype=np.uint8) == ord("1")
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    builder.add([(int(s) * 20, int(e) * 20) for s, e in edges.reshape(-1, 2)])
    out = np.zeros(len(flags), dtype=bool)

    def emit(start: int, end: int) -> None:
        out[start // 20 : end // 20] = True

    builder.finish(None, emit)
    return out


def accuracy(name: str) -> float:
    audio, labels = load(name)
    predicted = section2(run(audio))
    assert len(predicted) == len(labels)
    return float(np.mean(predicted == labels))


# --- accuracy against the labels ---------------------------------------------------------------

CLEAN = ("f_us_fast_loud", "m_gb_slow_quiet", "f_scot_mid")


@pytest.mark.parametrize("name", CLEAN)
def test_clean_clip_accuracy(name: str) -> None:
    assert accuracy(name) >= 0.97


def test_clean_clips_pooled_accuracy_at_least_95_percent() -> None:
    hits = total = 0
    for name in CLEAN:
        audio, labels = load(name)
        predicted = section2(run(audio))
        hits += int(np.sum(predicted == labels))
        total += len(labels)
    assert hits / total >= 0.98


NOISY_MINIMA = {
    ("white", 20): 0.95, ("white", 10): 0.96, ("white", 5): 0.91,
    ("pink", 20): 0.95, ("pink", 10): 0.97, ("pink", 5): 0.90,
    ("babble", 20): 0.91, ("babble", 10): 0.85, ("babble", 5): 0.80,
}


@pytest.mark.parametrize(("noise", "snr"), sorted(NOISY_MINIMA))
def test_noisy_clip_accuracy(noise: str, snr: int) -> None:
    assert accuracy(f"f_scot_mid__{noise}{snr}") >= NOISY_MINIMA[noise, snr]


def test_labels_match_their_clips() -> None:
    for path in AUDIO.glob("*.json"):
        meta = json.loads(path.read_text())
        info = sf.info(str(path.with_suffix(".flac")))
        assert info.samplerate == SR and info.channels == 1
        assert len(meta["voiced"]) == int(info.frames) // FRAME
    assert sum(p.stat().st_size for p in AUDIO.iterdir()) < 2_000_000


def test_babble_far_from_the_talker_is_not_speech() -> None:
    # Babble 20 dB under the talker: frames more than 200 ms from any labelled speech are
    # noise alone; the broadband test (its threshold raised by babble's spread at a high
    # long-term SNR) keeps them out.
    audio, labels = load("f_scot_mid__babble20")
    predicted = section2(run(audio))
    near = np.convolve(labels, np.ones(21), mode="same") > 0  # within 10 frames of speech
    assert float(np.mean(predicted[~near])) <= 0.05


def harmonic(seconds: float, level_dbfs: float, f0: float = 150.0) -> np.ndarray:
    """A voiced-like sound: the first 20 harmonics of ``f0``, RMS at ``level_dbfs``."""
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 21))
    return np.asarray(wave / np.sqrt(np.mean(wave**2)) * 10 ** (level_dbfs / 20))


@pytest.mark.parametrize(("under_db", "kept"), [(30, True), (50, False)])
def test_a_tail_ends_the_unit_once_out_of_the_talkers_range(under_db: int, kept: bool) -> None:
    # 1 s of loud voiced sound (-10 dBFS), then 300 ms of the same sound ``under_db`` lower
    # (still above min_level_dbfs), then silence. Within talker_range_db (40) of the peak the
    # tail is speech; further under it, the unit ends with the loud part (no hangover either).
    lead, loud, tail = np.zeros(SR // 2), harmonic(1.0, -10), harmonic(0.3, -10 - under_db)
    audio = np.concatenate((lead, loud, tail, np.zeros(SR))).astype(np.float32)
    voiced = run(audio)
    end = voiced.rindex("1") + 1
    loud_end, tail_end = 75, 90  # frames: 0.5 s + 1 s, and + 0.3 s
    assert voiced[26:loud_end] == "1" * (loud_end - 26)
    assert end == (tail_end if kept else loud_end)


def harmonic_phrase(seconds: float, level_dbfs: float) -> np.ndarray:
    """A phrase spoken without a pause: voiced sound gliding around 140 Hz, its level dipping
    8 dB four times a second (syllables, never a 250 ms pause), its last 300 ms decaying with
    a 30 ms time constant (a word's tail). RMS ``level_dbfs`` before the tail."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(140 + 20 * np.sin(2 * np.pi * 0.5 * t)) / SR
    envelope = 10 ** (-4 * (1 - np.cos(2 * np.pi * 4 * t)) / 20)
    body = sum(np.sin(k * phase) / k for k in range(1, 21)) * envelope
    body *= 10 ** (level_dbfs / 20) / np.sqrt(np.mean(body[t < seconds - 0.3] ** 2))
    return np.asarray(body * np.exp(-np.maximum(t - (seconds - 0.3), 0) / 0.03))


def sound_end_ms(clean: np.ndarray) -> int:
    """Where ``clean`` stops sounding, as scripts/make_test_audio.py labels it: the end of the
    last 10 ms window (5 ms hop) within 40 dB of the loudest."""
    windows = np.lib.stride_tricks.sliding_window_view(clean, 160)[::80]
    energy_db = 10 * np.log10(np.mean(windows**2, axis=1) + 1e-20)
    last = int(np.flatnonzero(energy_db >= energy_db.max() - 40)[-1])
    return (last * 80 + 160) * 1000 // SR


@pytest.mark.parametrize("snr_db", [20, 10])
def test_a_long_phrase_in_steady_noise_is_one_unit_ending_at_its_tail(snr_db: int) -> None:
    # A 4 s phrase without a pause, in white noise at 20 / 10 dB SNR: longer than the
    # 3 s over which noise statistics are learnt, shorter than the floor window. The noise
    # statistics learn only from noise (step 2), so the phrase does not become its own
    # noise (the detector before that cut it after 3 s, with a 900 ms hole), and the unit ends
    # within 60 ms of where the labelling rule ends the tail.
    phrase = harmonic_phrase(4.0, -20)
    clean = np.concatenate((np.zeros(SR), phrase, np.zeros(2 * SR)))
    power = float(np.mean(phrase[: 3 * SR] ** 2))
    noise = np.random.default_rng(5).standard_normal(len(clean)) * np.sqrt(power)
    audio = (clean + noise * 10 ** (-snr_db / 20)).astype(np.float32)
    units = np.flatnonzero(np.diff(np.concatenate(([0], section2(run(audio)), [0]))))
    assert len(units) == 2, units * 20  # one unit
    start_ms, end_ms = int(units[0]) * 20, int(units[1]) * 20
    assert abs(start_ms - 1000) <= 60
    assert abs(end_ms - sound_end_ms(clean)) <= 60


@pytest.mark.parametrize(("under_db", "hangover"), [(35, (0, 1)), (15, (3, 6))])
def test_the_hangover_follows_the_long_term_snr(under_db: int, hangover: tuple[int, int]) -> None:
    # 2 s of voiced sound that stops dead, in white noise ``under_db`` under it. With the noise
    # 35 dB down, only the bottom ~5 dB of the talker's 40 dB range is hidden: the unit ends
    # within a frame of the sound (the two-frame analysis window carries it one frame on; a
    # fixed 100 ms hangover would end every unit 100 ms late). With the noise 15 dB down, 25 dB
    # of weak tails would be lost under it: the hangover stays.
    sound = np.concatenate((np.zeros(SR), harmonic(2.0, -10), np.zeros(SR)))
    noise = np.random.default_rng(7).standard_normal(len(sound)) * 10 ** ((-10 - under_db) / 20)
    voiced = run((sound + noise).astype(np.float32))
    late = voiced.rindex("1") + 1 - 150  # frames past the sound's end (1 s + 2 s)
    assert hangover[0] <= late <= hangover[1]


def test_the_first_quarter_second_of_a_stream_is_never_speech() -> None:
    # Nothing is known about the noise yet: the first noise_subwindow_ms (12 frames) are noise,
    # even when the talker is already speaking; from then on speech is found at once.
    audio, labels = load("f_us_fast_loud")
    first = int(np.argmax(labels))
    voiced = run(audio[first * FRAME :])
    assert labels[first : first + 30].all()
    assert voiced[:30] == "0" * 12 + "1" * 18


# --- silence and the noise floor ---------------------------------------------------------------


def test_digital_silence_and_dither_are_never_speech() -> None:
    assert run(np.zeros(5 * SR, dtype=np.float32)) == "0" * 250
    dither = np.random.default_rng(1).standard_normal(5 * SR) * 10 ** (-80 / 20)
    assert run(dither.astype(np.float32)) == "0" * 250


def pink(seconds: float, seed: int) -> np.ndarray:
    """Pink noise (1/f power) of unit RMS, by shaping white noise's spectrum."""
    n = int(seconds * SR)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise**2))


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_steady_noise_alone_is_not_speech(kind: str) -> None:
    rng = np.random.default_rng(2)
    base = rng.standard_normal(30 * SR) if kind == "white" else pink(30, 2)
    for level_dbfs in (-50, -30, -15):
        noise = (base * 10 ** (level_dbfs / 20)).astype(np.float32)
        assert not section2(run(noise)).any(), level_dbfs


def test_speech_after_a_long_stretch_of_noise_is_still_detected() -> None:
    clean, labels = load("m_gb_slow_quiet")
    mask = np.repeat(labels, FRAME)
    speech_power = float(np.mean(clean[: len(mask)][mask] ** 2))
    lead = 20 * SR  # 20 s of noise alone first
    noise = pink((lead + len(clean)) / SR, 3) * np.sqrt(speech_power / 10)  # 10 dB SNR
    audio = noise.copy()
    audio[lead:] += clean
    predicted = section2(run(audio.astype(np.float32)))
    before, after = predicted[: lead // FRAME], predicted[lead // FRAME :]
    assert not before.any()
    assert float(np.mean(after[: len(labels)] == labels)) >= 0.9


def test_floor_follows_rising_noise_within_the_window() -> None:
    config = VadConfig()
    noise = np.random.default_rng(4).standard_normal(20 * SR) * 10 ** (-50 / 20)
    noise[10 * SR :] *= 10 ** (15 / 20)  # the fan turns on: +15 dB
    voiced = run(noise.astype(np.float32), config=config)
    settled = (10 * SR) // FRAME + config.noise_window_ms // 20 + 10
    assert "1" not in voiced[:500]
    assert "1" not in voiced[settled:]


# --- streaming contract ------------------------------------------------------------------------


def _snippet() -> np.ndarray:
    audio, _ = load("f_scot_mid__white10")
    return audio[: 4 * SR]


SNIPPET = _snippet()
WHOLE = run(SNIPPET, chunk=len(SNIPPET))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2_000), min_size=1, max_size=200))
def test_output_does_not_depend_on_chunking(sizes: list[int]) -> None:
    vad = StreamingVad()
    out, i, k = [], 0, 0
    while i < len(SNIPPET):
        step = sizes[k % len(sizes)]
        out.append(vad.push(SNIPPET[i : i + step]))
        i += step
        k += 1
        if k > 10_000:  # all-zero sizes: finish in one push
            out.append(vad.push(SNIPPET[i:]))
            break
    assert "".join(out) == WHOLE


def test_every_completed_frame_is_decided_once() -> None:
    vad = StreamingVad()
    assert vad.push(SNIPPET[:319]) == ""
    assert len(vad.push(SNIPPET[319:321])) == 1
    assert len(vad.push(SNIPPET[321 : 321 + 10 * FRAME])) == 10
    assert vad.frames_decided == 11
    assert len(WHOLE) == len(SNIPPET) // FRAME


def test_deterministic_and_reset() -> None:
    vad = StreamingVad()
    first = vad.push(SNIPPET)
    vad.reset()
    assert vad.push(SNIPPET) == first == WHOLE == run(SNIPPET, chunk=FRAME)


def test_other_frame_sizes_and_rates() -> None:
    voiced = run(SNIPPET, config=VadConfig(frame_ms=10))
    assert len(voiced) == len(SNIPPET) // 160
    audio48 = np.repeat(SNIPPET, 3)  # crude 48 kHz copy: just the frame arithmetic
    vad = StreamingVad(sample_rate=48_000)
    assert len(vad.push(audio48)) == len(SNIPPET) // FRAME


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match=r"vad\.frame_ms"):
        VadConfig(frame_ms=0)
    with pytest.raises(ConfigError, match=r"vad\.noise_subwindow_ms"):
        VadConfig(noise_subwindow_ms=10)
    with pytest.raises(ConfigError, match=r"vad\.max_flatness"):
        VadConfig(max_flatness=0.0)
    with pytest.raises(ConfigError, match=r"vad\.noise_stats_window_ms"):
        VadConfig(noise_stats_window_ms=100)
    with pytest.raises(ConfigError, match=r"vad\.learn_max_speech"):
        VadConfig(learn_max_speech=1.5)
    with pytest.raises(ConfigError, match=r"vad\.continue_ratio"):
        VadConfig(continue_ratio=0.0)
    with pytest.raises(ConfigError, match=r"vad\.hangover_depth_db"):
        VadConfig(hangover_depth_db=0.0)
    with pytest.raises(ConfigError, match="sample_rate"):
        StreamingVad(sample_rate=8_001)
    with pytest.raises(ConfigError, match="sample_rate"):
        StreamingVad(sample_rate=4_000)


# --- resampling and PCM helpers ----------------------------------------------------------------


def test_resampler_is_chunk_invariant_and_time_aligned() -> None:
    t = np.arange(48_000 * 2) / 48_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    a = Resampler(48_000)
    by_frames = np.concatenate(
        [a.process(tone[i : i + 960]) for i in range(0, len(tone), 960)] + [a.flush()]
    )
    b = Resampler(48_000)
    at_once = np.concatenate([b.process(tone), b.flush()])
    assert len(by_frames) == len(at_once) == 32_000
    assert np.array_equal(by_frames, at_once)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(32_000) / 16_000)
    assert np.max(np.abs(by_frames[1000:-1000] - expected[1000:-1000])) < 0.01


def test_pcm16_to_mono_averages_channels() -> None:
    stereo = np.array([32767, -32768, 16384, 16384, 0, 0], dtype=np.int16)
    mono = pcm16_to_mono(stereo, channels=2)
    assert mono.dtype == np.float32
    assert np.allclose(mono, [-0.5 / 32768, 0.5, 0.0])


@pytest.mark.parametrize("snr_db", [20, 10])
def test_a_phrase_of_twelve_seconds_without_a_pause_is_not_cut(snr_db: int) -> None:
    # Issue 17: a phrase spoken for over 5 s without a pause (noise_window_ms) became its own
    # noise floor and was cut at about 5 s (units 1.0-5.9 s, then pieces). Neither the band
    # floors nor the noise statistics may learn the talker: one unit, ending at the tail.
    phrase = harmonic_phrase(12.0, -20)
    clean = np.concatenate((np.zeros(SR), phrase, np.zeros(2 * SR)))
    power = float(np.mean(phrase[: 3 * SR] ** 2))
    noise = np.random.default_rng(5).standard_normal(len(clean)) * np.sqrt(power)
    audio = (clean + noise * 10 ** (-snr_db / 20)).astype(np.float32)
    units = np.flatnonzero(np.diff(np.concatenate(([0], section2(run(audio)), [0]))))
    assert len(units) == 2, units * 20
    assert abs(int(units[0]) * 20 - 1000) <= 60
    assert abs(int(units[1]) * 20 - sound_end_ms(clean)) <= 60
