"""Streaming voice activity detection for one participant's audio (issue 4, part 2).

Pure code (numpy and librosa, no I/O): :class:`StreamingVad` turns 16 kHz mono float audio into
one decision per frame of ``frame_ms`` (20 ms by default, the frame of wire ``activity`` events,
METRICS.md §1/§9), as a string of ``0``/``1`` ready for :class:`~models.events.Activity`.

How a frame is decided (all levels in dB; "dBFS": a full-scale square wave is 0 dBFS)
------------------------------------------------------------------------------------
1. **Spectrum.** Each frame is analysed with a Hann window over the frame and the one before it
   (``2 × frame_ms``, causal: nothing after the frame's end is used). Its power is summed in
   ``bands`` log-spaced bands between ``band_low_hz`` and ``band_high_hz``, where speech has
   its energy and hum, rumble and hiss matter less.
2. **Noise floor** (minimum statistics, after R. Martin, IEEE Trans. SAP 9(5), 2001). Band
   powers are smoothed over ``smooth_frames`` frames and followed in sub-windows of
   ``noise_subwindow_ms`` on the stream's own frame grid. Each band's floor is the lower of
   (a) the minimum over the last ``noise_window_ms`` plus ``noise_bias_db`` and (b) the median
   of the quietest completed sub-window in that window plus ``median_bias_db``. (b) is close to
   the mean of steady noise; (a) caps it when talk leaves no quiet sub-window. The floor
   follows falling noise at once and rising noise within ``noise_window_ms``: steady noise (a
   fan, a hiss, a room of other talkers) becomes the floor, while speech, which keeps dipping
   between syllables, does not.
3. **Score.** Per band, the SNR over that floor in dB, clipped to ``[0, snr_cap_db]``; the
   frame's score is their mean (a cheap relative of Sohn et al.'s 1999 likelihood-ratio test).
   The frame is **raw speech** when its score reaches ``speech_snr_db`` plus ``adapt_gain``
   times what noise alone scores (the lowest sub-window median score in the window, counted up
   to ``adapt_max_db``: a fluctuating noise such as babble scores a few dB over its own floor, a
   steady hiss almost nothing), its level (librosa RMS of the frame) reaches
   ``min_level_dbfs`` (so dither and near-digital silence never count), and its spectral
   flatness (librosa, over the speech band) is at most ``max_flatness``: harmonic or
   formant-shaped sound, not hiss that merely got louder.
4. **Hangover.** After a burst of at least ``hangover_after_ms`` of raw speech, up to
   ``hangover_ms`` of frames that follow stay voiced, to keep weak word endings (fricatives,
   released stops) that fall under the noise; it ends early at a frame scoring under
   ``hangover_min_db`` (nothing over the floor: the talker has stopped).

How it combines with METRICS.md §2
----------------------------------
The engine downstream merges the voiced frames into segments, bridges silences shorter than
``min_pause_ms`` (200) and drops IPUs shorter than ``min_speech_ms`` (100). The VAD's own
smoothing is therefore light and causal: no minimum-speech rule (it would delay every onset),
and a hangover only after a burst, so an isolated click of one or two frames stays below
``hangover_after_ms`` + nothing = at most 40 ms and is dropped by §2.3, unless it lies within
200 ms of real speech, where §2.2 bridges it anyway. Keep ``hangover_ms`` below ``min_pause_ms``
or the VAD, not §2, decides which pauses exist.

Streaming
---------
Decisions depend only on the samples up to the frame's end and on the frame's position on the
stream's grid, never on how the audio was cut into chunks: :meth:`StreamingVad.push` returns
exactly the same string for any chunking of the same stream. The first ``frame_ms`` of a stream
has no history, and the noise floor starts from what the first frames show, so speech in the
very first frames is found only once a quieter frame has set the floor.

:class:`Resampler` converts the WebRTC ingest's 48 kHz audio to 16 kHz in a stream (soxr, which
librosa itself uses); :func:`pcm16_to_mono` turns interleaved s16 frames into mono floats.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
from typing import Final

import librosa
import numpy as np
import numpy.typing as npt
import soxr

from models.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
_EPS: Final = 1e-20
_VOICED: Final = ("0", "1")


@dataclass(frozen=True, slots=True)
class VadConfig:
    """Thresholds of the voice activity detector (see the module docstring for each step).

    Durations are integer milliseconds (used in whole frames, rounded down), levels dB.
    Defaults were tuned on the generated labelled set (``scripts/make_test_audio.py --set
    bench``), not on the committed test clips.
    """

    frame_ms: int = 20  # one decision per frame; 10, 20 or 30 as in wire activity events (§1)
    band_low_hz: float = 250.0  # speech band analysed (Hz)
    band_high_hz: float = 4_000.0
    bands: int = 8  # log-spaced sub-bands with their own noise floor
    smooth_frames: int = 3  # band power smoothing before minimum tracking (frames)
    noise_window_ms: int = 3_000  # minimum-statistics window: rising noise adapts within this
    noise_subwindow_ms: int = 250  # the window is tracked in sub-windows of this length
    noise_bias_db: float = 8.0  # floor <= the window's minimum + this...
    median_bias_db: float = 0.0  # ...and <= the quietest sub-window's median + this
    noise_floor_dbfs: float = -100.0  # lowest noise estimate per band (digital silence)
    snr_cap_db: float = 30.0  # band SNRs are clipped to [0, this] before averaging
    speech_snr_db: float = 3.0  # score (mean band SNR over the floor, dB) for speech...
    adapt_gain: float = 2.0  # ...plus this times what noise alone scores (babble > hiss)...
    adapt_max_db: float = 6.0  # ...counted up to this (dB)
    min_level_dbfs: float = -60.0  # frames below this RMS level are never speech
    max_flatness: float = 0.3  # frames with a flatter spectrum (0..1) are never speech
    hangover_ms: int = 80  # frames kept voiced after a burst...
    hangover_after_ms: int = 60  # ...of at least this much raw speech...
    hangover_min_db: float = 0.3  # ...until a frame scores less (no sound over the floor)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"vad.{f.name}", f"must be a number, got {value!r}")
        if self.frame_ms <= 0:
            raise ConfigError("vad.frame_ms", "must be > 0")
        for name in ("noise_window_ms", "noise_subwindow_ms", "hangover_ms", "hangover_after_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"vad.{name}", "must be >= 0")
        if not self.frame_ms <= self.noise_subwindow_ms <= self.noise_window_ms:
            raise ConfigError(
                "vad.noise_subwindow_ms", "must be between frame_ms and noise_window_ms"
            )
        if not 0 < self.band_low_hz < self.band_high_hz:
            raise ConfigError("vad.band_high_hz", "must exceed band_low_hz > 0")
        if self.bands < 1 or self.smooth_frames < 1:
            raise ConfigError("vad.bands", "bands and smooth_frames must be >= 1")
        if not 0 < self.max_flatness <= 1:
            raise ConfigError("vad.max_flatness", "must be in (0, 1]")

    def frames(self, ms: int) -> int:
        """``ms`` in whole frames (rounded down)."""
        return ms // self.frame_ms


class StreamingVad:
    """Causal per-participant VAD: :meth:`push` audio, get a ``0``/``1`` per completed frame.

    ``sample_rate`` (Hz) must give whole samples per frame and exceed twice ``band_high_hz``.
    One instance per participant stream; not thread-safe.
    """

    def __init__(self, config: VadConfig | None = None, sample_rate: int = 16_000) -> None:
        self.config = config = config or VadConfig()
        if sample_rate <= 0 or (sample_rate * config.frame_ms) % 1000:
            raise ConfigError("sample_rate", "must give whole samples per frame")
        if sample_rate < 2 * config.band_high_hz:
            raise ConfigError("sample_rate", "must be at least twice vad.band_high_hz")
        self.sample_rate = sample_rate
        self.frame_samples = n = sample_rate * config.frame_ms // 1000
        self._window = np.hanning(2 * n + 1)[:-1]  # periodic Hann over two frames
        freqs = np.fft.rfftfreq(2 * n, 1.0 / sample_rate)
        edges_hz = np.geomspace(config.band_low_hz, config.band_high_hz, config.bands + 1)
        edges = np.searchsorted(freqs, edges_hz)
        # Guarantee at least one FFT bin per band, even at low resolutions.
        for i in range(1, len(edges)):
            edges[i] = max(edges[i], edges[i - 1] + 1)
        self._lo, self._hi = int(edges[0]), int(edges[-1])
        self._starts = (edges[:-1] - edges[0]).astype(np.intp)
        self._widths = np.diff(edges).astype(np.float64)
        # Power of the Hann-windowed frame -> mean square of the signal (Parseval, window gain).
        self._power_scale = 2.0 / float(np.sum(self._window**2)) / (2 * n)
        self._bias = 10 ** (config.noise_bias_db / 10)
        self._median_bias = 10 ** (config.median_bias_db / 10)
        self._floor = 10 ** (config.noise_floor_dbfs / 10)
        self._min_level = 10 ** (config.min_level_dbfs / 10)  # as mean square
        self._subwindow = config.frames(config.noise_subwindow_ms)
        self._subwindows = max(config.noise_window_ms // config.noise_subwindow_ms, 1)
        self._hang_frames = config.frames(config.hangover_ms)
        self._burst_frames = max(config.frames(config.hangover_after_ms), 1)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: buffered samples, noise floor, hangover, frame count."""
        n, bands = self.frame_samples, self.config.bands
        self._pending = np.zeros(0, dtype=np.float64)
        self._history = np.zeros(n, dtype=np.float64)  # the previous frame's samples
        self._power_history = np.zeros((self.config.smooth_frames - 1, bands))
        self._frame_index = 0
        self._minima: deque[FloatArray] = deque(maxlen=self._subwindows)
        self._medians: deque[FloatArray] = deque(maxlen=self._subwindows)
        self._window_min = np.full(bands, np.inf)
        self._window_median = np.full(bands, np.inf)
        self._sub_rows = np.zeros((self._subwindow, bands))
        self._sub_scores = np.zeros(self._subwindow)
        self._noise_scores: deque[float] = deque(maxlen=self._subwindows)
        self._threshold = self.config.speech_snr_db
        self._current_min = np.full(bands, np.inf)
        self._run = 0  # consecutive raw speech frames
        self._hang = 0  # hangover frames left
        self._last_scores = np.zeros(0)

    @property
    def frames_decided(self) -> int:
        """Frames decided since the start (or :meth:`reset`): the next frame's grid index."""
        return self._frame_index

    def push(self, samples: npt.ArrayLike) -> str:
        """Add mono samples (float, -1..1); return one ``0``/``1`` per frame they complete."""
        chunk = np.asarray(samples, dtype=np.float64).reshape(-1)
        pending = np.concatenate((self._pending, chunk)) if self._pending.size else chunk
        n = self.frame_samples
        count = len(pending) // n
        self._pending = pending[count * n :].copy()
        if count == 0:
            return ""
        frames = pending[: count * n].reshape(count, n)
        raw = self._raw_decisions(frames)
        return self._hangover(raw)

    def _raw_decisions(self, frames: FloatArray) -> list[bool]:
        config = self.config
        count, n = frames.shape
        # Two-frame causal windows: the previous frame's samples, then this frame's.
        joined = np.concatenate((self._history, frames.reshape(-1)))
        self._history = frames[-1].copy()
        windows = np.lib.stride_tricks.sliding_window_view(joined, 2 * n)[::n][:count]
        spectrum = np.abs(np.fft.rfft(windows * self._window, axis=-1))[:, self._lo : self._hi]
        power = spectrum**2 * self._power_scale
        band = np.add.reduceat(power, self._starts, axis=1) / self._widths
        # librosa features, frames along the last axis as librosa expects (views, no copies).
        level = librosa.feature.rms(y=frames.reshape(-1), frame_length=n, hop_length=n,
                                    center=False)[0, :count] ** 2
        flatness = librosa.feature.spectral_flatness(S=spectrum.T, power=2.0, amin=1e-12)[0]
        # Causal moving average of band power over smooth_frames (elementwise sums of shifted
        # rows, so the result never depends on where chunks were cut).
        padded = np.concatenate((self._power_history, band))
        smoothed = padded[: len(band)].copy()
        for shift in range(1, config.smooth_frames):
            smoothed += padded[shift : shift + len(band)]
        smoothed /= config.smooth_frames
        if config.smooth_frames > 1:
            self._power_history = padded[-(config.smooth_frames - 1) :].copy()
        score, threshold = self._score(band, smoothed)
        speech = (
            (score >= threshold)
            & (level >= self._min_level)
            & (flatness <= config.max_flatness)
        )
        self._last_scores = score
        return speech.tolist()  # type: ignore[no-any-return]

    def _score(self, band: FloatArray, smoothed: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Each frame's score and the threshold it must reach (steps 2 and 3)."""
        config = self.config
        score = np.empty(len(band))
        threshold = np.empty(len(band))
        i = 0
        while i < len(band):
            # One stretch within one sub-window: the floor from the completed sub-windows is
            # fixed; the current sub-window's running minimum can only lower it.
            position = self._frame_index % self._subwindow
            take = min(self._subwindow - position, len(band) - i)
            rows = smoothed[i : i + take]
            running = np.minimum.accumulate(rows, axis=0)
            np.minimum(running, self._current_min, out=running)
            noise = np.minimum(running, self._window_min) * self._bias
            if self._medians:
                noise = np.minimum(noise, self._window_median)
            np.maximum(noise, self._floor, out=noise)
            snr_db = 10 * np.log10(np.maximum(band[i : i + take], _EPS) / noise)
            part = np.clip(snr_db, 0.0, config.snr_cap_db).mean(axis=1)
            score[i : i + take] = part
            threshold[i : i + take] = self._threshold
            self._current_min = running[-1].copy()
            self._sub_rows[position : position + take] = rows
            self._sub_scores[position : position + take] = part
            self._frame_index += take
            i += take
            if self._frame_index % self._subwindow == 0:
                self._close_subwindow()
        return score, threshold

    def _close_subwindow(self) -> None:
        config = self.config
        self._minima.append(self._current_min)
        self._medians.append(np.median(self._sub_rows, axis=0) * self._median_bias)
        self._noise_scores.append(float(np.median(self._sub_scores)))
        self._window_min = np.min(np.stack(self._minima), axis=0)
        self._window_median = np.min(np.stack(self._medians), axis=0)
        # How far noise alone scores over its own floor (fluctuating noise such as babble
        # scores higher than a steady hiss): the quietest sub-window's median score.
        spread = min(min(self._noise_scores), config.adapt_max_db)
        self._threshold = config.speech_snr_db + config.adapt_gain * spread
        self._current_min = np.full(config.bands, np.inf)

    def _hangover(self, raw: list[bool]) -> str:
        out: list[str] = []
        run, hang = self._run, self._hang
        burst, hang_frames = self._burst_frames, self._hang_frames
        floor = self.config.hangover_min_db
        for speech, score in zip(raw, self._last_scores.tolist(), strict=True):
            if speech:
                run += 1
                if run >= burst:
                    hang = hang_frames
                out.append("1")
            else:
                run = 0
                if hang and score >= floor:
                    hang -= 1
                    out.append("1")
                else:
                    hang = 0
                    out.append("0")
        self._run, self._hang = run, hang
        return "".join(out)


def pcm16_to_mono(pcm: npt.ArrayLike, channels: int = 1) -> npt.NDArray[np.float32]:
    """Interleaved signed 16-bit PCM (e.g. aiortc's s16 frames) -> mono float32 in -1..1,
    averaging the channels."""
    data = np.asarray(pcm, dtype=np.int16).reshape(-1, channels).astype(np.float32)
    mono = data.mean(axis=1) if channels > 1 else data[:, 0]
    return (mono / 32768.0).astype(np.float32)


class Resampler:
    """Streaming sample-rate conversion (soxr, high quality), state kept across chunks.

    The output is the same whatever the chunking, and time-aligned with the input (output
    sample ``k`` is at ``k / out_rate`` s), but it is held back by the filter's look-ahead
    (about 21 ms for 48 → 16 kHz): :meth:`process` returns what is ready, :meth:`flush` the
    rest at the end of the stream.
    """

    def __init__(self, in_rate: int, out_rate: int = 16_000) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ConfigError("sample_rate", "rates must be > 0")
        self.in_rate, self.out_rate = in_rate, out_rate
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")

    def process(self, samples: npt.ArrayLike) -> npt.NDArray[np.float32]:
        chunk = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if self.in_rate == self.out_rate:
            return chunk
        return np.asarray(self._stream.resample_chunk(chunk), dtype=np.float32)

    def flush(self) -> npt.NDArray[np.float32]:
        """The samples still held back; the stream is finished afterwards."""
        if self.in_rate == self.out_rate:
            return np.zeros(0, dtype=np.float32)
        empty = np.zeros(0, dtype=np.float32)
        return np.asarray(self._stream.resample_chunk(empty, last=True), dtype=np.float32)
