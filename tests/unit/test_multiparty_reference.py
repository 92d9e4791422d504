"""METRICS.md v1.1 §3-§5 on random multi-party sessions, against a millisecond-by-millisecond
reading of the text.

The reference below is a deliberately naive second reading of the contract: it paints every
millisecond's set of speakers and applies §3 (backchannels), §4 (stretches, speaker changes,
boundary speech, turns, pauses, gaps) and §5 (collisions, interruptions) literally, with no
streaming. Sessions have 3 or 4 participants (therapist, two clients, maybe ``other``) whose
speech segments are at least 100 ms long and at least 200 ms apart, so each segment is one IPU
(§2). The hand-built cases in test_multiparty.py pin each rule; this test looks for the
combinations nobody thought of.

One reading v1.1 leaves open is fixed here as in the engine: the "overlap stretch" a §5
newcomer is judged on runs from its onset until one speaker or nobody is left on the floor.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from enginekit import classified, ipus, network, role, run_session, session, speech

END = 20_000
ROSTERS = (
    (("t", "therapist"), ("c1", "client"), ("c2", "client")),
    (("t", "therapist"), ("c1", "client"), ("c2", "client"), ("o", "other")),
)
Segments = dict[str, list[tuple[int, int]]]


def random_session(rng: random.Random) -> tuple[tuple[tuple[str, str], ...], Segments,
                                                dict[str, int]]:
    roster = rng.choice(ROSTERS)
    segments: Segments = {}
    for pid, _ in roster:
        # On a 100 ms grid, so that same-ms onsets and offsets and IPUs touching a §3 window
        # at its very edge happen often.
        t = rng.randrange(0, 3000, 100)
        found = []
        while True:
            # Half short (backchannel-sized), half up to 4 s.
            length = rng.randrange(100, 1100 if rng.random() < 0.5 else 4000, 100)
            if t + length > END - 100:
                break
            found.append((t, t + length))
            t += length + rng.randrange(200, 3000, 100)
        segments[pid] = found
    rtts = {pid: rng.choice((0, 0, 0, 300, 900)) for pid, _ in roster}
    return roster, segments, rtts


def _meets(ipu: tuple[int, int], lo: int, hi: int) -> bool:
    """§3: an IPU [a, b) meets the closed window [lo, hi] when a <= hi and b > lo."""
    return ipu[0] <= hi and ipu[1] > lo


def reference(segments: Segments, roles: dict[str, str], rtts: dict[str, int]) -> dict[str, Any]:
    pids = list(segments)
    backchannel = {}
    for y in pids:
        for s, e in segments[y]:
            backchannel[(y, s)] = e - s <= 1000 and any(
                any(_meets(i, s - 1000, s) for i in segments[x])
                and any(_meets(i, e, e + 1000) for i in segments[x])
                for x in pids if x != y)
    # Floor (backchannels removed): per ms, the speakers and each one's current IPU.
    current: list[dict[str, tuple[int, int]]] = [{} for _ in range(END)]
    for pid in pids:
        for s, e in segments[pid]:
            if not backchannel[(pid, s)]:
                for ms in range(s, e):
                    current[ms][pid] = (s, e)
    stretches: list[tuple[int, int, frozenset[str]]] = []
    start = 0
    for ms in range(1, END + 1):
        if ms == END or current[ms].keys() != current[start].keys():
            stretches.append((start, ms, frozenset(current[start])))
            start = ms
    solos = [i for i, (_, _, who) in enumerate(stretches) if len(who) == 1]
    changes: list[tuple[str, str, str, int, int]] = []
    pauses = {r: 0 for r in roles.values()}
    gaps = {r: 0 for r in roles.values()}
    turns: list[tuple[str, int]] = []
    turn: tuple[str, int] | None = None
    for k, i in enumerate(solos):
        b_start, _, (b,) = stretches[i]
        onset_b = current[b_start][b][0]
        if k == 0:
            turn = (b, onset_b)
            continue
        _, a_end, (a,) = stretches[solos[k - 1]]
        offset_a = current[a_end - 1][a][1]
        overlap = any(len(who) >= 2 for _, _, who in stretches[solos[k - 1] + 1:i])
        if a == b:
            pauses[roles[a]] += not overlap
            continue
        latency = onset_b - offset_a
        changes.append((a, b, "overlap" if overlap else "gap", latency, latency - rtts[b]))
        gaps[roles[b]] += not overlap
        assert turn is not None
        turns.append((turn[0], offset_a - turn[1]))
        turn = (b, onset_b)
    if turn is not None:
        _, a_end, (a,) = stretches[solos[-1]]
        turns.append((turn[0], current[a_end - 1][a][1] - turn[1]))
    interruptions, collisions = [], []
    for ms in range(1, END):
        before, now = current[ms - 1], current[ms]
        if len(before) != 1 or len(now) < 2 or next(iter(before)) not in now:
            continue
        x = next(iter(before))
        since_x = ms - now[x][0]
        for y in sorted(now.keys() - before.keys()):
            if since_x < rtts[y]:
                collisions.append((y, x))
                continue
            if since_x < 500:
                continue
            end = ms
            while end < END and len(current[end]) >= 2:
                end += 1
            left = list(current[end]) if end < END else []
            if end - ms >= 500 and left in ([x], [y]):
                outcome = "successful" if left == [y] else "unsuccessful"
                interruptions.append((y, x, outcome, end - ms))
    return {"backchannel": backchannel, "changes": changes, "pauses": pauses, "gaps": gaps,
            "turns": turns, "interruptions": sorted(interruptions),
            "collisions": sorted(collisions)}


@pytest.mark.parametrize("seed", range(40))
def test_engine_agrees_with_a_literal_reading_on_random_multiparty_sessions(seed: int) -> None:
    roster, segments, rtts = random_session(random.Random(seed))
    roles = dict(roster)
    body = [speech(pid, s, e) for pid, found in segments.items() for s, e in found]
    body += [network(pid, 0, rtt) for pid, rtt in rtts.items() if rtt]
    report, out = run_session(session(*body, end_ms=END, participants=roster))
    expected = reference(segments, roles, rtts)

    assert {(pid, s): bc for pid, s, _, bc in ipus(out)} == expected["backchannel"]
    assert [(d["from"], d["to"], d["transition"], d["latency_ms"], d["corrected_latency_ms"])
            for d in classified(out, "speaker_change")] == expected["changes"]
    assert sorted((d["by"], d["of"], d["outcome"], d["overlap_ms"])
                  for d in classified(out, "interruption")) == expected["interruptions"]
    assert sorted((d["by"], d["of"])
                  for d in classified(out, "collision")) == expected["collisions"]
    for name in set(roles.values()):
        lengths = [ms for pid, ms in expected["turns"] if roles[pid] == name]
        got = role(report, name)
        assert got["turns"] == len(lengths)
        assert got["mean_turn_s"] == (
            round(sum(lengths) / len(lengths) / 1000, 3) if lengths else None)
        assert got["pauses"]["count"] == expected["pauses"][name]
        assert got["gaps"]["count"] == expected["gaps"][name]
