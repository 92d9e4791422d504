"""METRICS.md §3 backchannels: definition, window boundaries, removal from floor analysis (§4,
§5), talk/overlap accounting (§6) and backchannels_per_min with mute excluded (§2.4, §6)."""

from __future__ import annotations

import pytest
from enginekit import classified, ipus, role, run, speech, state

TCO = (("t", "therapist"), ("c", "client"), ("o", "other"))


def test_s3_mm_hm_inside_partner_floor_is_a_backchannel_not_a_turn_or_interruption() -> None:
    """§3: c's 500 ms IPU inside t's floor is a backchannel; it counts toward talk and raw
    overlap but is neither a turn nor an interruption (without removal it would be an
    unsuccessful interruption: onset 3000 ms into t's IPU, 500 ms of overlap)."""
    report, out = run(speech("t", 1000, 10_000), speech("c", 4000, 4500), end_ms=20_000)
    assert ipus(out, "c") == [("c", 4000, 4500, True)]
    t, c = role(report, "therapist"), role(report, "client")
    assert c["backchannels"] == 1
    assert (t["turns"], c["turns"]) == (1, 0)
    assert report["session"]["speaker_changes"] == 0
    assert classified(out, "interruption") == []
    assert c["interruptions_made"]["unsuccessful"] == 0
    assert t["interrupted"] == 0
    assert c["talk_s"] == 0.5  # backchannels count toward talk time
    assert report["session"]["overlap_s"] == 0.5  # ... and raw overlap [4000, 4500)
    assert report["session"]["silence_s"] == 11.0  # 20000 - |[1000, 10000)|
    assert t["pauses"]["count"] == 0  # the floor never fell silent


@pytest.mark.parametrize(
    ("c_end", "is_bc"),
    [(5000, True), (5001, False)],  # 1000 ms <= bc_max_ms; 1001 ms is not
    ids=["1000ms-backchannel", "1001ms-not"],
)
def test_s3_bc_max_ms_boundary(c_end: int, is_bc: bool) -> None:
    """§3: dur(y) <= bc_max_ms (1000). At 1001 ms the IPU enters the floor: it begins 3000 ms
    into t's IPU and the overlap (1001 ms) resolves back to t: an unsuccessful interruption."""
    report, out = run(speech("t", 1000, 10_000), speech("c", 4000, c_end), end_ms=20_000)
    assert ipus(out, "c") == [("c", 4000, c_end, is_bc)]
    c = role(report, "client")
    assert c["backchannels"] == (1 if is_bc else 0)
    assert c["interruptions_made"]["unsuccessful"] == (0 if is_bc else 1)
    assert c["turns"] == 0  # never a solo stretch either way
    assert c["talk_s"] == (c_end - 4000) / 1000


def test_s3_bc_max_ms_is_configuration() -> None:
    """§3: with bc_max_ms=1200 the 1001 ms IPU is a backchannel."""
    _, out = run(speech("t", 1000, 10_000), speech("c", 4000, 5001), end_ms=20_000,
                 bc_max_ms=1200)
    assert ipus(out, "c") == [("c", 4000, 5001, True)]


@pytest.mark.parametrize(
    ("t_end", "is_bc"),
    [(3000, False), (3001, True)],
    ids=["ends-at-window-start", "1ms-inside-window"],
)
def test_s3_before_window_boundary(t_end: int, is_bc: bool) -> None:
    """§3: t's speech must intersect [y.start − 1000, y.start] = [3000, 4000]. An IPU
    [1000, 3000) covers ms 999..2999 only; [1000, 3001) reaches ms 3000."""
    report, out = run(speech("t", 1000, t_end), speech("c", 4000, 4500),
                      speech("t", 5000, 8000), end_ms=20_000)
    assert ipus(out, "c") == [("c", 4000, 4500, is_bc)]
    t, c = role(report, "therapist"), role(report, "client")
    if is_bc:
        # Floor: t-solo, silence [3001, 5000), t-solo: a pause of 1999 ms, no speaker change.
        assert report["session"]["speaker_changes"] == 0
        assert t["pauses"] == {"count": 1, "median_ms": 1999.0}
        assert c["turns"] == 0
    else:
        # Floor: t, gap 1000 -> c, gap 500 -> t.
        assert report["session"]["speaker_changes"] == 2
        assert c["gaps"] == {"count": 1, "median_ms": 1000.0}
        assert t["gaps"] == {"count": 1, "median_ms": 500.0}
        assert c["turns"] == 1


@pytest.mark.parametrize(
    ("t_restart", "is_bc"),
    [(5700, True), (5701, False)],
    ids=["starts-at-window-end", "1ms-after-window"],
)
def test_s3_after_window_boundary(t_restart: int, is_bc: bool) -> None:
    """§3: t's speech must intersect [y.end, y.end + 1000] = [4700, 5700] (closed)."""
    report, out = run(speech("t", 1000, 4000), speech("c", 4200, 4700),
                      speech("t", t_restart, 8000), end_ms=20_000)
    assert ipus(out, "c") == [("c", 4200, 4700, is_bc)]
    t = role(report, "therapist")
    if is_bc:
        assert t["pauses"] == {"count": 1, "median_ms": 1700.0}  # 5700 - 4000
        assert report["session"]["speaker_changes"] == 0
    else:
        # t -> c gap 200 (4200 - 4000), c -> t gap 1001 (5701 - 4700)
        assert report["session"]["speaker_changes"] == 2
        assert t["gaps"] == {"count": 1, "median_ms": 1001.0}


def test_s3_bc_context_ms_is_configuration() -> None:
    """§3: with bc_context_ms=500 the before window is [3500, 4000]; t ended at 3400."""
    body = (speech("t", 1000, 3400), speech("c", 4000, 4500), speech("t", 5000, 8000))
    _, default = run(*body, end_ms=20_000)
    _, narrow = run(*body, end_ms=20_000, bc_context_ms=500)
    assert ipus(default, "c") == [("c", 4000, 4500, True)]
    assert ipus(narrow, "c") == [("c", 4000, 4500, False)]


def test_s3_the_same_other_participant_must_frame_both_windows() -> None:
    """§3: "one other participant X (the same X for both windows) has IPUs intersecting
    [before] AND [after]" (v1.1 wording): t speaks only before, o only after, so c's short IPU
    is not a backchannel."""
    report, out = run(speech("t", 1000, 3500), speech("c", 4000, 4500),
                      speech("o", 4600, 8000), participants=TCO, end_ms=20_000)
    assert ipus(out, "c") == [("c", 4000, 4500, False)]
    assert role(report, "client")["backchannels"] == 0
    assert role(report, "client")["turns"] == 1
    # t -> c (gap 500), c -> o (gap 100)
    assert report["session"]["speaker_changes"] == 2


def test_s3_one_participant_framing_both_windows_makes_a_backchannel() -> None:
    """§3 counter-case: o speaks in both windows ([2000, 3400) before, [4600, 8000) after)."""
    report, out = run(speech("t", 1000, 3500), speech("o", 2000, 3400), speech("c", 4000, 4500),
                      speech("o", 4600, 8000), participants=TCO, end_ms=20_000)
    assert ipus(out, "c") == [("c", 4000, 4500, True)]
    assert role(report, "client")["backchannels"] == 1
    assert role(report, "client")["turns"] == 0


@pytest.mark.parametrize(
    ("click_end", "is_bc"),
    [(4650, False), (4700, True)],
    ids=["50ms-click-is-no-context", "100ms-ipu-is-context"],
)
def test_s3_context_is_speech_after_preprocessing(click_end: int, is_bc: bool) -> None:
    """§3 with §2.3: t's only speech in the after window is [4600, click_end); a 50 ms click is
    dropped before backchannel analysis, a 100 ms IPU is kept."""
    report, out = run(speech("t", 1000, 3500), speech("c", 4000, 4500),
                      speech("t", 4600, click_end), end_ms=20_000)
    assert ipus(out, "c") == [("c", 4000, 4500, is_bc)]
    # Not a backchannel: t -> c is one speaker change (gap 500) and c holds the last turn.
    assert report["session"]["speaker_changes"] == (0 if is_bc else 1)


@pytest.mark.parametrize(
    ("pieces", "ipu", "is_bc"),
    [
        ([(4000, 4300), (4450, 4700)], (4000, 4700), True),  # bridged: 700 ms
        ([(4000, 4500), (4650, 5100)], (4000, 5100), False),  # bridged: 1100 ms
    ],
    ids=["700ms-ipu", "1100ms-ipu"],
)
def test_s3_duration_is_that_of_the_ipu_after_bridging(
    pieces: list[tuple[int, int]], ipu: tuple[int, int], is_bc: bool
) -> None:
    """§3 with §2.2: the backchannel test applies to IPUs, i.e. after bridging the 150 ms pause."""
    _, out = run(speech("t", 1000, 10_000), *(speech("c", s, e) for s, e in pieces),
                 end_ms=20_000)
    assert ipus(out, "c") == [("c", *ipu, is_bc)]


# --- §6 backchannels_per_min, with §2.4 mute/leave excluded --------------------------------------

BC_BODY = (speech("t", 1000, 31_000), speech("c", 5000, 5300), speech("c", 10_000, 10_300))


def test_s6_backchannels_per_min_of_partner_talk() -> None:
    """§6: backchannels per minute of the talk of every other participant heard while present
    and unmuted (v1.1 wording; here only t's): 2 / (30 s of t's talk) = 4.0."""
    report, out = run(*BC_BODY, end_ms=60_000)
    assert [x[3] for x in ipus(out, "c")] == [True, True]
    c, t = role(report, "client"), role(report, "therapist")
    assert c["backchannels"] == 2
    assert c["backchannels_per_min"] == 4.0  # 2 / (30000 / 60000)
    assert t["backchannels"] == 0
    assert t["backchannels_per_min"] == 0.0  # 0 / (600 ms of c's talk)


@pytest.mark.parametrize(
    "leaving",
    [
        (state("mute", "c", 16_000), state("unmute", "c", 40_000)),
        (state("leave", "c", 16_000),),
    ],
    ids=["muted", "left"],
)
def test_s2_4_muted_or_absent_time_is_not_backchannel_expectation(leaving: tuple) -> None:
    """§2.4: time while the listener is muted or absent is not counted as listening: only t's
    talk in [1000, 16000) is exposure, so 2 / (15000 / 60000) = 8.0 per minute."""
    report, _ = run(*BC_BODY, *leaving, end_ms=60_000)
    assert role(report, "client")["backchannels"] == 2
    assert role(report, "client")["backchannels_per_min"] == 8.0
