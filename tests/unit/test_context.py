"""Numbers in context (issue 19 point 2; models/context.py): own medians and the clinic's
interquartile band of per-therapist medians, on hand-checked numbers."""

from __future__ import annotations

import numpy as np
import pytest

from models.context import (
    MIN_BAND_THERAPISTS,
    Band,
    check_n,
    clinic_band,
    context_of,
    median,
    metric_context,
)
from models.errors import ValidationError


def test_median_of_present_values() -> None:
    assert median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert median([None, 5.0, None]) == 5.0
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([None]) is None
    assert median([]) is None


def test_band_is_the_interquartile_range_of_therapist_medians() -> None:
    # Medians 10, 20, 30, 40, 50, 60 (one per therapist): positions 5·0.25 = 1.25 and
    # 5·0.75 = 3.75, so p25 = 20 + 0.25·10 = 22.5 and p75 = 40 + 0.75·10 = 47.5.
    clinic = {f"t{k}": [10.0 * k] for k in range(1, 7)}
    assert clinic_band(clinic) == (Band(22.5, 47.5), 6)
    # Each therapist counts once, whatever their session count: t1 has many sessions with
    # median 10 (values 0, 10, 20), which must not pull the band down.
    clinic["t1"] = [0.0, 10.0, 20.0, 10.0, 10.0]
    assert clinic_band(clinic) == (Band(22.5, 47.5), 6)


def test_band_on_an_integer_position() -> None:
    medians = {"a": [1.0, 3.0], "b": [4.0], "c": [3.0], "d": [5.0, 3.0, 4.0], "e": [5.0]}
    # per-therapist medians: a 2, b 4, c 3, d 4, e 5 -> sorted 2 3 4 4 5: p25 3, p75 4
    assert clinic_band(medians) == (Band(3.0, 4.0), 5)


def test_no_band_under_five_therapists() -> None:
    clinic = {f"t{k}": [float(k)] for k in range(MIN_BAND_THERAPISTS - 1)}
    assert clinic_band(clinic) == (None, 4)
    # a therapist with no value for the metric does not count towards the five
    clinic["silent"] = [None, None]
    assert clinic_band(clinic) == (None, 4)
    clinic["fifth"] = [None, 9.0]
    band, therapists = clinic_band(clinic)
    assert therapists == 5 and band is not None


def test_band_agrees_with_numpy() -> None:
    rng = np.random.default_rng(19)
    clinic = {f"t{k}": [float(v) for v in rng.normal(0.5, 0.1, size=k + 1)]
              for k in range(9)}
    medians = [float(np.percentile(v, 50)) for v in clinic.values()]
    band, therapists = clinic_band(clinic)
    assert therapists == 9 and band is not None
    assert band.p25 == float(np.percentile(medians, 25))
    assert band.p75 == float(np.percentile(medians, 75))


def test_metric_context_and_its_json() -> None:
    found = metric_context(0.7, [0.5, None, 0.6, 0.4], {"me": [0.5, 0.6, 0.4],
                                                       "other": [0.9]})
    assert found.own_median == 0.5 and found.own_sessions == 3
    body = found.to_dict()
    assert body["value"] == 0.7
    assert body["band"] is None and body["band_therapists"] == 2
    assert "5 therapists" in body["band_reason"]


def test_context_of_summaries() -> None:
    clinic = {
        "me": [{"therapist_talk_share": 0.6, "balance_index": 0.9},
               {"therapist_talk_share": 0.4, "balance_index": None}],
        **{f"t{k}": [{"therapist_talk_share": 0.1 * k}] for k in range(1, 5)},
    }
    out = context_of("me", clinic, {"therapist_talk_share": 0.55, "balance_index": 0.8},
                     metrics=("therapist_talk_share", "balance_index"))
    share = out["therapist_talk_share"]
    assert share["value"] == 0.55 and share["own_median"] == 0.5
    assert share["own_sessions"] == 2 and share["band_therapists"] == 5
    # medians 0.1 0.2 0.3 0.4 0.5: p25 0.2, p75 0.4 (float arithmetic of 0.1·k)
    assert share["band"] == pytest.approx({"p25": 0.2, "p75": 0.4})
    balance = out["balance_index"]
    assert balance["own_median"] == 0.9 and balance["own_sessions"] == 1
    assert balance["band"] is None and balance["band_therapists"] == 1
    # a trend has no session value; an unknown therapist has no own median
    assert context_of("nobody", clinic)["therapist_talk_share"]["own_median"] is None
    assert context_of("me", clinic)["therapist_talk_share"]["value"] is None


@pytest.mark.parametrize("n", [0, -1, 201, True])
def test_context_n_bounds(n: int) -> None:
    with pytest.raises(ValidationError, match="context_n"):
        check_n(n)
    assert check_n(1) == 1 and check_n(200) == 200
