"""METRICS.md §10 quantiles: linear interpolation between closest ranks (numpy's default
percentile), exact over every sample of a session however many there are."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.errors import ValidationError
from models.quantiles import QuantileSeries, percentile

# Valid samples: times are 0..2**53-1 ms, so a sample (a duration or a difference of two times)
# lies within ±(2**53 - 1). Mostly small values (latencies, pauses) with duplicates and zeros,
# sometimes past 16 and 32 bits, the widths a series grows through.
SAMPLE = st.one_of(
    st.integers(-2000, 5000),
    st.sampled_from([0, 0, 200, -1, 32_767, -32_768, 32_768, 2**31 - 1, 2**31, -(2**31) - 1]),
    st.integers(-(2**53 - 1), 2**53 - 1),
)


def _long(base: list[int], length: int, rng: random.Random) -> list[int]:
    """``length`` samples, half drawn from ``base`` (duplicates), half typical latencies."""
    return [rng.choice(base) if rng.random() < 0.5 else rng.randint(-2000, 70_000)
            for _ in range(length)]


# Lengths past the old 256-sample cap and up to a several-hour session's few thousand (built
# from a short drawn list: Hypothesis is slow to draw thousands of elements one by one).
SERIES = st.one_of(
    st.lists(SAMPLE, min_size=1, max_size=100),
    st.builds(_long, st.lists(SAMPLE, min_size=1, max_size=30), st.integers(257, 5000),
              st.randoms(use_true_random=False)),
)


def bits(value: float | None) -> bytes:
    """A float's IEEE-754 encoding: equal encodings mean equal to the last bit, sign of zero
    included."""
    assert value is not None
    return struct.pack("<d", value)


@settings(max_examples=100, deadline=None)
@given(SERIES, st.floats(0.0, 1.0))
def test_quantiles_equal_numpy_to_the_last_bit(values: list[int], q: float) -> None:
    series = QuantileSeries()
    for value in values:
        series.add(value)
    assert len(series) == len(values)
    # The report's quantiles, in numpy.percentile's terms (§10), and any other q.
    for p in (50, 90, 95):
        assert bits(series.quantile(p / 100)) == bits(float(np.percentile(values, p))), p
    assert bits(series.quantile(q)) == bits(float(np.quantile(values, q)))
    assert bits(percentile(values, q)) == bits(float(np.quantile(values, q)))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 1500), min_size=1, max_size=600), st.data())
def test_quantiles_follow_a_growing_series(values: list[int], data: st.DataObject) -> None:
    """A live report reads quantiles while samples keep arriving: each reading is exact over
    the samples so far."""
    series = QuantileSeries()
    readings = data.draw(st.sets(st.integers(0, len(values) - 1), max_size=5))
    for index, value in enumerate(values):
        series.add(value)
        if index in readings:
            so_far = values[: index + 1]
            assert series.quantile(0.5) == float(np.percentile(so_far, 50))


def test_quantile_series_widen_beyond_16_bits_and_stay_exact() -> None:
    series = QuantileSeries()
    for value in (5, 70_000, -40_000, 12):
        series.add(value)
    assert series.quantile(0.5) == 8.5  # sorted -40000, 5, 12, 70000 -> (5 + 12) / 2
    series.add(2**53 - 1)  # a gap between epoch-ms times: past 32 bits too
    series.add(-(2**53 - 1))
    # sorted: -(2**53-1), -40000, 5, 12, 70000, 2**53-1 -> the median is still (5 + 12) / 2
    assert series.quantile(0.5) == 8.5
    assert (series.quantile(0.0), series.quantile(1.0)) == (-float(2**53 - 1), float(2**53 - 1))


def test_an_empty_series_has_no_quantile_and_a_sample_past_64_bits_is_refused() -> None:
    series = QuantileSeries()
    assert series.quantile(0.5) is None  # §10: a median over nothing is null
    with pytest.raises(ValidationError, match="value"):
        series.add(2**63)
    assert len(series) == 0
