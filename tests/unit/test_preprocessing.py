"""METRICS.md §1 (inputs, session clock, frames) and §2 (per-participant pre-processing)."""

from __future__ import annotations

import pytest
from enginekit import (
    activity,
    end,
    ipus,
    join,
    role,
    run,
    run_session,
    session,
    speech,
    start,
    state,
)

# --- §2.1 merge, §2.2 IPU bridging, §2.3 dropping ---------------------------------------------


def test_s2_2_pause_of_199_ms_is_bridged_into_one_ipu() -> None:
    """§2.2: silences shorter than min_pause_ms (200) are bridged."""
    report, out = run(speech("t", 1000, 2000), speech("t", 2199, 3000), end_ms=10_000)
    assert ipus(out) == [("t", 1000, 3000, False)]
    # The bridged 199 ms count as talk: one IPU of 3000 - 1000 = 2000 ms.
    assert role(report, "therapist")["talk_s"] == 2.0
    assert role(report, "therapist")["pauses"] == {"count": 0, "median_ms": None}


def test_s2_2_pause_of_200_ms_splits_the_ipu() -> None:
    """§2.2: a 200 ms silence is not shorter than min_pause_ms, so it stays a pause."""
    report, out = run(speech("t", 1000, 2000), speech("t", 2200, 3000), end_ms=10_000)
    assert ipus(out) == [("t", 1000, 2000, False), ("t", 2200, 3000, False)]
    # 1000 + 800 ms of talk; one pause of 2200 - 2000 = 200 ms (§4).
    assert role(report, "therapist")["talk_s"] == 1.8
    assert role(report, "therapist")["pauses"] == {"count": 1, "median_ms": 200.0}


def test_s2_2_min_pause_is_configuration() -> None:
    """§2.2 threshold is configurable: with min_pause_ms=300 a 250 ms silence is bridged."""
    _, out = run(speech("t", 1000, 2000), speech("t", 2250, 3000), end_ms=10_000,
                 min_pause_ms=300)
    assert ipus(out) == [("t", 1000, 3000, False)]


def test_s2_1_overlapping_and_touching_segments_merge() -> None:
    """§2.1: overlapping ([1000,2000) & [1500,2500)) and touching ([2500,3000)) segments merge."""
    report, out = run(speech("t", 1000, 2000), speech("t", 1500, 2500), speech("t", 2500, 3000),
                      end_ms=10_000)
    assert ipus(out) == [("t", 1000, 3000, False)]
    assert role(report, "therapist")["talk_s"] == 2.0  # not 1000 + 1000 + 500 = 2.5


@pytest.mark.parametrize(
    ("end_ms", "expected_ipus", "talk_s", "dropped"),
    [
        (1099, [], 0.0, 1),  # 99 ms < min_speech_ms 100: a click, dropped
        (1100, [("t", 1000, 1100, False)], 0.1, 0),  # exactly 100 ms: kept
    ],
    ids=["99ms-dropped", "100ms-kept"],
)
def test_s2_3_min_speech_boundary(
    end_ms: int, expected_ipus: list[tuple[str, int, int, bool]], talk_s: float, dropped: int
) -> None:
    """§2.3: IPUs shorter than min_speech_ms (100) are dropped as clicks."""
    report, out = run(speech("t", 1000, end_ms), end_ms=10_000)
    assert ipus(out) == expected_ipus
    assert role(report, "therapist")["talk_s"] == talk_s
    assert report["quality"]["participants"]["t"]["dropped_ipus"] == dropped


def test_s2_bridging_happens_before_dropping() -> None:
    """§2.2 before §2.3: two 60 ms pieces 100 ms apart form one 220 ms IPU, which is kept."""
    report, out = run(speech("t", 1000, 1060), speech("t", 1160, 1220), end_ms=10_000)
    assert ipus(out) == [("t", 1000, 1220, False)]  # 1220 - 1000 = 220 >= 100
    assert report["quality"]["participants"]["t"]["dropped_ipus"] == 0


def test_s2_3_short_pieces_200_ms_apart_are_each_dropped() -> None:
    """§2.3: 50 ms pieces 200 ms apart are not bridged, so both are dropped."""
    report, out = run(speech("t", 1000, 1050), speech("t", 1250, 1300), end_ms=10_000)
    assert ipus(out) == []
    assert report["quality"]["participants"]["t"]["dropped_ipus"] == 2
    assert role(report, "therapist")["talk_s"] == 0.0
    assert report["session"]["silence_s"] == 10.0  # D - |union| = 10 s - 0


def test_s2_clicks_do_not_extend_the_idle_duration() -> None:
    """§1: without session.end, D ends at the last speech offset (the last IPU's; a dropped
    click is not speech after §2.3)."""
    report, _ = run_session(session(speech("t", 1000, 4000), speech("c", 5000, 7500),
                                    speech("t", 9000, 9050), end_ms=None))
    assert report["duration_s"] == 7.5  # 7500 - 0
    # client session_share = 2500 / 7500; silence = 7500 - (3000 + 2500) = 2000 ms
    assert role(report, "client")["session_share"] == 0.3333
    assert report["session"]["silence_s"] == 2.0
    assert report["session"]["silence_ratio"] == 0.2667  # 2000 / 7500 = 0.26666…


# --- §1 session clock ----------------------------------------------------------------------------


def test_s1_duration_is_end_minus_start() -> None:
    """§1: D = session.end time − session.start time (not the span of speech)."""
    report, _ = run_session(session(speech("t", 6000, 7000), start_ms=5000, end_ms=65_000))
    assert report["duration_s"] == 60.0  # 65000 - 5000
    assert role(report, "therapist")["session_share"] == 0.0167  # 1000 / 60000 = 0.016666…
    assert report["session"]["silence_s"] == 59.0


def test_s1_speech_running_past_session_end_is_clipped() -> None:
    """§1/§6: talk is counted inside [start, end): a segment [55 s, 65 s) with end at 60 s
    contributes 5 s."""
    report, _ = run(speech("t", 55_000, 65_000), end_ms=60_000)
    assert role(report, "therapist")["talk_s"] == 5.0
    assert report["session"]["silence_s"] == 55.0


# --- §1 frames: voiced flags and audio levels ---------------------------------------------------


@pytest.mark.parametrize(
    ("frame_ms", "expected"),
    [
        (10, []),  # [4020, 4080) is 60 ms < min_speech_ms: dropped (§2.3)
        (20, [("t", 4040, 4160, False)]),
        (30, [("t", 4060, 4240, False)]),
    ],
)
def test_s1_consecutive_voiced_frames_form_a_segment(
    frame_ms: int, expected: list[tuple[str, int, int, bool]]
) -> None:
    """§1: "0011111100" from 4000 ms: frames 2..7 are voiced -> [4000+2f, 4000+8f)."""
    _, out = run(activity("t", 1, 4000, frame_ms=frame_ms, voiced="0011111100"), end_ms=10_000)
    assert ipus(out) == expected


def test_s1_touching_batches_form_one_segment() -> None:
    """§1/§2.1: voiced runs ending and starting at a batch boundary merge into one IPU."""
    _, out = run(activity("t", 1, 1000, voiced="1" * 10),  # [1000, 1200)
                 activity("t", 2, 1200, voiced="1" * 10),  # [1200, 1400)
                 end_ms=10_000)
    assert ipus(out) == [("t", 1000, 1400, False)]


LEVELS = [60] * 5 + [50] * 10 + [51] * 20 + [10] * 10  # 45 frames of 20 ms from 1000 ms


def test_s1_level_frames_are_voiced_at_or_below_50_dbov() -> None:
    """§1: level frames are voiced when level <= level_voiced_dbov (50)."""
    _, out = run(activity("t", 1, 1000, levels=LEVELS), end_ms=10_000)
    # frames 5..14 (50) voiced: [1100, 1300); 15..34 (51) silent: 400 ms pause;
    # 35..44 (10) voiced: [1700, 1900)
    assert ipus(out) == [("t", 1100, 1300, False), ("t", 1700, 1900, False)]


def test_s1_level_threshold_is_configuration() -> None:
    """§1: with level_voiced_dbov=51 the 51 dBov frames are voiced too."""
    _, out = run(activity("t", 1, 1000, levels=LEVELS), end_ms=10_000, level_voiced_dbov=51)
    assert ipus(out) == [("t", 1100, 1900, False)]  # frames 5..44


@pytest.mark.parametrize(
    ("levels", "vad", "expected"),
    [
        ([30] * 10, "0" * 10, []),  # loud, but V=0 wins: silent
        ([100] * 10, "1" * 10, [("t", 1000, 1200, False)]),  # quiet, but V=1 wins: voiced
        ([30] * 10 + [100] * 10, "-" * 10 + "1" * 10, [("t", 1000, 1400, False)]),
        ([30] * 10 + [100] * 10, "0" * 10 + "-" * 10, []),
        ([30] * 10 + [100] * 10, "-" * 20, [("t", 1000, 1200, False)]),  # level decides
    ],
    ids=["V0-beats-loud", "V1-beats-quiet", "V1-on-quiet-half", "V0-on-loud-half", "no-V"],
)
def test_s1_rfc6464_v_bit_wins_over_the_level(
    levels: list[int], vad: str, expected: list[tuple[str, int, int, bool]]
) -> None:
    """§1: a level frame carrying the RFC 6464 V bit is decided by that bit."""
    _, out = run(activity("t", 1, 1000, levels=levels, vad=vad), end_ms=10_000)
    assert ipus(out) == expected


# Segments (all on the 20 ms grid) of a small dialog; D = 10 s.
DIALOG = {
    "t": [(1000, 3000), (3400, 4000), (6000, 8000)],
    "c": [(4600, 6000), (6500, 6800), (9000, 9040)],  # 6500: backchannel; 9000: a click
}


def _voiced(segments: list[tuple[int, int]], frame_ms: int = 20, span_ms: int = 10_000) -> str:
    flags = ["0"] * (span_ms // frame_ms)
    for s, e in segments:
        for i in range(s // frame_ms, e // frame_ms):
            flags[i] = "1"
    return "".join(flags)


def _as_segments() -> list[dict[str, object]]:
    return [speech(pid, s, e) for pid, segs in DIALOG.items() for s, e in segs]


def _as_voiced_frames() -> list[dict[str, object]]:
    return [activity(pid, 1, 0, voiced=_voiced(segs)) for pid, segs in DIALOG.items()]


def _as_level_frames() -> list[dict[str, object]]:
    return [activity(pid, 1, 0, levels=[20 if f == "1" else 127 for f in _voiced(segs)])
            for pid, segs in DIALOG.items()]


def test_s1_frames_and_equivalent_segments_give_the_same_metrics() -> None:
    """§1: frame batches (voiced flags or levels) and speech segments describing the same voice
    activity yield identical metrics."""
    by_segments, _ = run(*_as_segments(), end_ms=10_000)
    by_voiced, _ = run(*_as_voiced_frames(), end_ms=10_000)
    by_levels, _ = run(*_as_level_frames(), end_ms=10_000)
    # Hand check of the common numbers: t talks 2000 + 600 + 2000, c 1400 + 300 (click dropped);
    # c's [6500, 6800) lies inside t's [6000, 8000): a backchannel (§3). Floor: t, pause 400,
    # t, gap 600 -> c, gap 0 -> t: two speaker changes.
    t, c = role(by_segments, "therapist"), role(by_segments, "client")
    assert (t["talk_s"], c["talk_s"]) == (4.6, 1.7)
    assert c["backchannels"] == 1
    assert by_segments["session"]["speaker_changes"] == 2
    assert t["pauses"] == {"count": 1, "median_ms": 400.0}
    for other in (by_voiced, by_levels):
        assert other["roles"] == by_segments["roles"]
        assert other["session"] == by_segments["session"]
        assert other["duration_s"] == by_segments["duration_s"]


def test_s1_quality_source_and_coverage() -> None:
    """§6 quality block: coverage is the fraction of D with voice activity reports."""
    report, _ = run(activity("t", 1, 0, voiced="0" * 300),  # frames cover [0, 6000)
                    speech("c", 1000, 2000), end_ms=10_000)
    parts = report["quality"]["participants"]
    assert parts["t"]["source"] == "frames"
    assert parts["t"]["coverage"] == 0.6  # 6000 / 10000
    assert parts["c"]["source"] == "segments"


# --- §2.4 mute, leave, join ---------------------------------------------------------------


def test_s2_4_muted_and_present_time_per_participant() -> None:
    """§2.4: mute/leave/join events are accounted per participant in the quality block."""
    report, _ = run(
        join("c2", "client", 20_000),
        state("mute", "t", 10_000), state("unmute", "t", 25_000),
        state("leave", "c", 50_000),
        speech("t", 1000, 2000),
        end_ms=60_000,
    )
    parts = report["quality"]["participants"]
    assert parts["t"]["muted_s"] == 15.0  # 25000 - 10000
    assert parts["t"]["present_s"] == 60.0
    assert parts["c"]["present_s"] == 50.0  # left at 50 s
    assert parts["c2"]["present_s"] == 40.0  # joined at 20 s, until end at 60 s
    assert parts["c2"]["role"] == "client"
    assert report["quality"]["muted_s"] == 15.0


def test_s2_4_mute_open_at_session_end_counts_until_the_end() -> None:
    """§2.4: a participant still muted at session.end is muted until D ends."""
    report, _ = run(state("mute", "t", 50_000), end_ms=60_000)
    assert report["quality"]["participants"]["t"]["muted_s"] == 10.0


def test_s1_start_without_participants_and_later_join() -> None:
    """§9/§1: session.start may list no participants; they join later with their role."""
    events = [start(0, ()), join("t", "therapist", 500), join("c", "client", 500),
              speech("t", 1000, 3000), speech("c", 3500, 5000), end(10_000)]
    report, _ = run_session(events)
    assert role(report, "therapist")["talk_s"] == 2.0
    assert role(report, "client")["talk_s"] == 1.5
    assert report["session"]["speaker_changes"] == 1  # gap of 500 ms t -> c
