"""Lateness by known time (METRICS.md v1.1 §9, "Order and lateness" and "Final and live").

Platforms send a speech segment when it ends. An event is late only when the session's newest
known time (a segment's end, a batch's last frame, ``ts_ms`` otherwise) has moved more than
``allowed_lateness_ms`` past its own; a segment of any length up to ``max_segment_ms`` sent
when it ends is never late, and the final report depends only on the set of accepted events.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.analyzer import Analyzer
from models.classified import AlertEvent, Rejection
from models.config import EngineConfig
from models.errors import LateEventError, ValidationError
from models.events import parse_event
from models.processor import BatchProcessor
from models.records import InputRecord
from models.session import SessionEngine, event_time, known_time

SID = "s1"
LATENESS = EngineConfig().allowed_lateness_ms
LOOKAHEAD = EngineConfig().floor_lookahead_ms


def start(*roster: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"type": "session.start", "session_id": SID, "ts_ms": 0, "clinic_id": "c1",
            "participants": [{"participant_id": p, "role": r} for p, r in roster], **extra}


def speech(pid: str, a: int, b: int) -> dict[str, Any]:
    return {"type": "speech", "session_id": SID, "participant_id": pid, "start_ms": a,
            "end_ms": b}


def network(pid: str, ts: int, rtt: int, loss: float = 0.5) -> dict[str, Any]:
    return {"type": "network", "session_id": SID, "participant_id": pid, "ts_ms": ts,
            "rtt_ms": rtt, "loss_pct": loss}


def state(kind: str, pid: str, ts: int) -> dict[str, Any]:
    return {"type": f"participant.{kind}", "session_id": SID, "participant_id": pid,
            "ts_ms": ts}


def batch(pid: str, seq: int, voiced: str, frame_ms: int = 20) -> dict[str, Any]:
    return {"type": "activity", "session_id": SID, "participant_id": pid, "seq": seq,
            "start_ms": seq * len(voiced) * frame_ms, "frame_ms": frame_ms, "voiced": voiced}


def end(ts: int) -> dict[str, Any]:
    return {"type": "session.end", "session_id": SID, "ts_ms": ts}


def by_known(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order a live source sends events in: each when it is known."""
    return sorted(events, key=lambda e: known_time(parse_event(e)))


def by_start(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: event_time(parse_event(e)))


# The reference: the same events sorted by start, with a lateness bound no event can exceed
# (as a file analyzed as a whole); only the order in which events are held differs.
WHOLE = EngineConfig(allowed_lateness_ms=2**40)


def final(events: list[dict[str, Any]], config: EngineConfig | None = None,
          ) -> tuple[dict[str, Any], list[Any]]:
    """Final report and every output, ingesting in the given order (late events raise)."""
    engine = SessionEngine(SID, config or EngineConfig())
    outputs = []
    for raw in events:
        engine.ingest(parse_event(raw))
        outputs.extend(engine.drain())
    report = engine.finish()
    outputs.extend(engine.drain())
    return report, outputs


# --- segments sent when they end ------------------------------------------------------------

ROSTER = (("t", "therapist"), ("c1", "client"), ("c2", "client"))
MEETING = [
    start(*ROSTER),
    speech("t", 1_000, 9_000),  # 8 s
    speech("c1", 9_200, 10_000),
    speech("t", 12_000, 72_000),  # 60 s
    speech("c1", 30_000, 30_600),  # a backchannel inside t's 60 s turn
    speech("c2", 50_000, 50_500),
    speech("c1", 72_500, 79_000),  # 6.5 s
    speech("t", 80_000, 86_500),  # 6.5 s
    speech("c2", 86_700, 93_000),  # 6.3 s
    speech("t", 93_100, 99_000),  # 5.9 s
    state("mute", "c2", 100_000),
    state("unmute", "c2", 104_000),
    speech("c1", 101_000, 108_000),
    *[network(p, ts, 120 + ts // 1000) for p, _ in ROSTER for ts in range(0, 118_000, 5_000)],
    end(120_000),
]


def test_segments_sent_at_their_end_are_accepted_and_give_the_sorted_report() -> None:
    """The AMI bug: segments longer than allowed_lateness_ms sent when they end (interleaved
    with the others' events and network readings by known time) were rejected as late."""
    arrival = by_known(MEETING)
    report, outputs = final(arrival)  # a LateEventError here is the bug
    assert not [o for o in outputs if isinstance(o, Rejection)]
    sorted_report, _ = final(by_start(MEETING), WHOLE)
    assert report == sorted_report
    analyzer = Analyzer(EngineConfig())
    for raw in arrival:
        assert analyzer.feed(parse_event(raw))
    assert list(analyzer.finish_all()) == [report]
    assert analyzer.problem_count == 0
    assert report["roles"]["therapist"]["talk_s"] == 8 + 60 + 6.5 + 5.9
    assert report["roles"]["client"]["backchannels"] == 2  # c1 at 30 s, c2 at 50 s


def test_the_long_monologue_alert_is_raised_once_from_final_numbers() -> None:
    """t's 60 s turn followed by more: alerts come from the final engine only, so the same
    episodes come out whatever the arrival order."""
    config = EngineConfig().with_overrides(alerts={"monologue_ms": 50_000})
    _, in_order = final(by_start(MEETING), WHOLE.with_overrides(alerts={"monologue_ms": 50_000}))
    _, at_end = final(by_known(MEETING), config)
    alerts = [(a.kind, a.ts_ms) for a in in_order if isinstance(a, AlertEvent)]
    assert ("long_monologue", 12_000 + 50_000) in alerts
    assert [(a.kind, a.ts_ms) for a in at_end if isinstance(a, AlertEvent)] == alerts


def test_an_event_whose_known_time_is_too_old_is_late_naming_the_field() -> None:
    engine = SessionEngine(SID, EngineConfig())
    engine.ingest(parse_event(start(*ROSTER)))
    engine.ingest(parse_event(speech("t", 10_000, 70_000)))  # newest known time: 70000
    assert engine.horizon_ms == 70_000 - LATENESS
    with pytest.raises(LateEventError) as info:
        engine.ingest(parse_event(speech("c1", 60_000, 64_999)))
    assert info.value.field == "speech.end_ms"
    assert all(str(n) in info.value.reason for n in (64_999, 65_000, 70_000))
    late = {**batch("c1", 0, "1" * 50), "start_ms": 63_900}  # frames 63900..64900
    with pytest.raises(LateEventError) as info:
        engine.ingest(parse_event(late))
    assert info.value.field == "activity.start_ms"
    assert engine.ingest(parse_event({**late, "frame_ms": 30})) is True  # ..65400


# --- max_segment_ms ---------------------------------------------------------------------------

def test_a_segment_longer_than_max_segment_ms_is_rejected_naming_the_field() -> None:
    engine = SessionEngine(SID, EngineConfig(max_segment_ms=30_000))
    engine.ingest(parse_event(start(*ROSTER)))
    assert engine.ingest(parse_event(speech("t", 0, 30_000))) is True
    with pytest.raises(ValidationError) as info:
        engine.ingest(parse_event(speech("t", 40_000, 70_001)))
    assert info.value.field == "speech.end_ms" and "30000" in info.value.reason
    default = SessionEngine(SID, EngineConfig())  # the default bound, 10 min
    default.ingest(parse_event(start(*ROSTER)))
    with pytest.raises(ValidationError) as info:
        default.ingest(parse_event(speech("t", 0, 600_001)))
    assert info.value.field == "speech.end_ms" and "600000" in info.value.reason


def test_a_session_may_declare_a_smaller_max_segment_ms() -> None:
    engine = SessionEngine(SID, EngineConfig())
    engine.ingest(parse_event(start(*ROSTER, max_segment_ms=10_000)))
    assert engine.max_segment_ms == 10_000
    assert engine.ingest(parse_event(speech("t", 0, 10_000))) is True
    with pytest.raises(ValidationError) as info:
        engine.ingest(parse_event(speech("c1", 0, 10_001)))
    assert info.value.field == "speech.end_ms"
    with pytest.raises(ValidationError) as info:
        engine.ingest(parse_event(batch("c1", 0, "1" * 500)))  # 10 s of 20 ms frames: fine
        engine.ingest(parse_event(batch("c1", 1, "1" * 1000, frame_ms=20)))  # 20 s
    assert info.value.field == "activity.voiced"
    # Everything starting before newest known - lateness - 10 s is final.
    assert engine.final_horizon_ms == 10_000 - LATENESS - 10_000


def test_a_segment_accepted_before_the_declaring_start_is_rejected_when_applied() -> None:
    """Whatever the arrival order, a segment longer than the session's declared bound is
    rejected; one that arrived before the session.start is rejected when applied."""
    events = [start(*ROSTER, max_segment_ms=4_000), speech("t", 0, 4_000),
              speech("c1", 0, 4_001), end(20_000)]
    report, outputs = final([events[2], events[0], events[1], events[3]])
    rejected = [o for o in outputs if isinstance(o, Rejection)]
    assert [(r.error.field, r.event.participant_id) for r in rejected] == [("speech.end_ms", "c1")]
    assert report["roles"]["client"]["talk_s"] == 0.0
    with pytest.raises(ValidationError):
        final(events)


@pytest.mark.parametrize("value", [0, -5, "10", 2**53, 1.5])
def test_a_bad_declared_max_segment_ms_is_rejected_naming_it(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        parse_event(start(*ROSTER, max_segment_ms=value))
    assert info.value.field == "session.start.max_segment_ms"


def test_a_declared_max_segment_ms_above_the_engines_is_rejected() -> None:
    engine = SessionEngine(SID, EngineConfig(max_segment_ms=60_000))
    with pytest.raises(ValidationError) as info:
        engine.ingest(parse_event(start(*ROSTER, max_segment_ms=60_001)))
    assert info.value.field == "session.start.max_segment_ms"


# --- any order in time, duplicates: the same report -------------------------------------------

@st.composite
def sessions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A random session: t and c declared, o joining later; each sends segments (some up to
    70 s) or 1 s frame batches; network readings; a mute; a leave."""
    length = draw(st.integers(30, 150)) * 1000
    join = draw(st.integers(0, length // 2000)) * 1000
    events: list[dict[str, Any]] = [start(("t", "therapist"), ("c", "client")), end(length),
                                    {"type": "participant.join", "session_id": SID,
                                     "participant_id": "o", "role": "other", "ts_ms": join}]
    for pid, since in (("t", 0), ("c", 0), ("o", join)):
        intervals = []
        cursor = since + draw(st.integers(0, 3000))
        while True:
            long = draw(st.booleans()) and draw(st.booleans())
            duration = draw(st.integers(5_000, 70_000) if long else st.integers(20, 4000))
            if cursor + duration >= length:
                break
            intervals.append((cursor, cursor + duration))
            cursor += duration + draw(st.integers(20, 8000))
        if draw(st.booleans()):
            events += [speech(pid, a, b) for a, b in intervals]
        else:
            flags = ["0"] * (length // 20)
            for a, b in intervals:
                flags[a // 20 : b // 20] = ["1"] * ((b - a) // 20)
            first = since // 1000
            events += [batch(pid, seq, "".join(flags[seq * 50 : seq * 50 + 50]))
                       for seq in range(first, length // 1000)]
        for _ in range(draw(st.integers(0, 4))):
            events.append(network(pid, draw(st.integers(since, length - 1)),
                                  draw(st.integers(0, 500)), draw(st.sampled_from([0, .1, 7.3]))))
    a = draw(st.integers(1, length - 2))
    events += [state("mute", "c", a), state("unmute", "c", draw(st.integers(a + 1, length - 1)))]
    if draw(st.booleans()):
        events.append(state("leave", "o", draw(st.integers(join, length - 1))))
    return events


def arrivals(events: list[dict[str, Any]], rng: random.Random,
             duplicates: float) -> list[dict[str, Any]]:
    """Each event (and some copies) arrives within allowed_lateness_ms after its known time."""
    timed = []
    for index, raw in enumerate(events):
        known = known_time(parse_event(raw))
        for copy in range(2 if rng.random() < duplicates else 1):
            timed.append((known + rng.randrange(LATENESS), index, copy, raw))
    timed.sort(key=lambda item: item[:3])
    return [item[3] for item in timed]


def outcome(events: list[dict[str, Any]], snapshot_every: int = 0,
            rng: random.Random | None = None, config: EngineConfig | None = None,
            ) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """Final report, alerts and rejections (field, start) of one run; with ``snapshot_every``
    also checks each live snapshot against one from an engine that never took one."""
    engine = SessionEngine(SID, config or EngineConfig(), advance_step_ms=0)
    fed: list[dict[str, Any]] = []
    outputs = []
    for raw in events:
        engine.ingest(parse_event(raw))
        fed.append(raw)
        outputs.extend(engine.drain())
        if snapshot_every and rng is not None and rng.random() < 1 / snapshot_every:
            fresh = SessionEngine(SID, EngineConfig(), advance_step_ms=0)
            for earlier in fed:
                fresh.ingest(parse_event(earlier))
            # The quality block (coverage, RTT, loss) counts what has been received so far,
            # beyond the decided time; every metric up to the live decided time must agree.
            live, reference = engine.snapshot(), fresh.snapshot()
            del live["quality"], reference["quality"]
            assert live == reference
            assert engine.live_decided_ms == fresh.live_decided_ms
    report = engine.finish()
    outputs.extend(engine.drain())
    alerts = [(o.kind, o.ts_ms, o.detail) for o in outputs if isinstance(o, AlertEvent)]
    rejections = [(o.error.field, event_time(o.event)) for o in outputs
                  if isinstance(o, Rejection)]
    return report, alerts, sorted(rejections)


SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])


@SETTINGS
@given(sessions(), st.randoms(use_true_random=False))
def test_any_arrival_within_lateness_of_known_time_gives_the_same_final_report(
    events: list[dict[str, Any]], rng: random.Random
) -> None:
    expected = outcome(by_start(events), config=WHOLE)
    assert outcome(arrivals(events, rng, 0.0)) == expected
    assert outcome(arrivals(events, rng, 0.3), snapshot_every=15, rng=rng) == expected


@SETTINGS
@given(sessions(), st.randoms(use_true_random=False))
def test_an_event_arriving_after_newest_known_passed_it_by_more_than_lateness_is_late(
    events: list[dict[str, Any]], rng: random.Random
) -> None:
    order = by_known(events)
    knowns = [known_time(parse_event(e)) for e in order]
    candidates = [i for i, k in enumerate(knowns)
                  if any(later > k + LATENESS for later in knowns[i + 1:])]
    if not candidates:
        return
    index = rng.choice(candidates)
    moved = order.pop(index)
    knowns.pop(index)
    # first moment the newest known time is more than the bound past the moved event's
    cut = next(i for i, k in enumerate(knowns) if k > known_time(parse_event(moved)) + LATENESS)
    engine = SessionEngine(SID, EngineConfig())
    for raw in order[: cut + 1]:
        engine.ingest(parse_event(raw))
    with pytest.raises(LateEventError):
        engine.ingest(parse_event(moved))


# --- live -------------------------------------------------------------------------------------

def _frames_session(seconds: int) -> list[dict[str, Any]]:
    """1 s batches: t talks 0-140 s (a monologue), silence 140-175 s, then c talks."""
    events = [start(("t", "therapist"), ("c", "client"))]
    for seq in range(seconds):
        t_on = seq < 140
        c_on = seq >= 175
        events.append(batch("t", seq, "1" * 50 if t_on else "0" * 50))
        events.append(batch("c", seq, "1" * 50 if c_on else "0" * 50))
        if seq % 5 == 0:
            events.append(network("c", seq * 1000 + 500, 350))
    events.append(end(seconds * 1000))
    return events


def test_live_updates_trail_the_newest_known_time_by_lateness_and_look_ahead() -> None:
    engine = SessionEngine(SID, EngineConfig())
    newest = 0
    for raw in _frames_session(60)[:-1]:
        engine.ingest(parse_event(raw))
        newest = max(newest, known_time(parse_event(raw)))
        if newest > LATENESS + LOOKAHEAD:
            assert engine.live_decided_ms == newest - LATENESS - LOOKAHEAD
            snapshot = engine.snapshot()
            assert round(snapshot["duration_s"] * 1000) == newest - LATENESS - LOOKAHEAD
    assert engine.decided_ms == 0  # nothing final past the start: 10 minutes of hold by default
    assert engine.snapshot()["roles"]["therapist"]["talk_s"] == round(60 - 7.3, 3)


def test_processor_quality_updates_are_timely_and_alerts_equal_the_final_run() -> None:
    events = _frames_session(240)
    records = [InputRecord(orjson.dumps(e), 0, offset, offset * 10, key=b"c1 " + SID.encode())
               for offset, e in enumerate(events)]
    processor = BatchProcessor()
    outputs = []
    # a tick past end_grace_ms after session.end closes the session
    records.append(InputRecord(b"", 0, len(records), len(records) * 10 + 10_000, control=True))
    for i in range(0, len(records), 7):
        outputs += processor.process(records[i : i + 7], lambda partition: []).outputs
    quality = [orjson.loads(o.value) for o in outputs if o.topic == "quality"]
    alerts = [orjson.loads(o.value)["alert"] for o in outputs if o.topic == "alerts"]
    assert quality
    newest_by_offset = []
    newest = 0
    for e in events:
        newest = max(newest, known_time(parse_event(e)))
        newest_by_offset.append(newest)
    for q in quality[:-1]:  # the last one is published when the session closes
        newest = newest_by_offset[q["source"]["offset"]]
        assert q["event_time_ms"] == max(0, newest - LATENESS - LOOKAHEAD)
        final_through = q["final_through_ms"]
        assert final_through is None or final_through <= q["event_time_ms"]
        assert q["snapshot"]["alerts"] == [] or all(
            a["ts_ms"] <= (final_through or 0) for a in q["snapshot"]["alerts"])
    _, expected = final(by_start(events), WHOLE)
    expected_alerts = [(a.kind, a.ts_ms) for a in expected if isinstance(a, AlertEvent)]
    assert {kind for kind, _ in expected_alerts} >= {"long_monologue", "long_silence"}
    assert [(a["alert"], a["ts_ms"]) for a in alerts] == expected_alerts
