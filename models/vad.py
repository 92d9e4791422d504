"""Streaming voice activity detection for one participant's audio (issue 4, part 2).

Pure code (numpy and librosa, no I/O): :class:`StreamingVad` turns 16 kHz mono float audio into
one decision per frame of ``frame_ms`` (20 ms by default, the frame of wire ``activity`` events,
METRICS.md §1/§9), as a string of ``0``/``1`` ready for :class:`~models.events.Activity`.

How a frame is decided (all levels in dB; "dBFS": a full-scale square wave is 0 dBFS)
------------------------------------------------------------------------------------
1. **Spectrum and features.** Each frame is analysed with a Hann window over the frame and the
   one before it (``2 × frame_ms``, causal: nothing after the frame's end is used). Its power
   is summed in ``bands`` log-spaced bands between ``band_low_hz`` and ``band_high_hz``, where
   speech has its energy and hum, rumble and hiss matter less, and over the whole of that band
   ("broadband"). librosa gives the frame's level (RMS of the frame's own samples) and the
   spectral flatness of the speech band (from the spectrum already computed, ``S=``).
2. **Noise floor** (minimum statistics, after R. Martin, IEEE Trans. SAP 9(5), 2001). Band
   powers are smoothed over ``smooth_frames`` frames and followed in sub-windows of
   ``noise_subwindow_ms`` on the stream's own frame grid. Each band's floor is the lower of
   (a) the minimum over the last ``noise_window_ms`` plus ``noise_bias_db`` and (b) the median
   of the quietest completed sub-window in that window plus ``median_bias_db``. (b) is close to
   the mean of steady noise; (a) caps it when talk leaves no quiet sub-window. The floor
   follows falling noise at once and rising noise within ``noise_window_ms``: steady noise (a
   fan, a hiss, a room of other talkers) becomes the floor, while speech, which keeps dipping
   between syllables, does not. The broadband power has a floor of its own, tracked the same
   way (the quietest sub-window's median, capped by the running minimum plus
   ``noise_bias_db``): summed over many FFT bins it fluctuates far less than a narrow band, so
   its floor sits close to the noise's true median, where the per-band floors lie several dB
   under a fluctuating noise such as babble.
   What noise alone looks like (step 3's noise score, the broadband floor and spread of step 4)
   comes from the last ``noise_stats_window_ms`` and is learnt only from sub-windows in which
   the detector found at most ``learn_max_speech`` of the frames to be speech, as the G.729
   Annex B and AMR VADs update their noise statistics only in non-speech frames: otherwise a
   talker who speaks for seconds without a pause becomes their own noise, and the weak ends
   of their words fall under the raised thresholds. The band floors learn the same way (a
   speech sub-window counts as the floor last learnt): before issue 17 they learnt every
   sub-window, and a phrase spoken for over ``noise_window_ms`` without a pause became its
   own floor and was cut at about 5 s. While there is nothing to learn from, floors and
   statistics hold, for ``noise_hold_ms`` at most (then the next sub-window is learnt
   whatever it holds, so they can never lock onto an early sample); the statistics already
   after ``noise_window_ms`` from a sub-window whose broadband median lies within
   ``relearn_max_db`` of the broadband floor (babble taken for speech, not a talker over the
   noise). A learnt sub-window's noise score is measured against the floor known when it
   closes, not the one still forming while it ran. Falling noise lowers the floors at once
   (the current sub-window's running minimum); rising noise that is not taken for speech is
   followed within ``noise_window_ms``, rising noise taken for speech within
   ``noise_hold_ms``.
3. **Band score.** Per band, the SNR over that band's floor in dB, clipped to
   ``[0, snr_cap_db]``; the frame's score is their mean (a cheap relative of Sohn et al.'s 1999
   likelihood-ratio test). It must reach ``speech_snr_db`` plus ``adapt_gain`` times what noise
   alone scores (the lowest sub-window median score in the window, counted up to
   ``adapt_max_db``: babble scores a few dB over its own floor, a steady hiss almost nothing).
   This test finds speech deep in steady noise, where a few bands carry it.
4. **Broadband SNR.** The frame's broadband power over the broadband floor must reach
   ``broadband_snr_db`` plus ``broadband_gain`` times the noise's *spread* (how far the quietest
   sub-window's 90th percentile lies over its median, up to ``broadband_max_db``: about 1 dB for
   hiss, 3–4 dB for babble), weighted by the long-term SNR (the talker's peak, step 5, over the
   broadband floor): not at all under ``ramp_low_db``, in full from ``ramp_high_db``. So
   babble that is far under the talker cannot pass for speech, while at low SNR, where every
   dB of threshold costs speech, the test relaxes (the long-term-SNR-dependent thresholds of
   the ITU-T G.729 Annex B and 3GPP AMR VADs work the same way).
5. **Level.** The frame is speech only if its level reaches ``min_level_dbfs`` (dither and
   near-digital silence never count) and lies within ``talker_range_db`` of the talker's
   recent peak (the loudest frame level in the last ``talker_window_ms``). The second test ends
   units where the labelled set (scripts/make_test_audio.py) ends them, at the point a word's
   decaying tail falls 40 dB under the utterance's peak; a fixed absolute level would keep the
   tails of loud talkers (60–150 ms late ends) and cut those of quiet ones.
6. **Flatness.** Its spectral flatness must be at most ``max_flatness``: harmonic, formant-
   or fricative-shaped sound, not white hiss that merely got louder (white noise scores about
   0.6 in this band, vowels under 0.1, fricatives 0.2–0.45).
7. **Continuation.** A frame that follows a voiced frame stays voiced when it passes steps 3
   and 4 at ``continue_ratio`` times their thresholds (and steps 5 and 6 as they are): the
   decaying end of a word, over the noise but under what an onset must show (a two-threshold,
   hysteresis decision, cheaper than Sohn et al.'s HMM hangover and in the same spirit: a
   frame next to speech is more likely speech).
8. **Hangover.** After a burst of at least ``hangover_after_ms`` of raw speech (steps 3–6 all
   met), frames that follow the last voiced one stay voiced for a while, to keep weak word
   endings (fricatives, released stops) that fall under the noise; it ends early at a frame
   scoring under ``hangover_min_db`` (nothing over the floor: the talker has stopped) or
   outside the talker's range (step 5). Its length follows the long-term SNR (step 4's): a
   unit ends where its tail falls ``talker_range_db`` under the talker's peak (step 5), and
   the noise hides the part of that range under its floor, ``talker_range_db`` minus the
   long-term SNR. The hangover is ``hangover_ms`` once that hidden part is
   ``hangover_depth_db`` deep or more, none when nothing is hidden, and in proportion between
   (on the clean labelled speech, the last 20 dB of a tail last 80 ms at the median and
   100 ms at the 75th percentile, the last 7 dB 0 ms and 20 ms): in quiet rooms the tails are
   followed down by steps 3–7 and a fixed hangover would only make every unit end late.

How it combines with METRICS.md §2
----------------------------------
The engine downstream merges the voiced frames into segments, bridges silences shorter than
``min_pause_ms`` (200) and drops IPUs shorter than ``min_speech_ms`` (100). The VAD's own
smoothing is therefore light and causal: no minimum-speech rule (it would delay every onset),
and a hangover only after a burst, so an isolated click of one or two frames stays below
``hangover_after_ms`` + nothing = at most 40 ms and is dropped by §2.3, unless it lies within
200 ms of real speech, where §2.2 bridges it anyway. Keep ``hangover_ms`` (100) below
``min_pause_ms`` (200) or the VAD, not §2, decides which pauses exist (step 7 can only extend
a unit while the frames still show sound over the noise).

Streaming
---------
Decisions depend only on the samples up to the frame's end and on the frame's position on the
stream's grid, never on how the audio was cut into chunks: :meth:`StreamingVad.push` returns
exactly the same string for any chunking of the same stream. Nothing is known about the noise
when a stream starts, so its first ``noise_subwindow_ms`` (250 ms) are never speech: they are
taken as noise and learnt as such whatever they hold (a participant who has just joined is
rarely talking yet; babble or a fan in those frames would otherwise pass for speech, and the
statistics learnt from speech frames would be wrong from the start).

Cost is mostly per call (numpy and librosa overhead on small arrays), not per frame: feed the
largest chunks latency allows (the WebRTC ingest feeds one ``batch_ms`` batch per call,
services/ingest/audio.py; bench/vad.py prints the real-time factor per chunk size).

:class:`Resampler` converts the WebRTC ingest's 48 kHz audio to 16 kHz in a stream (soxr, which
librosa itself uses); :func:`pcm16_to_mono` turns interleaved s16 frames into mono floats.
"""

from __future__ import annotations

import math
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
# Per frame: raw speech, may continue a unit, may be covered by a hangover, hangover length.
_Frames = tuple[list[bool], list[bool], list[bool], list[int]]


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
    # Minimum-statistics window: rising noise adapts within this. Longer than a phrase spoken
    # without a 250 ms pause (3-4 s is common), or a long phrase becomes its own noise floor.
    noise_window_ms: int = 5_000
    noise_subwindow_ms: int = 250  # the window is tracked in sub-windows of this length
    # What noise alone scores, its broadband floor and spread (steps 2-4): the quietest learnt
    # sub-window of this window. A minimum over more sub-windows lies lower under a
    # fluctuating noise (babble's quietest moments), so this stays at 3 s while the band
    # floors' window grows.
    noise_stats_window_ms: int = 3_000
    noise_bias_db: float = 8.0  # floor <= the window's minimum + this...
    median_bias_db: float = 0.0  # ...and <= the quietest sub-window's median + this
    learn_max_speech: float = 0.1  # noise statistics and band floors learn from sub-windows
    # with at most this fraction (0..1) of speech frames (1: from every sub-window)...
    # ...and hold while none qualifies, for this long at most (then the next sub-window is
    # learnt whatever it holds). Longer than any phrase spoken without a pause (issue 17: at
    # the 5 s of noise_window_ms, a phrase of over 5 s became its own floor and was cut).
    noise_hold_ms: int = 20_000
    relearn_max_db: float = 6.0  # but see _close_subwindow: after noise_window_ms, a
    # sub-window within this of the broadband floor (dB) is learnt anyway
    noise_floor_dbfs: float = -100.0  # lowest noise estimate per band (digital silence)
    snr_cap_db: float = 30.0  # band SNRs are clipped to [0, this] before averaging
    speech_snr_db: float = 3.0  # score (mean band SNR over the floor, dB) for speech...
    adapt_gain: float = 2.0  # ...plus this times what noise alone scores (babble > hiss)...
    adapt_max_db: float = 6.0  # ...counted up to this (dB)
    broadband_snr_db: float = 3.0  # whole-band SNR over its own floor (dB) for speech...
    broadband_gain: float = 2.5  # ...plus this times the noise's spread (its sub-window's
    broadband_max_db: float = 6.0  # 90th percentile over its median), counted up to this...
    ramp_low_db: float = 20.0  # ...not at all while the talker's peak is under this many dB
    ramp_high_db: float = 30.0  # over the floor, in full from this (linear in between)
    talker_window_ms: int = 10_000  # the talker's level: the loudest frame in this window...
    talker_range_db: float = 40.0  # ...frames this far under it are never speech
    min_level_dbfs: float = -65.0  # frames below this RMS level are never speech
    max_flatness: float = 0.5  # frames with a flatter spectrum (0..1) are never speech
    continue_ratio: float = 0.5  # after a voiced frame, this times steps 3-4's thresholds
    hangover_ms: int = 100  # frames kept voiced after a burst (below min_pause_ms, §2)...
    hangover_after_ms: int = 60  # ...of at least this much raw speech...
    hangover_min_db: float = 0.3  # ...until a frame scores less or leaves the talker's range;
    hangover_depth_db: float = 20.0  # all of hangover_ms once the noise hides this many dB of
    # talker_range_db (talker_range_db - long-term SNR), none when it hides none, linear between

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"vad.{f.name}", f"must be a number, got {value!r}")
        if self.frame_ms <= 0:
            raise ConfigError("vad.frame_ms", "must be > 0")
        for name in ("noise_window_ms", "noise_subwindow_ms", "hangover_ms", "hangover_after_ms",
                     "talker_window_ms", "talker_range_db"):
            if getattr(self, name) < 0:
                raise ConfigError(f"vad.{name}", "must be >= 0")
        if not self.frame_ms <= self.noise_subwindow_ms <= self.noise_window_ms:
            raise ConfigError(
                "vad.noise_subwindow_ms", "must be between frame_ms and noise_window_ms"
            )
        if not self.noise_subwindow_ms <= self.noise_hold_ms:
            raise ConfigError("vad.noise_hold_ms", "must be >= noise_subwindow_ms")
        if not self.noise_subwindow_ms <= self.noise_stats_window_ms:
            raise ConfigError("vad.noise_stats_window_ms", "must be >= noise_subwindow_ms")
        if not 0 < self.band_low_hz < self.band_high_hz:
            raise ConfigError("vad.band_high_hz", "must exceed band_low_hz > 0")
        if self.bands < 1 or self.smooth_frames < 1:
            raise ConfigError("vad.bands", "bands and smooth_frames must be >= 1")
        if not 0 < self.max_flatness <= 1:
            raise ConfigError("vad.max_flatness", "must be in (0, 1]")
        if not 0 <= self.learn_max_speech <= 1:
            raise ConfigError("vad.learn_max_speech", "must be in [0, 1]")
        if not 0 < self.continue_ratio <= 1:
            raise ConfigError("vad.continue_ratio", "must be in (0, 1]")
        if self.hangover_depth_db <= 0:
            raise ConfigError("vad.hangover_depth_db", "must be > 0")

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
        self._talker_range = 10 ** (-config.talker_range_db / 10)
        self._snr_cap = config.snr_cap_db / 10  # band SNRs are summed in bels, then scaled
        self._db_per_band = 10.0 / config.bands
        self._subwindow = config.frames(config.noise_subwindow_ms)
        self._subwindows = max(config.noise_window_ms // config.noise_subwindow_ms, 1)
        self._stats_subwindows = max(config.noise_stats_window_ms // config.noise_subwindow_ms, 1)
        self._talker_subwindows = max(config.talker_window_ms // config.noise_subwindow_ms, 1)
        self._learn_frames = config.learn_max_speech * self._subwindow
        self._hold_subwindows = max(config.noise_hold_ms // config.noise_subwindow_ms, 1)
        self._relearn = 10 ** (config.relearn_max_db / 10)
        self._burst_frames = max(config.frames(config.hangover_after_ms), 1)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: buffered samples, noise floor, hangover, frame count."""
        n, bands = self.frame_samples, self.config.bands
        self._pending = np.zeros(0, dtype=np.float64)
        self._history = np.zeros(n, dtype=np.float64)  # the previous frame's samples
        self._power_history = np.zeros((self.config.smooth_frames - 1, bands))
        self._frame_index = 0
        # Per completed sub-window of the noise window (ring buffers, oldest overwritten).
        self._closed = 0  # sub-windows completed so far
        self._minima = np.full((self._subwindows, bands), np.inf)
        self._medians = np.full((self._subwindows, bands), np.inf)
        self._window_min = np.full(bands, np.inf)
        self._window_median = np.full(bands, np.inf)
        self._sub_rows = np.zeros((self._subwindow, bands))
        self._sub_band = np.zeros((self._subwindow, bands))
        self._sub_broadband = np.zeros(self._subwindow)
        self._sub_speech = 0  # raw speech frames in the current sub-window
        self._unlearnt = 0  # sub-windows closed since the last one learnt (statistics)
        self._unheld = 0  # the same for the band floors
        self._noise_scores: deque[float] = deque(maxlen=self._stats_subwindows)
        self._wide_medians: deque[float] = deque(maxlen=self._stats_subwindows)
        self._wide_spreads: deque[float] = deque(maxlen=self._stats_subwindows)
        self._wide_floor = np.inf
        self._current_wide_min = np.inf
        self._talker_peaks: deque[float] = deque(maxlen=self._talker_subwindows)
        self._threshold = self.config.speech_snr_db
        self._broadband_threshold = self.config.broadband_snr_db
        # Until the long-term SNR is known, the whole hangover.
        self._hang_frames = self.config.frames(self.config.hangover_ms)
        self._window_peak = 0.0
        self._current_min = np.full(bands, np.inf)
        self._current_peak = 0.0
        self._run = 0  # consecutive raw speech frames
        self._hang = 0  # hangover frames left
        self._voiced = False  # the last frame's decision

    @property
    def frames_decided(self) -> int:
        """Frames decided since the start (or :meth:`reset`): the next frame's grid index."""
        return self._frame_index

    def finish(self) -> str:
        """The end of the stream: nothing more to decide, as every whole frame was decided
        when it completed (a frame the audio does not fill is not decided)."""
        return ""

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
        return self._hangover(*self._raw_decisions(frames))

    def _raw_decisions(self, frames: FloatArray) -> _Frames:
        """Per frame: raw speech (steps 1-6), whether it may continue a unit (step 7), whether a
        hangover may cover it and how long a hangover it arms (step 8)."""
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
        if config.smooth_frames > 1:
            padded = np.concatenate((self._power_history, band))
            smoothed = padded[: len(band)].copy()
            for shift in range(1, config.smooth_frames):
                smoothed += padded[shift : shift + len(band)]
            smoothed /= config.smooth_frames
            self._power_history = padded[-(config.smooth_frames - 1) :].copy()
        else:
            smoothed = band
        return self._decide(band, smoothed, level, flatness <= config.max_flatness)

    def _decide(self, band: FloatArray, smoothed: FloatArray, level: FloatArray,
                shaped: npt.NDArray[np.bool_]) -> _Frames:
        """Steps 2-8's per-frame inputs, one sub-window stretch at a time: the thresholds
        change only when a sub-window closes, and each frame is decided with those in force at
        its own position on the stream's grid (chunking-independent)."""
        config = self.config
        frames = len(band)
        speech = np.empty(frames, dtype=bool)
        weak = np.empty(frames, dtype=bool)
        keep = np.empty(frames, dtype=bool)
        hang = np.empty(frames, dtype=np.intp)
        i = 0
        while i < frames:
            # One stretch within one sub-window: the floor from the completed sub-windows is
            # fixed; the current sub-window's running minimum can only lower it.
            position = self._frame_index % self._subwindow
            take = min(self._subwindow - position, frames - i)
            end = i + take
            rows = smoothed[i:end]
            running = np.minimum.accumulate(rows, axis=0)
            np.minimum(running, self._current_min, out=running)
            noise = np.minimum(running, self._window_min) * self._bias
            np.minimum(noise, self._window_median, out=noise)
            np.maximum(noise, self._floor, out=noise)
            snr_db = np.log10(np.maximum(band[i:end] / noise, _EPS))
            np.clip(snr_db, 0.0, self._snr_cap, out=snr_db)
            part = np.add.reduce(snr_db, axis=1) * self._db_per_band
            wide_power = band[i:end] @ self._widths
            wide_running = np.minimum.accumulate(smoothed[i:end] @ self._widths)
            np.minimum(wide_running, self._current_wide_min, out=wide_running)
            wide_noise = np.minimum(wide_running * self._bias, self._wide_floor)
            np.maximum(wide_noise, self._floor, out=wide_noise)
            wide = 10 * np.log10(np.maximum(wide_power / wide_noise, _EPS))
            peaks = np.maximum.accumulate(level[i:end])
            np.maximum(peaks, max(self._current_peak, self._window_peak), out=peaks)
            talker = peaks * self._talker_range
            heard = (level[i:end] >= self._min_level) & (level[i:end] >= talker) & shaped[i:end]
            voiced = heard & (part >= self._threshold) & (wide >= self._broadband_threshold)
            if self._closed == 0:
                voiced[:] = False  # the stream's first sub-window: the noise is still unknown
            ratio = config.continue_ratio
            speech[i:end] = voiced
            weak[i:end] = (heard & (part >= ratio * self._threshold)
                           & (wide >= ratio * self._broadband_threshold))
            keep[i:end] = (level[i:end] >= talker) & (part >= config.hangover_min_db)
            hang[i:end] = self._hang_frames
            self._sub_speech += int(np.count_nonzero(voiced))
            self._current_min = running[-1].copy()
            self._current_peak = max(self._current_peak, float(peaks[-1]))
            self._sub_rows[position : position + take] = rows
            self._sub_band[position : position + take] = band[i:end]
            self._sub_broadband[position : position + take] = wide_power
            self._current_wide_min = float(wide_running[-1])
            self._frame_index += take
            i = end
            if self._frame_index % self._subwindow == 0:
                self._close_subwindow()
        return speech.tolist(), weak.tolist(), keep.tolist(), hang.tolist()

    def _close_subwindow(self) -> None:
        config = self.config
        slot = self._closed % self._subwindows
        self._closed += 1
        middle = self._subwindow // 2  # the upper median (odd or even count alike)
        # Noise statistics and band floors learn only from sub-windows (nearly) free of speech
        # (step 2). A talker who speaks longer than the window without a pause leaves no quiet
        # sub-window, and their own speech would become the "noise": the band floors and the
        # broadband floor climbing to the speech, the score threshold rising by up to
        # adapt_gain x adapt_max_db, which cut the phrase (issue 17: at about 5 s). A speech
        # sub-window's floors are recorded as the noise last learnt (the window's, held), its
        # statistics as "no information" (inf). The stream's first sub-window is always
        # learnt: it is never speech (see Streaming). And once noise_hold_ms has gone by with
        # nothing learnt, the next sub-window is learnt anyway: the floors may trail the noise
        # by that much at most, never lock onto one early sample while the detector keeps
        # firing (babble's own bursts counted as speech would otherwise keep babble from ever
        # being learnt). Falling noise is still followed at once: the current sub-window's
        # running minimum lowers the floor whatever it holds (_decide).
        ordered = sorted(self._sub_broadband.tolist())
        median = ordered[middle]
        # After noise_window_ms without a quiet sub-window, one that lies within
        # relearn_max_db of the broadband floor last learnt is learnt anyway (babble taken
        # for speech); one further over it is a talker over that noise, learnt only once
        # noise_hold_ms has gone by.
        quiet = self._closed == 1 or self._sub_speech <= self._learn_frames
        near = median <= self._wide_floor * self._relearn
        learn = (quiet or (near and self._unlearnt >= self._subwindows - 1)
                 or self._unlearnt >= self._hold_subwindows - 1)
        self._unlearnt = 0 if learn else self._unlearnt + 1
        learn_floor = quiet or self._unheld >= self._hold_subwindows - 1
        self._unheld = 0 if learn_floor else self._unheld + 1
        self._sub_speech = 0
        if learn_floor:
            self._minima[slot] = self._current_min
            self._medians[slot] = np.sort(self._sub_rows, axis=0)[middle] * self._median_bias
        else:
            self._minima[slot] = np.minimum(self._window_min, self._current_min)
            self._medians[slot] = self._window_median
        self._talker_peaks.append(self._current_peak)
        self._window_min = self._minima.min(axis=0)
        self._window_median = self._medians.min(axis=0)
        self._window_peak = max(self._talker_peaks)
        self._current_wide_min = np.inf
        self._current_min = np.full(config.bands, np.inf)
        self._current_peak = 0.0
        if learn:
            # The sub-window's score, measured again against the floor as it stands now that
            # the sub-window is complete: while it ran, the floor was still forming (at the
            # start of a stream, the running minimum plus noise_bias_db), and noise scored
            # against that would pass for quieter than it is.
            noise = np.minimum(self._window_min * self._bias, self._window_median)
            np.maximum(noise, self._floor, out=noise)
            snr_db = np.log10(np.maximum(self._sub_band / noise, _EPS))
            np.clip(snr_db, 0.0, self._snr_cap, out=snr_db)
            scores = np.add.reduce(snr_db, axis=1) * self._db_per_band
            self._noise_scores.append(float(np.sort(scores)[middle]))
        else:
            self._noise_scores.append(math.inf)
        self._wide_medians.append(median if learn else math.inf)
        self._wide_spreads.append(10 * math.log10(
            max(ordered[(len(ordered) * 9) // 10], _EPS) / max(median, _EPS)))
        quietest = int(np.argmin(self._wide_medians))
        if math.isinf(self._wide_medians[quietest]):
            return  # speech throughout the window: hold what the noise was last seen to be
        self._wide_floor = self._wide_medians[quietest]
        # How far noise alone scores over its own floor (fluctuating noise such as babble
        # scores higher than a steady hiss): the quietest sub-window's median score, and its
        # broadband spread. Noise under min_level_dbfs (digital silence, codec noise) can never
        # pass the level test, so it raises no threshold.
        audible = self._wide_floor >= self._min_level
        spread = min(min(self._noise_scores), config.adapt_max_db) if audible else 0.0
        self._threshold = config.speech_snr_db + config.adapt_gain * spread
        spread = min(self._wide_spreads[quietest], config.broadband_max_db) if audible else 0.0
        snr = 10 * math.log10(max(self._window_peak, _EPS) / max(self._wide_floor, _EPS))
        ramp = (snr - config.ramp_low_db) / max(config.ramp_high_db - config.ramp_low_db, _EPS)
        weight = min(max(ramp, 0.0), 1.0)
        self._broadband_threshold = (
            config.broadband_snr_db + config.broadband_gain * weight * spread)
        # Step 8: the hangover covers the part of a tail the noise hides, the bottom
        # (talker_range_db - long-term SNR) dB of the talker's range.
        hidden = min(max((config.talker_range_db - snr) / config.hangover_depth_db, 0.0), 1.0)
        self._hang_frames = round(hidden * config.frames(config.hangover_ms))

    def _hangover(self, raw: list[bool], weak: list[bool], keep: list[bool],
                  hang_frames: list[int]) -> str:
        """Steps 7-8 over the frames' raw decisions, in stream order."""
        out: list[str] = []
        run, hang, voiced = self._run, self._hang, self._voiced
        burst = self._burst_frames
        for speech, continued, kept, length in zip(raw, weak, keep, hang_frames, strict=True):
            if speech:
                run += 1
                if run >= burst:
                    hang = length
                voiced = True
            elif voiced and continued:
                # Step 7: the unit goes on at the lower thresholds; the hangover (if armed)
                # counts from the last frame that still showed sound over the noise.
                voiced = True
            else:
                run = 0
                voiced = bool(hang and kept)
                hang = hang - 1 if voiced else 0
            out.append(_VOICED[voiced])
        self._run, self._hang, self._voiced = run, hang, voiced
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
