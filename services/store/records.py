"""The records the streaming workers publish, as the store reads them (issue 5).

Three record types arrive, one JSON object each, all with ``schema_version`` 1, ``type``,
``session_id``, ``clinic_id`` and ``event_time_ms`` (on the session clock, METRICS.md §1):

- ``report`` (topic ``rapport.reports``): the final report (METRICS.md §10) with ``ended_by``
  (``session.end`` or ``idle_timeout``), ``start_ms`` and the session's ``participants``
  roster (``participant_id``, ``role``);
- ``quality`` (``rapport.quality``): the running report ``snapshot`` (§10, ``final: false``)
  and the classified ``events`` decided since the previous record, each numbered ``n`` within
  its session (deterministic, so a redelivered record repeats the same numbers);
- ``alert`` (``rapport.alerts``): one alert transition (§7), e.g. ``long_silence`` or
  ``long_silence.cleared``.

Parsing checks what the store relies on and raises :class:`~models.errors.ValidationError`
naming the field, so a consumer can dead-letter a bad record with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from models.errors import ValidationError

SCHEMA_VERSION = 1
ENDED_BY = ("session.end", "idle_timeout")
MAX_ID_LENGTH = 200
MAX_KIND_LENGTH = 32


@dataclass(frozen=True, slots=True)
class Participant:
    participant_id: str
    role: str


@dataclass(frozen=True, slots=True)
class ReportRecord:
    session_id: str
    clinic_id: str
    event_time_ms: int
    ended_by: str
    start_ms: int
    participants: tuple[Participant, ...]
    report: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    n: int
    kind: str
    ts_ms: int
    detail: dict[str, Any]  # the event without n, kind and ts_ms


@dataclass(frozen=True, slots=True)
class QualityRecord:
    session_id: str
    clinic_id: str
    event_time_ms: int
    snapshot: dict[str, Any]
    events: tuple[TimelineEvent, ...]


@dataclass(frozen=True, slots=True)
class AlertRecord:
    session_id: str
    clinic_id: str
    event_time_ms: int
    alert: str  # the alert type without ".cleared" (§7)
    cleared: bool
    ts_ms: int
    detail: dict[str, Any]


Record = ReportRecord | QualityRecord | AlertRecord


def _object(raw: Mapping[str, Any] | bytes | str) -> Mapping[str, Any]:
    if isinstance(raw, bytes | str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise ValidationError("record", f"not JSON: {error}") from None
    if not isinstance(raw, Mapping):
        raise ValidationError("record", "must be a JSON object")
    return raw


def _text(data: Mapping[str, Any], name: str, limit: int = MAX_ID_LENGTH) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationError(name, "must be a non-empty string")
    if len(value) > limit:
        raise ValidationError(name, f"longer than {limit} characters")
    return value


def _int(data: Mapping[str, Any], name: str, path: str | None = None) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(path or name, "must be an integer")
    return value


def _dict(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ValidationError(name, "must be an object")
    return value


def _envelope(data: Mapping[str, Any], kind: str) -> tuple[str, str, int]:
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValidationError("schema_version", f"must be {SCHEMA_VERSION}")
    if data.get("type") != kind:
        raise ValidationError("type", f"must be {kind!r}")
    return _text(data, "session_id"), _text(data, "clinic_id"), _int(data, "event_time_ms")


def parse_report(raw: Mapping[str, Any] | bytes | str) -> ReportRecord:
    data = _object(raw)
    session_id, clinic_id, event_time = _envelope(data, "report")
    ended_by = data.get("ended_by")
    if ended_by not in ENDED_BY:
        raise ValidationError("ended_by", f"must be one of {', '.join(ENDED_BY)}")
    start = _int(data, "start_ms")
    listed = data.get("participants", [])
    if not isinstance(listed, list):
        raise ValidationError("participants", "must be a list")
    roster = []
    for index, item in enumerate(listed):
        where = f"participants[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(where, "must be an object")
        pid, role = item.get("participant_id"), item.get("role")
        if not isinstance(pid, str) or not pid:
            raise ValidationError(f"{where}.participant_id", "must be a non-empty string")
        if not isinstance(role, str) or not role:
            raise ValidationError(f"{where}.role", "must be a non-empty string")
        roster.append(Participant(pid, role))
    report = _dict(data, "report")
    if report.get("session_id", session_id) != session_id:
        raise ValidationError("report.session_id", "differs from the record's session_id")
    duration = report.get("duration_s")
    if not isinstance(duration, int | float) or isinstance(duration, bool):
        raise ValidationError("report.duration_s", "must be a number")
    alerts = report.get("alerts", [])
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        raise ValidationError("report.alerts", "must be a list of objects")
    return ReportRecord(session_id, clinic_id, event_time, str(ended_by), start, tuple(roster),
                        report)


def parse_quality(raw: Mapping[str, Any] | bytes | str) -> QualityRecord:
    data = _object(raw)
    session_id, clinic_id, event_time = _envelope(data, "quality")
    snapshot = data.get("snapshot", {})
    if not isinstance(snapshot, dict):
        raise ValidationError("snapshot", "must be an object")
    listed = data.get("events", [])
    if not isinstance(listed, list):
        raise ValidationError("events", "must be a list")
    events = []
    for index, item in enumerate(listed):
        where = f"events[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(where, "must be an object")
        n = _int(item, "n", f"{where}.n")
        if n < 0:
            raise ValidationError(f"{where}.n", "must be >= 0")
        kind = item.get("kind")
        if not isinstance(kind, str) or not kind or len(kind) > MAX_KIND_LENGTH:
            raise ValidationError(f"{where}.kind", "must be a short non-empty string")
        ts = _int(item, "ts_ms", f"{where}.ts_ms")
        detail = {k: v for k, v in item.items() if k not in ("n", "kind", "ts_ms")}
        events.append(TimelineEvent(n, kind, ts, detail))
    return QualityRecord(session_id, clinic_id, event_time, snapshot, tuple(events))


def parse_alert(raw: Mapping[str, Any] | bytes | str) -> AlertRecord:
    data = _object(raw)
    session_id, clinic_id, event_time = _envelope(data, "alert")
    alert = _dict(data, "alert")
    name = alert.get("alert")
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ValidationError("alert.alert", "must be an alert type such as long_silence")
    cleared = name.endswith(".cleared")
    ts = _int(alert, "ts_ms", "alert.ts_ms")
    detail = {k: v for k, v in alert.items() if k not in ("kind", "alert", "ts_ms")}
    return AlertRecord(session_id, clinic_id, event_time, name.removesuffix(".cleared"),
                       cleared, ts, detail)


def parse_record(raw: Mapping[str, Any] | bytes | str) -> Record:
    """Any of the three record types, chosen by ``type``."""
    data = _object(raw)
    kind = data.get("type")
    if kind == "report":
        return parse_report(data)
    if kind == "quality":
        return parse_quality(data)
    if kind == "alert":
        return parse_alert(data)
    raise ValidationError("type", "must be report, quality or alert")
