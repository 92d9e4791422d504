"""Bounded-memory sample series for medians and percentiles (METRICS.md §10 quantiles).

A series keeps its samples exactly (4 bytes each) up to ``exact_samples``; past that it folds
them into a logarithmic-bucket sketch in the style of DDSketch (Masson et al., VLDB 2019): every
quantile is then within ``relative_error`` of a true sample value, and memory is bounded by the
value range (about 650 buckets of 2 bytes from 1 ms to 10 minutes at 1 %), never by the session
length. Exact mode matches ``numpy.percentile`` (linear interpolation between closest ranks).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """``numpy.percentile(values, 100 * q)`` (method "linear") without numpy's per-call
    overhead: linear interpolation between closest ranks of the sorted values, with numpy's
    two-sided lerp so results agree to the last bit. ``values`` must be non-empty."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    low, high = float(ordered[below]), float(ordered[above])
    diff = high - low
    if fraction >= 0.5:
        return high - diff * (1 - fraction)
    return low + diff * fraction


class QuantileSeries:
    """Integer samples (ms) with exact quantiles up to a cap, a relative-error sketch after."""

    __slots__ = (
        "_cap", "_count", "_error", "_exact", "_gamma_log", "_max", "_min", "_neg", "_pos",
        "_sketching", "_zero",
    )

    def __init__(self, exact_samples: int = 256, relative_error: float = 0.01) -> None:
        self._cap = exact_samples
        self._error = relative_error
        self._gamma_log = 0.0  # set when the sketch starts; exact series never need it
        self._exact: array[int] | None = None  # created on the first sample
        self._sketching = False
        self._pos: _Buckets | None = None
        self._neg: _Buckets | None = None
        self._zero = 0
        self._count = 0
        self._min = 0
        self._max = 0

    def __len__(self) -> int:
        return self._count

    @property
    def is_exact(self) -> bool:
        return not self._sketching

    def add(self, value: int) -> None:
        if not self._count or value < self._min:
            self._min = value
        if not self._count or value > self._max:
            self._max = value
        self._count += 1
        if not self._sketching:
            exact = self._exact
            if exact is None:
                exact = self._exact = array("h")
            try:
                exact.append(value)
            except OverflowError:
                # Most samples (latencies, pauses, gaps) fit in 16 bits: widen only when needed,
                # to 64 bits if need be (times may be epoch ms).
                exact = self._exact = array("i" if -(2**31) <= value < 2**31 else "q", exact)
                exact.append(value)
            if len(exact) > self._cap:
                self._exact = None
                self._sketching = True
                self._gamma_log = math.log((1 + self._error) / (1 - self._error))
                for sample in exact:
                    self._add_sketch(sample)
            return
        self._add_sketch(value)

    def _add_sketch(self, value: int) -> None:
        if value == 0:
            self._zero += 1
            return
        index = math.ceil(math.log(abs(value)) / self._gamma_log)
        # Each side is created on first use: pauses, gaps and RTT are never negative.
        if value > 0:
            if self._pos is None:
                self._pos = _Buckets()
            self._pos.add(index)
        else:
            if self._neg is None:
                self._neg = _Buckets()
            self._neg.add(index)

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0..1), or ``None`` for an empty series (a median over nothing)."""
        if self._count == 0:
            return None
        if not self._sketching:
            assert self._exact is not None
            return percentile(self._exact, q)
        position = (self._count - 1) * q
        below = math.floor(position)
        low = self._value_at_rank(below)
        if position == below:
            return low
        high = self._value_at_rank(below + 1)
        return low + (high - low) * (position - below)

    def _clamped(self, value: float) -> float:
        # A bucket's representative value may lie outside what was observed (a constant
        # series would read 1 % off); the true quantile never does.
        return min(max(value, float(self._min)), float(self._max))

    def _value_at_rank(self, rank: int) -> float:
        negatives = self._neg.total if self._neg is not None else 0
        if rank < negatives:
            assert self._neg is not None
            # Negative values in ascending order are the largest magnitudes first.
            index = self._neg.index_at_rank(negatives - 1 - rank)
            return self._clamped(-self._bucket_value(index))
        rank -= negatives
        if rank < self._zero:
            return 0.0
        assert self._pos is not None
        return self._clamped(self._bucket_value(self._pos.index_at_rank(rank - self._zero)))

    def _bucket_value(self, index: int) -> float:
        # Midpoint (in relative terms) of bucket (gamma^(i-1), gamma^i].
        gamma = math.exp(self._gamma_log)
        return 2 * gamma**index / (gamma + 1)


class _Buckets:
    """Dense bucket counts over a contiguous range of indices (uint16, widened on overflow)."""

    __slots__ = ("counts", "low", "total")

    def __init__(self) -> None:
        self.counts: array[int] = array("H")
        self.low = 0
        self.total = 0

    def add(self, index: int) -> None:
        counts = self.counts
        code = counts.typecode
        if not counts:
            self.low = index
            counts.append(0)
        elif index < self.low:
            counts[0:0] = array(code, bytes(counts.itemsize * (self.low - index)))
            self.low = index
        elif index >= self.low + len(counts):
            grow = index - self.low - len(counts) + 1
            counts.extend(array(code, bytes(counts.itemsize * grow)))
        position = index - self.low
        if code == "H" and counts[position] == 0xFFFF:
            self.counts = counts = array("I", counts)
        counts[position] += 1
        self.total += 1

    def index_at_rank(self, rank: int) -> int:
        seen = 0
        for offset, count in enumerate(self.counts):
            seen += count
            if rank < seen:
                return self.low + offset
        raise IndexError(rank)
