"""The simulator's v1.1 shapes (``rapport simulate --shape``): the same conversation sent as
frames, speaking-state changes, whole segments or level samples is the same conversation to the
engine (METRICS.md §1), and a segment source sends each segment when it ends."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest

from models.analyzer import Analyzer
from models.events import parse_event
from models.simulation import SimulationConfig, simulate


def events(shape: str, **options: Any) -> list[dict[str, Any]]:
    config = SimulationConfig(sessions=2, minutes=8, seed=11, style="mixed", shape=shape,
                              **options)  # type: ignore[arg-type]
    return list(simulate(config))


def reports(raw: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    analyzer = Analyzer()
    for event in raw:
        analyzer.feed(parse_event(event))
    assert analyzer.problem_count == 0, analyzer.problems[:3]
    out = {}
    for report in analyzer.finish_all():
        for participant in report["quality"]["participants"].values():
            del participant["source"], participant["coverage"]  # transport, not conversation
        out[report["session_id"]] = report
    return out


def test_voice_events_give_the_report_of_frames() -> None:
    assert reports(events("voice")) == reports(events("frames"))


def test_level_samples_give_about_the_talk_time_of_frames() -> None:
    """Samples every 50-250 ms see the voiced runs on their own grid: talk time moves by a
    fraction of a sample period per onset and offset, about 1 % in all."""
    from_frames, from_levels = reports(events("frames")), reports(events("levels"))
    for sid, expected in from_frames.items():
        for role, numbers in expected["roles"].items():
            got = from_levels[sid]["roles"][role]["talk_s"]
            assert got == pytest.approx(numbers["talk_s"], rel=0.03, abs=1.0)


def test_shapes_carry_what_each_platform_sends() -> None:
    kinds = {shape: Counter(e["type"] for e in events(shape))
             for shape in ("segments", "voice", "levels", "mixed")}
    assert kinds["segments"]["speech"] > 0 and not kinds["segments"]["activity"]
    assert kinds["voice"]["voice"] > 0 and not kinds["voice"]["speech"]
    assert kinds["levels"]["levels"] > 0 and not kinds["levels"]["activity"]
    assert sum(1 for kind in ("activity", "speech", "voice", "levels")
               if kinds["mixed"][kind]) >= 2
    scales = {e["scale"] for e in events("levels") if e["type"] == "levels"}
    assert scales <= {"dbov", "dbfs", "dbvo", "linear", "byte", "int16"} and len(scales) >= 2


def test_segments_are_whole_and_sent_when_they_end() -> None:
    raw = events("segments")
    speech = [e for e in raw if e["type"] == "speech"]
    by_participant: dict[str, list[tuple[int, int]]] = {}
    for event in speech:
        by_participant.setdefault(event["participant_id"], []).append(
            (event["start_ms"], event["end_ms"]))
    for segments in by_participant.values():
        segments.sort()
        # Whole segments: never cut at a batch boundary, so no two touch.
        assert all(a_end < b_start for (_, a_end), (b_start, _) in itertools.pairwise(segments))
    # Sent when they end: a long segment comes after events that began after it did.
    longest = max(speech, key=lambda e: e["end_ms"] - e["start_ms"])
    assert longest["end_ms"] - longest["start_ms"] > 5_000
    position = raw.index(longest)
    assert any(e.get("ts_ms", -1) > longest["start_ms"] + 5_000 for e in raw[:position])


def test_whole_segments_sent_when_they_end_give_the_report_of_frames() -> None:
    """Issue 14: a segment source sends each segment when it ends, minutes after it began for
    a long monologue; read in arrival order as a worker does, nothing is late (§9: lateness
    by known time) and the report is the frames'."""
    raw = events("segments")
    longest = max(e["end_ms"] - e["start_ms"] for e in raw if e["type"] == "speech")
    assert longest > 5_000  # more than allowed_lateness_ms: late under the v1 rule
    assert reports(raw) == reports(events("frames"))
