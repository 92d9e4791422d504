"""METRICS.md §7 live alerts: each fires once per episode and clears with a matching
``*.cleared`` event; every rule is configurable and switchable off. Windows are shortened with
config overrides so the cases stay small."""

from __future__ import annotations

from typing import Any

import pytest
from enginekit import alert_events, network, run, speech


def _of(out: list[Any], alert: str) -> list[tuple[str, int]]:
    return [(k, ts) for k, ts in alert_events(out) if k.split(".")[0] == alert]


def _logged(report: dict[str, Any], alert: str) -> list[tuple[int, int | None]]:
    return [(a["ts_ms"], a["cleared_ms"]) for a in report["alerts"] if a["type"] == alert]


# --- long_silence -------------------------------------------------------------------------------


def test_s7_long_silence_fires_once_and_clears_when_speech_resumes() -> None:
    """§7 (silence_ms=5000): mutual silence [2000, 9000) passes 5 s at 7000; clears at 9000."""
    report, out = run(speech("t", 1000, 2000), speech("c", 9000, 10_000), end_ms=12_000,
                      alerts={"silence_ms": 5000})
    assert _of(out, "long_silence") == [("long_silence", 7000), ("long_silence.cleared", 9000)]
    assert _logged(report, "long_silence") == [(7000, 9000)]


def test_s7_long_silence_exactly_at_the_threshold_does_not_pass_it() -> None:
    """§7: a silence of exactly silence_ms (5000, [2000, 7000)) has not passed it."""
    _, out = run(speech("t", 1000, 2000), speech("c", 7000, 8000), end_ms=10_000,
                 alerts={"silence_ms": 5000})
    assert _of(out, "long_silence") == []


def test_s7_long_silence_open_at_session_end_clears_at_the_end() -> None:
    """§7: every episode is closed by a .cleared event; at the latest at session end."""
    report, out = run(speech("t", 1000, 2000), end_ms=20_000, alerts={"silence_ms": 5000})
    assert _of(out, "long_silence") == [("long_silence", 7000),
                                        ("long_silence.cleared", 20_000)]
    assert _logged(report, "long_silence") == [(7000, 20_000)]


# --- long_monologue -----------------------------------------------------------------------------


def test_s7_long_monologue_fires_once_and_clears_at_its_end() -> None:
    """§7 (monologue_ms=10000): t's monologue from 1000 passes 10 s at 11000; it ends at t's
    offset 15000 (c takes the floor at 15500)."""
    report, out = run(speech("t", 1000, 15_000), speech("c", 15_500, 17_000),
                      alerts={"monologue_ms": 10_000})
    assert _of(out, "long_monologue") == [("long_monologue", 11_000),
                                          ("long_monologue.cleared", 15_000)]
    assert _logged(report, "long_monologue") == [(11_000, 15_000)]


@pytest.mark.parametrize(
    "body",
    [
        [speech("c", 1000, 15_000), speech("t", 15_500, 17_000)],  # the client's monologue
        [speech("t", 1000, 11_000), speech("c", 11_500, 13_000)],  # exactly 10 s: not passed
        # split by a 3000 ms mutual silence (lapse_ms) into 7 s and 8 s monologues (§4)
        [speech("t", 1000, 8000), speech("t", 11_000, 19_000), speech("c", 19_500, 21_000)],
    ],
    ids=["client", "exactly-10s", "split-by-lapse"],
)
def test_s7_long_monologue_does_not_fire(body: list[dict[str, Any]]) -> None:
    """§7: only a therapist monologue that passes monologue_ms fires."""
    _, out = run(*body, alerts={"monologue_ms": 10_000})
    assert _of(out, "long_monologue") == []


def test_s7_long_monologue_spans_a_pause_shorter_than_lapse_ms() -> None:
    """§7/§4: a 2999 ms pause does not split the monologue 1000 -> 19000: fires at 11000."""
    _, out = run(speech("t", 1000, 8000), speech("t", 10_999, 19_000),
                 speech("c", 19_500, 21_000), alerts={"monologue_ms": 10_000})
    assert _of(out, "long_monologue") == [("long_monologue", 11_000),
                                          ("long_monologue.cleared", 19_000)]


# --- therapist_dominance ------------------------------------------------------------------------

DOMINANCE = {"dominance_window_ms": 20_000, "dominance_bucket_ms": 5000,
             "dominance_min_speech_ms": 10_000}


def test_s7_therapist_dominance_fires_and_clears_on_the_window() -> None:
    """§7 (window 20 s, >= 10 s of speech, share > 0.65, evaluated every 5 s):
    t [0, 14000), c [14000, 40000).
      at  5000: 5 s of speech < 10 s            -> nothing
      at 10000: t 10 s of 10 s = 1.0            -> fires
      at 20000: [0, 20000) t 14 of 20 = 0.7     -> still on
      at 25000: [5000, 25000) t 9 of 20 = 0.45  -> clears"""
    report, out = run(speech("t", 0, 14_000), speech("c", 14_000, 40_000), end_ms=40_000,
                      alerts=DOMINANCE)
    assert _of(out, "therapist_dominance") == [("therapist_dominance", 10_000),
                                               ("therapist_dominance.cleared", 25_000)]
    assert _logged(report, "therapist_dominance") == [(10_000, 25_000)]
    assert report["alerts"][0]["talk_share"] == 1.0


@pytest.mark.parametrize(
    "body",
    [
        [speech("t", 0, 9000)],  # share 1.0 but only 9 s of speech in any window
        [speech("t", 0, 6500), speech("c", 6500, 10_000)],  # share exactly 0.65: not above
    ],
    ids=["too-little-speech", "share-exactly-0.65"],
)
def test_s7_therapist_dominance_does_not_fire(body: list[dict[str, Any]]) -> None:
    """§7: needs share > 0.65 with >= dominance_min_speech_ms of speech in the window."""
    _, out = run(*body, end_ms=20_000, alerts=DOMINANCE)
    assert _of(out, "therapist_dominance") == []


# --- interruption_burst -------------------------------------------------------------------------

# Successful t→c interruptions with onsets 2000, 8000, 14000 (each 1000 ms into c's IPU, 2000 ms
# of overlap, t keeps the floor).
BURST = [
    speech("c", 1000, 4000), speech("t", 2000, 6000),
    speech("c", 7000, 10_000), speech("t", 8000, 12_000),
    speech("c", 13_000, 16_000), speech("t", 14_000, 18_000),
]


def test_s7_interruption_burst_fires_at_the_third_and_clears_when_the_window_passes() -> None:
    """§7 (burst_window_ms=60000): three successful t→c interruptions within 60 s: fires at
    the third (14000); clears when the first leaves the window: 2000 + 60000 + 1 = 62001 is
    the first ms at which fewer than three lie within the last 60 s."""
    report, out = run(*BURST, end_ms=90_000, alerts={"burst_window_ms": 60_000})
    assert _of(out, "interruption_burst") == [("interruption_burst", 14_000),
                                              ("interruption_burst.cleared", 62_001)]
    assert _logged(report, "interruption_burst") == [(14_000, 62_001)]


@pytest.mark.parametrize(
    ("body", "overrides"),
    [
        (BURST[:4], {"burst_window_ms": 60_000}),  # only two
        (BURST, {"burst_window_ms": 11_999}),  # 14000 − 2000 = 12000 > window
        # client interrupting the therapist does not count (roles swapped)
        ([speech("t" if s["participant_id"] == "c" else "c", s["start_ms"], s["end_ms"])
          for s in BURST], {"burst_window_ms": 60_000}),
    ],
    ids=["two-only", "outside-window", "client-to-therapist"],
)
def test_s7_interruption_burst_does_not_fire(
    body: list[dict[str, Any]], overrides: dict[str, int]
) -> None:
    """§7: >= 3 successful therapist→client interruptions within the window are needed."""
    _, out = run(*body, end_ms=90_000, alerts=overrides)
    assert _of(out, "interruption_burst") == []


# --- network_degraded ---------------------------------------------------------------------------


def test_s7_network_degraded_on_rtt_p95_fires_once_and_clears() -> None:
    """§7: RTT p95 over the last 60 s > 300 ms. c: 100 @1000, 500 @2000 -> p95 = 100 + 0.95·400
    = 480: fires at 2000; 100 @3000 -> p95 460: still degraded (no second alert);
    100 @63000 -> only that sample in (3000, 63000]: clears."""
    report, out = run(network("c", 1000, 100), network("c", 2000, 500), network("c", 3000, 100),
                      network("c", 63_000, 100), end_ms=90_000)
    assert _of(out, "network_degraded") == [("network_degraded", 2000),
                                            ("network_degraded.cleared", 63_000)]
    assert _logged(report, "network_degraded") == [(2000, 63_000)]
    assert report["alerts"][0]["participant_id"] == "c"


@pytest.mark.parametrize(("loss", "fires"), [(6.0, True), (5.0, False)])
def test_s7_network_degraded_on_packet_loss(loss: float, fires: bool) -> None:
    """§7: loss > 5 % over the last 60 s; the 1000 ms report leaves the window by 62000."""
    _, out = run(network("c", 1000, 100, loss_pct=loss), network("c", 62_000, 100, loss_pct=0.0),
                 end_ms=90_000)
    expected = [("network_degraded", 1000), ("network_degraded.cleared", 62_000)]
    assert _of(out, "network_degraded") == (expected if fires else [])


def test_s7_a_loss_above_what_the_compact_column_holds_counts_in_full() -> None:
    """§7 mean loss over 60 s: six readings of 0 % then one of 40 % is 5.7 % (> 5 %). The
    sweep keeps waiting readings in 2-byte columns of 1/1000 % (models/floor.py); 40 % does
    not fit, and a reading cut to 32.767 % would give 4.7 % and no alert."""
    readings = [network("c", 1000 * i, 100, loss_pct=0.0) for i in range(1, 7)]
    _, out = run(*readings, network("c", 7000, 100, loss_pct=40.0), end_ms=90_000)
    assert _of(out, "network_degraded")[:1] == [("network_degraded", 7000)]


def test_s7_network_degraded_looks_at_rtt_not_the_jitter_buffer() -> None:
    """§7: "RTT p95 > 300 ms": rtt_ms 250 with a 100 ms jitter buffer is not degraded."""
    _, out = run(network("c", 1000, 250, jitter_buffer_ms=100), end_ms=90_000)
    assert _of(out, "network_degraded") == []


# --- switchable off -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alert", "body", "rules"),
    [
        ("long_silence", [speech("t", 1000, 2000), speech("c", 9000, 39_000)],
         {"silence_ms": 5000, "silence_enabled": False}),
        ("long_monologue", [speech("t", 1000, 15_000)],
         {"monologue_ms": 10_000, "monologue_enabled": False}),
        ("therapist_dominance", [speech("t", 0, 14_000)],
         {**DOMINANCE, "dominance_enabled": False}),
        ("interruption_burst", BURST, {"burst_window_ms": 60_000, "burst_enabled": False}),
        ("network_degraded", [network("c", 1000, 900)], {"network_enabled": False}),
    ],
)
def test_s7_each_rule_is_switchable_off(
    alert: str, body: list[dict[str, Any]], rules: dict[str, Any]
) -> None:
    """§7: "each rule configurable and switchable off"; the same case fires when enabled."""
    enabled = {k: v for k, v in rules.items() if not k.endswith("_enabled")}
    _, out_on = run(*body, end_ms=40_000, alerts=enabled)
    _, out_off = run(*body, end_ms=40_000, alerts=rules)
    assert [k for k, _ in _of(out_on, alert)] == [alert, f"{alert}.cleared"]
    assert _of(out_off, alert) == []
