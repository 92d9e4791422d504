"""What the silero backend's model is not shown: a recording's DC offset and slow drift
(issue 17, point 2; docs/vad.md, "Offset and drift").

Each input of the Silero model is a 512-sample window and the 64 samples before it (36 ms at
16 kHz). Before the model reads it (models/vad_silero.py), two things are taken from it:

1. **The offset**: a running mean of the stream's windows, one value per window, subtracted
   from the whole input. Each window's mean (of its 512 new samples) updates it as
   ``offset += OFFSET_RATE * (mean - offset)`` (:data:`OFFSET_RATE` 0.1: a time constant of
   about 0.3 s); a stream's first window starts it at its own mean, so a constant DC offset is
   gone from the first window on, and a changed one within a second; speech, whose windows'
   means scatter around zero, moves it little.
2. **A dominant line**: an input whose least-squares line (fitted after the offset is taken
   away) holds more than :data:`LINE_SHARE` (half) of its power loses that line: what drifts
   within 36 ms faster than the offset follows (the rumble of a cheap or cold microphone,
   handling noise) does not reach the model. Other inputs keep their line, because removing
   even a small line from every input moves the model's decisions where they are fragile
   (the telephone sample in babble at 5 dB: 0.981 as it is, 0.931 with every input's line
   removed).

Why: the model is not indifferent to content far under any voice. On ``mfa_cold_corpus``
(tests/data/real/validation), 95 % of whose labelled speech's power is drift under 5 Hz, it
heard nothing in babble at 5 dB (F1 0.125), and a DC offset of 0.02 took 0.035 of clean F1
from one of TEN VAD's test clips. A 20 Hz high-pass (scipy's ``sosfilt``, per sample) did as
well on that recording but cost a fifth of the backend's speed; this costs a few per-window
sums. The band evidence (models/vad_bands.py) reads the windows as they are: its bands start
at 80 Hz. The two constants were ranked on the tuning recordings and TEN VAD's choice half
only (rates 0.05-0.3, shares 0.2-0.5: the least shortfall under the best rival), and checked
once on the validation recordings (docs/vad.md, "Offset and drift").

Pure code, causal: every value depends only on the stream's samples so far, computed the same
to the bit however the stream is cut into calls and whichever streams share them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

CONTEXT = 64  # samples of the previous window at the start of each input
OFFSET_RATE = 0.1  # the running offset's step per 32 ms window (module docstring)
LINE_SHARE = 0.5  # an input whose fitted line holds more of its power loses it


@functools.lru_cache(maxsize=4)
def _line_basis(length: int) -> npt.NDArray[np.float32]:
    """An orthonormal basis ``(2, length)`` of constants and lines (read-only)."""
    ramp = np.arange(length, dtype=np.float64) - (length - 1) / 2
    basis = np.stack((np.full(length, length**-0.5), ramp / np.sqrt(np.sum(ramp**2))))
    out = basis.astype(np.float32)
    out.flags.writeable = False
    return out


def detrended(inputs: npt.NDArray[np.float32], share: float = LINE_SHARE
              ) -> npt.NDArray[np.float32]:
    """``inputs`` ``(..., samples)``, float32, each less its least-squares line when that
    line holds more than ``share`` of its power (module docstring, 2), in place; returned."""
    basis = _line_basis(inputs.shape[-1])
    # einsum's own loops, not BLAS: each input's sums are the same to the bit however many
    # inputs come at once.
    coefficients = np.einsum("...n,kn->...k", inputs, basis, optimize=False)
    power = np.einsum("...n,...n->...", inputs, inputs, optimize=False)
    line_power = np.einsum("...k,...k->...", coefficients, coefficients, optimize=False)
    dominant = line_power > share * power  # the basis is orthonormal: the line's power
    if dominant.any():
        inputs[dominant] -= coefficients[dominant] @ basis
    return inputs


class OffsetTracker:
    """Per stream, the running offset of module docstring, 1; :meth:`clean` applies both
    steps to a call's inputs."""

    def __init__(self, streams: int = 1, rate: float = OFFSET_RATE,
                 share: float = LINE_SHARE) -> None:
        self.rate = rate
        self.share = share
        self._offset = np.zeros(streams)
        self._started = np.zeros(streams, dtype=bool)

    def clean(self, inputs: npt.NDArray[np.float32], rows: Sequence[int],
              counts: Sequence[int]) -> npt.NDArray[np.float32]:
        """``inputs`` ``(len(rows), windows, 576)`` of streams ``rows``, the first
        ``counts[i]`` windows of row ``i`` real (the rest padding, left as they are), less
        their running offset and then any dominant line, in place; returned."""
        means = np.einsum("...n->...", inputs[..., CONTEXT:].astype(np.float64),
                          optimize=False) / (inputs.shape[-1] - CONTEXT)
        where = np.asarray(rows, dtype=np.intp)
        real = np.asarray(counts, dtype=np.intp)
        fresh = (real > 0) & ~self._started[where]
        if fresh.any():  # a stream's first window stands in for the windows before it
            self._offset[where[fresh]] = means[fresh, 0]
            self._started[where[fresh]] = True
        step = ([self.rate], [1.0, self.rate - 1.0])
        if real.size and (real == real[0]).all():  # the usual case: all at once
            count = int(real[0])
            offsets, _ = lfilter(*step, means[:, :count], axis=1,
                                 zi=(1.0 - self.rate) * self._offset[where][:, None])
            if count:
                self._offset[where] = offsets[:, -1]
                inputs[:, :count] -= offsets[..., None].astype(np.float32)
        else:
            for i, (row, count) in enumerate(zip(where.tolist(), real.tolist(), strict=True)):
                if count:
                    offsets, _ = lfilter(*step, means[i, :count],
                                         zi=[(1.0 - self.rate) * self._offset[row]])
                    self._offset[row] = offsets[-1]
                    inputs[i, :count] -= offsets[:, None].astype(np.float32)
        return detrended(inputs, self.share)
