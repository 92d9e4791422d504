"""Records the streaming workers read and publish (issue "Streaming workers").

Input is Kafka records on ``rapport.events``, keyed by ``session_id``, each holding one wire-v1
event (METRICS.md §9) or several, one JSON object per line (JSONL), as Rapport's own producers
publish a session's events of one moment together. Output records are JSON objects that all
share one envelope::

    {"schema_version": 1, "type": "quality" | "alert" | "report" | "rejected",
     "session_id": ..., "clinic_id": ..., "event_time_ms": ..., ...}

``event_time_ms`` is on the session clock (§1): how far the session's metrics are decided for
``quality``, the alert's time for ``alert``, the end of ``D`` for ``report``, the rejected
event's own time (when it has one) for ``rejected``. ``session_id``/``clinic_id`` are ``null``
only on a rejected record whose input named none (e.g. invalid JSON). docs/streaming.md lists
every field.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from enum import Enum
from typing import Any

from models.classified import AlertEvent
from models.errors import LateEventError, SessionStateError, ValidationError
from models.events import Compact, maker

SCHEMA_VERSION = 1


class RejectReason(str, Enum):
    """Why an input record went to the dead-letter topic (a closed set: metric label)."""

    TOO_LARGE = "too_large"  # record over max_record_bytes
    MALFORMED_JSON = "malformed_json"  # not JSON, or not a JSON object
    INVALID = "invalid"  # fails wire-v1 validation (unknown type, wrong field types, ...)
    LATE = "late"  # known time more than allowed_lateness_ms behind its session's newest
    SESSION_STATE = "session_state"  # contradicts the session: after its end, closed, ...
    INCONSISTENT = "inconsistent"  # valid alone, but not in context (undeclared participant)
    # A session closed without ever receiving session.start, or whose persisted state could
    # not be restored (field "checkpoint"; models/processor.py).
    UNREPORTABLE = "unreportable"

    @classmethod
    def of(cls, error: ValidationError) -> RejectReason:
        if isinstance(error, LateEventError):
            return cls.LATE
        if isinstance(error, SessionStateError):
            return cls.SESSION_STATE
        return cls.INVALID


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One consumed Kafka record. ``timestamp_ms`` is the record's (producer) timestamp: the
    workers' notion of wall-clock time, so idle timeouts follow the stream, not the machine."""

    value: bytes
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None = None
    topic: str = "rapport.events"
    control: bool = False  # a worker tick (no payload; advances the partition's time)


@dataclass(frozen=True, slots=True)
class Source(Compact):
    """Where an input came from (``index``: the event's line within a multi-event record);
    kept with buffered events to locate apply-time rejections. ``raw`` is the event's bytes."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    raw: bytes = b""
    index: int = 0

    @classmethod
    def of(cls, record: InputRecord, raw: bytes | None = None, index: int = 0) -> Source:
        return cls(record.topic, record.partition, record.offset, record.timestamp_ms,
                   record.value if raw is None else raw, index)

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                "index": self.index, "timestamp_ms": self.timestamp_ms}


# Per-event and per-record constructors (models/events.py, ``maker``): every field, in order.
new_source = maker(Source)
new_input_record = maker(InputRecord)


def _envelope(kind: str, session_id: str | None, clinic_id: str | None,
              event_time_ms: int | None) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "type": kind, "session_id": session_id,
            "clinic_id": clinic_id, "event_time_ms": event_time_ms}


def quality_record(
    session_id: str, clinic_id: str | None, decided_ms: int, final_through_ms: int | None,
    snapshot: dict[str, Any], events: list[dict[str, Any]], source: Source,
) -> dict[str, Any]:
    """A live update: the running metrics (§10 schema, ``final: false``) up to ``decided_ms``,
    of which those up to ``final_through_ms`` are final and later ones may still be corrected
    by later updates (§9 "Final and live"; ``null`` while nothing is final yet), the final
    classified events decided since the previous update (each with its ordinal ``n`` in the
    session), and the input record that triggered the update."""
    record = _envelope("quality", session_id, clinic_id, decided_ms)
    record["final_through_ms"] = final_through_ms
    record["snapshot"] = snapshot
    record["events"] = events
    record["source"] = source.to_dict()
    return record


def alert_record(
    session_id: str, clinic_id: str | None, alert: AlertEvent, source: Source
) -> dict[str, Any]:
    """An alert raised or cleared (§7), once per episode."""
    record = _envelope("alert", session_id, clinic_id, alert.ts_ms)
    record["alert"] = alert.to_dict()
    record["source"] = source.to_dict()
    return record


def report_record(
    session_id: str, clinic_id: str | None, end_ms: int, start_ms: int, ended_by: str,
    participants: list[dict[str, str]], report: dict[str, Any],
) -> dict[str, Any]:
    """The final report (§10), exactly what ``rapport analyze`` prints for the same events.
    ``ended_by`` is ``session.end`` or ``idle_timeout``."""
    record = _envelope("report", session_id, clinic_id, end_ms)
    record["start_ms"] = start_ms
    record["ended_by"] = ended_by
    record["participants"] = participants
    record["report"] = report
    return record


def rejected_record(
    reason: RejectReason, error: ValidationError, source: Source, *,
    session_id: str | None = None, clinic_id: str | None = None,
    event_time_ms: int | None = None, max_raw_bytes: int = 65_536,
) -> dict[str, Any]:
    """A dead-letter record: the raw input (base64, truncated to ``max_raw_bytes``), why it
    was rejected (``reason`` label, ``field``, human ``error``) and where it was read."""
    raw = source.raw
    record = _envelope("rejected", session_id, clinic_id, event_time_ms)
    record["reason"] = reason.value
    record["field"] = error.field
    record["error"] = str(error)
    record["source"] = source.to_dict()
    record["raw_size"] = len(raw)
    record["raw_truncated"] = len(raw) > max_raw_bytes
    record["raw"] = base64.b64encode(raw[:max_raw_bytes]).decode("ascii")
    return record
