"""Band evidence of the silero backend (models/vad_bands.py; issue 17): how far each band
stands above its own floor, per 512-sample window. Checked on signals whose answer is known
from their construction: a tone over white noise stands out in its band only, by its level
over the noise's in that band, until the steady sound becomes the floor; the floor follows a
louder steady background within half a second, a louder changing one within 3 s, and does
not learn a voice-like sound that pauses; digital silence is not infinitely far under a
sound, and before a stream's first sound it sets no floor; the answer never depends on how a
stream is cut."""

from __future__ import annotations

import numpy as np

from models.vad_bands import (
    BANDS_HZ,
    CAP_DB,
    FLOOR_WINDOWS,
    STEADY_WINDOWS,
    WINDOW,
    BandFloor,
    band_power,
    evidence_of,
    power_above_db,
    silent,
)

RATE = 16_000


def white(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    return level * np.random.default_rng(seed).standard_normal(int(seconds * RATE))


def tone(seconds: float, hz: float, amplitude: float) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)


def test_a_tone_over_noise_stands_out_in_its_band_by_its_level() -> None:
    noise = white(6.0, 0.01)
    audio = noise.copy()
    audio[3 * RATE:] += tone(3.0, 700.0, 0.1)  # in the 500-1000 Hz band
    evidence = evidence_of(audio)
    steady = evidence[10:90]  # noise alone, the floor settled
    start = 3 * RATE // WINDOW + 1
    on = evidence[start + 2:start + STEADY_WINDOWS - 2]  # the tone, before it is steady
    # The tone's power over the noise's in that band: a sine of amplitude A has power
    # A^2 / 2, white noise of deviation s puts s^2 * 500 / 8000 of its power in 500 Hz.
    expected = 10 * np.log10((0.1**2 / 2 + 0.01**2 * 500 / 8000) / (0.01**2 * 500 / 8000))
    assert abs(float(np.median(on[:, 2])) - expected) < 2.5
    others = [0, 1, 3, 4, 5, 6]
    assert float(np.median(on[:, others])) < 4.0  # the other bands see only the noise
    assert float(np.median(steady)) < 4.0  # noise alone stands near its own floor
    assert evidence.min() >= 0.0 and evidence.max() <= CAP_DB
    # Held steady for half a second, with the noise, in every band: a background now.
    assert float(np.median(evidence[start + STEADY_WINDOWS + 4:, 2])) < 4.0


def test_the_floor_follows_a_louder_steady_background_within_half_a_second() -> None:
    """A fan switching on (models/vad_bands.py, "A steady background")."""
    audio = np.concatenate((white(3.0, 0.001), white(6.0, 0.03, seed=1)))
    evidence = evidence_of(audio)
    step = 3 * RATE // WINDOW + 1
    assert float(np.median(evidence[step + 2:step + STEADY_WINDOWS - 2, 3])) > 20
    settled = evidence[step + STEADY_WINDOWS + 4:step + 60]  # the 3 s minimum has not
    assert float(np.median(settled)) < 4.0  # the new background is the floor now


def test_a_band_holding_nothing_does_not_keep_a_background_from_being_steady() -> None:
    """Narrowband audio (a telephone line resampled to 16 kHz) holds nothing at 4-8 kHz; that
    band's rounding noise swings by more than 6 dB, and before it counted as steady the floor
    of such audio never followed a fan (models/vad_bands.py)."""
    import soxr

    from models.vad import Resampler

    audio = np.concatenate((white(3.0, 0.001), white(6.0, 0.03, seed=1)))
    line = np.asarray(soxr.resample(audio, RATE, 8_000, quality="HQ"), dtype=np.float32)
    resampler = Resampler(8_000, RATE)  # as the ingest and `rapport vad` bring it to 16 kHz
    narrow = np.concatenate((resampler.process(line), resampler.flush()))
    evidence = evidence_of(narrow)
    step = 3 * RATE // WINDOW + 1
    assert float(np.median(evidence[step + 2:step + STEADY_WINDOWS - 2, 3])) > 20
    # Within 2 s of the step, long before the 3 s minimum would have caught up.
    assert float(np.median(evidence[step + STEADY_WINDOWS + 4:step + 60, :6])) < 4.0


def test_the_floor_follows_a_louder_changing_background_within_three_seconds() -> None:
    """Noise that keeps changing by more than the steady rule allows (here one band pulsing
    by 10 dB every 0.2 s) is followed by the minimum over 3 s alone."""
    pulse = np.repeat(np.tile([1.0, 10 ** (10 / 20)], 30), int(0.1 * RATE))[:6 * RATE]
    louder = white(6.0, 0.03, seed=1) + tone(6.0, 3_500.0, 0.2) * pulse
    audio = np.concatenate((white(3.0, 0.001), louder))
    evidence = evidence_of(audio)
    step = 3 * RATE // WINDOW + 1
    assert float(np.median(evidence[step + 5:step + 40, 3])) > 20  # louder than the floor
    settled = evidence[step + FLOOR_WINDOWS + 5:, 3]
    assert float(np.median(settled)) < 4.0  # the new background is the floor now


def voice(seconds: float, amplitude: float) -> np.ndarray:
    """A voice-like sound: harmonics of a pitch gliding between 120 and 200 Hz, in syllables
    of 200 ms (loud in their middle, faint at their edges)."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(160 + 40 * np.sin(2 * np.pi * 0.7 * t)) / RATE
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 8))
    return amplitude * harmonics * np.sin(np.pi * t / 0.2) ** 2


def test_a_voice_that_pauses_is_not_learned_as_the_floor() -> None:
    """Issue 17 point 4: 300 ms pauses in 9 s of a voice-like sound keep the floor at the
    background, so its evidence holds to the end instead of fading as a learned floor would;
    its syllables never hold every band steady, so the steady rule does not learn it
    either."""
    audio = white(10.0, 0.003)
    for start in np.arange(0.5, 9.5, 1.5):  # 1.2 s of syllables, 0.3 s pause
        at = int(start * RATE)
        audio[at:at + int(1.2 * RATE)] += voice(1.2, 0.1)
    evidence = evidence_of(audio)[:, 0]
    for start in np.arange(6.5, 9.5, 1.5):  # each late phrase's syllables still stand out
        first = int(start * RATE) // WINDOW
        assert np.percentile(evidence[first:first + int(1.2 * RATE) // WINDOW], 75) > 20


def test_digital_silence_does_not_make_every_sound_loud() -> None:
    audio = np.concatenate((white(1.0, 0.01), np.zeros(4 * RATE), white(1.0, 1e-5)))
    later = 5 * RATE // WINDOW + 1  # the first window wholly after the silence
    # -100 dBFS: under the lowest floor (-80 dBFS), so nothing over it.
    assert evidence_of(audio)[later:].max() == 0.0
    audio[5 * RATE:] = white(1.0, 1e-3)  # -60 dBFS: 20 dB over the lowest floor
    # A mute in the middle of a stream: its silence is the floor (digital silence through a
    # noise gate between phrases), but no lower than the lowest, until the steady rule takes
    # the noise as the floor.
    evidence = evidence_of(audio)[later + 3:later + STEADY_WINDOWS - 2, 3]
    assert 15 < float(np.median(evidence)) < 25


def test_a_stream_starts_at_its_first_window_that_holds_anything() -> None:
    """Digital silence before a stream's first sound (a participant joining muted), with or
    without a DC offset, says nothing of the room: the first window heard stands in for the
    windows before it, as for a stream that starts with it. Without that, a -60 dBFS room
    after 2 s of silence stood 15-25 dB over the lowest floor for 3 s."""
    # Silent: varying by no more than white noise at -80 dBFS, whatever the offset.
    for level, offset, expected in ((0.0, 0.9, True), (5e-5, -0.5, True), (2e-4, 0.0, False),
                                    (2e-4, 0.99 - 1e-3, False), (1e-3, 0.0, False)):
        windows = (offset + white(1.0, level)[: 31 * WINDOW]).astype(np.float32)
        assert (silent(windows.reshape(31, WINDOW)) == expected).all(), (level, offset)
    onset = 2 * RATE // WINDOW
    for offset in (0.0, 0.05):
        audio = np.concatenate((np.zeros(2 * RATE), white(2.0, 1e-3))) + offset
        assert silent(audio[:onset * WINDOW].reshape(onset, WINDOW)).all()
        evidence = evidence_of(audio)
        assert evidence[:onset].max() == 0.0
        # The room's own noise: within a few dB of its floor, as from a stream's start, also
        # before the steady rule would take it as the floor.
        first = evidence[onset + 3:onset + STEADY_WINDOWS - 2, 3]
        assert float(np.median(first)) < 5, offset
        alone = evidence_of(audio[onset * WINDOW:])
        assert np.array_equal(evidence[onset:], alone)
    # Cut anywhere, even with calls of silence alone before it, the same.
    audio = np.concatenate((np.zeros(2 * RATE), white(2.0, 1e-3)))
    windows = audio[: len(audio) // WINDOW * WINDOW].reshape(-1, WINDOW)
    floor, parts = BandFloor(), []
    for at in range(0, len(windows), 7):
        part = windows[at:at + 7][None]
        parts.append(floor.of_windows(part)[0])
    assert np.array_equal(np.concatenate(parts), evidence_of(audio))


def test_the_evidence_does_not_depend_on_how_the_stream_is_cut() -> None:
    audio = white(8.0, 0.01) + np.concatenate((np.zeros(3 * RATE), tone(5.0, 300.0, 0.05)))
    whole = evidence_of(audio)
    floor, parts, at = BandFloor(), [], 0
    rng = np.random.default_rng(2)
    count = len(audio) // WINDOW
    while at < count:
        size = int(rng.integers(0, 40))
        windows = audio[at * WINDOW:(at + size) * WINDOW]
        parts.append(floor.evidence(band_power(windows.reshape(-1, WINDOW))))
        at += size
    assert np.array_equal(np.concatenate(parts)[:count], whole)
    assert whole.shape == (count, len(BANDS_HZ))


def reference_evidence(power: np.ndarray) -> np.ndarray:
    """The module docstring's definition, window by window, for one stream's band powers
    ``(windows, bands)``: the first window standing in for those before it, the mean of the
    last SMOOTH, the floor the least of the last FLOOR_WINDOWS means (at least the lowest
    floor), raised to the least of the last STEADY_WINDOWS means where every band held them
    within STEADY_DB or under that lowest floor."""
    from models.vad_bands import _LOWEST, FLOOR_DBFS, SMOOTH, STEADY_DB
    assert FLOOR_DBFS < 0
    padded = np.concatenate((np.repeat(power[:1], SMOOTH - 1, axis=0), power))
    means = np.array([padded[k:k + SMOOTH].mean(axis=0) for k in range(len(power))])
    means = np.concatenate((np.repeat(means[:1], FLOOR_WINDOWS - 1, axis=0), means))
    out = []
    for k in range(len(power)):
        last = means[k:k + FLOOR_WINDOWS]
        floor = last.min(axis=0)
        recent = last[-STEADY_WINDOWS:]
        low, high = recent.min(axis=0), recent.max(axis=0)
        if np.all((high <= low * 10 ** (STEADY_DB / 10)) | (high <= _LOWEST)):
            floor = np.maximum(floor, low)
        ratio = power[k] / np.maximum(floor, _LOWEST)
        out.append(np.clip(10 * np.log10(np.maximum(ratio, 1e-12)), 0.0, CAP_DB))
    return np.array(out)


def test_the_evidence_is_its_definition() -> None:
    """A noise that steps up and a voice-like sound that pauses, against the definition
    computed the slow way (running minima and sums, in whatever way, must give it)."""
    audio = np.concatenate((white(2.0, 0.001), white(3.0, 0.03, seed=1), white(4.0, 0.01, 2)))
    voice = np.concatenate([tone(0.4, 220.0, 0.1) if k % 2 else np.zeros(int(0.3 * RATE))
                            for k in range(12)])
    audio[:len(voice)] += voice
    count = len(audio) // WINDOW
    power = band_power(audio[:count * WINDOW].reshape(count, WINDOW))
    expected = reference_evidence(power)
    assert np.allclose(evidence_of(audio), expected, rtol=0, atol=1e-9)
    assert expected.max() == CAP_DB and expected.min() == 0  # both ends are reached


def test_the_share_of_power_above_4_khz_tells_narrowband_audio() -> None:
    """White noise at 16 kHz holds half its power at and above 4 kHz (-3 dB); a 1 kHz tone
    next to nothing (its window's leakage); silence, audio shorter than one frame and a rate
    with nothing above 4 kHz to measure give no answer."""
    level = power_above_db(white(5, 0.1), RATE)
    assert level is not None and abs(level - 10 * np.log10(0.5)) < 0.2
    level = power_above_db(tone(5, 1000, 0.5), RATE)
    assert level is not None and level < -100
    assert power_above_db(np.zeros(RATE), RATE) is None
    assert power_above_db(white(0.1, 0.1), RATE) is None
    assert power_above_db(white(5, 0.1), 8_000) is None
