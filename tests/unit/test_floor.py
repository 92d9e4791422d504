"""METRICS.md §4: floor states, pauses, gaps, overlaps, speaker changes, turns, monologues,
response latency (observed and corrected for the network)."""

from __future__ import annotations

import pytest
from enginekit import classified, ipus, network, role, run, speech

# Two offsets (or two onsets) at one millisecond are one change of the floor: no 0 ms solo
# stretch may appear between them, whatever order the participant ids sort in.
SIMULTANEOUS = pytest.mark.parametrize(
    ("t", "c"), [("t", "c"), ("a", "z")],
    ids=["therapist-id-sorts-last", "therapist-id-sorts-first"],
)


def _change(frm: str, to: str, kind: str, latency: int, corrected: int | None = None) -> dict:
    roles = {"t": "therapist", "a": "therapist", "c": "client", "z": "client"}
    return {"from": frm, "from_role": roles[frm], "to": to, "to_role": roles[to],
            "transition": kind, "latency_ms": latency,
            "corrected_latency_ms": latency if corrected is None else corrected}


def test_s4_gap_is_a_speaker_change_through_silence() -> None:
    """§4: t-solo, silence, c-solo is a gap; latency onset_c − offset_t = 3500 − 3000 = 500,
    attributed to the responder c."""
    report, out = run(speech("t", 1000, 3000), speech("c", 3500, 6000), end_ms=10_000)
    assert classified(out, "speaker_change") == [_change("t", "c", "gap", 500)]
    t, c = role(report, "therapist"), role(report, "client")
    assert c["gaps"] == {"count": 1, "median_ms": 500.0}
    assert t["gaps"] == {"count": 0, "median_ms": None}
    latency = c["response_latency_ms"]
    assert (latency["median"], latency["p90"]) == (500.0, 500.0)
    assert (latency["corrected_median"], latency["corrected_p90"]) == (500.0, 500.0)
    assert t["response_latency_ms"]["median"] is None  # a median over nothing (§10)
    assert (t["turns"], c["turns"]) == (1, 1)
    assert report["session"]["speaker_changes"] == 1
    assert report["session"]["turns_per_min"] == 6.0  # 1 / (10000 / 60000)


def test_s4_b_starting_at_the_very_ms_a_stops_is_a_gap_of_0_ms() -> None:
    """§4: "when B starts at the very millisecond A stops, it is a gap of 0 ms"."""
    report, out = run(speech("t", 1000, 3000), speech("c", 3000, 6000), end_ms=10_000)
    assert classified(out, "speaker_change") == [_change("t", "c", "gap", 0)]
    assert role(report, "client")["gaps"] == {"count": 1, "median_ms": 0.0}
    assert report["session"]["overlap_s"] == 0.0
    assert classified(out, "interruption") == classified(out, "collision") == []


def test_s4_between_speaker_overlap_has_negative_latency() -> None:
    """§4: t-solo, overlap [2800, 3000), c-solo: between-speaker overlap, latency 2800 − 3000 =
    −200. Only 200 ms of overlap (< int_min_overlap_ms): no interruption (§5)."""
    report, out = run(speech("t", 1000, 3000), speech("c", 2800, 6000), end_ms=10_000)
    assert classified(out, "speaker_change") == [_change("t", "c", "overlap", -200)]
    c = role(report, "client")
    assert c["gaps"]["count"] == 0  # an overlap is not a gap
    assert c["response_latency_ms"]["median"] == -200.0
    assert report["session"]["overlap_s"] == 0.2
    assert classified(out, "interruption") == []


def test_s4_pause_is_a_within_speaker_silence() -> None:
    """§4: t-solo, silence 500 ms, t-solo is a pause of t, not a speaker change."""
    report, out = run(speech("t", 1000, 2000), speech("t", 2500, 4000), end_ms=10_000)
    t = role(report, "therapist")
    assert t["pauses"] == {"count": 1, "median_ms": 500.0}
    assert t["gaps"]["count"] == 0
    assert t["turns"] == 1
    assert classified(out, "speaker_change") == []


def test_s4_within_speaker_overlap_is_neither_pause_nor_change() -> None:
    """§4: t-solo, overlap with c [1200, 2400) (1200 ms, not a backchannel), t-solo again:
    within-speaker overlap. c began 200 ms into t's IPU (< int_min_floor_ms): no interruption."""
    report, out = run(speech("t", 1000, 5000), speech("c", 1200, 2400), end_ms=10_000)
    assert ipus(out, "c") == [("c", 1200, 2400, False)]
    t, c = role(report, "therapist"), role(report, "client")
    assert report["session"]["speaker_changes"] == 0
    assert t["pauses"]["count"] == 0
    assert (t["turns"], c["turns"]) == (1, 0)
    assert classified(out, "interruption") == []
    assert report["session"]["overlap_s"] == 1.2


@SIMULTANEOUS
def test_s4_overlap_then_silence_between_solos_counts_as_overlap(t: str, c: str) -> None:
    """§4: "Stretches mixing silence and overlap between two solo stretches count as overlap."
    t-solo [1000, 1900), overlap [1900, 3000) (both stop at 3000), silence, c-solo from 3500:
    one between-speaker overlap; latency onset_c − offset_t = 3500 − 3000 = +500; no gap,
    no pause, and the overlap resolved into silence, so no interruption (§5)."""
    report, out = run(speech(t, 1000, 3000), speech(c, 1900, 3000), speech(c, 3500, 5000),
                      end_ms=10_000, participants=((t, "therapist"), (c, "client")))
    assert classified(out, "speaker_change") == [_change(t, c, "overlap", 500)]
    th, cl = role(report, "therapist"), role(report, "client")
    assert report["session"]["speaker_changes"] == 1
    assert cl["gaps"]["count"] == th["gaps"]["count"] == 0
    assert cl["pauses"]["count"] == th["pauses"]["count"] == 0
    assert classified(out, "interruption") == []


@SIMULTANEOUS
def test_s4_silence_then_overlap_between_solos_counts_as_overlap(t: str, c: str) -> None:
    """§4: t-solo until 3000, silence, both start at 4000 (overlap until t stops at 5100),
    c-solo: one between-speaker overlap, latency 4000 − 3000 = 1000; not a gap, not a pause of
    t. Nobody held a solo stretch when c began, so no interruption or collision (§5)."""
    report, out = run(speech(t, 1000, 3000), speech(t, 4000, 5100), speech(c, 4000, 6000),
                      end_ms=10_000, participants=((t, "therapist"), (c, "client")))
    assert classified(out, "speaker_change") == [_change(t, c, "overlap", 1000)]
    th, cl = role(report, "therapist"), role(report, "client")
    assert report["session"]["speaker_changes"] == 1
    assert cl["gaps"]["count"] == 0
    assert th["pauses"]["count"] == 0
    assert classified(out, "interruption") == classified(out, "collision") == []


def test_s4_turns_mean_turn_and_longest_monologue() -> None:
    """§4/§6: t [1000,3000) pause t [3500,5000), gap c [5500,8000), gap t [8500,9000).
    t's turns: 1000→5000 (4000 ms) and 8500→9000 (500 ms); c's: 5500→8000 (2500 ms)."""
    report, out = run(speech("t", 1000, 3000), speech("t", 3500, 5000),
                      speech("c", 5500, 8000), speech("t", 8500, 9000))
    t, c = role(report, "therapist"), role(report, "client")
    assert (t["turns"], c["turns"]) == (2, 1)
    assert t["mean_turn_s"] == 2.25  # (4000 + 500) / 2
    assert c["mean_turn_s"] == 2.5
    assert t["longest_monologue_s"] == 4.0
    assert c["longest_monologue_s"] == 2.5
    assert t["pauses"] == {"count": 1, "median_ms": 500.0}
    assert t["gaps"] == c["gaps"] == {"count": 1, "median_ms": 500.0}
    assert report["session"]["speaker_changes"] == 2
    assert report["session"]["turns_per_min"] == 2.0  # 2 / (60000 / 60000)
    assert classified(out, "speaker_change") == [
        _change("t", "c", "gap", 500), _change("c", "t", "gap", 500)]


def test_s4_turn_taken_in_overlap_starts_at_the_takers_onset() -> None:
    """§4: c comes in at 3000 during t's IPU [1000, 4000) and keeps the floor until 7000:
    t's turn 1000→4000, c's 3000→7000 (from c's onset, inside the overlap)."""
    report, out = run(speech("t", 1000, 4000), speech("c", 3000, 7000), end_ms=10_000)
    assert role(report, "therapist")["mean_turn_s"] == 3.0
    assert role(report, "client")["mean_turn_s"] == 4.0
    assert classified(out, "speaker_change") == [_change("t", "c", "overlap", -1000)]


@pytest.mark.parametrize(
    ("restart", "longest_s", "lapses"),
    [(8000, 4.0, 1), (7999, 9.0, 0)],
    ids=["3000ms-silence-splits", "2999ms-does-not"],
)
def test_s4_monologue_splits_at_silence_of_lapse_ms(
    restart: int, longest_s: float, lapses: int
) -> None:
    """§4: a monologue is a turn split at every mutual silence >= lapse_ms (3000). t speaks
    [1000, 5000) and [restart, 10000); c answers at 10500. One turn of t (1000→10000 = 9 s);
    split at 3000 ms into 4000 and 2000 ms monologues; a 2999 ms silence does not split."""
    report, _ = run(speech("t", 1000, 5000), speech("t", restart, 10_000),
                    speech("c", 10_500, 12_000))
    t = role(report, "therapist")
    assert t["turns"] == 1
    assert t["mean_turn_s"] == 9.0
    assert t["longest_monologue_s"] == longest_s
    assert t["pauses"] == {"count": 1, "median_ms": float(restart - 5000)}
    assert report["session"]["lapses"]["count"] == lapses


@pytest.mark.parametrize("with_backchannel", [True, False], ids=["mm-hm-in-silence", "silent"])
def test_s4_backchannel_in_a_long_pause_keeps_the_monologue_whole(with_backchannel: bool) -> None:
    """§4 with §3/§6 (lapse_ms=2000): the floor is silent from 5000 to 7100 either way (a pause
    of 2100 ms), but c's "mm-hm" [5900, 6200) is speech for mutual silence: the silences are
    900 ms each, so no monologue split and no lapse. Without it: split and one lapse."""
    body = [speech("t", 1000, 5000), speech("t", 7100, 9000)]
    if with_backchannel:
        body.append(speech("c", 5900, 6200))
    report, out = run(*body, lapse_ms=2000)
    t = role(report, "therapist")
    assert t["pauses"] == {"count": 1, "median_ms": 2100.0}
    if with_backchannel:
        assert ipus(out, "c") == [("c", 5900, 6200, True)]
        assert t["longest_monologue_s"] == 8.0  # 1000 -> 9000
        assert report["session"]["lapses"]["count"] == 0
    else:
        assert t["longest_monologue_s"] == 4.0  # max(4000, 1900)
        assert report["session"]["lapses"]["count"] == 1


def test_s4_corrected_latency_subtracts_responders_round_trip() -> None:
    """§4: corrected = observed − rtt_B, rtt_B = rtt_ms + jitter_buffer_ms of B's latest
    network event (180.4 + 19.3 = 199.7 -> 200 ms). A's (t's) network state is irrelevant."""
    report, out = run(network("c", 2000, 180.4, jitter_buffer_ms=19.3),
                      network("t", 2000, 999),
                      speech("t", 1000, 3000), speech("c", 3500, 6000), end_ms=10_000)
    assert classified(out, "speaker_change") == [_change("t", "c", "gap", 500, 300)]
    latency = role(report, "client")["response_latency_ms"]
    assert (latency["median"], latency["corrected_median"]) == (500.0, 300.0)


def test_s4_latency_median_p90_and_network_at_the_onset() -> None:
    """§4/§10: five speaker changes; c responds after 100, 300, 900 ms, t after 500, 500.
    p90 interpolates between closest ranks: 300 + 0.8·(900 − 300) = 780. c's RTT is 150 ms
    from 0, 50 ms from exactly 9900 (c's last onset: applies), 250 ms from 9901 (too late):
    corrected −50, 150, 850 -> median 150, p90 150 + 0.8·700 = 710."""
    report, out = run(
        network("c", 0, 150), network("c", 9900, 50), network("c", 9901, 250),
        speech("t", 1000, 3000), speech("c", 3100, 4200), speech("t", 4700, 6000),
        speech("c", 6300, 7400), speech("t", 7900, 9000), speech("c", 9900, 11_000),
    )
    assert [(d["latency_ms"], d["corrected_latency_ms"])
            for d in classified(out, "speaker_change")] == [
        (100, -50), (500, 500), (300, 150), (500, 500), (900, 850)]
    c, t = role(report, "client"), role(report, "therapist")
    lat = c["response_latency_ms"]
    assert (lat["median"], lat["p90"]) == (300.0, 780.0)
    assert (lat["corrected_median"], lat["corrected_p90"]) == (150.0, 710.0)
    assert (t["response_latency_ms"]["median"], t["response_latency_ms"]["p90"]) == (500.0, 500.0)
    assert c["gaps"] == {"count": 3, "median_ms": 300.0}
    assert t["gaps"] == {"count": 2, "median_ms": 500.0}
    assert report["session"]["speaker_changes"] == 5
