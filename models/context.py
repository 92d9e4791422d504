"""Numbers in context (issue 19 point 2): a session's metric beside the therapist's own median
and the clinic's interquartile band.

Pure: the caller (services/store/context.py) fetches, per therapist of one clinic, the
headline metrics (the ``summary`` of METRICS.md §10 reports, see
:data:`services.store.sessions.SUMMARY_FIELDS`) of their latest ``n`` sessions before a
moment; this module reduces them.

- **own median**: the median of the therapist's values over those sessions (sessions where the
  metric is ``null`` are left out; no value at all: ``None``).
- **clinic band**: the 25th and 75th percentiles of the *per-therapist medians* (each
  therapist's median over their own latest ``n`` sessions, the therapist asking included), so
  every therapist weighs the same however many sessions they hold. It is given only when at
  least :data:`MIN_BAND_THERAPISTS` therapists have a value for the metric; otherwise
  ``band`` is ``None`` and ``band_therapists`` says how many there were (no singling out: a
  band of two therapists would show a colleague's own numbers).

Quantiles are exact, linear interpolation between closest ranks (numpy's default percentile),
as METRICS.md §10 promises for every quantile of a report (:func:`models.quantiles.percentile`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.errors import ValidationError
from models.quantiles import percentile

MIN_BAND_THERAPISTS = 5
DEFAULT_CONTEXT_N = 20
MAX_CONTEXT_N = 200

# Metrics given in context: summary fields (METRICS.md §10 paths in SUMMARY_FIELDS) that the
# report and trend pages show; counts that scale with session length are left out.
CONTEXT_METRICS: tuple[str, ...] = (
    "therapist_talk_share",
    "client_talk_share",
    "balance_index",
    "turns_per_min",
    "therapist_longest_monologue_s",
    "therapist_latency_median_ms",
    "client_latency_median_ms",
    "therapist_backchannels_per_min",
    "therapist_interruptions",
    "client_interruptions",
    "interruption_asymmetry",
    "silence_ratio",
)

Summary = Mapping[str, Any]


def check_n(n: int) -> int:
    """``n`` sessions per therapist: 1 to :data:`MAX_CONTEXT_N` (``context_n`` in the API)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CONTEXT_N:
        raise ValidationError("context_n", f"must be an integer from 1 to {MAX_CONTEXT_N}")
    return n


def number(value: Any) -> float | None:
    """A metric value as a float, ``None`` for a missing or non-numeric one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def median(values: Iterable[float | None]) -> float | None:
    """The median of the present values (linear percentile 50), ``None`` if there are none."""
    present = [v for v in values if v is not None]
    return percentile(present, 0.5) if present else None


@dataclass(frozen=True, slots=True)
class Band:
    """The clinic's interquartile band of per-therapist medians."""

    p25: float
    p75: float


@dataclass(frozen=True, slots=True)
class MetricContext:
    """One metric in context: the session's ``value`` (None on a trend), the therapist's own
    median over ``own_sessions`` sessions, and the clinic's band over ``band_therapists``
    therapists (None when fewer than :data:`MIN_BAND_THERAPISTS`)."""

    value: float | None
    own_median: float | None
    own_sessions: int
    band: Band | None
    band_therapists: int

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "value": self.value, "own_median": self.own_median,
            "own_sessions": self.own_sessions,
            "band": None if self.band is None else {"p25": self.band.p25,
                                                    "p75": self.band.p75},
            "band_therapists": self.band_therapists,
        }
        if self.band is None:
            body["band_reason"] = (f"fewer than {MIN_BAND_THERAPISTS} therapists have this "
                                   "metric")
        return body


def clinic_band(per_therapist: Mapping[str, Sequence[float | None]],
                min_therapists: int = MIN_BAND_THERAPISTS) -> tuple[Band | None, int]:
    """(band, therapists): the 25th–75th percentile of the therapists' medians, or None when
    fewer than ``min_therapists`` therapists have a value."""
    medians = [m for m in (median(values) for values in per_therapist.values())
               if m is not None]
    if len(medians) < min_therapists:
        return None, len(medians)
    return Band(percentile(medians, 0.25), percentile(medians, 0.75)), len(medians)


def metric_context(value: float | None, own: Sequence[float | None],
                   clinic: Mapping[str, Sequence[float | None]]) -> MetricContext:
    """One metric: ``own`` are the therapist's values, ``clinic`` every therapist's."""
    band, therapists = clinic_band(clinic)
    present = [v for v in own if v is not None]
    return MetricContext(value, median(present), len(present), band, therapists)


def context_of(therapist: str | None, clinic: Mapping[str, Sequence[Summary]],
               value: Summary | None = None,
               metrics: Sequence[str] = CONTEXT_METRICS) -> dict[str, dict[str, Any]]:
    """Every metric in context: ``clinic`` maps each therapist's pseudonym to the summaries
    of their latest sessions; ``value`` is the session's own summary (None on a trend)."""
    out: dict[str, dict[str, Any]] = {}
    for name in metrics:
        per = {who: [number(s.get(name)) for s in summaries]
               for who, summaries in clinic.items()}
        own = per.get(therapist, []) if therapist is not None else []
        out[name] = metric_context(None if value is None else number(value.get(name)), own,
                                   per).to_dict()
    return out
