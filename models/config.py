"""Every threshold of the metric specification, in one frozen configuration object.

Defaults are those of ``shared/METRICS.md`` (cited per field). None of them is a validated
clinical cut-off: they are defaults to calibrate per clinic. All durations are integer ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from models.errors import ConfigError

MAX_SETTING: Final = 2**53 - 1  # the wire format's time range (models.events.MAX_TIME_MS)


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Live alert rules of METRICS.md §7; each is switchable off with its ``*_enabled`` flag."""

    dominance_enabled: bool = True
    dominance_window_ms: int = 600_000
    dominance_share: float = 0.65
    dominance_min_speech_ms: int = 120_000
    # The window is integrated in buckets; the rule is evaluated at bucket boundaries.
    dominance_bucket_ms: int = 10_000

    burst_enabled: bool = True
    burst_count: int = 3
    burst_window_ms: int = 300_000

    monologue_enabled: bool = True
    monologue_ms: int = 120_000

    silence_enabled: bool = True
    silence_ms: int = 30_000

    network_enabled: bool = True
    network_window_ms: int = 60_000
    network_rtt_p95_ms: int = 300
    network_loss_pct: float = 5.0


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Thresholds of the metric engine (METRICS.md §1–§7). Integer milliseconds throughout."""

    level_voiced_dbov: int = 50  # §1: level frames and samples voiced when level <= this
    level_hold_ms: int = 500  # §1: a level sample covers at most this long
    idle_timeout_s: int = 300  # §1: session closes after this long without events
    min_pause_ms: int = 200  # §2.2: IPU bridging of within-speaker silences shorter than this
    min_speech_ms: int = 100  # §2.3: IPUs shorter than this are dropped
    bc_max_ms: int = 1_000  # §3: backchannel IPUs last at most this
    bc_context_ms: int = 1_000  # §3: partner speech looked for this far before and after
    lapse_ms: int = 3_000  # §4/§6: mutual silences at least this long split monologues, are lapses
    int_min_floor_ms: int = 500  # §5: interrupted IPU must have begun this long before
    int_min_overlap_ms: int = 500  # §5: overlap must last this long to be an interruption
    rtt_degraded_ms: int = 300  # §6: RTT p95 above this marks latency metrics low-confidence
    allowed_lateness_ms: int = 5_000  # §9: out-of-order tolerance per session
    # §1/§9: the longest speech segment, or activity/levels batch span; longer ones are rejected
    # (no VAD segment lasts 10 min without a 200 ms pause: such a segment is a stuck source).
    # Events are final L + this after the newest known time (models/session.py).
    max_segment_ms: int = 600_000
    # Alerts kept in the final report; later ones are counted, not listed (bounded state).
    max_report_alerts: int = 100
    alerts: AlertRules = field(default_factory=AlertRules)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float | AlertRules):
                raise ConfigError(f.name, f"must be a number, got {value!r}")
            if isinstance(value, int | float):
                _check_range(f.name, value)
        for f in fields(self.alerts):
            value = getattr(self.alerts, f.name)
            if f.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"alerts.{f.name}", f"must be true or false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"alerts.{f.name}", f"must be a number, got {value!r}")
            else:
                _check_range(f"alerts.{f.name}", value)
        if self.max_segment_ms < 1:
            raise ConfigError("max_segment_ms", "must be >= 1")
        if self.level_voiced_dbov > 127:
            raise ConfigError("level_voiced_dbov", "must be in 0..127 (-dBov)")
        if self.alerts.dominance_bucket_ms <= 0 or (
            self.alerts.dominance_window_ms % self.alerts.dominance_bucket_ms
        ):
            raise ConfigError(
                "alerts.dominance_bucket_ms", "must be > 0 and divide dominance_window_ms"
            )

    @property
    def floor_lookahead_ms(self) -> int:
        """How far (ms) the floor analysis trails the finalized horizon.

        An IPU's existence is certain ``min_speech_ms + min_pause_ms`` after its onset, and
        whether it is a backchannel ``bc_max_ms + bc_context_ms`` after that (§2, §3).
        """
        return self.min_pause_ms + self.min_speech_ms + self.bc_max_ms + self.bc_context_ms

    def with_overrides(self, **overrides: Any) -> EngineConfig:
        """A copy with some fields replaced (``alerts`` may be given as a dict of overrides)."""
        alert_overrides = overrides.pop("alerts", None)
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            name = sorted(unknown)[0]
            raise ConfigError(name, "unknown engine setting")
        config = replace(self, **overrides)
        if alert_overrides:
            known = {f.name for f in fields(AlertRules)}
            for name in alert_overrides:
                if name not in known:
                    raise ConfigError(f"alerts.{name}", "unknown alert setting")
            config = replace(config, alerts=replace(config.alerts, **alert_overrides))
        return config


def _check_range(name: str, value: float) -> None:
    """Thresholds are durations or counts on the ms clock: 0..2**53 - 1 like every time of the
    wire format (METRICS.md §9), so sums and products of them stay in 64-bit arrays."""
    if not math.isfinite(value) or not 0 <= value <= MAX_SETTING:
        raise ConfigError(name, f"must be in 0..{MAX_SETTING} (2**53 - 1), got {value}")


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """How the streaming workers drive engines (issue "Streaming workers"; docs/streaming.md).

    Times here are on the *stream clock*: the Kafka record timestamps a worker has seen on a
    partition (producer time, advanced by the workers' ticks while a partition is quiet), so a
    backlog being caught up on never looks like idleness.
    """

    snapshot_interval_ms: int = 5_000  # session clock: a quality update at least this often
    end_grace_ms: int = 5_000  # stream clock: wait after session.end for late events
    idle_timeout_ms: int = 300_000  # stream clock: close a session without events this long
    closed_retention_ms: int = 3_600_000  # stream clock: remember closed sessions (replays)
    max_record_bytes: int = 1_048_576  # larger input records are rejected as too_large
    max_dlq_raw_bytes: int = 65_536  # raw bytes kept per dead-letter record

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f.name, f"must be an integer >= 0, got {value!r}")
        if self.max_record_bytes < 1:
            raise ConfigError("max_record_bytes", "must be >= 1")
