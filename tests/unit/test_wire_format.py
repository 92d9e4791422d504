"""METRICS.md §9 wire format v1: the parser's validation errors (field named, reason given) and
delivery semantics (out of order within allowed_lateness_ms, duplicates, late events, events
after session.end, undeclared participants kept as rejections)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from enginekit import (
    SID,
    activity,
    end,
    join,
    network,
    rejections,
    role,
    run_session,
    session,
    speech,
    start,
    state,
)

from models.config import EngineConfig
from models.errors import LateEventError, SessionStateError, ValidationError
from models.events import (
    Activity,
    Network,
    ParticipantJoin,
    ParticipantState,
    SessionEnd,
    SessionStart,
    Speech,
    parse_event,
    parse_json,
)
from models.session import SessionEngine

VALID: dict[str, dict[str, Any]] = {
    "session.start": start(),
    "session.end": end(600_000),
    "speech": speech("p1", 1000, 4200),
    "activity": activity("p2", 12, 4000, voiced="0011111100"),
    "network": network("p2", 5000, 180, jitter_ms=12, loss_pct=0.5),
    "participant.join": join("p3", "client", 6000),
    "participant.mute": state("mute", "p2", 7000),
    "participant.unmute": state("unmute", "p2", 7000),
    "participant.leave": state("leave", "p2", 7000),
}

REQUIRED = [
    ("session.start", "session_id"), ("session.start", "ts_ms"), ("session.start", "clinic_id"),
    ("session.end", "session_id"), ("session.end", "ts_ms"),
    ("speech", "session_id"), ("speech", "participant_id"), ("speech", "start_ms"),
    ("speech", "end_ms"),
    ("activity", "session_id"), ("activity", "participant_id"), ("activity", "seq"),
    ("activity", "start_ms"), ("activity", "frame_ms"), ("activity", "voiced"),
    ("network", "session_id"), ("network", "participant_id"), ("network", "ts_ms"),
    ("network", "rtt_ms"),
    ("participant.join", "session_id"), ("participant.join", "participant_id"),
    ("participant.join", "role"), ("participant.join", "ts_ms"),
    *[(kind, name) for kind in ("participant.mute", "participant.unmute", "participant.leave")
      for name in ("session_id", "participant_id", "ts_ms")],
]


def _error(value: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        parse_event(value)
    error = info.value
    assert str(error) == f"{error.field}: {error.reason}"
    assert isinstance(error, ValueError)
    return error


def _with(kind: str, **changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(VALID[kind])
    event.update(changes)
    return event


@pytest.mark.parametrize("kind", list(VALID))
def test_s9_every_event_type_parses(kind: str) -> None:
    """§9: the documented example of each event type is valid."""
    event = parse_event(VALID[kind])
    assert event.type == kind
    assert event.session_id == SID


def test_s9_parsed_fields() -> None:
    """§9: field values survive parsing (times as integer ms)."""
    assert parse_event(VALID["speech"]) == Speech(SID, "p1", 1000, 4200)
    a = parse_event(VALID["activity"])
    assert isinstance(a, Activity)
    assert (a.seq, a.start_ms, a.frame_ms, a.voiced, a.end_ms) == (12, 4000, 20, "0011111100",
                                                                  4200)
    n = parse_event(VALID["network"])
    assert isinstance(n, Network) and (n.rtt_ms, n.loss_pct) == (180.0, 0.5)
    s = parse_event(VALID["session.start"])
    assert isinstance(s, SessionStart)
    assert [(p.participant_id, p.role) for p in s.participants] == [("t", "therapist"),
                                                                     ("c", "client")]
    assert parse_event(VALID["session.end"]) == SessionEnd(SID, 600_000)
    assert isinstance(parse_event(VALID["participant.join"]), ParticipantJoin)
    assert isinstance(parse_event(VALID["participant.leave"]), ParticipantState)


def test_s9_start_may_list_no_participants() -> None:
    """§9: "session.start may list no participants when they join later"."""
    event = parse_event({k: v for k, v in VALID["session.start"].items() if k != "participants"})
    assert isinstance(event, SessionStart) and event.participants == ()


@pytest.mark.parametrize(("kind", "name"), REQUIRED, ids=[f"{k}.{n}" for k, n in REQUIRED])
def test_s9_missing_required_field_is_named(kind: str, name: str) -> None:
    """§9: an event missing a required field is rejected naming that field."""
    event = copy.deepcopy(VALID[kind])
    del event[name]
    error = _error(event)
    assert error.field == f"{kind}.{name}"
    assert error.reason


@pytest.mark.parametrize(
    ("event", "field", "words"),
    [
        # wrong JSON types
        (_with("speech", session_id=5), "speech.session_id", ["string", "number"]),
        (_with("session.start", session_id=7), "session.start.session_id", ["string"]),
        (_with("speech", participant_id=None), "speech.participant_id", ["string"]),
        (_with("speech", participant_id="p 1"), "speech.participant_id", ["space"]),
        (_with("speech", start_ms="1000"), "speech.start_ms", ["integer", "string"]),
        (_with("speech", start_ms=1000.5), "speech.start_ms", ["integer"]),
        (_with("session.end", ts_ms=1.0e6), "session.end.ts_ms", ["integer"]),
        (_with("activity", seq="12"), "activity.seq", ["integer"]),
        # booleans where integers are expected
        (_with("speech", start_ms=True), "speech.start_ms", ["integer", "boolean"]),
        (_with("speech", end_ms=False), "speech.end_ms", ["integer", "boolean"]),
        (_with("activity", seq=True), "activity.seq", ["integer", "boolean"]),
        (_with("activity", frame_ms=True), "activity.frame_ms", ["10, 20 or 30"]),
        (_with("network", rtt_ms=True), "network.rtt_ms", ["number", "boolean"]),
        (_with("activity", voiced=None, levels=[True, 40]), "activity.levels", ["integers"]),
        # negative times and out-of-range values
        (_with("speech", start_ms=-1), "speech.start_ms", ["0..9007199254740991", "-1"]),
        (_with("network", ts_ms=-5), "network.ts_ms", ["0..9007199254740991"]),
        (_with("participant.mute", ts_ms=-1), "participant.mute.ts_ms", ["0..9007199254740991"]),
        (_with("session.end", ts_ms=2**53), "session.end.ts_ms", ["0..9007199254740991"]),
        (_with("network", rtt_ms=-1), "network.rtt_ms", ["-1"]),
        (_with("network", rtt_ms=float("nan")), "network.rtt_ms", ["finite"]),
        (_with("network", loss_pct=101), "network.loss_pct", ["0..100"]),
        (_with("activity", frame_ms=25), "activity.frame_ms", ["10, 20 or 30"]),
        # speech segment shape
        (_with("speech", end_ms=1000), "speech.end_ms", ["start_ms"]),  # end == start
        (_with("speech", end_ms=999), "speech.end_ms", ["start_ms"]),
        # frames
        (_with("activity", voiced="0012"), "activity.voiced", ["0/1"]),
        (_with("activity", voiced=""), "activity.voiced", ["0/1"]),
        (_with("activity", voiced=1011), "activity.voiced", ["0/1"]),
        (_with("activity", levels=[40]), "activity.levels", ["not both"]),
        (_with("activity", voiced=None, levels=[40, 128]), "activity.levels", ["0..127"]),
        (_with("activity", voiced=None, levels=[]), "activity.levels", ["non-empty"]),
        (_with("activity", voiced=None, levels=[40, 60], vad="1"), "activity.vad",
         ["as long as levels"]),
        (_with("activity", voiced=None, levels=[40, 60], vad="1x"), "activity.vad", ["0/1/-"]),
        (_with("activity", voiced="1" * 3001), "activity.voiced", ["60000 ms"]),
        # roles and rosters
        (_with("participant.join", role="doctor"), "participant.join.role", ["therapist"]),
        (_with("session.start", participants={"t": "therapist"}), "session.start.participants",
         ["list"]),
        (_with("session.start", participants=[{"participant_id": "t", "role": "boss"}]),
         "session.start.participants[0].role", ["therapist"]),
        (_with("session.start", participants=[{"participant_id": "t", "role": "therapist"},
                                              {"participant_id": "t", "role": "client"}]),
         "session.start.participants[1].participant_id", ["duplicate"]),
        # event type
        (_with("speech", type="speach"), "type", ["unknown", "speach"]),
        ({"session_id": SID, "ts_ms": 0}, "type", ["session.start"]),
        (_with("speech", type=3), "type", ["speech"]),
        ([VALID["speech"]], "event", ["object"]),
    ],
)
def test_s9_invalid_values_are_rejected_naming_the_field(
    event: object, field: str, words: list[str]
) -> None:
    """§9: "An event that fails validation is rejected with a reason naming the field"."""
    error = _error(event)
    assert error.field == field
    for word in words:
        assert word in error.reason, error.reason


def test_s9_a_6_hour_segment_is_rejected_naming_the_field(tc_engine: SessionEngine) -> None:
    """§1: segments last up to max_segment_ms (600 000); the engine, which knows the setting,
    rejects a 6-hour "segment" naming the field (the parser alone accepts its shape)."""
    event = parse_event(_with("speech", start_ms=0, end_ms=6 * 3_600_000))
    with pytest.raises(ValidationError) as info:
        tc_engine.ingest(event)
    assert info.value.field == "speech.end_ms"
    assert "21600000" in info.value.reason
    assert "more than max_segment_ms=600000" in info.value.reason


def test_s9_json_lines() -> None:
    """§9: one JSON object per line; a line that is not JSON is rejected as such."""
    line = ('{"type":"speech","session_id":"s1","participant_id":"p1",'
            '"start_ms":1000,"end_ms":4200}')
    assert parse_json(line) == Speech(SID, "p1", 1000, 4200)
    with pytest.raises(ValidationError) as info:
        parse_json('{"type":"speech",')
    assert info.value.field == "json"


def test_s9_unknown_extra_fields_are_ignored() -> None:
    """§9 (forward compatibility of v1): producers may add fields."""
    assert parse_event(_with("speech", codec="opus")) == Speech(SID, "p1", 1000, 4200)


# --- delivery semantics: order, duplicates, lateness, session state ----------------------------

DIALOG = session(
    network("c", 500, 120),
    speech("t", 1000, 3000), speech("c", 3500, 6000), speech("t", 5000, 5600),
    speech("t", 6300, 9000), speech("c", 7000, 8200), speech("c", 9400, 12_000),
    end_ms=20_000,
)


def _swap_neighbours(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Swap each pair of body events (all pairs lie within 5000 ms of each other)."""
    body = events[1:-1]
    swapped = [x for i in range(0, len(body) - 1, 2) for x in (body[i + 1], body[i])]
    if len(body) % 2:
        swapped.append(body[-1])
    return [events[0], *swapped, events[-1]]


def test_s9_out_of_order_within_lateness_gives_the_same_report() -> None:
    """§9: events may arrive out of order within allowed_lateness_ms; the report is the same."""
    in_order, _ = run_session(DIALOG)
    shuffled, _ = run_session(_swap_neighbours(DIALOG))
    # the first segments backwards: t@5000-5600, c@3500-6000, t@1000-3000 (known times 5600,
    # 6000, 3000: within 5000 ms of the newest), then the rest in order
    head_reversed, _ = run_session([*DIALOG[:2], *reversed(DIALOG[2:5]), *DIALOG[5:]])
    assert shuffled == in_order
    assert head_reversed == in_order
    # and the report is not trivial: t 2000 + 600 + 2700 ms of talk
    assert role(in_order, "therapist")["talk_s"] == 5.3


def test_s9_duplicates_change_nothing() -> None:
    """§9: a repeated activity (same participant and seq) or identical speech changes nothing;
    ingest returns False for it. Each copy arrives right after the original (in time)."""
    body = [*DIALOG[1:-1], activity("t", 1, 12_000, voiced="1" * 20)]
    copies = [*body[:-1], activity("t", 1, 12_000, voiced="0" * 20)]  # same seq, other data
    engine = SessionEngine(SID, EngineConfig())
    assert engine.ingest(parse_event(start())) is True
    for original, copy_ in zip(body, copies, strict=True):
        assert engine.ingest(parse_event(original)) is True
        assert engine.ingest(parse_event(copy_)) is False
    assert engine.ingest(parse_event(start())) is False
    assert engine.ingest(parse_event(end(20_000))) is True
    once, _ = run_session([start(), *body, end(20_000)])
    assert engine.finish() == once
    assert engine.duplicates == len(copies) + 1


def test_s9_event_older_than_allowed_lateness_is_late() -> None:
    """§9: lateness is judged on known time (a segment's end). After a segment ending at 21000
    the bound is 16000: a segment ending at 16000 is accepted, however early it started; one
    ending at 15999 is late, and so is a network event at 15999."""
    engine = SessionEngine(SID, EngineConfig())
    engine.ingest(parse_event(start()))
    engine.ingest(parse_event(speech("t", 20_000, 21_000)))
    assert engine.ingest(parse_event(speech("c", 15_000, 16_000))) is True
    assert engine.ingest(parse_event(speech("c", 1_000, 16_000))) is True  # sent when it ended
    with pytest.raises(LateEventError) as info:
        engine.ingest(parse_event(speech("c", 14_000, 15_999)))
    assert info.value.field == "speech.end_ms"
    # the reason names the event's known time, the bound and the newest known time
    assert "15999" in info.value.reason
    assert "16000" in info.value.reason and "21000" in info.value.reason
    with pytest.raises(LateEventError) as info:
        engine.ingest(parse_event(network("c", 15_999, 100)))
    assert info.value.field == "network.ts_ms"
    assert isinstance(info.value, ValidationError)
    assert engine.ingest(parse_event(network("c", 16_000, 100))) is True


def test_s9_allowed_lateness_is_configuration() -> None:
    """§9: with allowed_lateness_ms=10000 the same segment ending at 15999 ms is in time."""
    engine = SessionEngine(SID, EngineConfig(allowed_lateness_ms=10_000))
    engine.ingest(parse_event(start()))
    engine.ingest(parse_event(speech("t", 20_000, 21_000)))
    assert engine.ingest(parse_event(speech("c", 14_000, 15_999))) is True


def test_s9_events_at_or_after_session_end_are_refused(tc_engine: SessionEngine) -> None:
    """§9/§1: session.end closes the session: events at or after it are refused."""
    tc_engine.ingest(parse_event(end(10_000)))
    assert tc_engine.ingest(parse_event(speech("t", 9999, 10_500))) is True
    with pytest.raises(SessionStateError) as info:
        tc_engine.ingest(parse_event(speech("t", 10_000, 10_500)))
    assert info.value.field == "speech.start_ms"
    with pytest.raises(SessionStateError):
        tc_engine.ingest(parse_event(end(11_000)))
    report = tc_engine.finish()
    assert role(report, "therapist")["talk_s"] == 0.0  # [9999, 10000) clipped, then a click
    with pytest.raises(SessionStateError):
        tc_engine.ingest(parse_event(speech("t", 9000, 9500)))


def test_s9_event_for_another_session_is_refused(tc_engine: SessionEngine) -> None:
    """§9: an engine serves one session; an event of another is a routing error."""
    with pytest.raises(ValidationError) as info:
        tc_engine.ingest(parse_event({**speech("t", 1000, 2000), "session_id": "s2"}))
    assert info.value.field == "speech.session_id"


def test_s9_undeclared_participant_is_rejected_counted_and_kept() -> None:
    """§9: rejected with the field named, counted, and kept (dead-letter), never silently
    dropped; the rest of the session is unaffected."""
    stray = speech("x", 2000, 3000)
    report, out = run_session(session(speech("t", 1000, 4000), stray, end_ms=10_000))
    [rejection] = rejections(out)
    assert rejection.error.field == "speech.participant_id"
    assert "declared" in rejection.error.reason
    assert rejection.event == parse_event(stray)
    assert role(report, "therapist")["talk_s"] == 3.0
    assert report["session"]["overlap_s"] == 0.0  # x's speech was not counted


def test_s9_join_with_a_conflicting_role_is_rejected() -> None:
    """§9/§1: a participant has one role; a join re-declaring t as client is rejected and
    kept, and t's talk still counts as the therapist's."""
    report, out = run_session(session(join("t", "client", 500), speech("t", 1000, 2000),
                                      end_ms=10_000))
    assert [r.error.field for r in rejections(out)] == ["participant.join.role"]
    assert role(report, "therapist")["talk_s"] == 1.0
    assert role(report, "client")["talk_s"] == 0.0
