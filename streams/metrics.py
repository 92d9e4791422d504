"""Prometheus metrics of a streaming worker (served on ``/metrics``; docs/streaming.md).

Names follow Prometheus conventions: ``_total`` counters, base units (seconds).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from models.processor import BatchResult

EVENTS_CONSUMED = Counter(
    "rapport_events_consumed_total", "Input records consumed from the events topic (ticks "
    "excluded), including rejected ones.")
EVENTS_REJECTED = Counter(
    "rapport_events_rejected_total", "Input records sent to the dead-letter topic, by reason.",
    ["reason"])
EVENTS_DUPLICATE = Counter(
    "rapport_events_duplicate_total", "Events recognised as already received (no effect).")
EVENTS_REPLAYED = Counter(
    "rapport_events_replayed_total", "Records redelivered after a restart or rebalance and "
    "skipped because their effect was already in the restored state.")
SESSIONS_OPENED = Counter("rapport_sessions_opened_total", "Sessions opened on this worker.")
SESSIONS_CLOSED = Counter(
    "rapport_sessions_closed_total", "Sessions closed, by how they ended.", ["ended_by"])
CONSUMER_LAG = Gauge(
    "rapport_consumer_lag", "Records of the events topic not yet processed, per partition.",
    ["partition"])
PARTITIONS_ASSIGNED = Gauge(
    "rapport_partitions_assigned", "Partitions of the events topic this worker owns.")
SESSIONS_ACTIVE = Gauge("rapport_sessions_active", "Open sessions held by this worker.")
ALERTS = Counter("rapport_alerts_total", "Alerts raised or cleared, by kind.", ["alert"])
QUALITY_UPDATES = Counter("rapport_quality_updates_total", "Quality records published.")
UPDATE_LATENCY = Histogram(
    "rapport_update_latency_seconds",
    "From an input record's timestamp to the publication of the quality update it triggered "
    "(the engine's deliberate look-ahead excluded).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
BATCH_SECONDS = Histogram(
    "rapport_batch_seconds", "Time to process one micro-batch, outputs flushed.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
CHECKPOINTS = Counter(
    "rapport_checkpoints_total", "Session checkpoints written to the changelog table.")
CHECKPOINTS_UNREADABLE = Counter(
    "rapport_checkpoints_unreadable_total", "Persisted session states that could not be "
    "restored (not a checkpoint, another format version, corrupt): each session was "
    "dead-lettered and closed as unreportable, or skipped when its partition was unknown.")
CLOSED_FROM_REPORTS = Counter(
    "rapport_sessions_closed_from_reports_total", "Sessions a worker taking a partition over "
    "found reported but not marked closed (their worker died in between), closed without "
    "publishing their report again.")
DELIVERY_ANOMALIES = Counter(
    "rapport_delivery_anomalies_total", "Input records the consumer delivered out of turn: "
    "applied_already (delivered again: dropped), missing_before (after a hole: held back, "
    "the partition sought back to the hole), after_gap (applied after a hole still there "
    "patience_ms after the seek: a gap in the log, or records lost; models/delivery.py).",
    ["kind"])
CHECKPOINT_SECONDS = Histogram(
    "rapport_checkpoint_seconds", "Time of one round of session checkpoints.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
RECOVERY_REFETCHES = Counter(
    "rapport_recovery_refetches_total", "Changelog partitions sought back during a table "
    "recovery because they had applied nothing for the stall time while still behind "
    "(streams/recovery_watchdog.py).")
BATCH_RECORDS = Histogram(
    "rapport_batch_records", "Records per micro-batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000))


def observe(result: BatchResult, published_ms: int, open_sessions: int) -> None:
    """Count one processed batch."""
    EVENTS_CONSUMED.inc(result.consumed)
    for reason, count in result.rejected.items():
        EVENTS_REJECTED.labels(reason).inc(count)
    EVENTS_DUPLICATE.inc(result.duplicates)
    EVENTS_REPLAYED.inc(result.replayed)
    SESSIONS_OPENED.inc(result.opened)
    for ended_by, count in result.closed.items():
        SESSIONS_CLOSED.labels(ended_by).inc(count)
    for alert, count in result.alerts.items():
        ALERTS.labels(alert).inc(count)
    QUALITY_UPDATES.inc(result.quality_updates)
    CHECKPOINTS_UNREADABLE.inc(result.unreadable)
    for source_ms in result.update_sources:
        UPDATE_LATENCY.observe(max(published_ms - source_ms, 0) / 1000)
    SESSIONS_ACTIVE.set(open_sessions)
