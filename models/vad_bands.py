"""Band evidence for the silero backend: how far each frequency band stands above its own
noise floor, per model window (issue 17, point 2: "a combination with Rapport's own features").

The Silero model's speech probability depends on the level and spectrum of the input, and in
steady noise it loses quiet or distant speech that still stands clear of the noise in the
bands where voices carry most energy (80-500 Hz: the fundamental and first harmonics; white
noise puts little power there, pink noise no more than in any other octave). webrtcvad's
sub-band energies against an adaptive noise model keep that speech; this module gives the
silero backend the same kind of evidence, cheaply, so its head (:mod:`models.vad_head`) can
combine it with the model's probability and state (docs/vad.md).

Per 512-sample window (32 ms at 16 kHz, the model's own windows) and per band of
:data:`BANDS_HZ` (webrtcvad's six bands up to 4 kHz, and 4-8 kHz):

- the band's power: the Hann-windowed spectrum's power summed over the band's bins;
- smoothed: the mean of that window's power and the :data:`SMOOTH` - 1 windows before it;
- the floor: the lowest smoothed power of the last :data:`FLOOR_WINDOWS` windows (about 3 s;
  minimum statistics), never under :data:`FLOOR_DBFS` (white noise at -80 dBFS, so digital
  silence does not make every sound infinitely far above its floor); and, once **every** band's
  smoothed power has stayed within :data:`STEADY_DB` over the last :data:`STEADY_WINDOWS`
  windows (0.5 s), or under that lowest floor throughout (a band holding nothing, as 4-8 kHz
  in narrowband audio), at least the lowest of those (a steady background; below);
- the evidence: the window's own (unsmoothed) power over the floor in dB, clipped to
  ``0..CAP_DB``.

A stream's first window that holds anything stands in for the windows before it, so a stream
starts with a floor at that window's level. Windows before it whose samples vary by no more
than white noise at :data:`FLOOR_DBFS` (:func:`silent`: digital silence, with or without a DC
offset) say nothing of the room; their evidence is 0. Until 2026-12-07 they set the floor: a
participant who joined muted, or a recording started before the microphone, had the floor at
the lowest for 3 s, every pause of the first seconds of speech 15-30 dB over it, and the head
calling those pauses speech (docs/vad.md, "Held out: counting recordings"). Later digital
silence (a pause through a noise gate, a mute) still sets the floor: where every pause is
digital silence, whatever is not is speech.
The minimum over 3 s follows a louder background within 3 s and
cannot learn speech that pauses at least once in 3 s (a phrase without any pause for longer
than that lowers the evidence, not the model's probability, which still carries it; issue 17
point 4).

A steady background: a fan or an air conditioner switching on raises every band at once and
then holds it, and for the 3 s the minimum took to follow it the new noise stood up to 30 dB
over its floor: the head (models/vad_head.py) called up to 3 s of each such step speech
(docs/vad.md, "A step in the background noise"). Speech seldom holds all seven bands within 6 dB
for half a second (syllables come 3 to 8 a second and move the bands between them): of the
labelled speech windows of the real recordings here, clean, at most 0.3 % are steady; in
white or pink noise at 5 dB up to 9 % of AMI's far-field speech, where the noise fills every
band and the floor stands at it already. So a floor that rises to such a stretch follows a
noise step after 0.5 s and leaves speech's evidence nearly as it was: on the tuning and
validation sets, wideband and narrowband, the default's frame F1 pooled per set moved by at
most 0.002 (one recording by 0.004, one AMI excerpt by 0.015), and on noise steps it called
53-66 % less speech.

Everything is causal and depends only on the samples, never on how a stream was cut into
calls. Pure code (numpy, scipy's FFT and running minima), no audio kept: per stream the last
3 s of band powers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import scipy.fft
from scipy.ndimage import maximum_filter1d, minimum_filter1d

RATE = 16_000
WINDOW = 512
BANDS_HZ = ((80, 250), (250, 500), (500, 1000), (1000, 2000), (2000, 3000), (3000, 4000),
            (4000, 8000))
SMOOTH = 3  # windows averaged for the floor (96 ms)
FLOOR_WINDOWS = 94  # windows the floor is the minimum of (3.0 s)
# A steady background (module docstring): every band within STEADY_DB over STEADY_WINDOWS
# windows. Chosen with the tuning recordings by total shortfall under the best rival among
# rules that halve the false speech on noise steps (docs/vad.md, "A step in the background noise").
STEADY_WINDOWS = 16  # 0.5 s
STEADY_DB = 6.0
CAP_DB = 30.0  # evidence is clipped to 0..CAP_DB
FLOOR_DBFS = -80.0  # the lowest floor: white noise at this level (dB full scale)

_STEADY_RATIO = 10 ** (STEADY_DB / 10)
_TAPER = np.hanning(WINDOW).astype(np.float32)
_FREQUENCIES = np.fft.rfftfreq(WINDOW, 1 / RATE)
# Each band's bins form a contiguous range; the bands follow each other, so the band sums
# are one reduceat from each band's first bin up to the last band's end.
_FIRST = [int(np.searchsorted(_FREQUENCIES, low)) for low, _ in BANDS_HZ]
_STARTS = np.array(_FIRST)
_END = int(np.searchsorted(_FREQUENCIES, BANDS_HZ[-1][1]))
_WIDTHS = np.diff([*_FIRST, _END])
# White noise of variance s^2 puts s^2 * sum(taper^2) in each bin of the tapered spectrum.
_LOWEST = 10 ** (FLOOR_DBFS / 10) * float(np.sum(_TAPER.astype(np.float64)**2)) * _WIDTHS


def band_power(windows: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Each window's power per band, ``(..., bands)`` for ``windows`` ``(..., 512)``."""
    samples = np.asarray(windows, dtype=np.float32)
    # scipy's FFT: seven times numpy's on float32 windows here, and, like the band sums
    # (reduceat, row by row), the same to the bit however many windows come at once, so a
    # stream's evidence does not depend on how it is cut into calls.
    spectrum = scipy.fft.rfft(samples * _TAPER, axis=-1)
    bins = spectrum.real**2 + spectrum.imag**2
    power: npt.NDArray[np.float64] = np.add.reduceat(
        bins[..., :_END], _STARTS, axis=-1, dtype=np.float64)
    return power


def silent(windows: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Per window of ``windows`` ``(..., 512)``: its samples vary by no more than white noise
    at :data:`FLOOR_DBFS` (digital silence, whatever its offset)."""
    samples = np.asarray(windows, dtype=np.float32)
    # Less each window's first sample, so float32 sums stay exact enough whatever the offset
    # (the same answers as numpy's float64 variance on 12,000 random windows; a twentieth of
    # its time).
    shifted = samples - samples[..., :1]
    mean = shifted.sum(axis=-1, dtype=np.float32) / samples.shape[-1]
    variance = np.einsum("...k,...k->...", shifted, shifted) / samples.shape[-1] - mean * mean
    quiet: npt.NDArray[np.bool_] = variance <= 10 ** (FLOOR_DBFS / 10)
    return quiet


class BandFloor:
    """The band evidence of ``streams`` streams, window after window (see the module
    docstring). Streams that have as many new windows are computed together."""

    def __init__(self, streams: int = 1) -> None:
        bands = len(BANDS_HZ)
        # Per stream and band, time last (contiguous for the sliding mean and minimum).
        self._recent = np.zeros((streams, bands, SMOOTH - 1))  # last powers
        self._smoothed = np.zeros((streams, bands, FLOOR_WINDOWS - 1))  # last smoothed
        self._started = np.zeros(streams, dtype=bool)

    def of_windows(self, windows: npt.ArrayLike,
                   rows: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
        """:meth:`evidence` of the next ``windows`` ``(streams, windows, 512)`` of streams
        ``rows``: their :func:`band_power`, and while a stream has not started, which of them
        are :func:`silent`."""
        pick = slice(None) if rows is None else np.asarray(rows)
        quiet = None if self._started[pick].all() else silent(windows)
        return self.evidence(band_power(windows), rows, quiet)

    def evidence(self, power: npt.ArrayLike, rows: npt.ArrayLike | None = None,
                 quiet: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
        """dB above the floor, ``0..CAP_DB``, ``(streams, windows, bands)``, for the next
        windows' :func:`band_power` ``(streams, windows, bands)`` of streams ``rows`` (all
        by default), in order; ``(windows, bands)`` in and out for one stream. ``quiet``
        ``(streams, windows)``: which windows are :func:`silent` (none if not given); a
        stream starts at its first window that is not (module docstring)."""
        given = np.asarray(power, dtype=np.float64)
        single = given.ndim == 2
        power = np.ascontiguousarray((given[None] if single else given).transpose(0, 2, 1))
        count = power.shape[2]
        if not count:
            return np.zeros(given.shape)
        # All streams: slices (views), not fancy indexing (copies): a few calls' cost each.
        pick = slice(None) if rows is None else np.asarray(rows)
        fresh = ~self._started[pick]
        heard, waiting = power, np.zeros_like(fresh)  # the windows' own power; not started
        if quiet is not None and fresh.any():
            leading = np.asarray(quiet, dtype=bool).reshape(len(fresh), count)[fresh]
            lead = np.where(leading.all(axis=1), count, np.argmin(leading, axis=1))
            power = power.copy()
            for stream, k in zip(np.flatnonzero(fresh).tolist(), lead.tolist(), strict=True):
                if k:  # the first window heard stands in for the silence before it
                    power[stream, :, :k] = power[stream, :, min(k, count - 1), None]
            waiting[np.flatnonzero(fresh)[lead == count]] = True
        # A stream's first window (heard, after the above) stands in for those before it.
        first = np.flatnonzero(fresh) if rows is None else np.asarray(rows)[fresh]
        if first.size:
            self._recent[first] = power[fresh, :, :1]
        joined = np.concatenate((self._recent[pick], power), axis=2)
        # The mean of each window's power and the SMOOTH - 1 before it (added in the order
        # numpy's mean adds them, so the same to the bit).
        width = joined.shape[2] - (SMOOTH - 1)
        total = joined[:, :, :width].copy()
        for k in range(1, SMOOTH):
            total += joined[:, :, k:k + width]
        smoothed = total / SMOOTH
        self._recent[pick] = joined[:, :, joined.shape[2] - (SMOOTH - 1):]
        if first.size:
            self._smoothed[first] = smoothed[fresh, :, :1]
            self._started[pick] = True
        history = np.concatenate((self._smoothed[pick], smoothed), axis=2)
        # Each new window's floor: the minimum of the FLOOR_WINDOWS smoothed powers ending at
        # it (a running minimum: exact, and linear in the windows, not in their product).
        floor = _trailing(minimum_filter1d, history, FLOOR_WINDOWS)
        # Each new window's last STEADY_WINDOWS smoothed powers (the history keeps
        # FLOOR_WINDOWS - 1 before the new windows; only the last of them are read).
        tail = history[:, :, history.shape[2] - (count + STEADY_WINDOWS - 1):]
        low = _trailing(minimum_filter1d, tail, STEADY_WINDOWS)
        high = _trailing(maximum_filter1d, tail, STEADY_WINDOWS)
        # A band holding nothing over the lowest floor (the 4-8 kHz band of narrowband audio)
        # is steady too: its ratio is that of rounding noise.
        held = (high <= low * _STEADY_RATIO) | (high <= _LOWEST[:, None])
        steady = np.all(held, axis=1, keepdims=True)
        floor = np.where(steady, np.maximum(floor, low), floor)
        self._smoothed[pick] = history[:, :, history.shape[2] - (FLOOR_WINDOWS - 1):]
        # A stream that heard nothing yet starts later: its state is set again then.
        self._started[np.flatnonzero(waiting) if rows is None
                      else np.asarray(rows)[waiting]] = False
        ratio = np.where(waiting[:, None, None], 0.0, heard) / np.maximum(floor, _LOWEST[:, None])
        out: npt.NDArray[np.float64] = np.clip(
            10 * np.log10(np.maximum(ratio, 1e-12)), 0.0, CAP_DB).transpose(0, 2, 1)
        return out[0] if single else out


def _trailing(running: Callable[..., npt.NDArray[np.float64]], values: npt.NDArray[np.float64],
              size: int) -> npt.NDArray[np.float64]:
    """``running`` (scipy's ``minimum_filter1d`` or ``maximum_filter1d``) over the ``size``
    values ending at each of ``values``' last axis, for each that has ``size`` - 1 before it."""
    out: npt.NDArray[np.float64] = running(values, size, axis=-1,
                                           origin=(size - 1) // 2)[..., size - 1:]
    return out


def fuse(probability: npt.ArrayLike, evidence: npt.ArrayLike, weight: float,
         bands: Sequence[float], bias: float,
         state_term: npt.ArrayLike | None = None) -> npt.NDArray[np.float32]:
    """``sigmoid(weight * logit(p) + sum(bands * evidence / 10) + state_term + bias)`` of
    windows with the model's ``probability`` ``(windows,)``, band ``evidence`` ``(windows,
    bands)`` in dB and, if given, a ``state_term`` ``(windows,)``; ``(streams, windows)`` for a
    leading stream axis on all (models/vad_head.py holds the default's weights)."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-4, 1 - 1e-4)
    # Elementwise, not a matrix product: the same to the bit however many windows come.
    weighted = np.asarray(evidence, dtype=np.float64) * (np.asarray(bands, np.float64) / 10)
    score = weight * np.log(p / (1 - p)) + weighted.sum(axis=-1) + bias
    if state_term is not None:
        score = score + np.asarray(state_term, dtype=np.float64)
    fused: npt.NDArray[np.float32] = (1 / (1 + np.exp(-score))).astype(np.float32)
    return fused


def evidence_of(audio: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """:class:`BandFloor`'s evidence for every complete window of one stream's 16 kHz
    ``audio`` at once (what the stream gives window by window)."""
    samples = np.asarray(audio, dtype=np.float64).reshape(-1)
    count = len(samples) // WINDOW
    windows = samples[:count * WINDOW].reshape(count, WINDOW)
    return BandFloor().evidence(band_power(windows), None, silent(windows)[None])


def power_above_db(samples: npt.ArrayLike, rate: int, hz: float = 4_000.0,
                   frame: int = 4096) -> float | None:
    """The share of ``samples``' power (mono, at ``rate``) at and above ``hz``, in dB, from the
    Hann-windowed spectra of its whole ``frame``-sample frames; ``None`` when there is no whole
    frame or no power at all (nothing to tell). Audio that was sampled at 8 kHz before it was
    resampled has nothing above 4 kHz but the resampler's leakage (-135 to -140 dB here);
    wideband speech recordings hold -12 to -52 dB there (docs/vad.md, "Narrowband audio")."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    count = len(x) // frame
    if not count or hz >= rate / 2:
        return None
    spectra = scipy.fft.rfft(x[:count * frame].reshape(count, frame) * np.hanning(frame), axis=-1)
    power = np.sum(spectra.real**2 + spectra.imag**2, axis=0)
    total = float(np.sum(power))
    if not total > 0:
        return None
    above = float(np.sum(power[np.fft.rfftfreq(frame, 1 / rate) >= hz]))
    return 10 * float(np.log10(max(above / total, 1e-30)))
