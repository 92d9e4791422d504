"""State events applied before the final horizon (issue 14, memory of ``voice`` and ``levels``
sessions).

``voice`` events, mutes, unmutes, leaves and rejoins span nothing and a ``levels`` batch spans
at most ``MAX_BATCH_MS`` (60 s), so the ones that start more than ``allowed_lateness_ms`` +
60 s behind the newest known time have all arrived and are applied then, instead of waiting
``L + M`` (10 minutes by default) as events. None of it may change a number or a rejection:
these tests compare with a reference engine that holds them until the final horizon
(canonical order, METRICS.md §9).
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

from enginekit import levels, start
from test_held_state import LATENESS, run

from models.events import MAX_BATCH_MS, parse_event
from models.held_runs import run_from_state
from models.session import SessionEngine
from models.simulation import SimulationConfig, simulate

SID = "s1"  # enginekit's session


class HeldUntilFinal(SessionEngine):
    """The reference: state events (voice, levels, mutes, leaves...) wait for the final
    horizon, as before."""

    __slots__ = ()

    def _apply_state_early(self, horizon: int) -> None:
        return


def held(engine: SessionEngine, kind: str | None = None) -> int:
    """How many events (of ``kind``) the engine's state holds: on their own and in runs
    (as its checkpoint writes them)."""
    state = engine.to_state()
    alone = sum(kind is None or value[0] == kind for _, value in state["pending"])
    return alone + sum(len(run_from_state(engine.session_id, pid, value))
                       for pid, value in state["runs"] if kind is None or value[0] == kind)


def _levels_session(seed: int, minutes: float, shape: str = "levels") -> list[dict[str, Any]]:
    return list(simulate(SimulationConfig(sessions=1, minutes=minutes, seed=seed,
                                          style="mixed", shape=shape,  # type: ignore[arg-type]
                                          jitter_ms=2_000, duplicate_rate=0.05)))


def _known(raw: dict[str, Any]) -> int:
    if raw["type"] == "levels":
        return int(raw["samples"][-1][0])
    return int(raw.get("end_ms", raw.get("ts_ms", raw.get("start_ms", 0))))


def test_levels_applied_early_change_no_live_number_output_or_report() -> None:
    """A 4-minute simulated session whose participants send level samples (with jitter and
    duplicates): the same live snapshot after every event, the same outputs and the same
    final report as the reference; also across a checkpoint restored mid-session."""
    for seed in (3, 9):
        events = _levels_session(seed, 4.0)
        assert sum(raw["type"] == "levels" for raw in events) > 200
        reference = run(events, snapshots=True, engine_class=HeldUntilFinal)
        assert run(events, snapshots=True) == reference
        assert run(events, restore_at=len(events) // 2)[:2] == reference[:2]


def test_shuffled_level_batches_give_the_same_report() -> None:
    """Every event moved within the lateness bound of its known time, and repeated now and
    then: the report of the batches applied early equals the reference's in order."""
    events = _levels_session(5, 5.0)
    reference, _, _ = run(events, engine_class=HeldUntilFinal)
    rng = random.Random(2)
    keyed = []
    for raw in events[1:-1]:
        keyed.append((_known(raw) + rng.randrange(LATENESS), raw))
        if rng.random() < 0.05:
            keyed.append((_known(raw) + rng.randrange(LATENESS), raw))
    keyed.sort(key=lambda pair: pair[0])
    shuffled, _, _ = run([events[0], *(raw for _, raw in keyed), events[-1]])
    assert shuffled == reference


def _batches(pid: str, first: int, last: int, every: int = 1_000) -> list[dict[str, Any]]:
    """Batches of 20 ms samples from ``first`` to ``last``: voiced 600 ms of each second."""
    return [levels(pid, [(t, 20 if (t // 20) % 50 < 30 else 127)
                         for t in range(a, min(a + every, last), 20)])
            for a in range(first, last, every)]


def test_an_overlapping_batch_is_rejected_in_canonical_order_long_after_the_first() -> None:
    """Client batches every second for 3 minutes; one more batch at 100.5-101.5 s overlaps
    two of them and arrives last, after its neighbours were applied early: it is rejected,
    naming its first sample, and the report is the reference's (which rejects it too)."""
    events = [start()]
    events += [raw for pair in zip(_batches("t", 0, 180_000), _batches("c", 0, 180_000),
                                   strict=True) for raw in pair]
    intruder = levels("c", [(100_500, 10), (101_500, 10)])
    # Sent when it ends (known 101.5 s) but delivered later than everything until 106 s.
    at = next(i for i, raw in enumerate(events) if raw["type"] == "levels"
              and _known(raw) >= 106_000)
    events.insert(at, intruder)
    events.append({"type": "session.end", "session_id": SID, "ts_ms": 180_000})
    report, outputs, _ = run(events)
    reference, reference_outputs, _ = run(events, engine_class=HeldUntilFinal)
    assert (report, outputs) == (reference, reference_outputs)
    (rejection,) = [o for o in outputs if isinstance(o, tuple)]
    assert rejection[0].first_ms == 100_500
    assert "overlap" in rejection[1] and "samples[0][0]" in rejection[1]


def test_a_participant_declared_after_its_batches_arrived_keeps_canonical_order() -> None:
    """The session.start arrives after 4 s of batches, and a participant joins at 2 s by a
    join that arrives 4 s late: the batches held before either declaration are applied with
    the later ones in canonical order (batches before the join are rejected)."""
    head = start()
    roster = head["participants"]
    head = {**head, "participants": roster[:1]}
    join = {"type": "participant.join", "session_id": SID, "participant_id": "c",
            "role": "client", "ts_ms": 2_000}
    therapist = _batches("t", 0, 150_000)
    client = _batches("c", 0, 150_000)
    events = [*therapist[:4], *client[:4], head, *client[4:6], join]
    events += [raw for pair in zip(therapist[4:], client[6:], strict=False) for raw in pair]
    events += therapist[len(client) - 2:]
    events.append({"type": "session.end", "session_id": SID, "ts_ms": 150_000})
    report, outputs, _ = run(events)
    reference, reference_outputs, _ = run(events, engine_class=HeldUntilFinal)
    assert (report, outputs) == (reference, reference_outputs)
    assert len([o for o in outputs if isinstance(o, tuple)]) == 2  # the client's 0-2 s
    assert report["quality"]["participants"]["c"]["source"] == "levels"


def test_a_levels_session_holds_about_a_minute_of_batches_not_ten() -> None:
    """Memory: 5 minutes into a session of 1 s batches from two participants, the state
    (its checkpoint) holds the batches of the last ``allowed_lateness_ms`` + 60 s, where the
    reference holds all of them (the default look-ahead is 605 s)."""
    events = [start()]
    events += [raw for pair in zip(_batches("t", 0, 300_000), _batches("c", 0, 300_000),
                                   strict=True) for raw in pair]
    engine, reference = SessionEngine(SID), HeldUntilFinal(SID)
    for raw in events:
        engine.ingest(parse_event(raw))
        reference.ingest(parse_event(raw))
    assert held(engine) <= 2 * ((LATENESS + MAX_BATCH_MS) // 1_000 + 2)
    assert held(reference) == 600
    assert engine.finish() == reference.finish()


def test_a_participant_that_sent_a_voice_event_first_keeps_it_as_its_source() -> None:
    """One state source per participant (§1): the client's ``voice`` event at 1 s comes
    before its level batches, so those are rejected, as in canonical order, even though the
    batches could be applied a minute after they arrive and the voice event only at the final
    horizon."""
    events = [start(), {"type": "voice", "session_id": SID, "participant_id": "c",
                        "ts_ms": 1_000, "speaking": True}]
    events += [raw for pair in zip(_batches("t", 0, 150_000), _batches("c", 2_000, 152_000),
                                   strict=True) for raw in pair]
    events.append({"type": "session.end", "session_id": SID, "ts_ms": 152_000})
    report, outputs, _ = run(events)
    assert (report, outputs) == run(events, engine_class=HeldUntilFinal)[:2]
    assert report["quality"]["participants"]["c"]["source"] == "voice"
    assert len([o for o in outputs if isinstance(o, tuple)]) == 150


def test_batches_after_a_later_arriving_end_are_rejected_however_far_the_input_runs() -> None:
    """Batches at 121-123 s arrive before the session.end at 120 s; then a therapist segment
    from 100 s to 190 s (sent when it ends, within max_segment_ms) moves the newest known time
    far past the end. The batches are rejected in canonical order, not applied early."""
    events = [start()]
    events += [raw for pair in zip(_batches("t", 0, 100_000), _batches("c", 0, 100_000),
                                   strict=True) for raw in pair]
    events += _batches("c", 100_000, 123_000)
    events += [{"type": "session.end", "session_id": SID, "ts_ms": 120_000},
               {"type": "speech", "session_id": SID, "participant_id": "t",
                "start_ms": 100_000, "end_ms": 190_000}]
    report, outputs, _ = run(events)
    assert (report, outputs) == run(events, engine_class=HeldUntilFinal)[:2]
    rejected = [o[0].first_ms for o in outputs if isinstance(o, tuple)]
    # The batch at 120 s itself precedes the end at the same ms in canonical order (§9).
    assert rejected == [121_000, 122_000]


def _with_leave_and_rejoin(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The client leaves 100 s into the session, rejoins 20 s later and leaves again at
    200 s: each event arrives 3 s after its time (within the lateness bound)."""
    head = next(raw for raw in events if raw["type"] == "session.start")
    t0, sid = head["ts_ms"], head["session_id"]
    client = head["participants"][1]
    moves = [({"type": "participant.leave", "session_id": sid,
               "participant_id": client["participant_id"], "ts_ms": t0 + 100_000}, 103_000),
             ({"type": "participant.join", "session_id": sid, "role": client["role"],
               "participant_id": client["participant_id"], "ts_ms": t0 + 120_000}, 123_000),
             ({"type": "participant.leave", "session_id": sid,
               "participant_id": client["participant_id"], "ts_ms": t0 + 200_000}, 203_000)]
    out = []
    for raw in events:
        while moves and raw is not head and _known(raw) >= t0 + moves[0][1]:
            out.append(moves.pop(0)[0])
        out.append(raw)
    return out


def _exclusive(events: list[dict[str, Any]], exclusive: bool) -> list[dict[str, Any]]:
    return [{**raw, "exclusive": exclusive} if raw["type"] == "session.start" else raw
            for raw in events]


def test_voice_applied_early_changes_no_live_number_output_or_report() -> None:
    """Simulated ``voice`` sessions (speaking-state changes, mutes, network readings, jitter,
    duplicates), one with a leave and a rejoin, also as an exclusive (dominant-speaker)
    source: the same live snapshots, outputs and report as the reference; also across a
    checkpoint restored mid-session."""
    for seed, exclusive in ((3, False), (9, True)):
        events = _exclusive(_with_leave_and_rejoin(_levels_session(seed, 4.0, "voice")),
                            exclusive)
        assert sum(raw["type"] == "voice" for raw in events) > 150
        reference = run(events, snapshots=True, engine_class=HeldUntilFinal)
        assert run(events, snapshots=True) == reference
        assert run(events, restore_at=len(events) // 2)[:2] == reference[:2]
    head = next(raw for raw in events if raw["type"] == "session.start")
    client = head["participants"][1]["participant_id"]
    quality = reference[0]["quality"]["participants"][client]
    # Away 100-120 s and from 200 s on (the session's end is 240 s in and some).
    assert quality["present_s"] < reference[0]["duration_s"] - 59


def test_shuffled_voice_events_give_the_same_report() -> None:
    """Every event of an exclusive voice session with a leave and a rejoin moved within the
    lateness bound, some repeated: the report equals the reference's in order."""
    events = _exclusive(_with_leave_and_rejoin(_levels_session(6, 5.0, "voice")), True)
    reference, _, _ = run(events, engine_class=HeldUntilFinal)
    rng = random.Random(8)
    keyed = []
    for raw in events[1:-1]:
        keyed.append((_known(raw) + rng.randrange(LATENESS), raw))
        if rng.random() < 0.05:
            keyed.append((_known(raw) + rng.randrange(LATENESS), raw))
    keyed.sort(key=lambda pair: pair[0])
    shuffled, _, _ = run([events[0], *(raw for _, raw in keyed), events[-1]])
    assert shuffled == reference


def test_a_voice_session_holds_about_a_minute_of_events_not_ten() -> None:
    """Memory: 8 minutes into a voice session, the state holds the events of the last
    ``allowed_lateness_ms`` + 60 s or so, where the reference holds every one."""
    events = [raw for raw in _levels_session(4, 8.0, "voice")
              if raw["type"] != "session.end"]
    engine, reference = SessionEngine(events[0]["session_id"]), HeldUntilFinal(
        events[0]["session_id"])
    for raw in events:
        for target in (engine, reference):
            # The simulated input's own late events are refused by both alike.
            with contextlib.suppress(ValueError):
                target.ingest(parse_event(raw))
    voice = sum(raw["type"] == "voice" for raw in events)
    assert held(reference, "voice") > 0.9 * voice
    assert held(engine, "voice") < voice * (LATENESS + MAX_BATCH_MS + 10_000) / 480_000
    assert engine.finish() == reference.finish()
