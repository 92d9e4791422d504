"""Exact sample series for medians and percentiles (METRICS.md §10 quantiles).

§10: every quantile is linear interpolation between closest ranks (numpy's default
percentile) computed exactly over every sample of the session, no sketches. A session of
several hours holds a few thousand samples per series, so keeping them all is cheap if each
costs a few bytes: a series stores its integer samples (ms) in one ``array``, kept sorted,
whose item width grows only when a sample needs it.
"""

from __future__ import annotations

import math
from array import array
from bisect import insort
from collections.abc import Sequence
from typing import Any

from models.errors import ValidationError
from models.state_codec import ints_from_state, ints_to_state

# Item widths tried in order. Nearly every sample (latencies, pauses, gaps, RTT) is within
# ±32.7 s, so most series stay at 2 bytes a sample; "i" holds ±24.8 days; "q" (64 bits) holds
# any valid value, since times are 0..2**53-1 ms and so their differences are within ±2**53.
_WIDTHS = ("h", "i", "q")
_LIMITS = {"h": 2**15, "i": 2**31, "q": 2**63}


def percentile(values: Sequence[float], q: float) -> float:
    """``numpy.percentile(values, 100 * q)`` (method "linear") without numpy's per-call
    overhead. ``values`` must be non-empty; see :func:`interpolate`."""
    return interpolate(sorted(values), q)


def interpolate(ordered: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``ordered`` (non-empty, ascending): linear interpolation
    between closest ranks, written as numpy writes it so that results agree to the last bit
    (numpy >= 1.22 ``_lerp``): the position is ``(n - 1) * q``; the difference of the two
    neighbours is taken in their own type (exact for integers, as numpy's int64 is) before it
    becomes a float; and the lerp is two-sided (from the upper neighbour when the fraction is
    at least 0.5)."""
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    low, high = ordered[below], ordered[above]
    diff = float(high - low)
    if fraction >= 0.5:
        return float(high) - diff * (1 - fraction)
    return float(low) + diff * fraction


class QuantileSeries:
    """Integer samples (ms) with exact quantiles over all of them (METRICS.md §10).

    The samples are kept sorted (an insertion is a binary search and a memmove of a few KiB
    at most), so a quantile costs two index look-ups however often a live report asks.
    """

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        # Created on the first sample: many series of a session stay empty (a participant
        # without network reports, a role that never pauses) and cost only this slot.
        self._samples: array[int] | None = None

    def __len__(self) -> int:
        return 0 if self._samples is None else len(self._samples)

    def add(self, value: int) -> None:
        samples = self._samples
        if samples is None:
            samples = self._samples = array("h")
        if not -_LIMITS[samples.typecode] <= value < _LIMITS[samples.typecode]:
            samples = self._samples = _widened(samples, value)
        insort(samples, value)

    def to_state(self) -> list[Any] | None:
        """Checkpoint form (models/state_codec.py): the samples as a typed array."""
        return None if self._samples is None else ints_to_state(self._samples)

    @classmethod
    def from_state(cls, state: Any) -> QuantileSeries:
        series = cls()
        if state is not None:
            series._samples = ints_from_state(state)
        return series

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0..1) as ``numpy.quantile(samples, q)`` computes it, or ``None``
        for an empty series (§10: a median over nothing is null)."""
        if not self._samples:
            return None
        return interpolate(self._samples, q)


def _widened(samples: array[int], value: int) -> array[int]:
    for code in _WIDTHS[_WIDTHS.index(samples.typecode) + 1:]:
        if -_LIMITS[code] <= value < _LIMITS[code]:
            return array(code, samples)
    raise ValidationError("value", f"quantile sample {value} ms does not fit in 64 bits")
