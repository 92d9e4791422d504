"""The music gate of the silero backend's head (issue 17; docs/vad.md, "Music and other sounds").

The head (:mod:`models.vad_head`) finds quiet and distant speech that the Silero model's own
layer drops, from the model's state and the band evidence (:mod:`models.vad_bands`). Music
raises the same terms: on librosa's example recordings (piano, strings, jazz, a trumpet, a
whale's song...) the default calls 11.6 % of the frames speech, nearly all of them from the
head, where silero-vad calls 0.3 %. The head's band and state weights alone cannot tell that
music from far-field speech (docs/vad.md, "Music and other sounds", (1)-(5)).

What tells them apart is **held tonal peaks**. An instrument holds a note: its harmonics stand
as narrow peaks at the same frequency for a tenth of a second and more, many at once (chords,
several instruments). A voice's harmonics glide with its pitch, and where the head alone
hears speech the model does not (far, noisy or quiet speech) few narrow peaks stand out.

Per 512-sample window (32 ms at 16 kHz, the model's own windows):

- the **peaks**: the Hann-windowed power spectrum of the window and the three before it
  (:data:`SPAN` samples, 7.8 Hz a bin), in dB; a bin from :data:`LOW_HZ` to :data:`HIGH_HZ` is
  a peak when it is higher than the two bins on each side and more than
  :data:`PROMINENCE_DB` above the mean of the :data:`NEIGHBOURS` bins on each side and itself;
- the **held** peaks: those that were peaks, within a bin, in each of the :data:`PERSIST`
  windows before too;
- the gate is **closed** when the held peaks of the window and the :data:`RECENT` - 1 windows
  before it number more than :data:`MOST_PEAKS` a window, and the model's own probability is
  under :data:`MODEL_BELOW` (where the model hears speech the head is not needed to find it).

A closed gate sets the head's value of that window to 0, so the head's branch
(:mod:`models.vad_decision`) neither starts nor holds a unit there; the model's branch is
untouched.

**Off by default** (``music_gate=True`` in :class:`models.vad_silero.SileroBatchVad`;
``--vad-music-gate``, ``RAPPORT_VAD_MUSIC_GATE=on``). Chosen on the tuning sets alone (the
tuning half of the music alone and under the tuning recordings, AMI train and TEN VAD's
choice half, and those sets clean and in noise): the fewest music frames called speech among
gates that add nothing to the total shortfall under the best of silero-vad and webrtcvad and
give away at most 0.01 of F1 in any of those sets' conditions, nor in any recording's. On the
validation sets it cut the music called speech from 9.5 % to 1.1 % and changed no condition
of speech in noise by more than 0.002, but far-field speech under music lost up to 0.06
(AMI's development and test excerpts): the veto fixed before the look refused it as the
default (docs/vad.md says what was seen when).

Wideband only: the narrowband head (:mod:`models.vad_narrowband_head`) is not gated (nothing
was measured on music through a telephone line).

Everything is causal and depends only on the samples, never on how a stream was cut into
calls (scipy's FFT gives the same bits however many windows come at once). Pure code (numpy,
scipy): per stream the last 640 ms of samples and their peak counts; no audio is kept longer.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.fft

RATE = 16_000
WINDOW = 512
SPAN = 4 * WINDOW  # samples a spectrum reads: the window and the three before it (128 ms)
LOW_HZ = 150.0  # under any instrument's or voice's lowest harmonics worth counting
HIGH_HZ = 2_500.0
PROMINENCE_DB = 12.0
NEIGHBOURS = 16  # bins on each side of a bin whose mean it must stand above (125 Hz)
PERSIST = 2  # windows before a window that must have held the same peak (64 ms)
RECENT = 16  # windows whose held peaks are counted (0.5 s)
MOST_PEAKS = 2.0  # held peaks a window, on average over RECENT windows, above which it is music
MODEL_BELOW = 0.1  # the model's probability under which the gate can close

_TAPER = np.hanning(SPAN).astype(np.float32)
_LOW = int(LOW_HZ * SPAN / RATE)  # the first bin counted (148 Hz)...
_HIGH = int(HIGH_HZ * SPAN / RATE)  # ...and the first not (2,500 Hz)
_SIDE = 2  # a peak is higher than the two bins on each side of it
# Bins read: the counted ones and NEIGHBOURS + _SIDE more on each side.
_FIRST, _END = _LOW - NEIGHBOURS - _SIDE, _HIGH + NEIGHBOURS + _SIDE
_SPREAD = 2 * NEIGHBOURS + 1
_SILENCE = 1e-10  # power added before the log: digital silence is flat, without peaks
_SPANNED = SPAN // WINDOW  # windows a spectrum reads
# Windows kept per stream: those the last RECENT - 1 counts read, with their spectra's.
_KEPT = RECENT - 1 + PERSIST + _SPANNED - 1


def peaks(spans: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Each ``(..., SPAN)`` span's tonal peaks (module docstring), ``(..., bins)``: one per
    bin from :data:`LOW_HZ` up to :data:`HIGH_HZ`."""
    samples = np.asarray(spans, dtype=np.float32)
    spectrum = scipy.fft.rfft(samples * _TAPER, axis=-1)[..., _FIRST:_END]
    level = 10 * np.log10(spectrum.real**2 + spectrum.imag**2 + _SILENCE)
    sums = np.cumsum(level, axis=-1, dtype=np.float64)
    sums = np.concatenate((np.zeros((*sums.shape[:-1], 1)), sums), axis=-1)
    bins = _HIGH - _LOW
    # The mean of the bins around each counted bin, itself among them.
    mean = (sums[..., _SIDE + _SPREAD:_SIDE + _SPREAD + bins]
            - sums[..., _SIDE:_SIDE + bins]) / _SPREAD
    at = NEIGHBOURS + _SIDE  # the first counted bin's index in ``level``
    centre = level[..., at:at + bins]
    peak: npt.NDArray[np.bool_] = centre > mean + PROMINENCE_DB
    for side in range(1, _SIDE + 1):
        peak &= (centre > level[..., at - side:at - side + bins]) \
            & (centre > level[..., at + side:at + side + bins])
    return peak


def held_counts(masks: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """For ``(..., PERSIST + 1, bins)`` peaks of consecutive windows, the last window's peaks
    that each of the :data:`PERSIST` windows before it held too, within a bin, ``(...)``."""
    held = masks[..., -1, :].copy()
    for back in range(2, PERSIST + 2):
        before = masks[..., -back, :]
        near = before.copy()
        near[..., 1:] |= before[..., :-1]
        near[..., :-1] |= before[..., 1:]
        held &= near
    counts: npt.NDArray[np.int64] = held.sum(axis=-1)
    return counts


class MusicGate:
    """The gate of ``streams`` streams, window after window (see the module docstring).

    Peaks are counted only where the gate can change a decision: a window the caller marks
    ``needed`` (the head's value there reaches its branch's release; under it, 0 decides
    the same) whose model probability is under :data:`MODEL_BELOW`, and the
    :data:`RECENT` - 1 windows before it. In speech the model hears and in silence that is
    few windows, so the spectra cost little but in music and far-field speech. Per stream
    the last windows' samples (640 ms) are kept for that, and their counts once made."""

    def __init__(self, streams: int = 1) -> None:
        # A stream starts after silence: windows of zeros, no peaks.
        self._recent = np.zeros((streams, _KEPT, WINDOW), dtype=np.float32)
        self._counts = np.zeros((streams, RECENT - 1), dtype=np.int64)  # -1: not counted

    def closed(self, windows: npt.ArrayLike, probability: npt.ArrayLike,
               needed: npt.ArrayLike | None = None,
               rows: npt.ArrayLike | None = None) -> npt.NDArray[np.bool_]:
        """Where the gate is closed among ``needed`` windows (all by default), ``(streams,
        count)``, for the next ``count`` windows ``(streams, count, WINDOW)`` of streams
        ``rows`` (all by default), in order, with the model's probability of each
        ``(streams, count)``; ``False`` wherever not ``needed``."""
        given = np.asarray(windows, dtype=np.float32)
        rows = np.arange(len(self._recent)) if rows is None else np.asarray(rows)
        count = given.shape[1]
        ask = np.asarray(probability) < MODEL_BELOW
        if needed is not None:
            ask &= np.asarray(needed, dtype=bool)
        closed = np.zeros(given.shape[:2], dtype=bool)
        if not count:
            return closed
        # Count c is of window c + offset of ``joined`` (the kept windows, then the new).
        joined = np.concatenate((self._recent[rows], given), axis=1)
        offset = _KEPT - (RECENT - 1)
        counts = np.concatenate((self._counts[rows],
                                 np.full((len(rows), count), -1, dtype=np.int64)), axis=1)
        if ask.any():
            want = np.zeros(counts.shape, dtype=bool)
            for back in range(RECENT):  # window k's sum reads counts k .. k + RECENT - 1
                want[:, back:back + count] |= ask
            want &= counts < 0
            if want.any():
                # A count reads the peaks of its window and the PERSIST before it; each
                # window's peaks, its samples and those of the _SPANNED - 1 before it.
                spectra = np.zeros(joined.shape[:2], dtype=bool)
                for back in range(PERSIST + 1):
                    spectra[:, offset - back:offset - back + counts.shape[1]] |= want
                stream, at = np.nonzero(spectra)
                spans = joined[stream[:, None], at[:, None] + np.arange(1 - _SPANNED, 1)]
                masks = np.zeros((*joined.shape[:2], _HIGH - _LOW), dtype=bool)
                masks[stream, at] = peaks(spans.reshape(len(at), SPAN))
                stream, at = np.nonzero(want)
                counts[stream, at] = held_counts(
                    masks[stream[:, None], at[:, None] + offset + np.arange(-PERSIST, 1)])
            sums = sum(counts[:, back:back + count] for back in range(RECENT))
            closed = ask & (sums > MOST_PEAKS * RECENT)
        self._recent[rows] = joined[:, count:]
        self._counts[rows] = counts[:, count:]
        return closed


def closed_of(audio: npt.ArrayLike, probability: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """:class:`MusicGate`'s gate for every complete window of one stream's 16 kHz ``audio``
    at once, given the model's probability of each (what the stream gives window by window)."""
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)
    p = np.asarray(probability).reshape(-1)
    count = min(len(samples) // WINDOW, len(p))
    closed: npt.NDArray[np.bool_] = MusicGate().closed(
        samples[:count * WINDOW].reshape(1, count, WINDOW), p[None, :count])[0]
    return closed
