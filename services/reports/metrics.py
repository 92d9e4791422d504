"""Prometheus metrics of the report store consumer (services/reports/consumer.py), served on
``/metrics`` of ``rapport reports`` and of the main job (docs/operations.md, "Metrics")."""

from __future__ import annotations

from prometheus_client import Counter

STORE_WRITES = Counter(
    "rapport_store_writes_total",
    "Worker output records handled by the store consumer, by kind (report, quality, alert) "
    "and result (stored: changed the store; duplicate: already stored; invalid: skipped; "
    "no_consent: a session of a client without recorded consent, in a clinic requiring it).",
    ["kind", "result"])
STORE_FAILURES = Counter(
    "rapport_store_failures_total",
    "Database errors while writing a batch of records (each followed by a retry).")

#: The record kind of each output role of models.topics.Topics.
KINDS = {"reports": "report", "quality": "quality", "alerts": "alert"}


def count_writes(kind: str, stored: int, duplicate: int, invalid: int) -> None:
    for result, count in (("stored", stored), ("duplicate", duplicate), ("invalid", invalid)):
        if count:
            STORE_WRITES.labels(kind, result).inc(count)
