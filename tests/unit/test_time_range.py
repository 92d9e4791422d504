"""The clock's range (METRICS.md §9; issue 14 point 6, "No time crashes the engine").

Every time of the wire format is an integer ms in 0..2**53 - 1 (exact in JSON and float64).
Inside that range nothing overflows: times and durations live in Python ints or 64-bit arrays.
Outside it the parser rejects the event naming the field and the range. A speech segment
longer than ``max_segment_ms`` (§1, default 600 000) is rejected by the engine.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from enginekit import SID, activity, end, network, run, run_session, session, speech, start, state

from models.alerts import AlertTracker
from models.config import AlertRules, EngineConfig
from models.errors import ConfigError, ValidationError
from models.events import MAX_TIME_MS, Activity, parse_event
from models.processor import BatchProcessor
from models.records import InputRecord
from models.session import SessionEngine

TOP = 2**53 - 1
RANGE = "0..9007199254740991"


def _logged(report: dict[str, Any], alert: str) -> list[tuple[int, int | None]]:
    return [(a["ts_ms"], a["cleared_ms"]) for a in report["alerts"] if a["type"] == alert]


# --- the bug of issue 14: a network reading 2**31 ms after the first --------------------------


def test_network_reading_2_pow_31_ms_after_the_first_does_not_overflow() -> None:
    """Regression: the network alert kept (ts - first ts) in array("i"), so a reading 2**31 ms
    (24.9 days) after the participant's first raised OverflowError and the report was lost.

    RTT 400 at 5000 > 300: network_degraded fires at 5000. The next reading, 2**31 ms later,
    is alone in its 60 s window with RTT 100: the episode clears then. Quality: exact p95 of
    [100, 400] = 100 + 0.95 * 300 = 385."""
    late = 5000 + 2**31
    report, _ = run(network("c", 5000, 400), network("c", late, 100), end_ms=late + 1000)
    assert _logged(report, "network_degraded") == [(5000, late)]
    assert report["quality"]["rtt_p95_ms"] == 385.0


def test_network_readings_across_the_whole_clock() -> None:
    """Readings at 0 and at 2**53 - 2 for one participant: same rule, no overflow."""
    report, _ = run(network("c", 0, 400), network("c", TOP - 1, 100), end_ms=TOP)
    assert _logged(report, "network_degraded") == [(0, TOP - 1)]


# --- dominance buckets past 32 bits; long constant talk ------------------------------------


def test_dominance_buckets_hold_more_than_32_bits_of_talk() -> None:
    """One bucket of 2**33 ms (= the window) with the therapist talking all of it and the client
    2**32 ms of it (each one IPU: min_pause_ms bridges the gap between two 1 s segments):
    bucket sums of 2**33 + 2**32 ms overflowed the widened uint32 buckets. At the boundary
    2**33 the share is 2**33 / (2**33 + 2**32) = 2/3 > 0.65: fires there, clears at the end."""
    b = 2**33
    report, _ = run(
        speech("t", 0, 1000), speech("t", b - 1000, b),
        speech("c", 0, 1000), speech("c", 2**32 - 1000, 2**32),
        end_ms=b + 1000, min_pause_ms=2**40,
        alerts={"dominance_window_ms": b, "dominance_bucket_ms": b},
    )
    assert _logged(report, "therapist_dominance") == [(b, b + 1000)]
    assert [a["talk_share"] for a in report["alerts"]
            if a["type"] == "therapist_dominance"] == [0.6667]


def _dominance_log(calls: list[tuple[int, int, int, int]], *, chunk: int | None) -> list[Any]:
    tracker = AlertTracker(AlertRules(), [], 100)
    for t0, t1, therapist, speaking in calls:
        if chunk is None:
            tracker.talk(t0, t1, therapist, speaking)
            continue
        t = t0
        while t < t1:
            stop = min(t1, (t // chunk + 1) * chunk)
            tracker.talk(t, stop, therapist, speaking)
            t = stop
    tracker.clear_all(calls[-1][1])
    return tracker.log


def test_dominance_over_a_huge_talk_span_decides_as_bucket_by_bucket() -> None:
    """The therapist talks alone over [0, 10**12), then the client alone for 10**6 ms.

    Defaults (window 600 s, buckets 10 s, >= 120 s of speech, share > 0.65): fires at the
    boundary 120 000 (120 s of speech, share 1). From 10**12 the window at boundary
    10**12 + k * 10 s holds 600 - 10k s of therapist talk out of 600: share 1 - k/60 <= 0.65
    first at k = 21, so it clears at 10**12 + 210 000. One call over 10**12 ms returns at once
    (it used to step 10**8 buckets); fed bucket by bucket (no shortcut possible) it agrees."""
    big = 10**12
    calls = [(0, big, 1, 1), (big, big + 10**6, 0, 1)]
    log = _dominance_log(calls, chunk=None)
    assert [(a["ts_ms"], a["cleared_ms"]) for a in log] == [(120_000, big + 210_000)]
    small = [(0, 10**8, 1, 1), (10**8, 10**8 + 10**6, 0, 1), (10**8 + 10**6, 3 * 10**8, 1, 2),
             (3 * 10**8, 4 * 10**8, 0, 0), (4 * 10**8, 4 * 10**8 + 7777, 1, 1)]
    assert _dominance_log(small, chunk=None) == _dominance_log(small, chunk=10_000)


def test_one_ipu_spanning_the_whole_clock_finishes() -> None:
    """A min_pause_ms as long as the clock bridges two segments at its ends into one IPU."""
    report, _ = run(speech("t", 0, 1000), speech("t", TOP - 1000, TOP), end_ms=TOP,
                    min_pause_ms=TOP)
    assert report["roles"]["therapist"]["talk_s"] == round(TOP / 1000, 3)


# --- sessions at the ends of the clock ---------------------------------------------------------


def test_a_session_just_below_2_pow_53() -> None:
    """Start at 2**53 - 1 - 100 000; talk [S+1000, S+4000) and [S+5000, S+7000) (a gap of
    1 s); a level batch of 50 frames ending exactly at 2**53 - 1 (voiced: 1 s)."""
    s = TOP - 100_000
    batch_start = TOP - 50 * 20
    events = session(
        speech("t", s + 1000, s + 4000), speech("c", s + 5000, s + 7000),
        network("c", s + 10, 120), state("mute", "c", s + 50_000),
        activity("t", 0, batch_start, voiced="1" * 50),
        start_ms=s, end_ms=None,
    )
    engine = SessionEngine(SID, EngineConfig())
    for event in events:
        engine.ingest(parse_event(event))
    engine.ingest(parse_event(end(TOP)))
    report = engine.finish()
    assert report["duration_s"] == 100.0
    assert report["roles"]["therapist"]["talk_s"] == 3.0 + 1.0
    assert report["roles"]["client"]["talk_s"] == 2.0


def test_a_session_spanning_0_to_2_pow_40() -> None:
    """0 .. 2**40 ms (35 years): each speaks 3 s, at either end; state stays small and the
    engine reports (durations in s keep ms precision up to 2**43 ms)."""
    far = 2**40
    report, _ = run(speech("t", 0, 3000), network("c", 0, 100), network("c", far - 10, 100),
                    speech("c", far - 5000, far - 2000), end_ms=far)
    assert report["duration_s"] == far / 1000
    assert report["roles"]["therapist"]["talk_s"] == 3.0
    assert report["roles"]["client"]["talk_s"] == 3.0


# --- §9 ranges of every time field -----------------------------------------------------------

TIME_FIELDS = [
    ("session.start", "ts_ms"), ("session.end", "ts_ms"), ("speech", "start_ms"),
    ("speech", "end_ms"), ("activity", "start_ms"), ("activity", "seq"), ("network", "ts_ms"),
    ("participant.join", "ts_ms"), ("participant.mute", "ts_ms"),
    ("participant.unmute", "ts_ms"), ("participant.leave", "ts_ms"),
]


def _event(kind: str, name: str, value: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "session.start": start(), "session.end": end(0),
        "speech": speech("t", 0, 1), "activity": activity("t", 0, 0, voiced="1"),
        "network": network("c", 0, 100),
        "participant.join": {"type": "participant.join", "session_id": SID,
                             "participant_id": "x", "role": "other", "ts_ms": 0},
        "participant.mute": state("mute", "c", 0), "participant.unmute": state("unmute", "c", 0),
        "participant.leave": state("leave", "c", 0),
    }[kind]
    event = {**base, name: value}
    # A valid speech segment around an integer time: end_ms > start_ms, 1 ms long.
    if kind == "speech" and type(value) is int and 0 <= value <= TOP:
        if name == "start_ms":
            event["start_ms"], event["end_ms"] = min(value, TOP - 1), min(value, TOP - 1) + 1
        else:
            event["start_ms"], event["end_ms"] = max(value, 1) - 1, max(value, 1)
    return event


@pytest.mark.parametrize(("kind", "name"), TIME_FIELDS)
@pytest.mark.parametrize("value", [0, 2**31 - 1, 2**31, 2**32, 2**53 - 1 - 20])
def test_s9_times_inside_the_range_are_accepted(kind: str, name: str, value: int) -> None:
    event = _event(kind, name, value)
    assert getattr(parse_event(event), name) == event[name]


@pytest.mark.parametrize(("kind", "name"), TIME_FIELDS)
def test_s9_the_top_of_the_range_is_accepted(kind: str, name: str) -> None:
    top = TOP - 20 if (kind, name) == ("activity", "start_ms") else TOP  # one 20 ms frame
    event = _event(kind, name, top)
    parsed = parse_event(event)
    assert getattr(parsed, name) == event[name]
    if isinstance(parsed, Activity) and name == "start_ms":
        assert parsed.end_ms == MAX_TIME_MS == TOP


@pytest.mark.parametrize(("kind", "name"), TIME_FIELDS)
@pytest.mark.parametrize("value", [-1, 2**53, 2**63, -(2**63), True, 5.0, 1.5, "5", None])
def test_s9_times_outside_the_range_are_rejected_naming_field_and_range(
    kind: str, name: str, value: Any
) -> None:
    with pytest.raises(ValidationError) as info:
        parse_event(_event(kind, name, value))
    assert info.value.field == f"{kind}.{name}"
    if name != "seq":  # seq keeps its older wording ("must be >= 0", "<= ..."), see below
        assert RANGE in info.value.reason, info.value.reason
    if isinstance(value, int) and not isinstance(value, bool):
        assert str(value) in info.value.reason


def test_s9_seq_bounds_are_named() -> None:
    for value, words in ((-1, ">= 0"), (2**53, f"<= {TOP}")):
        with pytest.raises(ValidationError) as info:
            parse_event(activity("t", value, 0, voiced="1"))
        assert info.value.field == "activity.seq"
        assert words in info.value.reason


def test_s9_an_activity_batch_may_not_end_past_the_range() -> None:
    """start_ms inside the range, but two 20 ms frames would end at 2**53 + 19."""
    with pytest.raises(ValidationError) as info:
        parse_event(activity("t", 0, TOP - 20, voiced="11"))
    assert info.value.field == "activity.start_ms"
    assert RANGE in info.value.reason and str(TOP + 20) in info.value.reason


# --- max_segment_ms (§1) -------------------------------------------------------------------


def test_s1_speech_longer_than_max_segment_ms_is_rejected_by_the_engine() -> None:
    """§1: segments of any length up to max_segment_ms (600 000); 600 001 ms is rejected with
    the field and the setting named; 600 000 is accepted."""
    engine = SessionEngine(SID, EngineConfig())
    engine.ingest(parse_event(start()))
    with pytest.raises(ValidationError) as info:
        engine.ingest(parse_event(speech("t", 1000, 601_001)))
    assert info.value.field == "speech.end_ms"
    assert "600001" in info.value.reason and "max_segment_ms=600000" in info.value.reason
    assert engine.ingest(parse_event(speech("t", 1000, 601_000)))
    assert engine.rejected == 0  # not an apply-time rejection: the caller got the error


def test_s1_max_segment_ms_is_a_setting() -> None:
    report, _ = run_session(session(speech("t", 0, 700_000), end_ms=800_000),
                            max_segment_ms=700_000)
    assert report["roles"]["therapist"]["talk_s"] == 700.0
    with pytest.raises(ValidationError, match="max_segment_ms=1000"):
        run_session(session(speech("t", 0, 1001), end_ms=5000), max_segment_ms=1000)


# --- settings share the clock's range -----------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"min_pause_ms": 2**53}, "min_pause_ms"),
        ({"max_segment_ms": -1}, "max_segment_ms"),
        ({"rtt_degraded_ms": float("inf")}, "rtt_degraded_ms"),
        ({"alerts": {"network_window_ms": 2**63}}, "alerts.network_window_ms"),
        ({"alerts": {"burst_count": -1}}, "alerts.burst_count"),
        ({"alerts": {"monologue_ms": "120000"}}, "alerts.monologue_ms"),
        ({"alerts": {"silence_enabled": 1}}, "alerts.silence_enabled"),
    ],
)
def test_settings_outside_the_clock_range_are_rejected(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        EngineConfig().with_overrides(**overrides)
    assert info.value.field == field


# --- the streaming pipeline keeps the report ---------------------------------------------------


def test_streaming_pipeline_publishes_the_report_of_a_session_spanning_2_pow_31_ms() -> None:
    """Issue 14: the streaming workers lost this session's report (the engine raised
    OverflowError). Now the report is published, and the out-of-range reading and the too-long
    segment go to the dead-letter topic naming their fields."""
    late = 5000 + 2**31
    events = [start(), network("c", 5000, 400), speech("c", 10_000, 610_001),
              network("c", late, 100), network("c", 2**53, 100), end(late + 1000)]
    records = [InputRecord(orjson.dumps(e), 0, i, 1_000 + i, key=b"c1 " + SID.encode())
               for i, e in enumerate(events)]
    records.append(InputRecord(b"", 0, len(records), 100_000, control=True))  # stream time
    result = BatchProcessor().process(records, lambda partition: [])
    published: dict[str, list[Any]] = {o.topic: [] for o in result.outputs}
    for output in result.outputs:
        published[output.topic].append(orjson.loads(output.value))
    assert [d["field"] for d in published["dlq"]] == ["speech.end_ms", "network.ts_ms"]
    [report] = published["reports"]
    assert report["session_id"] == SID
    assert _logged(report["report"], "network_degraded") == [(5000, late)]
