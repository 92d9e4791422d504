"""Worker records as the report store reads them (services/store/records.py): the three
types of models/records.py, and errors naming the field for anything the store relies on."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from reportkit import alert_record, interruption, ipu, quality_record, report_record

from models.errors import ValidationError
from services.store.records import (
    AlertRecord,
    QualityRecord,
    ReportRecord,
    parse_alert,
    parse_quality,
    parse_record,
    parse_report,
)


def test_the_three_record_types_parse_from_dicts_and_bytes() -> None:
    report = parse_record(orjson.dumps(report_record("s1", "c1")))
    assert isinstance(report, ReportRecord)
    assert (report.session_id, report.clinic_id, report.ended_by) == ("s1", "c1", "session.end")
    assert [(p.participant_id, p.role) for p in report.participants] == [
        ("t1", "therapist"), ("p1", "client")]
    quality = parse_record(quality_record("s1", "c1", [ipu(0, "t1", "therapist", 0, 900),
                                                       interruption(1, 500)]))
    assert isinstance(quality, QualityRecord)
    assert [(e.n, e.kind, e.ts_ms) for e in quality.events] == [(0, "ipu", 0),
                                                                (1, "interruption", 500)]
    assert quality.events[0].detail == {"participant_id": "t1", "role": "therapist",
                                        "start_ms": 0, "end_ms": 900, "backchannel": False}
    alert = parse_record(alert_record("s1", "c1", "long_silence.cleared", 9000))
    assert isinstance(alert, AlertRecord)
    assert (alert.alert, alert.cleared, alert.ts_ms) == ("long_silence", True, 9000)


def _broken(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target = record
    *parents, last = path.split(".")
    for name in parents:
        target = target[name]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return record


@pytest.mark.parametrize(("path", "value", "field"), [
    ("schema_version", 2, "schema_version"),
    ("session_id", "", "session_id"),
    ("clinic_id", None, "clinic_id"),
    ("event_time_ms", "5", "event_time_ms"),
    ("ended_by", "crash", "ended_by"),
    ("start_ms", KeyError, "start_ms"),
    ("participants", {"t1": "therapist"}, "participants"),
    ("report", [], "report"),
    ("report.duration_s", None, "report.duration_s"),
    ("report.session_id", "other", "report.session_id"),
    ("report.alerts", "none", "report.alerts"),
])
def test_bad_report_records_name_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_report(_broken(report_record(), path, value))
    assert raised.value.field == field


def test_bad_quality_and_alert_records_name_the_field() -> None:
    bad_n = quality_record("s1", "c1", [{**ipu(0, "t", "therapist", 0, 1), "n": "zero"}])
    with pytest.raises(ValidationError, match=r"^events\[0\]\.n: "):
        parse_quality(bad_n)
    no_kind = quality_record("s1", "c1", [{"n": 3, "ts_ms": 0}])
    with pytest.raises(ValidationError, match=r"^events\[0\]\.kind: "):
        parse_quality(no_kind)
    with pytest.raises(ValidationError, match=r"^alert\.ts_ms: "):
        parse_alert(_broken(alert_record("s1", "c1", "long_silence", 1), "alert.ts_ms", 1.5))
    with pytest.raises(ValidationError, match=r"^type: "):
        parse_record({"schema_version": 1, "type": "rejected"})
    with pytest.raises(ValidationError, match=r"^record: not JSON"):
        parse_record(b"{nope")
