"""A session engine's checkpoint form (models/checkpoint.py, models/state_codec.py): its
complete state as plain data, and the engine back from it.

The live copy is excluded (a cache, rebuilt on demand). Held events are written in two forms
(format 5): each participant's run of ``voice`` or ``levels`` events as its columns
(models/held_runs.py), and every other held event on its own, with its tag, in canonical
order. Keys are recomputed on reading, so which of the engine's heaps an event waits in (the
main hold, the recent readings and joins, the state hold) is not part of the format: reading
sorts each one to where the engine holding it now would keep it. Whether an event waits in a
run or on its own is kept, so a state reads back to the same bytes. Remembered dedupe keys
are written in their canonical form (a levels batch's with the digest of its samples,
models/event_order.py) whatever form the engine keeps them in.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from models.alerts import AlertTracker
from models.backchannel import BackchannelClassifier
from models.event_order import SeenKey, canonical_key, dedupe_key, known_time, seen_key_to_state
from models.events import Event, Levels, Network, ParticipantJoin, ParticipantState, Voice
from models.floor import FloorSweep
from models.held_runs import HeldRun, run_from_state
from models.participants import Member
from models.report import SessionTally
from models.state_codec import (
    config_from_state,
    config_to_state,
    event_from_state,
    event_to_state,
    output_from_state,
    output_to_state,
    tag_from_state,
    tag_to_state,
    tuples,
)

if TYPE_CHECKING:
    from models.session import SessionEngine

__all__ = ["engine_from_state", "engine_to_state"]

# The functions are the engine's own methods kept apart (its to_state/from_state call them):
# they read and set its private fields by design.


def engine_to_state(engine: SessionEngine) -> dict[str, Any]:
    """The engine's complete state as plain data, the live copy excluded (a cache, rebuilt
    on demand). Buffered events keep their canonical order; their keys are recomputed."""
    if engine._speculative:
        raise TypeError("a live copy is never checkpointed")
    return {
        "session_id": engine.session_id,
        "config": config_to_state(engine._config),
        "step": engine._step,
        "out": [output_to_state(output) for output in engine._out],
        # Sorted by key (unique per event), so a valid heap again once keys are
        # recomputed; recent network readings are held events like the others.
        "pending": [[tag_to_state(tag), event_to_state(event)]
                    for _, tag, event in sorted(_held(engine), key=lambda held: held[0])],
        # Format 5: each participant's run of voice or levels events as its columns.
        "runs": [[pid, run.to_state()] for pid, run in engine._runs.items() if len(run)],
        "seen": [[seen_key_to_state(key), known] for key, known in _remembered(engine)],
        "seqs": [[pid, ranges.tobytes()] for pid, ranges in engine._seqs.items()],
        "known_max": engine._known_max,
        "segment_ms": engine._segment_ms,
        "horizon": engine._horizon,
        "advanced": engine._advanced,
        "start_ts": engine._start_ts,
        "start_key": None if engine._start_key is None else list(engine._start_key),
        "end_ts": engine._end_ts,
        "end_applied": engine._end_applied,
        "finished": engine._finished,
        "final_end": engine._final_end,
        "clinic_id": engine.clinic_id,
        "members": [[pid, member.to_state()] for pid, member in engine._members.items()],
        "declared_at": [[pid, ts] for pid, ts in engine._declared_at.items()],
        "exclusive": engine._exclusive,
        "tally": engine._tally.to_state(),
        "alerts": engine._alerts.to_state(),
        "sweep": None if engine._sweep is None else engine._sweep.to_state(),
        "classifier": engine._classifier.to_state(),
        "last_ipu_end": engine._last_ipu_end,
        "applying_tag": tag_to_state(engine._applying_tag),
        "duplicates": engine.duplicates,
        "rejected": engine.rejected,
    }


def _remembered(engine: SessionEngine) -> Iterator[tuple[SeenKey, int]]:
    """The keys the engine remembers and those of the events waiting in its runs that are
    not yet ``2 * allowed_lateness_ms`` behind its newest known time: an engine recognises
    the latter in the runs, but a format-5 checkpoint lists them (a reader older than the
    runs' lookup would otherwise take their copies for new events)."""
    seen = engine._seen
    yield from seen.items()
    oldest = engine._known_max - 2 * engine._config.allowed_lateness_ms
    for run in engine._runs.values():
        for event in run.recent(oldest):
            key = dedupe_key(canonical_key(event))
            if key not in seen:
                yield key, known_time(event)


def engine_from_state(cls: type[SessionEngine], state: dict[str, Any]) -> SessionEngine:
    """The engine :func:`engine_to_state` described (raises ``StateError`` or a ``KeyError``,
    ``TypeError`` or ``ValueError`` on a tree of another shape)."""
    config = config_from_state(state["config"])
    engine = cls(state["session_id"], config, advance_step_ms=state["step"])
    engine._out = out = [output_from_state(output) for output in state["out"]]
    pending = [(*canonical_key(event), tag_from_state(tag), event)
               for tag, event in ((tag, event_from_state(value))
                                  for tag, value in state["pending"])]
    # dedupe_key: a format-4 checkpoint from before levels keys were digests reads as now.
    engine._seen = {dedupe_key(tuples(key)): known for key, known in state["seen"]}
    for pid, ranges in state["seqs"]:
        engine._seq_ranges(pid).frombytes(ranges)
    engine._known_max = state["known_max"]
    engine._segment_ms = state["segment_ms"]
    engine._horizon = state["horizon"]
    engine._advanced = state["advanced"]
    engine._start_ts = state["start_ts"]
    engine._start_key = tuples(state["start_key"])
    engine._end_ts = state["end_ts"]
    engine._end_applied = state["end_applied"]
    engine._finished = state["finished"]
    engine._final_end = state["final_end"]
    engine.clinic_id = state["clinic_id"]
    engine._members = {pid: Member.from_state(value, config)
                       for pid, value in state["members"]}
    # Format 3 has no declared_at: its joins were applied at the final horizon, before
    # any event still to come, so no check is needed for its members.
    engine._declared_at = dict(state.get("declared_at", []))
    engine._exclusive = state["exclusive"]
    engine._tally = tally = SessionTally.from_state(state["tally"])
    engine._alerts = alerts = AlertTracker.from_state(
        state["alerts"], config.alerts, out, config.max_report_alerts)
    sweep = state["sweep"]
    engine._sweep = None if sweep is None else FloorSweep.from_state(
        sweep, config, tally, alerts, out)
    engine._classifier = BackchannelClassifier.from_state(
        state["classifier"], config.bc_max_ms, config.bc_context_ms, engine._push_ipu)
    engine._last_ipu_end = state["last_ipu_end"]
    engine._applying_tag = tag_from_state(state["applying_tag"])
    engine.duplicates = state["duplicates"]
    engine.rejected = state["rejected"]
    # Runs (format 5) as written, then the events held on their own, on their own again, so
    # that the state round-trips whole.
    for pid, value in state.get("runs", []):
        run = engine._runs[pid] = run_from_state(engine.session_id, pid, value)
        engine._state_hold.append(run.head_entry())
    for entry in pending:
        event = entry[-1]
        start_ts, end_ts = engine._start_ts, engine._end_ts
        if (start_ts is not None and entry[0] >= start_ts
                and (end_ts is None or entry[0] <= end_ts)
                and (isinstance(event, ParticipantJoin)
                     or (isinstance(event, Network) and entry[-2] is None
                         and engine._member(event.participant_id, entry[0]) is not None))):
            engine._keep_recent(entry)
        elif (isinstance(event, Voice | Levels | ParticipantState) and start_ts is not None
              and entry[0] >= start_ts
              and engine._member(event.participant_id, entry[0]) is not None):
            if isinstance(event, ParticipantState) or "runs" in state:
                # Format 5 wrote what its runs held apart: these were held on their own.
                engine._state_hold.append(entry)
            else:  # formats 3 and 4, in key order: into runs as the engine would hold them
                engine._hold_state(event, entry[:-2], entry[-2])
        else:
            engine._pending.append(entry)
    heapq.heapify(engine._pending)
    heapq.heapify(engine._state_hold)
    engine._settle()
    return engine


def _held(engine: SessionEngine) -> Iterator[tuple[tuple[Any, ...], Any, Event]]:
    """Every event held on its own as (canonical key, tag, event); runs are written apart."""
    for entry in (*engine._pending, *engine._recent, *engine._state_hold):
        if not isinstance(entry[-1], HeldRun):
            yield entry[:-2], entry[-2], entry[-1]
