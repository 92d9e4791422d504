"""A participant's held ``voice`` and ``levels`` events as compact runs (issue 14 point 4:
memory of sessions whose platforms send speaking states or level samples).

A run must give back every event and tag exactly as it was parsed and take part in the
canonical order (METRICS.md §9) as the events would on their own; these tests pin that, and
the memory it saves, against the engine's own behaviour.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest
from enginekit import end, levels, rejections, start, voice
from test_level_hold import HeldUntilFinal, _batches, held

from models import checkpoint
from models.classified import Rejection
from models.event_order import canonical_key, known_time
from models.events import Levels, Voice, parse_event
from models.held_runs import LevelRun, VoiceRun, new_run, run_from_state
from models.session import SessionEngine
from models.state_codec import StateError

SID = "s1"  # enginekit's session


def _level_batch(pid: str, first: int, count: int, step: int = 37,
                 uneven: bool = False) -> Levels:
    """A batch whose samples are ``step`` ms apart, or 0-4 ms off that grid (``uneven``)."""
    event = parse_event(levels(pid, [(first + i * step + (i * i % 5 if uneven else 0),
                                      (first // 7 + i * 13) % 128) for i in range(count)]))
    assert isinstance(event, Levels)
    return event


def _voice(pid: str, ts: int, speaking: bool) -> Voice:
    event = parse_event(voice(pid, ts, speaking))
    assert isinstance(event, Voice)
    return event


def test_a_run_gives_back_every_event_and_tag_as_parsed_in_order() -> None:
    """100 batches of 1-40 samples, a third of them unevenly spaced (and 100 voice changes),
    tags on some: popping gives the same events and tags, in order, each under its own
    canonical key, also after the columns were shifted down (every 8 or more applied) and with
    events appended meanwhile; so does a checkpointed copy taken at every step."""
    batches = [_level_batch("c", 1_000 * i, 1 + i % 40, uneven=i % 3 == 0) for i in range(100)]
    changes = [_voice("c", 500 * i, i % 3 != 0) for i in range(100)]
    for events in (batches, changes):
        tags = [i if i % 4 else None for i in range(len(events))]
        run = new_run(events[0], tags[0])
        for event, tag in zip(events[1:50], tags[1:50], strict=True):
            assert run.append(event, tag)
        popped = []
        for i in range(len(events)):
            if i < 50:
                assert run.append(events[50 + i], tags[50 + i])
            restored = run_from_state(SID, "c", run.to_state())
            assert list(restored.items()) == list(run.items())
            for oldest in (0, 500 * i + 20_000, 1_000 * i + 30_000, 10**9):
                assert list(run.recent(oldest)) == [
                    event for _, event in run.items() if known_time(event) >= oldest]
            assert restored.to_state() == run.to_state()
            entry = run.head_entry()
            assert entry[:-2] == canonical_key(events[i]) and entry[-1] is run
            popped.append(run.pop())
        assert popped == list(zip(tags, events, strict=True))
        assert len(run) == 0


def test_a_run_refuses_an_event_that_does_not_follow_its_last_one() -> None:
    """Out of order, a tie on the first sample (an overlap, rejected later in canonical
    order), another scale, participant or kind: refused, and the run unchanged."""
    run = new_run(_level_batch("c", 5_000, 10), None)
    assert isinstance(run, LevelRun)
    refused = [_level_batch("c", 4_000, 3), _level_batch("c", 5_000, 2),
               _level_batch("t", 9_000, 3), _voice("c", 9_000, True),
               parse_event(levels("c", [(9_000, 0.5)], scale="linear"))]
    for event in refused:
        assert not run.append(event, None)
    assert [event for _, event in run.items()] == [_level_batch("c", 5_000, 10)]
    changes = new_run(_voice("c", 1_000, True), None)
    assert isinstance(changes, VoiceRun)
    assert not changes.append(_voice("c", 1_000, True), None)  # a duplicate key
    assert not changes.append(_voice("c", 999, False), None)
    assert not changes.append(_voice("c", 1_000, False), None)  # keys order False first
    assert changes.append(_voice("c", 1_001, False), 7)
    assert [tag for tag, _ in changes.items()] == [None, 7]


def _feed(engine: SessionEngine, events: list[dict[str, Any]], tags: bool = True,
          restore_at: int = -1) -> tuple[SessionEngine, list[Any]]:
    outputs: list[Any] = []
    for line, raw in enumerate(events, 1):
        if line == restore_at:
            engine = checkpoint.load(checkpoint.dump(engine))
        engine.ingest(parse_event(raw), line if tags else None)
        outputs += engine.drain()
    return engine, outputs


def test_a_batch_rejected_from_inside_a_run_names_its_own_line() -> None:
    """The client's batches arrive in order and wait in one run; a batch sent late (held on
    its own) precedes one of them in canonical order and overlaps it, so the run's batch is
    the one rejected, when its turn comes, with the line it came on: also when the session
    was checkpointed and restored while both waited."""
    events = [start()]
    events += [raw for pair in zip(_batches("t", 0, 120_000), _batches("c", 0, 120_000),
                                   strict=True) for raw in pair]
    # 50.99-51.5 s: after the client's 50-51 s batch (samples to 50.98 s), so it is applied,
    # and overlapping the 51-52 s batch, which was already in the run when this one came.
    late = levels("c", [(50_990, 127), (51_500, 10)])
    events.insert(next(i for i, raw in enumerate(events)
                       if raw["type"] == "levels" and raw["samples"][-1][0] >= 55_000), late)
    events.append(end(120_000))
    for restore_at in (-1, next(i for i, raw in enumerate(events, 1) if raw is late) + 1):
        engine, outputs = _feed(SessionEngine(SID), events, restore_at=restore_at)
        report = engine.finish()
        outputs += engine.drain()
        rejections = [o for o in outputs if isinstance(o, Rejection)]
        line = 1 + next(i for i, raw in enumerate(events) if raw["type"] == "levels"
                        and raw["participant_id"] == "c" and raw["samples"][0][0] == 51_000)
        assert [(r.event.first_ms, r.tag) for r in rejections] == [(51_000, line)]
        assert "overlap" in str(rejections[0].error)
        reference, _ = _feed(HeldUntilFinal(SID), events)
        assert report == reference.finish()


def test_a_levels_source_holds_a_byte_a_sample() -> None:
    """Memory: 3 minutes of two participants' 20 ms level samples in 1 s batches, in order.
    The engine holds the last ``allowed_lateness_ms`` + 60 s of them (6,500 samples) in
    about 1 byte each, as their batches are evenly spaced (the level; the spacing once per
    batch). As events they took about 90 KiB, with a 2-byte offset per sample 42 KiB; the
    whole engine now takes about 25 KiB."""
    events = [start()]
    events += [raw for pair in zip(_batches("t", 0, 180_000), _batches("c", 0, 180_000),
                                   strict=True) for raw in pair]
    parsed = [parse_event(raw) for raw in events]
    gc.collect()
    tracemalloc.start()
    engine = SessionEngine(SID)
    for event in parsed:
        engine.ingest(event)
    del parsed
    gc.collect()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert held(engine, "levels") >= 2 * 65
    assert len(engine._state_hold) <= 2  # one run per participant
    assert size < 32 * 1024, size


def test_a_run_checkpointed_mid_way_reads_back_the_same_and_bad_columns_are_refused() -> None:
    """Checkpoint format 5 writes a run as its columns from the head on: read back, it gives
    the same events and tags; columns that do not fit together are a StateError (the worker
    dead-letters such a checkpoint), never a run that gives other events."""
    for events in ([_level_batch("c", 1_000 * i, 1 + i % 9) for i in range(60)],
                   [_voice("c", 500 * i, i % 2 == 0) for i in range(60)]):
        run = new_run(events[0], None)
        for i, event in enumerate(events[1:], 1):
            assert run.append(event, i if i % 3 else None)
        for _ in range(40):  # past a shift of the columns
            run.pop()
        state = run.to_state()
        back = run_from_state(SID, "c", state)
        assert list(back.items()) == list(run.items()) and len(back) == 20
        assert back.pop() == run.pop()
    levels_state = new_run(_level_batch("c", 0, 5), 1).to_state()
    broken = [
        ["levels", "dbov", *levels_state[2:5], levels_state[5][:-1], [1]],  # a sample short
        [*levels_state[:3], b"\x00\x00", *levels_state[4:]],  # a batch of 0 samples
        [*levels_state[:-1], [1, 2]],  # two tags for one batch
        ["levels", "decibels", *levels_state[2:]],
        ["speech", *levels_state[1:]],
        ["voice", b"", b"", None],  # an empty run is never written
    ]
    for state in broken:
        with pytest.raises(StateError):
            run_from_state(SID, "c", state)


def test_batches_too_wide_for_one_byte_columns_come_back_the_same() -> None:
    """Counts and spacings take one byte until one exceeds 255 (a 10 ms source's 5 s batch
    of 500 samples, a 1 s polling period), then two; a run emptied and filled again counts
    its times from its new first batch. Every event comes back exactly, also through a
    checkpoint of the run."""
    batches = [_level_batch("c", 10_000 * i, count, step)
               for i, (count, step) in enumerate([(10, 37), (500, 10), (3, 1_000), (300, 2),
                                                  (7, 50), (1, 37), (40, 255), (2, 256)])]
    run = new_run(batches[0], None)
    for event in batches[1:]:
        assert run.append(event, None)
    assert list(run_from_state(SID, "c", run.to_state()).items()) == list(run.items())
    assert [run.pop()[1] for _ in batches] == batches and len(run) == 0
    # Emptied; months later (beyond what 4-byte times after the old first would hold).
    later = [_level_batch("c", 2**33 + 1_000 * i, 5, uneven=True) for i in range(3)]
    for event in later:
        assert run.append(event, 9)
    assert list(run.items()) == [(9, event) for event in later]


def test_a_copy_of_a_held_event_is_known_by_its_run_not_by_a_remembered_key() -> None:
    """Three minutes of two participants' batches (and a voice source): every event waiting
    in a run is recognised there, so the engine remembers no key for it; a second copy of
    every event is a duplicate (counted, nothing else changes), and a batch differing from a
    held one in one level is not (it is held on its own, to be rejected as overlapping)."""
    events = [start(participants=[("t", "therapist"), ("c", "client"), ("v", "client")])]
    events += [raw for pair in zip(_batches("t", 0, 180_000), _batches("c", 0, 180_000),
                                   strict=True) for raw in pair]
    events += [voice("v", 700 * i, i % 2 == 0) for i in range(1, 250)]
    events.sort(key=lambda raw: raw.get("ts_ms", raw.get("samples", [[0]])[-1][0]))
    engine = SessionEngine(SID)
    for raw in events:
        assert engine.ingest(parse_event(raw))
    held_keys = {canonical_key(event)[:3] for run in engine._runs.values()
                 for _, event in run.items()}
    assert len(held_keys) > 100
    assert not any(isinstance(key, bytes) or key[:3] in held_keys for key in engine._seen)
    recent = [raw for raw in events if raw["type"] != "session.start"][-150:]
    for raw in recent:
        assert not engine.ingest(parse_event(raw))
    assert engine.duplicates == len(recent)
    changed = dict(recent[-1] if recent[-1]["type"] == "levels" else recent[-2])
    changed["samples"] = [[t, (level + 1) % 128] for t, level in changed["samples"]]
    assert engine.ingest(parse_event(changed))
    assert engine.rejected == 0
    engine.ingest(parse_event(end(180_000)))
    report = engine.finish()
    assert engine.rejected == 1 and "overlap" in str(rejections(engine.drain())[-1].error)
    # The same events, the changed batch just before its original: one of the two is
    # rejected all the same, and the report does not change.
    at = next(i for i, raw in enumerate(events) if raw["type"] == "levels"
              and raw["participant_id"] == changed["participant_id"]
              and raw["samples"][0][0] == changed["samples"][0][0])
    reference, _ = _feed(SessionEngine(SID),
                         [*events[:at], changed, *events[at:], end(180_000)], tags=False)
    assert report == reference.finish() and reference.rejected == 1


def test_a_copy_of_a_batch_applied_from_its_run_is_still_a_duplicate() -> None:
    """With ``max_segment_ms: 1000`` declared, a batch leaves its run about 6 s behind the
    newest input, before a copy of it would be late: it is remembered then, so a copy in
    that time is a duplicate, not a late event; so after a checkpoint, whose remembered
    keys also list the batches still in runs (a reader without the run lookup needs
    them)."""
    first = start()
    first["max_segment_ms"] = 1_000
    events = [first] + [raw for pair in zip(_batches("t", 0, 30_000), _batches("c", 0, 30_000),
                                            strict=True) for raw in pair]
    engine = SessionEngine(SID)
    for raw in events:
        engine.ingest(parse_event(raw))
    assert engine._known_max == 29_980
    applied = next(raw for raw in events if raw["type"] == "levels"
                   and raw["participant_id"] == "c" and raw["samples"][0][0] == 22_000)
    waiting = events[-1]
    assert not any(event == parse_event(applied) for run in engine._runs.values()
                   for _, event in run.items())
    listed = {(key[0], key[2]) for key, _ in engine.to_state()["seen"]}
    assert {(22_000, "c"), (waiting["samples"][0][0], waiting["participant_id"])} <= listed
    restored = checkpoint.load(checkpoint.dump(engine))
    for copy in (engine, restored):
        assert not copy.ingest(parse_event(applied)) and not copy.ingest(parse_event(waiting))
        assert copy.duplicates == 2
