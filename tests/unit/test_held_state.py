"""What a session holds until its final horizon, and how compactly (issue 14 point 4).

Network readings of declared participants wait in the floor sweep's columns once they are
``allowed_lateness_ms`` old, and voiced intervals are merged in the IPU builder as soon as no
event still to come could separate them. Neither may change a number: these tests pin the
cases where an early decision could differ from canonical order (METRICS.md §9).
"""

from __future__ import annotations

import heapq
import random
from typing import Any

from models import checkpoint
from models.classified import Rejection
from models.config import EngineConfig
from models.errors import SessionStateError
from models.events import parse_event
from models.session import SessionEngine
from models.simulation import SimulationConfig, simulate

SID = "s1"
LATENESS = EngineConfig().allowed_lateness_ms


def start() -> dict[str, Any]:
    return {"type": "session.start", "session_id": SID, "ts_ms": 0, "clinic_id": "c1",
            "participants": [{"participant_id": "t", "role": "therapist"},
                             {"participant_id": "c", "role": "client"}]}


def speech(pid: str, a: int, b: int) -> dict[str, Any]:
    return {"type": "speech", "session_id": SID, "participant_id": pid, "start_ms": a,
            "end_ms": b}


def network(pid: str, ts: int, rtt: float, loss: float) -> dict[str, Any]:
    return {"type": "network", "session_id": SID, "participant_id": pid, "ts_ms": ts,
            "rtt_ms": rtt, "loss_pct": loss}


def end(ts: int) -> dict[str, Any]:
    return {"type": "session.end", "session_id": SID, "ts_ms": ts}


class HeldAsEvents(SessionEngine):
    """The reference: every network reading waits in the hold as an event until the final
    horizon passes it, as before readings settled early."""

    __slots__ = ()

    def _settle(self) -> None:
        for entry in self._recent:
            heapq.heappush(self._pending, entry)
        self._recent = []
        self._recent_min = 2**62


def run(events: list[dict[str, Any]], *, snapshots: bool = False,
        engine_class: type[SessionEngine] = SessionEngine, restore_at: int = -1,
        ) -> tuple[dict[str, Any], list[Any], list[dict[str, Any]]]:
    """(final report, outputs, live snapshots) of ``events`` fed in this order; with
    ``restore_at``, the engine is checkpointed and restored before that event."""
    engine = engine_class(events[0]["session_id"])
    outputs: list[Any] = []
    live = []
    for i, raw in enumerate(events):
        if i == restore_at:
            engine = checkpoint.load(checkpoint.dump(engine))
        try:
            engine.ingest(parse_event(raw))
        except SessionStateError:
            continue
        outputs += engine.drain()
        if snapshots and engine.start_ms is not None:
            live.append(engine.snapshot())
    report = engine.finish()
    outputs += engine.drain()
    # Exceptions compare by identity: a rejection compares by its event, reason and tag.
    comparable = [(o.event, str(o.error), o.tag) if isinstance(o, Rejection) else o
                  for o in outputs]
    return report, comparable, live


def test_a_reading_after_a_later_arriving_end_is_rejected_even_once_it_is_old() -> None:
    """A reading at 10.5 s arrives before the session.end at 10 s; then a segment ending at
    16 s makes the reading more than allowed_lateness_ms old. Applied in canonical order the
    end comes first, so the reading is rejected: its 900 ms RTT and 40 % loss must not reach
    the report, which equals the one of the same session without it."""
    base = [start(), speech("t", 1_000, 4_000), network("c", 3_000, 80, 0.5),
            speech("c", 4_500, 9_000)]
    late_reading = network("c", 10_500, 900, 40.0)
    with_it, outputs, _ = run([*base, late_reading, end(10_000), speech("t", 9_500, 16_000)])
    without, _, _ = run([*base, end(10_000), speech("t", 9_500, 16_000)])
    assert with_it == without
    assert with_it["quality"]["participants"]["c"]["rtt_p95_ms"] == 80
    (rejection,) = [o for o in outputs if isinstance(o, tuple)]
    assert rejection[0].ts_ms == 10_500
    assert "session.end" in rejection[1]


def _simulated(seed: int, minutes: float, shape: str = "frames") -> list[dict[str, Any]]:
    return list(simulate(SimulationConfig(sessions=1, minutes=minutes, seed=seed,
                                          style="mixed", shape=shape,  # type: ignore[arg-type]
                                          jitter_ms=2_000, duplicate_rate=0.05)))


def test_readings_settled_early_change_no_live_number_output_or_report() -> None:
    """Against the reference that holds every reading as an event until the final horizon:
    the same live snapshot after every event, the same outputs (classified events, alerts)
    in the same order, and the same final report; also (outputs and report) across a
    checkpoint restored mid-session (format 3 writes the waiting readings as held events).
    Live snapshots are not compared across a restore: a rebuilt live copy counts the frames
    of a participant declared by a held join only once they are applied (as on main)."""
    for seed, shape in ((7, "frames"), (8, "segments")):
        events = _simulated(seed, 4.0, shape)
        reference = run(events, snapshots=True, engine_class=HeldAsEvents)
        assert run(events, snapshots=True) == reference
        assert run(events, restore_at=len(events) // 2)[:2] == reference[:2]


def test_shuffled_readings_give_the_same_report_and_alerts() -> None:
    """Every event shuffled within half the lateness bound of its known time, network
    readings repeated: the same final report, network alerts included."""
    events = _simulated(11, 6.0)
    reference, _, _ = run(events)
    rng = random.Random(4)
    keyed = []
    for raw in events[1:-1]:
        known = raw.get("end_ms", raw.get("ts_ms", raw.get("start_ms", 0)))
        if raw["type"] == "activity":
            known = raw["start_ms"] + len(raw["voiced"]) * raw["frame_ms"]
        keyed.append((known + rng.randrange(LATENESS // 2), raw))
        if raw["type"] == "network" and rng.random() < 0.2:
            keyed.append((known + rng.randrange(LATENESS // 2), raw))
    keyed.sort(key=lambda pair: pair[0])
    shuffled, _, _ = run([events[0], *(raw for _, raw in keyed), events[-1]])
    assert shuffled == reference


def test_touching_segments_merged_early_are_still_cut_by_a_later_arriving_end() -> None:
    """A source declaring ``max_segment_ms`` 50 sends 50 ms segments back to back from 1 s
    to 6.05 s; the builder holds them as one interval, which the final horizon (newest known
    6051 - 5000 - 50 = 1001) reaches at its start. Then session.end at 1051 arrives (not late:
    6051 - 5000). The client spoke [1000, 1051): 51 ms, a click below min_speech_ms (§2), as
    when the end arrives first. Deciding the IPU is long from the merged interval, past the
    horizon, would have sent its onset to the floor sweep with no offset ever to come."""
    def session(end_first: bool) -> dict[str, Any]:
        chain = [speech("c", a, a + 50) for a in range(1_000, 6_050, 50)]
        chain.append(speech("c", 6_050, 6_051))
        head = [{**start(), "max_segment_ms": 50}, speech("t", 0, 50)]
        events = [*head, end(1_051), *chain] if end_first else [*head, *chain, end(1_051)]
        return run(events)[0]

    report = session(end_first=False)
    assert report == session(end_first=True)
    assert report["roles"]["client"]["talk_s"] == 0.0
    assert report["quality"]["participants"]["c"]["dropped_ipus"] == 1


def _joining(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The session as the WebRTC ingest sends it: session.start declares only the first
    participant; each other one joins 3 s after the start by a participant.join that arrives
    4 s after its time (within the lateness bound), so some of its frames before the join
    arrive after the join (rejected in canonical order) and some after it before (held)."""
    head = next(raw for raw in events if raw["type"] == "session.start")
    first, *others = head["participants"]
    t0 = head["ts_ms"]
    joins = [{"type": "participant.join", "session_id": head["session_id"],
              "participant_id": p["participant_id"], "role": p["role"], "ts_ms": t0 + 3_000}
             for p in others]
    out: list[dict[str, Any]] = []
    placed = False
    for raw in events:
        if raw is head:
            out.append({**head, "participants": [first]})
            continue
        known = raw.get("end_ms", raw.get("ts_ms", raw.get("start_ms", 0)))
        if raw["type"] == "activity":
            known = raw["start_ms"] + len(raw["voiced"]) * raw["frame_ms"]
        if not placed and known >= t0 + 7_000:
            out += joins
            placed = True
        out.append(raw)
    return out


def test_joins_settled_early_change_no_live_number_output_or_report() -> None:
    """Participants declared by joins (WebRTC ingest): against the reference that holds
    joins until the final horizon, the same snapshots, outputs (rejections of the frames
    before each join included) and report; once declared, a participant's frames are held
    as intervals, not as events."""
    for seed in (7, 12):
        events = _joining(_simulated(seed, 3.0))
        reference = run(events, snapshots=True, engine_class=HeldAsEvents)
        assert any(isinstance(o, tuple) for o in reference[1])  # rejections
        assert run(events, snapshots=True) == reference
        assert run(events, restore_at=len(events) // 3)[:2] == reference[:2]
    engine = SessionEngine(events[0]["session_id"])
    for raw in events[: len(events) * 2 // 3]:
        engine.ingest(parse_event(raw))
    assert len(engine._pending) < 20
