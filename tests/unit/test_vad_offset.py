"""What the silero backend's model is not shown (models/vad_offset.py): a DC offset from a
stream's first window on, the offset following a step with its documented time constant, a
line that dominates an input but not one that does not, and the same bits however a stream's
windows are cut into calls. Pure numpy: runs everywhere (``pytest tests/unit``)."""

from __future__ import annotations

import numpy as np
import pytest

from models.vad_offset import LINE_SHARE, OFFSET_RATE, OffsetTracker, detrended

SPAN = 576  # 64 samples of context and a 512-sample window


def inputs_of(audio: np.ndarray) -> np.ndarray:
    """The model's inputs over ``audio``: window k and the 64 samples before it."""
    padded = np.concatenate((np.zeros(64, dtype=np.float32), audio.astype(np.float32)))
    count = len(audio) // 512
    return np.stack([padded[k * 512 : k * 512 + SPAN] for k in range(count)])[None]


def noise(seconds: float, seed: int = 0, level: float = 0.05) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(16_000 * seconds))
            ).astype(np.float32)


def test_a_dc_offset_is_gone_from_the_first_window_on() -> None:
    audio = noise(1.0)
    plain = OffsetTracker().clean(inputs_of(audio), [0], [31])
    shifted = OffsetTracker().clean(inputs_of(audio + 0.2), [0], [31])
    # the first window's mean starts the offset: both streams see (nearly) the same inputs
    assert np.abs(shifted[0, :, 64:] - plain[0, :, 64:]).max() < 1e-5
    assert abs(float(shifted[0, 0, 64:].mean())) < 0.01


def test_the_offset_follows_a_step_at_its_rate() -> None:
    silence = np.zeros(512 * 40, dtype=np.float32)
    silence[512 * 10 :] = 0.3  # the offset jumps at window 10
    # (no line removal here, share 2: in silence the residual offset is all the input holds,
    # a dominant "line" that would go too; a line never holds more than all the power)
    out = OffsetTracker(share=2.0).clean(inputs_of(silence), [0], [40])
    residual = out[0, 10:, 64:].mean(axis=1)
    expected = 0.3 * (1 - OFFSET_RATE) ** np.arange(1, 31)
    assert residual == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_a_dominant_line_is_removed_and_a_small_one_kept() -> None:
    rng = np.random.default_rng(1)
    ramp = np.linspace(-1, 1, SPAN, dtype=np.float32)
    speech = (0.05 * rng.standard_normal(SPAN)).astype(np.float32)
    drifting = speech + 0.5 * ramp  # the line holds most of the power
    out = detrended(np.stack((drifting, speech + 0.005 * ramp)))
    assert np.abs(out[0] - speech).max() < 0.02  # back to the speech, less its own line
    assert np.array_equal(out[1], speech + 0.005 * ramp)  # under LINE_SHARE: untouched
    line_power = np.sum((0.005 * ramp) ** 2)
    assert line_power < LINE_SHARE * np.sum((speech + 0.005 * ramp) ** 2)


def test_the_same_bits_however_the_windows_come() -> None:
    audio = noise(3.0, seed=2) + np.sin(2 * np.pi * 1.5 * np.arange(48_000) / 16_000
                                        ).astype(np.float32) * 0.3
    windows = inputs_of(audio)
    whole = OffsetTracker().clean(windows.copy(), [0], [windows.shape[1]])
    tracker, parts, at = OffsetTracker(2), [], 0
    for size in (1, 7, 3, 20, 10, 52):
        part = windows[:, at : at + size]
        # stream 1 shares the calls with other audio, and has fewer windows in some
        other = inputs_of(noise(size * 512 / 16_000, seed=size))
        both = np.concatenate((part, other[:, : part.shape[1]]), axis=0)
        counts = [part.shape[1], max(part.shape[1] - 1, 1)]
        parts.append(tracker.clean(both, [0, 1], counts)[0])
        at += size
    assert np.array_equal(np.concatenate(parts), whole[0])


def test_padding_windows_of_a_shorter_stream_keep_its_offset() -> None:
    """Windows past a row's count (padding, ignored by the model) do not move its offset."""
    audio = noise(1.0, seed=3) + 0.1
    windows = inputs_of(audio)
    alone = OffsetTracker().clean(windows[:, :20].copy(), [0], [20])
    tracker = OffsetTracker()
    first = tracker.clean(windows[:, :10].copy(), [0], [10])
    padded = windows[:, 10:20].copy()
    padded[:, 5:] = 7.0  # garbage after the 5 real windows
    second = tracker.clean(padded, [0], [5])
    third = tracker.clean(windows[:, 15:20].copy(), [0], [5])
    assert np.array_equal(np.concatenate((first[0], second[0, :5], third[0])), alone[0])
