"""Property tests (hypothesis) of the metric engine's invariants.

- METRICS.md §9: the final report is identical whether events arrive sorted, shuffled within
  ``allowed_lateness_ms`` of their known time, or duplicated (at-least-once delivery).
- §6: talk shares sum to 1; ``silence_s`` + |union of IPUs| = duration.
- §1: frames, equivalent speech segments, speaking-state changes (``voice``) and level samples
  (``levels``, in each of the six scales) give the same report.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.config import EngineConfig
from models.events import parse_event
from models.session import SessionEngine, known_time

FRAME = 20
BATCH = 1000
SESSION = "s1"

ROSTERS = [
    [("t", "therapist"), ("c", "client")],
    [("t", "therapist"), ("c1", "client"), ("c2", "client")],
    [("t", "therapist"), ("c", "client"), ("o", "other")],
]


@st.composite
def sessions(draw: st.DrawFn) -> dict[str, Any]:
    """A random session: per participant, voiced intervals on a 20 ms grid, plus network and
    mute events. Lengths are in frames so frames and segments can encode the same speech."""
    roster = draw(st.sampled_from(ROSTERS))
    length_frames = draw(st.integers(500, 2500))  # 10..50 s
    speech: dict[str, list[tuple[int, int]]] = {}
    for pid, _ in roster:
        intervals = []
        cursor = draw(st.integers(0, 100))
        for _ in range(draw(st.integers(0, 14))):
            duration = draw(st.integers(1, 200))  # 20 ms .. 4 s
            if cursor + duration >= length_frames:
                break
            intervals.append((cursor * FRAME, (cursor + duration) * FRAME))
            cursor += duration + draw(st.integers(1, 250))
        speech[pid] = intervals
    network = [
        (pid, draw(st.integers(0, length_frames * FRAME - 1)), draw(st.integers(0, 600)))
        for pid, _ in roster
        for _ in range(draw(st.integers(0, 3)))
    ]
    mutes = []
    if draw(st.booleans()):
        pid = roster[1][0]
        a = draw(st.integers(0, length_frames * FRAME - 2))
        b = draw(st.integers(a + 1, length_frames * FRAME - 1))
        mutes.append((pid, a, b))
    return {
        "roster": roster,
        "length_ms": length_frames * FRAME,
        "speech": speech,
        "network": network,
        "mutes": mutes,
    }


def wire_events(session: dict[str, Any], encoding: str) -> list[dict[str, Any]]:
    """Wire events for a generated session, in the order a live source sends them: by known
    time (a segment when it ends, a batch after its last frame)."""
    length = session["length_ms"]
    events: list[dict[str, Any]] = [
        {"type": "session.start", "session_id": SESSION, "ts_ms": 0, "clinic_id": "c1",
         "participants": [{"participant_id": p, "role": r} for p, r in session["roster"]]},
        {"type": "session.end", "session_id": SESSION, "ts_ms": length},
    ]
    for pid, intervals in session["speech"].items():
        if encoding == "voice":
            for a, b in intervals:
                events.append({"type": "voice", "session_id": SESSION, "participant_id": pid,
                               "ts_ms": a, "speaking": True})
                events.append({"type": "voice", "session_id": SESSION, "participant_id": pid,
                               "ts_ms": b, "speaking": False})
        elif encoding.startswith("levels:"):
            events.extend(level_batches(pid, intervals, length, encoding.split(":")[1]))
        elif encoding == "frames":
            voiced = ["0"] * (length // FRAME)
            for a, b in intervals:
                voiced[a // FRAME : b // FRAME] = ["1"] * ((b - a) // FRAME)
            per_batch = BATCH // FRAME
            for seq, i in enumerate(range(0, len(voiced), per_batch)):
                events.append(
                    {"type": "activity", "session_id": SESSION, "participant_id": pid,
                     "seq": seq, "start_ms": i * FRAME, "frame_ms": FRAME,
                     "voiced": "".join(voiced[i : i + per_batch])}
                )
        else:
            for a, b in intervals:
                events.append({"type": "speech", "session_id": SESSION, "participant_id": pid,
                               "start_ms": a, "end_ms": b})
    for pid, ts, rtt in session["network"]:
        events.append({"type": "network", "session_id": SESSION, "participant_id": pid,
                       "ts_ms": ts, "rtt_ms": rtt, "loss_pct": 0.5})
    for pid, a, b in session["mutes"]:
        events.append({"type": "participant.mute", "session_id": SESSION,
                       "participant_id": pid, "ts_ms": a})
        events.append({"type": "participant.unmute", "session_id": SESSION,
                       "participant_id": pid, "ts_ms": b})
    events.sort(key=lambda e: known_time(parse_event(e)))
    return events


# A voiced and a silent sample in each scale (§1): voiced ones are 20 -dBov (<= 50), silent
# ones 127 -dBov (silence); byte 26 is -19.8 dB and int16 3277 is -20.0 dB.
SCALE_VALUES: dict[str, tuple[float, float]] = {
    "dbov": (20, 127), "dbfs": (-20, -127), "dbvo": (-20.0, -127.0),
    "linear": (0.1, 0.0), "byte": (26, 0), "int16": (3277, 0),
}
SHAPES = ["frames", "segments", "voice", *(f"levels:{scale}" for scale in SCALE_VALUES)]


def level_batches(pid: str, intervals: list[tuple[int, int]], length: int,
                  scale: str) -> list[dict[str, Any]]:
    """One sample per frame (20 ms, under level_hold_ms), in 1 s batches: each covers exactly
    its frame, so the voiced samples cover exactly the intervals."""
    loud, quiet = SCALE_VALUES[scale]
    voiced = [False] * (length // FRAME)
    for a, b in intervals:
        voiced[a // FRAME : b // FRAME] = [True] * ((b - a) // FRAME)
    per_batch = BATCH // FRAME
    return [
        {"type": "levels", "session_id": SESSION, "participant_id": pid, "scale": scale,
         "samples": [[j * FRAME, loud if voiced[j] else quiet]
                     for j in range(i, min(i + per_batch, len(voiced)))]}
        for i in range(0, len(voiced), per_batch)
    ]


def run(events: list[dict[str, Any]]) -> dict[str, Any]:
    engine = SessionEngine(SESSION, EngineConfig())
    for raw in events:
        engine.ingest(parse_event(raw))  # a LateEventError here fails the test
    return engine.finish()


def within_lateness(events: list[dict[str, Any]], rng: random.Random,
                    duplicate_rate: float = 0.0) -> list[dict[str, Any]]:
    """Delay each event by up to allowed_lateness_ms - 1 after its known time and re-sort by
    arrival: the newest known time then never runs more than the bound past an event's own."""
    bound = EngineConfig().allowed_lateness_ms
    arrivals = []
    for index, raw in enumerate(events):
        t = known_time(parse_event(raw))
        copies = 2 if rng.random() < duplicate_rate else 1
        for copy in range(copies):
            arrivals.append((t + rng.randrange(bound), index, copy, raw))
    arrivals.sort(key=lambda a: (a[0], a[1], a[2]))
    return [a[3] for a in arrivals]


SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(sessions(), st.sampled_from(SHAPES), st.randoms(use_true_random=False))
def test_report_does_not_depend_on_arrival_order_or_duplicates(
    session: dict[str, Any], encoding: str, rng: random.Random
) -> None:
    events = wire_events(session, encoding)
    expected = run(events)
    assert run(within_lateness(events, rng)) == expected
    assert run(within_lateness(events, rng, duplicate_rate=0.3)) == expected
    # A redelivery long after the fact (a consumer replaying from an old offset) is still a
    # duplicate for session.start and seq-numbered activity batches, whatever its age.
    old = [e for e in events if e["type"] in ("session.start", "activity")]
    assert run(events + old) == expected


@SETTINGS
@given(sessions())
def test_talk_shares_sum_to_one_and_silence_complements_speech(session: dict[str, Any]) -> None:
    report = run(wire_events(session, "frames"))
    roles = report["roles"].values()
    talk = sum(r["talk_s"] for r in roles)
    if talk:
        # Shares are rounded to 4 decimals each.
        assert abs(sum(r["talk_share"] for r in roles) - 1.0) <= 1e-4 * len(roles)
    else:
        assert all(r["talk_share"] is None for r in roles)
    # §6: silence_s = D - |union of IPUs|, with IPUs recomputed here from the raw intervals.
    union_ms = union_length([ipu for iv in session["speech"].values() for ipu in ipus(iv)])
    assert report["session"]["silence_s"] == round((session["length_ms"] - union_ms) / 1000, 3)
    assert abs(report["session"]["silence_s"] + union_ms / 1000 - report["duration_s"]) < 1e-9


def ipus(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """§2 reference: merge, bridge silences < 200 ms, drop units < 100 ms."""
    merged: list[list[int]] = []
    for a, b in sorted(intervals):
        if merged and a - merged[-1][1] < 200:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged if b - a >= 100]


def union_length(intervals: list[tuple[int, int]]) -> int:
    total, reach = 0, -1
    for a, b in sorted(intervals):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


@SETTINGS
@given(sessions())
def test_frames_and_equivalent_segments_give_the_same_report(session: dict[str, Any]) -> None:
    from_frames = run(wire_events(session, "frames"))
    from_segments = run(wire_events(session, "segments"))
    for report in (from_frames, from_segments):
        for participant in report["quality"]["participants"].values():
            # These two describe the transport, not the conversation: silent frames prove
            # coverage that a silent segment source cannot.
            del participant["source"], participant["coverage"]
    assert from_frames == from_segments


def test_dedupe_keys_are_stable_across_processes() -> None:
    """Engine state (dedupe keys included) is restored in other processes by the streaming
    workers, so keys must not depend on Python's per-process string/None hash seeds."""
    import subprocess
    import sys

    program = (
        "from models.events import parse_event; from models.event_order import canonical_key; "
        "print(canonical_key(parse_event({'type': 'network', 'session_id': 's', "
        "'participant_id': 'p', 'ts_ms': 5, 'rtt_ms': 180, 'loss_pct': 0.5})))"
    )
    keys = {
        subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                       check=True, env={"PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2", "3")
    }
    assert len(keys) == 1


def without_transport(report: dict[str, Any]) -> dict[str, Any]:
    for participant in report["quality"]["participants"].values():
        del participant["source"], participant["coverage"]
    return report


@SETTINGS
@given(sessions(), st.sampled_from(SHAPES[2:]))
def test_every_shape_gives_the_report_of_equivalent_segments(session: dict[str, Any],
                                                             shape: str) -> None:
    """§1: one session's voice activity as segments, as voice events and as level samples in
    each scale is the same conversation. Mutes are left out: a mute ends an open speaking
    state (§1) but not a segment a platform already sent."""
    session = {**session, "mutes": []}
    expected = without_transport(run(wire_events(session, "segments")))
    assert without_transport(run(wire_events(session, shape))) == expected
