"""METRICS.md §6 session metrics (talk, shares, balance, overlap, silence, lapses, quality) and
§10 report schema and rounding."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from enginekit import classified, network, role, run, run_session, session, speech

TCO = (("t", "therapist"), ("c", "client"), ("o", "other"))


def test_s6_talk_shares_overlap_silence_balance() -> None:
    """§6 on t [1000, 4000), c [3000, 7000), D = 10 s."""
    report, _ = run(speech("t", 1000, 4000), speech("c", 3000, 7000), end_ms=10_000)
    t, c, s = role(report, "therapist"), role(report, "client"), report["session"]
    assert (t["talk_s"], c["talk_s"]) == (3.0, 4.0)
    assert (t["talk_share"], c["talk_share"]) == (0.4286, 0.5714)  # 3/7, 4/7
    assert (t["session_share"], c["session_share"]) == (0.3, 0.4)  # 3/10, 4/10
    assert s["overlap_s"] == 1.0  # [3000, 4000)
    assert s["silence_s"] == 4.0  # 10000 − |[1000, 7000)|
    assert s["silence_ratio"] == 0.4
    assert s["balance_index"] == 0.8571  # 1 − |2·3/7 − 1| = 6/7
    assert s["speaker_changes"] == 1
    assert s["turns_per_min"] == 6.0  # 1 / (10000 / 60000)
    assert report["duration_s"] == 10.0


def test_s10_rounding_of_durations_and_ratios() -> None:
    """§10: durations in seconds rounded to 3 decimals, shares and ratios to 4."""
    report, _ = run(speech("t", 1000, 2234), end_ms=7777)
    t, s = role(report, "therapist"), report["session"]
    assert report["duration_s"] == 7.777
    assert t["talk_s"] == 1.234
    assert t["session_share"] == 0.1587  # 1234 / 7777 = 0.158673…
    assert s["silence_s"] == 6.543  # 7777 − 1234
    assert s["silence_ratio"] == 0.8413  # 6543 / 7777 = 0.841326…
    assert t["talk_share"] == 1.0  # silence excluded from the shares
    assert s["balance_index"] == 0.0  # 1 − |2·1 − 1|


def test_s6_talk_share_thirds() -> None:
    """§6/§10: talk_share = talk_s / Σ talk_s: 1000 and 2000 ms -> 0.3333 and 0.6667."""
    report, _ = run(speech("t", 1000, 2000), speech("c", 3000, 5000), end_ms=10_000)
    assert role(report, "therapist")["talk_share"] == 0.3333
    assert role(report, "client")["talk_share"] == 0.6667
    assert report["session"]["balance_index"] == 0.6667  # 1 − |2/3 − 1|


def test_s10_report_schema_field_names() -> None:
    """§10: the stable field names are all present."""
    report, _ = run(speech("t", 1000, 3000), speech("c", 3500, 6000))
    assert {"session_id", "clinic_id", "duration_s", "roles", "session", "quality",
            "alerts"} <= set(report)
    assert (report["session_id"], report["clinic_id"]) == ("s1", "c1")
    assert set(report["roles"]) == {"therapist", "client"}
    for name in ("therapist", "client"):
        r = role(report, name)
        assert {"talk_s", "talk_share", "session_share", "turns", "mean_turn_s",
                "longest_monologue_s", "backchannels", "backchannels_per_min",
                "response_latency_ms", "interruptions_made", "interrupted", "pauses",
                "gaps"} <= set(r)
        assert {"median", "p90", "corrected_median", "corrected_p90"} <= set(
            r["response_latency_ms"])
        assert {"successful", "unsuccessful"} <= set(r["interruptions_made"])
        assert set(r["pauses"]) >= {"count", "median_ms"}
        assert set(r["gaps"]) >= {"count", "median_ms"}
    assert {"balance_index", "speaker_changes", "turns_per_min", "overlap_s", "collisions",
            "silence_s", "silence_ratio", "lapses", "interruption_asymmetry"} <= set(
        report["session"])
    assert {"count", "longest_s"} <= set(report["session"]["lapses"])
    assert isinstance(report["duration_s"], float)
    assert isinstance(role(report, "client")["talk_s"], float)


def test_s10_median_over_nothing_is_null() -> None:
    """§10: "a median over nothing is null": t never responds, nobody pauses."""
    report, _ = run(speech("t", 1000, 3000), speech("c", 3500, 6000))
    t = role(report, "therapist")
    assert t["response_latency_ms"]["median"] is None
    assert t["response_latency_ms"]["corrected_median"] is None
    assert t["pauses"]["median_ms"] is None
    assert t["gaps"]["median_ms"] is None


def test_s6_group_session_sums_roles() -> None:
    """§6: "group roles are summed": two clients c1 [3500, 5000), c2 [5500, 7000) after
    t [1000, 3000). Client talk 3000 ms, share 0.6; two roles -> linear balance 1 − |0.8 − 1|."""
    report, out = run(speech("t", 1000, 3000), speech("c1", 3500, 5000),
                      speech("c2", 5500, 7000),
                      participants=(("t", "therapist"), ("c1", "client"), ("c2", "client")))
    assert set(report["roles"]) == {"therapist", "client"}
    c = role(report, "client")
    assert c["talk_s"] == 3.0
    assert (role(report, "therapist")["talk_share"], c["talk_share"]) == (0.4, 0.6)
    assert report["session"]["balance_index"] == 0.8
    assert c["turns"] == 2
    assert c["gaps"] == {"count": 2, "median_ms": 500.0}  # t→c1 and c1→c2, 500 ms each
    assert report["session"]["speaker_changes"] == 2
    assert [(d["from"], d["to"]) for d in classified(out, "speaker_change")] == [
        ("t", "c1"), ("c1", "c2")]


@pytest.mark.parametrize(
    ("body", "shares", "balance"),
    [
        # shares 0.5, 0.25, 0.25: H = 1.5·ln 2; / ln 3 = 0.946394…
        ([speech("t", 1000, 3000), speech("c", 3500, 4500), speech("o", 5000, 6000)],
         (0.5, 0.25, 0.25), 0.9464),
        # other present but silent: shares 0.5, 0.5, 0: ln 2 / ln 3 = 0.630929…
        ([speech("t", 1000, 3000), speech("c", 3500, 5500)], (0.5, 0.5, 0.0), 0.6309),
    ],
    ids=["other-speaks", "other-silent"],
)
def test_s6_balance_is_normalized_entropy_with_a_third_role(
    body: list[dict[str, Any]], shares: tuple[float, float, float], balance: float
) -> None:
    """§6: balance_index for more than two roles is the normalized entropy of the shares."""
    report, _ = run(*body, participants=TCO)
    assert set(report["roles"]) == {"therapist", "client", "other"}
    assert tuple(role(report, r)["talk_share"] for r in ("therapist", "client", "other")) == (
        shares)
    assert report["session"]["balance_index"] == balance


def test_s6_overlap_counts_time_with_two_or_more_speakers_once() -> None:
    """§6: overlap_s is the time with >= 2 speaking: t [1000,5000), c [2000,4000),
    o [3000,6000) -> [2000, 5000) = 3 s (the 3-way part [3000, 4000) is not counted twice)."""
    report, _ = run(speech("t", 1000, 5000), speech("c", 2000, 4000), speech("o", 3000, 6000),
                    participants=TCO, end_ms=10_000)
    assert report["session"]["overlap_s"] == 3.0
    assert report["session"]["silence_s"] == 5.0  # 10000 − |[1000, 6000)|


LAPSE_BODY = (
    speech("t", 4000, 5000),  # 4000 ms of leading silence: before anyone spoke, not a lapse
    speech("c", 8000, 9000),  # 3000 ms mutual silence after t: a lapse, broken by c
    speech("c", 9500, 10_000),
    speech("t", 13_999, 15_000),  # 3999 ms after c: a lapse, broken by t
    speech("t", 17_999, 19_000),  # 2999 ms: not a lapse; trailing 31 s: not a lapse
)


def test_s6_lapses_count_longest_who_before_who_broke() -> None:
    """§6: lapses are interior mutual silences >= lapse_ms (3000)."""
    report, out = run(*LAPSE_BODY, end_ms=50_000)
    lapses = report["session"]["lapses"]
    assert lapses["count"] == 2
    assert lapses["longest_s"] == 3.999
    assert lapses["preceded_by"] == {"client": 1, "therapist": 1}
    assert lapses["broken_by"] == {"client": 1, "therapist": 1}
    assert classified(out, "lapse") == [
        {"start_ms": 5000, "end_ms": 8000, "preceded_by": "t", "preceded_by_role": "therapist",
         "broken_by": "c", "broken_by_role": "client"},
        {"start_ms": 10_000, "end_ms": 13_999, "preceded_by": "c",
         "preceded_by_role": "client", "broken_by": "t", "broken_by_role": "therapist"},
    ]
    # union of IPUs: 1000 + 1000 + 500 + 1001 + 1001 = 4502 ms
    assert report["session"]["silence_s"] == 45.498
    assert report["session"]["silence_ratio"] == 0.91  # 45498 / 50000 = 0.90996


def test_s6_lapse_ms_is_configuration() -> None:
    """§6: with lapse_ms=3500 only the 3999 ms silence is a lapse."""
    report, _ = run(*LAPSE_BODY, end_ms=50_000, lapse_ms=3500)
    assert report["session"]["lapses"]["count"] == 1
    assert report["session"]["lapses"]["longest_s"] == 3.999


def test_s6_lapse_is_preceded_by_the_last_to_stop() -> None:
    """§6 "who spoke before": t and c overlap, c stops last (4500); o breaks the silence."""
    report, _ = run(speech("t", 1000, 4000), speech("c", 2000, 4500), speech("o", 8000, 9000),
                    participants=TCO)
    lapses = report["session"]["lapses"]
    assert lapses["count"] == 1
    assert lapses["longest_s"] == 3.5  # 8000 − 4500
    assert lapses["preceded_by"] == {"client": 1}
    assert lapses["broken_by"] == {"other": 1}


# --- quality block and low_confidence ------------------------------------------------------------


@pytest.mark.parametrize(
    ("rtts", "p95", "low"),
    [
        ([301], 301.0, True),
        ([300], 300.0, False),  # not above rtt_degraded_ms
        ([100, 100, 400], 370.0, True),  # p95 = 100 + 0.9·(400 − 100)
        ([100, 100, 300], 280.0, False),  # p95 = 100 + 0.9·200
    ],
)
def test_s6_low_confidence_when_rtt_p95_above_300(
    rtts: list[int], p95: float, low: bool
) -> None:
    """§6 quality: when RTT p95 > rtt_degraded_ms (300) the latency and interruption metrics
    carry low_confidence: true."""
    net = [network("c", 1000 * (i + 1), rtt) for i, rtt in enumerate(rtts)]
    report, _ = run(*net, speech("t", 1000, 3000), speech("c", 3500, 6000))
    quality = report["quality"]
    assert quality["participants"]["c"]["rtt_p95_ms"] == p95
    assert quality["rtt_p95_ms"] == p95
    assert quality["low_confidence"] is low
    for name in ("therapist", "client"):
        assert role(report, name)["response_latency_ms"]["low_confidence"] is low
        assert role(report, name)["interruptions_made"]["low_confidence"] is low


def test_s6_rtt_degraded_ms_is_configuration() -> None:
    """§6: with rtt_degraded_ms=400 a p95 of 370 ms is trusted."""
    net = [network("c", 1000, 100), network("c", 2000, 100), network("c", 3000, 400)]
    report, _ = run(*net, speech("t", 1000, 3000), rtt_degraded_ms=400)
    assert report["quality"]["low_confidence"] is False


def test_s6_quality_packet_loss_and_missing_network() -> None:
    """§6 quality: packet loss as reported (mean of c's 1.0 and 2.0 %); t has no network data."""
    report, _ = run(network("c", 1000, 100, loss_pct=1.0), network("c", 2000, 100, loss_pct=2.0),
                    speech("t", 1000, 3000))
    parts = report["quality"]["participants"]
    assert parts["c"]["loss_pct"] == 1.5
    assert parts["t"]["loss_pct"] is None
    assert parts["t"]["rtt_p95_ms"] is None
    assert report["quality"]["loss_pct"] == 1.5


def test_s6_quality_rtt_p95_is_the_round_trip_time_only() -> None:
    """§6: "RTT p95 > rtt_degraded_ms" concerns the round-trip time. §4 keeps RTT and the
    jitter-buffer delay apart ("round-trip time ... plus B's jitter-buffer delay if
    reported"). c reports rtt_ms 250 with a 100 ms jitter buffer: RTT p95 = 250 <= 300."""
    report, out = run(network("c", 1000, 250, jitter_buffer_ms=100),
                      speech("t", 1000, 3000), speech("c", 3500, 6000))
    # The jitter buffer does count in the corrected latency: 500 − (250 + 100) = 150.
    assert [d["corrected_latency_ms"] for d in classified(out, "speaker_change")] == [150]
    assert report["quality"]["participants"]["c"]["rtt_p95_ms"] == 250.0
    assert report["quality"]["low_confidence"] is False


def _alternating(responses: int) -> list[dict[str, Any]]:
    """t and c alternate 1200 ms IPUs; c's i-th response comes after 200 + i ms, t's always
    after 300 ms."""
    body, t = [], 1000
    for i in range(responses):
        body.append(speech("t", t, t + 1200))
        t += 1200 + 200 + i
        body.append(speech("c", t, t + 1200))
        t += 1200 + 300
    return body


def test_s10_median_and_p90_past_the_exact_cap() -> None:
    """§10: 301 client responses after 200, 201, …, 500 ms: median 350 (rank 150), p90 = rank
    270 = 470, exact however many samples (the engine once switched to a 1 % sketch past 256);
    the therapist always answers after 300 ms."""
    report, _ = run(*_alternating(301), end_ms=920_000)
    assert report["session"]["speaker_changes"] == 601
    c = role(report, "client")["response_latency_ms"]
    assert (c["median"], c["p90"]) == (350.0, 470.0)
    assert role(report, "client")["gaps"]["median_ms"] == 350.0
    assert role(report, "therapist")["response_latency_ms"]["median"] == 300.0


def test_s10_quantiles_are_exact_over_hundreds_of_samples() -> None:
    """§10: "computed exactly over every sample of the session (no sketches)". 300 rounds of a
    therapist IPU then a client turn of two IPUs; every latency, pause and gap is drawn at
    random (seeded), so the samples are known by construction:

    - the client answers ``lc`` ms after the therapist stops (negative: an overlap, a speaker
      change but not a gap; backchannels are impossible, every IPU lasting over 1000 ms),
    - pauses within the client turn last ``p`` ms (>= min_pause_ms 200, < lapse_ms 3000),
    - the therapist answers ``lt`` ms after the client stops (the first IPU answers nobody),
    - c's RTT is 120 ms throughout: corrected latency = observed − 120 (§4).

    Every figure must equal numpy.percentile over those lists (rounded to 3 decimals, §10)."""
    rng = random.Random(2026)
    body: list[dict[str, Any]] = [network("c", 500, 120)]
    lc, lt, p = [], [], []
    clock = 1000
    for i in range(300):
        if i:
            lt.append(rng.randint(-400, 2999))
            clock += lt[-1]
        body.append(speech("t", clock, clock + 1200))
        lc.append(rng.randint(-400, 2999))
        onset = clock + 1200 + lc[-1]
        p.append(rng.randint(200, 2999))
        body += [speech("c", onset, onset + 1500),
                 speech("c", onset + 1500 + p[-1], onset + 3000 + p[-1])]
        clock = onset + 3000 + p[-1]
    report, _ = run(*body, end_ms=clock + 10_000)

    def ms(values: list[int], q: float) -> float:
        return round(float(np.percentile(values, q)), 3)

    c, t = role(report, "client"), role(report, "therapist")
    assert c["response_latency_ms"]["count"] == 300
    assert (c["response_latency_ms"]["median"], c["response_latency_ms"]["p90"]) == (
        ms(lc, 50), ms(lc, 90))
    corrected = [x - 120 for x in lc]
    assert (c["response_latency_ms"]["corrected_median"],
            c["response_latency_ms"]["corrected_p90"]) == (ms(corrected, 50), ms(corrected, 90))
    assert (t["response_latency_ms"]["median"], t["response_latency_ms"]["p90"]) == (
        ms(lt, 50), ms(lt, 90))
    assert (c["pauses"]["count"], c["pauses"]["median_ms"]) == (300, ms(p, 50))
    c_gaps, t_gaps = [x for x in lc if x >= 0], [x for x in lt if x >= 0]
    assert (c["gaps"]["count"], c["gaps"]["median_ms"]) == (len(c_gaps), ms(c_gaps, 50))
    assert (t["gaps"]["count"], t["gaps"]["median_ms"]) == (len(t_gaps), ms(t_gaps, 50))
    assert len(c_gaps) > 256 and len(t_gaps) > 256  # past the old exact cap on every series


def test_s10_median_and_p90_of_101_responses() -> None:
    """§10: the same construction with 101 responses (200..300 ms): median 250, p90 290."""
    report, _ = run(*_alternating(101), end_ms=400_000)
    c = role(report, "client")["response_latency_ms"]
    assert (c["median"], c["p90"]) == (250.0, 290.0)
    assert role(report, "therapist")["response_latency_ms"]["median"] == 300.0


@pytest.mark.parametrize("step", [1, 1000, 10_000, 10**12])
def test_preamble_report_does_not_depend_on_processing_cadence(step: int) -> None:
    """Preamble: streaming and batch must agree. The engine processing after every event
    (advance_step_ms=0) and in coarser steps (down to only at finish) gives the same report
    and the same outputs, alerts included."""
    events = session(*_alternating(12), network("c", 2000, 400), speech("t", 60_000, 75_000),
                     end_ms=100_000)
    overrides: dict[str, Any] = {"alerts": {"monologue_ms": 10_000, "silence_ms": 8000}}
    eager, eager_out = run_session(events, **overrides)
    lazy, lazy_out = run_session(events, advance_step_ms=step, **overrides)
    assert lazy == eager
    assert sorted(map(repr, lazy_out)) == sorted(map(repr, eager_out))
    # Not trivial: the 15 s therapist monologue, the silences and c's 400 ms RTT raise alerts.
    assert {a["type"] for a in eager["alerts"]} == {
        "long_monologue", "long_silence", "network_degraded"}
