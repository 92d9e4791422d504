"""METRICS.md §5: interruptions (successful / unsuccessful), collisions, the int_min_floor_ms
and int_min_overlap_ms boundaries, overlaps that resolve into silence or a third speaker,
rates per 10 minutes and asymmetry."""

from __future__ import annotations

from typing import Any

import pytest
from enginekit import classified, ipus, network, role, run, speech

TCO = (("t", "therapist"), ("c", "client"), ("o", "other"))


def _interruption(by: str, of: str, outcome: str, overlap_ms: int) -> dict[str, Any]:
    roles = {"t": "therapist", "c": "client", "a": "therapist", "z": "client"}
    return {"by": by, "by_role": roles[by], "of": of, "of_role": roles[of],
            "direction": f"{roles[by]}_to_{roles[of]}", "outcome": outcome,
            "overlap_ms": overlap_ms}


def test_s5_successful_interruption() -> None:
    """§5: c starts 1000 ms into t's IPU [1000, 4000) and keeps the floor: the overlap
    [2000, 4000) (2000 ms) resolves to c-solo -> successful interruption by c of t."""
    report, out = run(speech("t", 1000, 4000), speech("c", 2000, 6000))
    assert classified(out, "interruption") == [_interruption("c", "t", "successful", 2000)]
    t, c = role(report, "therapist"), role(report, "client")
    assert (c["interruptions_made"]["successful"], c["interruptions_made"]["unsuccessful"]) == (
        1, 0)
    assert t["interrupted"] == 1
    assert c["interrupted"] == 0
    # per 10 min of session: 1 × 600000 / 60000 = 10.0
    assert report["session"]["interruptions"]["client_to_therapist"] == {
        "successful": 1, "unsuccessful": 0, "per_10min": 10.0}
    assert report["session"]["interruption_asymmetry"] == -1.0  # (0 − 1) / (0 + 1)


def test_s5_unsuccessful_interruption() -> None:
    """§5: c's 1100 ms IPU (too long for a backchannel) starts 1000 ms into t's IPU and the
    overlap resolves back to t-solo -> unsuccessful; t was not "interrupted successfully"."""
    report, out = run(speech("t", 1000, 4000), speech("c", 2000, 3100))
    assert classified(out, "interruption") == [_interruption("c", "t", "unsuccessful", 1100)]
    t, c = role(report, "therapist"), role(report, "client")
    assert (c["interruptions_made"]["successful"], c["interruptions_made"]["unsuccessful"]) == (
        0, 1)
    assert t["interrupted"] == 0
    assert report["session"]["speaker_changes"] == 0
    assert report["session"]["interruption_asymmetry"] == -1.0  # unsuccessful ones count too


@pytest.mark.parametrize(
    ("c_onset", "expected"),
    [(1499, []), (1500, [_interruption("c", "t", "successful", 2500)])],
    ids=["499ms-into-floor", "500ms-into-floor"],
)
def test_s5_int_min_floor_ms_boundary(c_onset: int, expected: list[dict[str, Any]]) -> None:
    """§5: X's current IPU must have begun at least int_min_floor_ms (500) before Y's onset."""
    report, out = run(speech("t", 1000, 4000), speech("c", c_onset, 6000))
    assert classified(out, "interruption") == expected
    assert classified(out, "collision") == []
    assert role(report, "client")["interruptions_made"]["successful"] == len(expected)
    assert report["session"]["speaker_changes"] == 1  # a between-speaker overlap either way


def test_s5_int_min_floor_ms_is_configuration() -> None:
    """§5: with int_min_floor_ms=1000 an onset 500 ms into t's IPU is not an interruption."""
    _, out = run(speech("t", 1000, 4000), speech("c", 1500, 6000), int_min_floor_ms=1000)
    assert classified(out, "interruption") == []


@pytest.mark.parametrize(
    ("c_onset", "expected"),
    [(3501, []), (3500, [_interruption("c", "t", "successful", 500)])],
    ids=["499ms-overlap", "500ms-overlap"],
)
def test_s5_int_min_overlap_ms_boundary_successful(
    c_onset: int, expected: list[dict[str, Any]]
) -> None:
    """§5: a successful interruption's overlap lasts >= int_min_overlap_ms (500); shorter
    overlaps at a speaker change are ordinary anticipatory transitions."""
    _, out = run(speech("t", 1000, 4000), speech("c", c_onset, 6000))
    assert classified(out, "interruption") == expected


@pytest.mark.parametrize(
    ("c_end", "expected"),
    [(2499, []), (2500, [_interruption("c", "t", "unsuccessful", 500)])],
    ids=["499ms-overlap", "500ms-overlap"],
)
def test_s5_int_min_overlap_ms_boundary_unsuccessful(
    c_end: int, expected: list[dict[str, Any]]
) -> None:
    """§5: same boundary for butting-in. bc_max_ms=300 keeps c's 499/500 ms IPU out of the
    backchannels (with the default 1000 ms it would be one, §3)."""
    _, out = run(speech("t", 1000, 4000), speech("c", 2000, c_end), bc_max_ms=300)
    assert ipus(out, "c") == [("c", 2000, c_end, False)]
    assert classified(out, "interruption") == expected


# c starts 600 ms after t's current IPU (onset_gap 600 >= int_min_floor_ms) and takes the floor.
@pytest.mark.parametrize(
    ("net", "rtt_at_onset"),
    [
        ([], None),  # no network event: rtt 0, an interruption
        ([network("c", 1000, 700)], 700),  # 600 < 700: c could not hear t yet
        ([network("c", 1000, 601)], 601),  # 600 < 601: collision
        ([network("c", 1000, 600)], None),  # 600 < 600 is false: interruption
        ([network("c", 1000, 500, jitter_buffer_ms=101)], 601),  # rtt + jitter buffer
        ([network("c", 1601, 700)], None),  # reported after c's onset: not yet known
        ([network("t", 1000, 700)], None),  # X's round trip is irrelevant: rtt_Y decides
    ],
    ids=["no-rtt", "rtt700", "rtt601", "rtt600", "rtt500+jb101", "rtt-after-onset", "rtt-of-X"],
)
def test_s5_collision_versus_interruption_at_the_same_onset(
    net: list[dict[str, Any]], rtt_at_onset: int | None
) -> None:
    """§5: collision when onset_Y − onset_X_current_IPU < rtt_Y; collisions are never
    interruptions. Same speech each time: t [1000, 4000), c [1600, 6000)."""
    report, out = run(*net, speech("t", 1000, 4000), speech("c", 1600, 6000))
    collisions = classified(out, "collision")
    interruptions = classified(out, "interruption")
    if rtt_at_onset is None:
        assert collisions == []
        assert interruptions == [_interruption("c", "t", "successful", 2400)]
        assert report["session"]["collisions"] == 0
    else:
        assert [(d["by"], d["of"], d["onset_gap_ms"], d["rtt_ms"]) for d in collisions] == [
            ("c", "t", 600, rtt_at_onset)]
        assert interruptions == []
        assert report["session"]["collisions"] == 1
        assert role(report, "client")["interruptions_made"]["successful"] == 0
        assert role(report, "therapist")["interrupted"] == 0
    # Still a speaker change (between-speaker overlap), latency 1600 − 4000 = −2400.
    changes = classified(out, "speaker_change")
    assert [(d["transition"], d["latency_ms"]) for d in changes] == [("overlap", -2400)]


# Both orders of the ids: same-ms offsets must not depend on which is applied first.
@pytest.mark.parametrize(
    ("t", "c"), [("t", "c"), ("a", "z")],
    ids=["therapist-id-sorts-last", "therapist-id-sorts-first"],
)
def test_s5_overlap_resolving_into_silence_is_neither(t: str, c: str) -> None:
    """§5: "an overlap that resolves into silence ... is neither". c starts 900 ms into t's
    IPU; both stop at 3000 after 1100 ms of overlap; then silence."""
    report, out = run(speech(t, 1000, 3000), speech(c, 1900, 3000), speech(c, 3500, 5000),
                      participants=((t, "therapist"), (c, "client")))
    assert classified(out, "interruption") == []
    made = role(report, "client")["interruptions_made"]
    assert (made["successful"], made["unsuccessful"]) == (0, 0)
    assert role(report, "therapist")["interrupted"] == 0


def test_s5_overlap_resolving_into_a_third_speaker_is_neither() -> None:
    """§5: c comes in at 2000 over t (candidate), o joins at 3000, t stops at 4000, c at 4500:
    the overlap resolves to o-solo -> neither. The floor passes t -> o (latency 3000 − 4000)."""
    report, out = run(speech("t", 1000, 4000), speech("c", 2000, 4500), speech("o", 3000, 8000),
                      participants=TCO)
    assert classified(out, "interruption") == []
    assert [(d["from"], d["to"], d["transition"], d["latency_ms"])
            for d in classified(out, "speaker_change")] == [("t", "o", "overlap", -1000)]
    assert role(report, "client")["turns"] == 0


def test_s5_rates_per_10_min_and_asymmetry() -> None:
    """§5: two successful t→c interruptions and one unsuccessful c→t in D = 120 s.
    A = (I_T→C − I_C→T) / (I_T→C + I_C→T) = (2 − 1) / 3 = 0.3333."""
    report, out = run(
        speech("c", 1000, 5000), speech("t", 2000, 8000),  # t in 1000 ms into c: succeeds
        speech("c", 6000, 7200),  # c butts in 4000 ms into t's IPU, 1200 ms: unsuccessful
        speech("c", 10_000, 20_000), speech("t", 12_000, 25_000),  # t succeeds again
        end_ms=120_000,
    )
    assert classified(out, "interruption") == [
        _interruption("t", "c", "successful", 3000),
        _interruption("c", "t", "unsuccessful", 1200),
        _interruption("t", "c", "successful", 8000),
    ]
    directions = report["session"]["interruptions"]
    # per 10 min: count × 600000 / 120000
    assert directions["therapist_to_client"] == {
        "successful": 2, "unsuccessful": 0, "per_10min": 10.0}
    assert directions["client_to_therapist"] == {
        "successful": 0, "unsuccessful": 1, "per_10min": 5.0}
    assert report["session"]["interruption_asymmetry"] == 0.3333
    t, c = role(report, "therapist"), role(report, "client")
    assert (t["interruptions_made"]["successful"], t["interruptions_made"]["unsuccessful"]) == (
        2, 0)
    assert (c["interruptions_made"]["successful"], c["interruptions_made"]["unsuccessful"]) == (
        0, 1)
    assert (t["interrupted"], c["interrupted"]) == (0, 2)


def test_s5_asymmetry_is_0_without_interruptions() -> None:
    """§5: asymmetry is 0 when there are no interruptions."""
    report, _ = run(speech("t", 1000, 3000), speech("c", 3500, 6000))
    assert report["session"]["interruption_asymmetry"] == 0.0


def test_s5_counts_are_reported_for_both_directions_even_when_zero() -> None:
    """§5: "Report counts per direction (therapist→client, client→therapist)": one c→t
    interruption; the t→c direction must still be reported, as zeros."""
    report, _ = run(speech("t", 1000, 4000), speech("c", 2000, 6000))
    directions = report["session"]["interruptions"]
    assert directions["therapist_to_client"] == {
        "successful": 0, "unsuccessful": 0, "per_10min": 0.0}
    assert directions["client_to_therapist"]["successful"] == 1
