"""METRICS.md v1.1 multi-party precision (issue 14.5): sessions with a therapist, two clients
and a participant of role ``other``, built by hand for each v1.1 clarification:

- §5 simultaneous newcomers are each judged on their own against the solo holder X;
- §4 boundary speech: a speaker A who speaks again inside the overlap after A→B (talk and
  overlap, not A's turn; latency and turns use the solo stretches' boundary speech);
- §3 closed windows met by half-open IPUs, with the same X for both windows;
- §5 an overlap resolving into a third speaker is neither interruption;
- §4 stretches mixing silence and overlap between two solo stretches count as overlap;
- §6 the ``backchannels_per_min`` denominator summed over a role's members;
- §4 the session's last turn.

Every session is analyzed twice: streamed in time order with processing at each event, and as
a whole file in reverse order (everything buffered until ``finish``). The two reports must be
equal (METRICS.md preamble: streaming and batch agree), so each expected number checks both.
"""

from __future__ import annotations

from typing import Any

import pytest
from enginekit import (
    Event,
    Report,
    activity,
    classified,
    ipus,
    join,
    network,
    role,
    run_session,
    session,
    speech,
    state,
)

T3 = (("t", "therapist"), ("c1", "client"), ("c2", "client"))
T4 = (*T3, ("o", "other"))
ROLES = {"t": "therapist", "c1": "client", "c2": "client", "o": "other"}


def analyze(
    *body: Event,
    participants: tuple[tuple[str, str], ...] = T4,
    end_ms: int | None = 20_000,
    **config: Any,
) -> tuple[Report, list[Any]]:
    """Report and outputs of the streamed run, after checking that the other runs agree:
    the whole file in reverse order, and (when every time is a multiple of 10 ms) the same
    speech as 10 ms frame batches."""
    events = session(*body, end_ms=end_ms, participants=participants)
    report, out = run_session(events, **config)
    whole, whole_out = run_session(
        list(reversed(events)), allowed_lateness_ms=10**9, **config)
    assert whole == report
    others = [whole_out]
    if all(e["start_ms"] % 10 == e["end_ms"] % 10 == 0 for e in body if e["type"] == "speech"):
        framed, framed_out = run_session(
            session(*as_frames(body), end_ms=end_ms, participants=participants),
            **config)
        # Frames change only the quality block (source, coverage), never a metric.
        assert {**framed, "quality": None} == {**report, "quality": None}
        others.append(framed_out)
    for other in others:
        for kind in ("interruption", "collision", "speaker_change"):
            assert classified(other, kind) == classified(out, kind)
        assert ipus(other) == ipus(out)
    return report, out


def as_frames(body: tuple[Event, ...]) -> list[Event]:
    """``body`` with each participant's speech sent as 1 s batches of 10 ms voiced flags, from
    the second of its first speech to the last second holding anyone's speech (a streaming
    source: IPUs stay open while they grow)."""
    spans: dict[str, list[tuple[int, int]]] = {}
    rest = []
    for event in body:
        if event["type"] == "speech":
            spans.setdefault(event["participant_id"], []).append(
                (event["start_ms"], event["end_ms"]))
        else:
            rest.append(event)
    last = max(e for found in spans.values() for _, e in found)
    frames = []
    for pid, found in spans.items():
        first = min(s for s, _ in found) // 1000 * 1000
        for seq, chunk in enumerate(range(first, last, 1000)):
            voiced = "".join(
                "1" if any(s <= ms < e for s, e in found) else "0"
                for ms in range(chunk, chunk + 1000, 10))
            frames.append(activity(pid, seq, chunk, frame_ms=10, voiced=voiced))
    return rest + frames


def _interruption(by: str, of: str, outcome: str, overlap_ms: int) -> dict[str, Any]:
    return {"by": by, "by_role": ROLES[by], "of": of, "of_role": ROLES[of],
            "direction": f"{ROLES[by]}_to_{ROLES[of]}", "outcome": outcome,
            "overlap_ms": overlap_ms}


def _changes(out: list[Any]) -> list[tuple[str, str, str, int, int]]:
    return [(d["from"], d["to"], d["transition"], d["latency_ms"], d["corrected_latency_ms"])
            for d in classified(out, "speaker_change")]


def _collisions(out: list[Any]) -> list[tuple[str, str, int, int]]:
    return [(d["by"], d["of"], d["onset_gap_ms"], d["rtt_ms"])
            for d in classified(out, "collision")]


def _made(report: Report, name: str) -> tuple[int, int]:
    made = role(report, name)["interruptions_made"]
    return made["successful"], made["unsuccessful"]


# --- (a) §5: participants starting at the same ms are each judged on their own -------------


@pytest.mark.parametrize(
    ("net", "body", "interruptions", "collisions"),
    [
        # c1 (RTT 2500) and c2 start at 3000, 2000 ms into t's IPU [1000, 6000). c1: 2000 <
        # 2500, a collision. c2: 2000 >= int_min_floor 500; the overlap [3000, 6000) resolves
        # to c2-solo after 3000 ms: successful. c1's [3000, 4500) is 1500 ms: no backchannel.
        ([network("c1", 0, 2500)],
         [speech("t", 1000, 6000), speech("c1", 3000, 4500), speech("c2", 3000, 9000)],
         [_interruption("c2", "t", "successful", 3000)],
         [("c1", "t", 2000, 2500)]),
        # c1 and o start at 3000; the overlap resolves to c1-solo at 6000: successful for c1;
        # for o it resolves into a third speaker (c1): neither.
        ([],
         [speech("t", 1000, 6000), speech("c1", 3000, 9000), speech("o", 3000, 4500)],
         [_interruption("c1", "t", "successful", 3000)],
         []),
        # Both butt in: the overlap [3000, 4500) resolves back to t-solo after 1500 ms, so each
        # is an unsuccessful interruption (o's own IPU [3000, 4200) is 1200 ms).
        ([],
         [speech("t", 1000, 8000), speech("c1", 3000, 4500), speech("o", 3000, 4200)],
         [_interruption("c1", "t", "unsuccessful", 1500),
          _interruption("o", "t", "unsuccessful", 1500)],
         []),
        # Same speech, o's RTT 2500: o collides (2000 < 2500), c1 still butts in.
        ([network("o", 0, 2500)],
         [speech("t", 1000, 8000), speech("c1", 3000, 4500), speech("o", 3000, 4200)],
         [_interruption("c1", "t", "unsuccessful", 1500)],
         [("o", "t", 2000, 2500)]),
    ],
    ids=["collision+successful", "successful+third-speaker", "both-unsuccessful",
         "unsuccessful+collision"],
)
def test_s5_simultaneous_newcomers_are_each_judged_against_x(
    net: list[Event],
    body: list[Event],
    interruptions: list[dict[str, Any]],
    collisions: list[tuple[str, str, int, int]],
) -> None:
    report, out = analyze(*net, *body)
    assert sorted(classified(out, "interruption"), key=lambda d: d["by"]) == interruptions
    assert _collisions(out) == collisions
    assert report["session"]["collisions"] == len(collisions)
    # Per-role counts follow from the list of interruptions.
    for name in ("client", "other"):
        expected = [d["outcome"] for d in interruptions if d["by_role"] == name]
        assert _made(report, name) == (expected.count("successful"),
                                       expected.count("unsuccessful"))
    assert role(report, "therapist")["interrupted"] == sum(
        d["outcome"] == "successful" for d in interruptions)


def test_s5_simultaneous_newcomers_share_the_overlap_stretchs_outcome_and_length() -> None:
    """§5, a reading v1.1 leaves open: c1 [3000, 4100) and o [3000, 6000) start together 2000
    ms into t's IPU [1000, 9000); c1 stops after 1100 ms, o after 3000; the overlap stretch
    [3000, 6000) then resolves back to t-solo. Each newcomer is judged on its own against t,
    but on that stretch: its outcome (back to t-solo: unsuccessful) and its length (3000 ms,
    >= int_min_overlap_ms even at 2000, though c1 itself overlapped t for 1100 ms)."""
    report, out = analyze(speech("t", 1000, 9000), speech("c1", 3000, 4100),
                          speech("o", 3000, 6000), int_min_overlap_ms=2000)
    assert sorted(classified(out, "interruption"), key=lambda d: d["by"]) == [
        _interruption("c1", "t", "unsuccessful", 3000),
        _interruption("o", "t", "unsuccessful", 3000)]
    assert _made(report, "client") == _made(report, "other") == (0, 1)


def test_s5_simultaneous_newcomers_directions_and_rates() -> None:
    """§5: the two butt-ins of the third case above, counted per direction; rates per 10 min
    of D = 20 s: 1 × 600000 / 20000 = 30.0. Asymmetry counts T↔C only: (0 − 1) / 1 = −1."""
    report, _ = analyze(speech("t", 1000, 8000), speech("c1", 3000, 4500),
                        speech("o", 3000, 4200))
    directions = report["session"]["interruptions"]
    assert directions["client_to_therapist"] == {
        "successful": 0, "unsuccessful": 1, "per_10min": 30.0}
    assert directions["other_to_therapist"] == {
        "successful": 0, "unsuccessful": 1, "per_10min": 30.0}
    assert directions["therapist_to_client"] == {
        "successful": 0, "unsuccessful": 0, "per_10min": 0.0}
    assert report["session"]["interruption_asymmetry"] == -1.0
    assert report["session"]["speaker_changes"] == 0


# --- (b) §4: A speaks again inside the overlap that follows A→B -----------------------------


def test_s4_restart_inside_the_overlap_is_talk_and_overlap_not_a_turn() -> None:
    """§4 boundary speech. t [1000, 3000); c1 comes in at 2500 and holds [2500, 9000); c2
    [2800, 5000); t speaks again [3400, 4600) inside the overlap (1200 ms: no backchannel).
    Floor: t-solo [1000, 2500), overlap [2500, 5000), c1-solo [5000, 9000), gap, t [9500, 12000).

    t→c1: offset_A is t's IPU in progress at 2499 (ends 3000), onset_B c1's IPU in progress at
    5000 (starts 2500): latency 2500 − 3000 = −500 (not 2500 − 4600 with the restart).
    Turns: t 1000→3000 (2000 ms; the restart is not t's turn), c1 2500→9000 (6500 ms),
    t 9500→12000 (2500 ms, the last turn). c1→t: gap 500, latency 9500 − 9000 = 500."""
    report, out = analyze(speech("t", 1000, 3000), speech("t", 3400, 4600),
                          speech("c1", 2500, 9000), speech("c2", 2800, 5000),
                          speech("t", 9500, 12_000), participants=T3)
    assert ipus(out, "t") == [("t", 1000, 3000, False), ("t", 3400, 4600, False),
                              ("t", 9500, 12_000, False)]
    assert _changes(out) == [("t", "c1", "overlap", -500, -500), ("c1", "t", "gap", 500, 500)]
    t, c = role(report, "therapist"), role(report, "client")
    assert (t["turns"], c["turns"]) == (2, 1)
    assert t["mean_turn_s"] == 2.25  # (2000 + 2500) / 2
    assert t["longest_monologue_s"] == 2.5
    assert c["mean_turn_s"] == 6.5
    assert c["response_latency_ms"]["median"] == -500.0
    assert t["response_latency_ms"]["median"] == 500.0
    assert (c["gaps"]["count"], t["gaps"]["count"]) == (0, 1)
    assert t["pauses"]["count"] == 0
    # The restart is talk and overlap: t 2000 + 1200 + 2500; clients 6500 + 2200.
    assert t["talk_s"] == 5.7
    assert c["talk_s"] == 8.7
    assert report["session"]["overlap_s"] == 2.5  # [2500, 5000)
    # c1 came in 1500 ms into t's IPU; the overlap (2500 ms) resolved to c1-solo. c2 and t's
    # restart began during the overlap, not in a solo stretch: not judged.
    assert classified(out, "interruption") == [_interruption("c1", "t", "successful", 2500)]
    assert t["interrupted"] == 1


def test_s4_onset_b_is_bs_ipu_in_progress_when_bs_solo_starts() -> None:
    """§4: B's boundary speech is B's IPU in progress at the first ms of B's solo stretch.
    c1 starts over t at 2000 ([2000, 3500)), stops, starts again at 4000 while t and o still
    speak, and is alone from 5000: onset_B = 4000, offset_A = 5000 (t [1000, 5000)): latency
    4000 − 5000 = −1000, and c1's turn runs 4000 → 8000. o [3000, 5000) joined in overlap."""
    report, out = analyze(speech("t", 1000, 5000), speech("c1", 2000, 3500),
                          speech("o", 3000, 5000), speech("c1", 4000, 8000))
    assert _changes(out) == [("t", "c1", "overlap", -1000, -1000)]
    c = role(report, "client")
    assert c["turns"] == 1
    assert c["mean_turn_s"] == 4.0  # 8000 − 4000 (last turn)
    assert role(report, "therapist")["mean_turn_s"] == 4.0  # 1000 → 5000
    # c1 came in 1000 ms into t's IPU at 2000; the overlap [2000, 5000) resolved to c1-solo.
    assert classified(out, "interruption") == [_interruption("c1", "t", "successful", 3000)]


def test_s4_restart_that_outlasts_the_overlap_keeps_as_turn() -> None:
    """§4 counter-case to the above: t speaks again [3400, 8000) and is alone after the
    overlap [2500, 5000) ends: t-solo, overlap, t-solo is a within-speaker overlap, no speaker
    change; t's one (last) turn runs 1000 → 8000. §5: c1 came in 1500 ms into t's IPU and the
    overlap (2500 ms) resolved back to t-solo: unsuccessful, although t was silent
    [3000, 3400) inside it (the overlap stretch as a whole resolves, §4: mixed stretches)."""
    report, out = analyze(speech("t", 1000, 3000), speech("t", 3400, 8000),
                          speech("c1", 2500, 5000), speech("c2", 2800, 5000), participants=T3)
    assert _changes(out) == []
    t, c = role(report, "therapist"), role(report, "client")
    assert (t["turns"], c["turns"]) == (1, 0)
    assert t["mean_turn_s"] == 7.0
    assert t["pauses"]["count"] == 0
    assert classified(out, "interruption") == [_interruption("c1", "t", "unsuccessful", 2500)]


# --- (c) §3: closed windows met by half-open IPUs, one X for both ----------------------------

# y = c1 [4000, 4500): windows [3000, 4000] and [4500, 5500] (bc_context_ms 1000).
# changes: the floor's speaker changes, with c1's IPU removed when it is a backchannel.
@pytest.mark.parametrize(
    ("context", "is_bc", "changes"),
    [
        # t [1000, 3001) covers ms 3000 (b 3001 > lo 3000); t [5500, ...) starts at hi (a <= hi).
        # Floor: t, silence, t (a pause).
        ([speech("t", 1000, 3001), speech("t", 5500, 8000)], True, 0),
        # t [1000, 3000) ends exactly at lo: b > lo fails, no before context. t→c1→t.
        ([speech("t", 1000, 3000), speech("t", 5500, 8000)], False, 2),
        # t [5501, ...) starts 1 ms after hi: no after context. t→c1→t.
        ([speech("t", 1000, 3001), speech("t", 5501, 8000)], False, 2),
        # Both windows met, but by different participants (t before, o after). t→c1→o.
        ([speech("t", 1000, 3001), speech("o", 5500, 8000)], False, 2),
        # t touches the before window only at lo (no); c2 meets it; t meets the after window:
        # no single X meets both. t→c2 (overlap [2000, 3000)), c2→c1, c1→t.
        ([speech("t", 1000, 3000), speech("c2", 2000, 3500), speech("t", 5500, 8000)],
         False, 3),
        # c2 meets both windows (a client listening to another client). t→c2, then c2's pause.
        ([speech("t", 1000, 3000), speech("c2", 2000, 3500), speech("c2", 5500, 8000)],
         True, 1),
    ],
    ids=["same-X-touching", "before-ends-at-lo", "after-starts-past-hi", "different-X",
         "different-X-with-a-touch", "another-client-frames-both"],
)
def test_s3_closed_windows_half_open_ipus_same_x(
    context: list[Event], is_bc: bool, changes: int
) -> None:
    report, out = analyze(*context, speech("c1", 4000, 4500))
    assert ipus(out, "c1") == [("c1", 4000, 4500, is_bc)]
    c = role(report, "client")
    assert c["backchannels"] == (1 if is_bc else 0)
    assert report["session"]["speaker_changes"] == changes
    # c1's IPU is either a backchannel or a turn (a solo stretch between two others').
    assert ipus(out, "c1") and sum(
        d["to"] == "c1" for d in classified(out, "speaker_change")) == (0 if is_bc else 1)


# --- (d) §5: an overlap that resolves into a third speaker ----------------------------------


@pytest.mark.parametrize(
    ("body", "interruptions", "change"),
    [
        # c1 comes in 1000 ms into t's IPU; c2 joins the overlap at 3000; t stops at 5000, c1
        # at 5500; c2 is left alone: the overlap resolves into c2 -> neither for c1.
        ([speech("t", 1000, 5000), speech("c1", 2000, 5500), speech("c2", 3000, 9000)],
         [], ("t", "c2", "overlap", -2000, -2000)),  # 3000 − 5000
        # c1 and o come in together; c2 joins later and is left alone: neither for both.
        ([speech("t", 1000, 5000), speech("c1", 2000, 5500), speech("o", 2000, 5200),
          speech("c2", 3000, 9000)],
         [], ("t", "c2", "overlap", -2000, -2000)),
        # Counter-case without c2: the overlap [2000, 5000) resolves to c1: successful.
        ([speech("t", 1000, 5000), speech("c1", 2000, 5500)],
         [_interruption("c1", "t", "successful", 3000)], ("t", "c1", "overlap", -3000, -3000)),
    ],
    ids=["into-c2", "two-newcomers-into-c2", "no-third-speaker"],
)
def test_s5_overlap_resolving_into_a_third_speaker_is_neither(
    body: list[Event], interruptions: list[dict[str, Any]], change: tuple[Any, ...]
) -> None:
    report, out = analyze(*body)
    assert classified(out, "interruption") == interruptions
    assert _changes(out) == [change]
    assert role(report, "therapist")["interrupted"] == len(interruptions)
    assert _made(report, "client") == (len(interruptions), 0)
    assert _made(report, "other") == (0, 0)
    assert report["session"]["collisions"] == 0


# --- (e) §4: stretches mixing silence and overlap between two solo stretches ---------------


def test_s4_overlap_silence_overlap_between_solos_is_a_between_speaker_overlap() -> None:
    """§4: t-solo [1000, 2500), {t, o} [2500, 4000), silence [4000, 4300), {c1, c2}
    [4300, 5500), c1-solo [5500, 9000): one speaker change t→c1 by overlap (not a gap), latency
    onset_c1 − offset_t = 4300 − 4000 = +300. (With silence in between, B's boundary IPU
    cannot start before A's offset, so a mixed stretch's latency is never negative.)
    §5: o came in 1500 ms into t's IPU and the overlap resolved into silence: neither."""
    report, out = analyze(speech("t", 1000, 4000), speech("o", 2500, 4000),
                          speech("c1", 4300, 9000), speech("c2", 4300, 5500))
    assert _changes(out) == [("t", "c1", "overlap", 300, 300)]
    t, c, o = role(report, "therapist"), role(report, "client"), role(report, "other")
    assert c["gaps"]["count"] == t["gaps"]["count"] == o["gaps"]["count"] == 0
    assert t["pauses"]["count"] == 0
    assert (t["turns"], c["turns"], o["turns"]) == (1, 1, 0)
    assert t["mean_turn_s"] == 3.0  # 1000 → 4000
    assert c["mean_turn_s"] == 4.7  # 4300 → 9000 (last turn)
    assert classified(out, "interruption") == []
    assert report["session"]["collisions"] == 0
    assert report["session"]["overlap_s"] == 2.7  # 1500 + 1200
    assert report["session"]["silence_s"] == 12.3  # 20000 − (3000 + 4700)
    assert report["session"]["lapses"]["count"] == 0  # the interior silence is 300 ms


def test_s4_silence_overlap_silence_between_one_speakers_solos_is_no_pause() -> None:
    """§4: t-solo, silence [3000, 3500), {c1, c2} [3500, 5000), silence [5000, 5500), t-solo:
    a within-speaker overlap (not a pause, not a speaker change); t's one turn runs
    1000 → 8000. No monologue split: the mutual silences are 500 ms each."""
    report, out = analyze(speech("t", 1000, 3000), speech("c1", 3500, 5000),
                          speech("c2", 3500, 5000), speech("t", 5500, 8000), participants=T3)
    t, c = role(report, "therapist"), role(report, "client")
    assert _changes(out) == []
    assert t["pauses"]["count"] == 0
    assert (t["turns"], c["turns"]) == (1, 0)
    assert t["mean_turn_s"] == t["longest_monologue_s"] == 7.0
    assert c["talk_s"] == 3.0


# --- (f) §6: backchannels_per_min over the members of a role --------------------------------


def test_s6_backchannels_per_min_sums_each_members_listening() -> None:
    """§6: the denominator is the talk of every other participant (backchannels included)
    heard by each member while present and unmuted, added up over the role's members.

    t talks [1000, 31000); backchannels (t before and after each): c1 [5000, 5300) and
    [10000, 10300), c2 [7000, 7300), o [12000, 12300); o talks [40000, 46000) (D = 60 s).
    c1 is muted [16000, 26000); c2 leaves at 21000.
      c1 hears t 15000 + 5000, c2 300, o 300 + 6000                    = 26600
      c2 hears t 20000 (until it leaves), c1 600, o 300                = 20900
      client: 3 / ((26600 + 20900) / 60000) = 180000 / 47500           = 3.7895 (3.78947…)
      o hears t 30000, c1 600, c2 300: 1 / (30900 / 60000) = 1.94175…  = 1.9417
      t hears c1 600, c2 300, o 300 + 6000 = 7200, no backchannels     = 0.0"""
    report, out = analyze(
        speech("t", 1000, 31_000), speech("c1", 5000, 5300), speech("c1", 10_000, 10_300),
        speech("c2", 7000, 7300), speech("o", 12_000, 12_300), speech("o", 40_000, 46_000),
        state("mute", "c1", 16_000), state("unmute", "c1", 26_000), state("leave", "c2", 21_000),
        end_ms=60_000,
    )
    assert [x[3] for x in ipus(out) if x[2] - x[1] == 300] == [True] * 4
    c, o, t = role(report, "client"), role(report, "other"), role(report, "therapist")
    assert (c["backchannels"], o["backchannels"], t["backchannels"]) == (3, 1, 0)
    assert c["backchannels_per_min"] == 3.7895
    assert o["backchannels_per_min"] == 1.9417
    assert t["backchannels_per_min"] == 0.0
    assert c["talk_s"] == 0.9  # backchannels count toward talk time
    assert report["session"]["overlap_s"] == 1.2  # each backchannel overlaps t


def test_s6_backchannels_per_min_counts_a_late_joiner_only_while_present() -> None:
    """§6 with §2.4: c2 joins at 10000, leaves at 12000 and rejoins at 14000; t talks
    [1000, 21000); backchannels c1 [5000, 5300), c2 [15000, 15300) (D = 60 s).
      c1 hears t 20000, c2 300                                   = 20300
      c2 hears t [10000, 12000) + [14000, 21000) = 9000 (c1's backchannel came before it joined)
      client: 2 / ((20300 + 9000) / 60000) = 120000 / 29300     = 4.0956 (4.09556…)"""
    report, _ = analyze(
        speech("t", 1000, 21_000), speech("c1", 5000, 5300), speech("c2", 15_000, 15_300),
        join("c2", "client", 10_000), state("leave", "c2", 12_000),
        join("c2", "client", 14_000),
        participants=(("t", "therapist"), ("c1", "client")), end_ms=60_000,
    )
    c = role(report, "client")
    assert c["backchannels"] == 2
    assert c["backchannels_per_min"] == 4.0956


# --- (g) §4: the session's last turn --------------------------------------------------------


@pytest.mark.parametrize(("end_ms", "duration_s", "turns_per_min"),
                         [(20_000, 20.0, 3.0), (None, 12.0, 5.0)],
                         ids=["session-end", "idle-close"])
def test_s4_last_turn_ends_with_the_last_solo_stretch(
    end_ms: int | None, duration_s: float, turns_per_min: float
) -> None:
    """§4: t [1000, 5000), gap, c1 [6000, 9000), silence, then c2 and o together
    [10000, 12000) and silence: c1's last solo stretch ends at 9000, so c1's (last) turn is
    6000 → 9000, not 12000. One speaker change: turns_per_min = 1 / (D / 60000), D = 20 s with
    a session.end, else up to the last speech offset, 12 s (§1)."""
    report, out = analyze(speech("t", 1000, 5000), speech("c1", 6000, 9000),
                          speech("c2", 10_000, 12_000), speech("o", 10_000, 12_000),
                          end_ms=end_ms)
    assert report["duration_s"] == duration_s
    assert _changes(out) == [("t", "c1", "gap", 1000, 1000)]
    t, c, o = role(report, "therapist"), role(report, "client"), role(report, "other")
    assert (t["turns"], c["turns"], o["turns"]) == (1, 1, 0)
    assert t["mean_turn_s"] == 4.0
    assert c["mean_turn_s"] == c["longest_monologue_s"] == 3.0
    assert report["session"]["turns_per_min"] == turns_per_min


def test_s4_last_turn_talked_over_ends_at_the_ipu_in_progress() -> None:
    """§4: c1's last solo stretch [5500, 10800) is cut by c2 [10800, 12000); both stop at
    12000. The IPU in progress at 10799 is [5500, 12000): c1's last turn is 6500 ms.
    §5: c2 came in 5300 ms into c1's IPU; the overlap resolved into silence: neither."""
    report, out = analyze(speech("t", 1000, 5000), speech("c1", 5500, 12_000),
                          speech("c2", 10_800, 12_000), participants=T3)
    c = role(report, "client")
    assert c["turns"] == 1
    assert c["mean_turn_s"] == 6.5
    assert classified(out, "interruption") == []


def test_s4_last_turn_ignores_a_restart_inside_the_final_overlap() -> None:
    """§4: c1-solo [5500, 8500), then c2 [8500, 10500) and o [8700, 10500) overlap c1's IPU
    [5500, 9000); c1 speaks again [9400, 10500) inside the overlap; all stop at 10500.
    The IPU in progress at the last ms of c1's last solo stretch ends at 9000: c1's last turn
    is 5500 → 9000 (3500 ms), not 5500 → 10500; the restart is talk, not turn."""
    report, out = analyze(speech("t", 1000, 5000), speech("c1", 5500, 9000),
                          speech("c2", 8500, 10_500), speech("o", 8700, 10_500),
                          speech("c1", 9400, 10_500))
    assert ipus(out, "c1") == [("c1", 5500, 9000, False), ("c1", 9400, 10_500, False)]
    c = role(report, "client")
    assert c["turns"] == 1
    assert c["mean_turn_s"] == c["longest_monologue_s"] == 3.5
    assert _changes(out) == [("t", "c1", "gap", 500, 500)]
    assert classified(out, "interruption") == []  # resolved into silence (§5)
