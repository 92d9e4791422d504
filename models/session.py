"""The incremental, per-session metric engine (METRICS.md §1–§7, §9).

**Order and lateness** (§9, see :mod:`models.event_order`). An event's *known time* is when a
source could have sent it (``end_ms`` for ``speech``, the end of the last frame for
``activity``, ``ts_ms`` otherwise). With ``N`` the session's newest known time, ``L`` =
``allowed_lateness_ms`` and ``M`` = ``max_segment_ms`` (the engine's, or a smaller one declared
on ``session.start``), an event whose known time is before ``N - L`` is late
(:class:`~models.errors.LateEventError`), and one spanning more than ``M`` is invalid. So an
event still to come has known time ``>= N - L`` and starts ``>= N - L - M``: every event that
starts before the **final horizon** ``H = N - L - M`` has arrived. Events are applied in
canonical order of start up to ``H``, and processing runs in three stages, each trailing the
previous one by exactly the look-ahead its rules need::

    H = newest known time - allowed_lateness_ms - max_segment_ms    (events before H are final)
      IPU building (§2)               up to H
      backchannel decision (§3)       up to H - min_pause - min_speech
      floor sweep (§4-§7)             up to that - bc_max - bc_context   (H - 2300 ms)

so the final report depends only on the set of accepted events, never on arrival order or
duplicates, and alerts (raised by the sweep) are never retracted.

**Final and live.** The final stages trail the input by ``L + M`` plus the look-ahead (10 min
with the defaults). Live numbers (:meth:`SessionEngine.snapshot`) come from a speculative copy
of the engine, advanced to ``N - L`` as if nothing older were still to come; it is kept and fed
while new events start after its frontier, and rebuilt from the final engine when one starts
before it (a long segment sent at its end). It is never checkpointed. :attr:`decided_ms` is
the final engine's decided time (``final_through_ms`` of a quality update).
"""

from __future__ import annotations

import heapq
import pickle
from array import array
from functools import partial
from typing import Any, ClassVar

from models.alerts import AlertTracker
from models.backchannel import BackchannelClassifier
from models.classified import Output, Rejection
from models.config import EngineConfig
from models.errors import LateEventError, SessionStateError, ValidationError
from models.event_order import (
    add_to_ranges,
    canonical_key,
    event_time,
    in_ranges,
    known_field,
    known_time,
    span_field,
    start_field,
)
from models.events import (
    MAX_BATCH_MS,
    Activity,
    Event,
    Levels,
    Network,
    ParticipantJoin,
    ParticipantState,
    Role,
    SessionEnd,
    SessionStart,
    Speech,
    Voice,
    level_translation,
)
from models.floor import FloorSweep
from models.participants import LOSS_UNIT, Member, close_presence, quality_block, source_of
from models.report import SessionTally, build_report
from models.sources import LevelTrack, VoiceTrack
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

__all__ = ["SessionEngine", "event_time", "known_time"]

_FAR = 2**62


class SessionEngine:
    """Incremental analyzer for one session. Pure: time comes only from the events.

    ``ingest`` validates order and duplicates and buffers; processing happens when the
    final horizon has moved ``advance_step_ms`` (0: on every move), or on ``advance``/``finish``.
    Outputs (classified events, alerts, apply-time rejections) collect until ``drain``; they
    are final (never retracted). :meth:`snapshot` gives the live, speculative numbers.
    """

    __slots__ = (
        "_advanced",
        "_alerts",
        "_applying_tag",
        "_classifier",
        "_config",
        "_declared_at",
        "_end_applied",
        "_end_ts",
        "_exclusive",
        "_final_end",
        "_finished",
        "_horizon",
        "_known_max",
        "_last_ipu_end",
        "_level_holds",
        "_level_table",
        "_live",
        "_members",
        "_out",
        "_pending",
        "_recent",
        "_recent_min",
        "_seen",
        "_segment_ms",
        "_seqs",
        "_speculative",
        "_start_key",
        "_start_ts",
        "_step",
        "_sweep",
        "_tally",
        "_voiced",
        "clinic_id",
        "duplicates",
        "rejected",
        "session_id",
    )

    CHECKPOINT_KIND: ClassVar[str] = "engine"  # models/checkpoint.py

    def __init__(
        self, session_id: str, config: EngineConfig | None = None, *, advance_step_ms: int = 0
    ) -> None:
        self.session_id = session_id
        self._config = config = config or EngineConfig()
        self._step = advance_step_ms
        self._level_table = level_translation(config.level_voiced_dbov)
        self._out: list[Output] = []
        self._pending: list[tuple[Any, ...]] = []
        # Network readings of declared participants and joins, not yet allowed_lateness_ms
        # old, as heap entries: only a session.end still to come could reject them, or an
        # earlier join precede them (see _settle).
        self._recent: list[tuple[Any, ...]] = []
        self._recent_min = _FAR  # earliest ts_ms in _recent (_FAR when empty)
        # Level batches of each declared participant, as heap entries: applied before the
        # final horizon once the participant's track is final (see _apply_levels_early).
        self._level_holds: dict[str, list[tuple[Any, ...]]] = {}
        self._voiced: set[str] = set()  # participants that sent a voice event (held or not)
        # When each participant was declared (session.start or its first join): events of
        # theirs before it are rejected, as in canonical order (joins are applied early).
        self._declared_at: dict[str, int] = {}
        self._seen: dict[tuple[Any, ...], int] = {}  # non-activity keys -> known time
        self._seqs: dict[str, array[int]] = {}  # activity seq ranges per participant
        self._known_max = -_FAR  # the session's newest known time (N)
        self._segment_ms = config.max_segment_ms  # M: lowered by a session.start declaring it
        self._horizon = -_FAR  # final horizon N - L - M (live copy: N - L)
        self._speculative = False  # a live copy (see snapshot), never a final engine
        self._live: SessionEngine | None = None
        self._advanced = -_FAR
        self._start_ts: int | None = None
        self._start_key: tuple[Any, ...] | None = None
        self._end_ts: int | None = None
        self._end_applied = False
        self._finished = False
        self._final_end: int | None = None
        self.clinic_id: str | None = None
        self._members: dict[str, Member] = {}
        self._exclusive = False
        self._tally = SessionTally()
        self._alerts = AlertTracker(config.alerts, self._out, config.max_report_alerts)
        self._sweep: FloorSweep | None = None
        self._classifier = BackchannelClassifier(
            config.bc_max_ms, config.bc_context_ms, self._push_ipu
        )
        self._last_ipu_end = -1
        self._applying_tag: Any = None
        self.duplicates = 0
        self.rejected = 0

    # --- checkpoints (models/checkpoint.py, models/state_codec.py) -----------------------------

    def to_state(self) -> dict[str, Any]:
        """The engine's complete state as plain data, the live copy excluded (a cache, rebuilt
        on demand). Buffered events keep their canonical order; their keys are recomputed."""
        if self._speculative:
            raise TypeError("a live copy is never checkpointed")
        return {
            "session_id": self.session_id,
            "config": config_to_state(self._config),
            "step": self._step,
            "out": [output_to_state(output) for output in self._out],
            # Sorted by key (unique per event), so a valid heap again once keys are
            # recomputed; recent network readings are held events like the others.
            "pending": [[tag_to_state(entry[-2]), event_to_state(entry[-1])]
                        for entry in sorted([*self._pending, *self._recent,
                                             *self._held_levels()],
                                            key=lambda entry: entry[:-2])],
            "seen": [[list(key), known] for key, known in self._seen.items()],
            "seqs": [[pid, ranges.tobytes()] for pid, ranges in self._seqs.items()],
            "known_max": self._known_max,
            "segment_ms": self._segment_ms,
            "horizon": self._horizon,
            "advanced": self._advanced,
            "start_ts": self._start_ts,
            "start_key": None if self._start_key is None else list(self._start_key),
            "end_ts": self._end_ts,
            "end_applied": self._end_applied,
            "finished": self._finished,
            "final_end": self._final_end,
            "clinic_id": self.clinic_id,
            "members": [[pid, member.to_state()] for pid, member in self._members.items()],
            "declared_at": [[pid, ts] for pid, ts in self._declared_at.items()],
            "exclusive": self._exclusive,
            "tally": self._tally.to_state(),
            "alerts": self._alerts.to_state(),
            "sweep": None if self._sweep is None else self._sweep.to_state(),
            "classifier": self._classifier.to_state(),
            "last_ipu_end": self._last_ipu_end,
            "applying_tag": tag_to_state(self._applying_tag),
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SessionEngine:
        """The engine :meth:`to_state` described (raises ``StateError`` or a ``KeyError``,
        ``TypeError`` or ``ValueError`` on a tree of another shape)."""
        config = config_from_state(state["config"])
        engine = cls(state["session_id"], config, advance_step_ms=state["step"])
        engine._out = out = [output_from_state(output) for output in state["out"]]
        pending = [(*canonical_key(event), tag_from_state(tag), event)
                   for tag, event in ((tag, event_from_state(value))
                                      for tag, value in state["pending"])]
        engine._seen = {tuples(key): known for key, known in state["seen"]}
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
        for entry in pending:
            event = entry[-1]
            start_ts, end_ts = engine._start_ts, engine._end_ts
            if (start_ts is not None and entry[0] >= start_ts
                    and (end_ts is None or entry[0] <= end_ts)
                    and (isinstance(event, ParticipantJoin)
                         or (isinstance(event, Network) and entry[-2] is None
                             and engine._member(event.participant_id, entry[0]) is not None))):
                engine._keep_recent(entry)
            elif (isinstance(event, Levels) and start_ts is not None and entry[0] >= start_ts
                  and engine._member(event.participant_id, entry[0]) is not None):
                engine._level_hold(event.participant_id).append(entry)
            else:
                engine._pending.append(entry)
        heapq.heapify(engine._pending)
        # Not in the format: a voice event that matters (one not applied yet) is held.
        engine._voiced = {entry[-1].participant_id for entry in engine._pending
                          if isinstance(entry[-1], Voice)}
        for hold in engine._level_holds.values():
            heapq.heapify(hold)
        engine._settle()
        return engine

    # The live copy is a cache: never part of a copy of the engine.
    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _STATE_SLOTS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self._live = None

    # --- public API -------------------------------------------------------------------------

    @property
    def horizon_ms(self) -> int:
        """Events whose known time is earlier than this are late: the session's newest known
        time minus ``allowed_lateness_ms`` (§9)."""
        return self._known_max - self._config.allowed_lateness_ms

    @property
    def final_horizon_ms(self) -> int:
        """Every event starting before this has arrived (``horizon_ms - max_segment_ms``):
        what is processed so far, and final."""
        return self._horizon

    @property
    def max_segment_ms(self) -> int:
        """The session's bound on a segment's or batch's span: the engine's, or the smaller
        one its ``session.start`` declared."""
        return self._segment_ms

    @property
    def end_ms(self) -> int | None:
        """``ts_ms`` of the ``session.end`` received, if any."""
        return self._end_ts

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def start_ms(self) -> int | None:
        """``ts_ms`` of the applied ``session.start``, if any."""
        return self._start_ts

    @property
    def end_applied(self) -> bool:
        """Whether ``session.end`` has been applied (every earlier event is final)."""
        return self._end_applied

    @property
    def decided_ms(self) -> int | None:
        """Session-clock time (ms) up to which the floor analysis is final: numbers up to it
        never change (``final_through_ms``); ``None`` before ``session.start`` is applied."""
        return self._sweep.t if self._sweep is not None else None

    @property
    def live_decided_ms(self) -> int | None:
        """Session-clock time (ms) up to which the live numbers of :meth:`snapshot` run
        (``allowed_lateness_ms`` plus the rules' look-ahead behind the newest known time);
        ``None`` before ``session.start`` applies there. Brings the live copy up to date."""
        if self._finished:
            return self.decided_ms
        return self._live_engine().decided_ms

    @property
    def final_end_ms(self) -> int | None:
        """Where ``D`` ended (ms, session clock) once :meth:`finish` has run (§1)."""
        return self._final_end

    def participants(self) -> list[dict[str, str]]:
        """Declared participants in order of declaration: ``participant_id`` and ``role``."""
        return [{"participant_id": pid, "role": m.role} for pid, m in self._members.items()]

    def ingest(self, event: Event, tag: Any = None) -> bool:
        """Accept one event. Returns ``False`` for a duplicate (which changes nothing).

        ``tag`` (e.g. a line number or a Kafka offset) comes back on an apply-time
        :class:`~models.classified.Rejection` of this event.

        Raises ``LateEventError`` for an event whose known time is more than
        ``allowed_lateness_ms`` behind the session's newest known time, ``ValidationError``
        for one spanning more than ``max_segment_ms``, and ``SessionStateError`` for one
        after ``session.end`` or after :meth:`finish`.
        """
        kind = event.type
        if event.session_id != self.session_id:
            raise ValidationError(f"{kind}.session_id", "routed to the wrong session")
        if self._finished:
            raise SessionStateError(f"{kind}.session_id", "session already closed")
        t = event_time(event)
        known = known_time(event)
        if isinstance(event, Activity):
            key: tuple[Any, ...] = canonical_key(event)
            ranges = self._seq_ranges(event.participant_id)
            if in_ranges(ranges, event.seq):
                self.duplicates += 1
                return False
        else:
            key = canonical_key(event)
            # session.start and session.end are recognised whatever their age: a consumer
            # replaying from an old offset must not turn them into errors.
            if (
                key in self._seen
                or key == self._start_key
                or (isinstance(event, SessionEnd) and event.ts_ms == self._end_ts)
            ):
                self.duplicates += 1
                return False
        if known - t > self._segment_ms:
            raise ValidationError(
                f"{kind}.{span_field(event)}",
                f"spans {known - t} ms, more than max_segment_ms={self._segment_ms}",
            )
        lateness = self._config.allowed_lateness_ms
        if known < self._known_max - lateness:
            raise LateEventError(
                f"{kind}.{known_field(event)}",
                f"known at {known} ms, before {self._known_max - lateness} (the session's "
                f"newest known time {self._known_max} - allowed_lateness_ms={lateness})",
            )
        if self._end_ts is not None and t >= self._end_ts and not isinstance(event, SessionEnd):
            raise SessionStateError(
                f"{kind}.{start_field(event)}", f"{t} is at or after session.end ({self._end_ts})"
            )
        if isinstance(event, SessionStart) and self._start_key is None:
            declared = event.max_segment_ms
            if declared is not None and declared > self._config.max_segment_ms:
                raise ValidationError(
                    "session.start.max_segment_ms",
                    f"{declared} exceeds the engine's max_segment_ms="
                    f"{self._config.max_segment_ms}",
                )
            self._start_key = key  # kept for good: a redelivered start is never "late"
            if declared is not None:
                self._segment_ms = declared
        if isinstance(event, SessionEnd):
            if self._end_ts is not None:
                raise SessionStateError("session.end.ts_ms", f"session ended at {self._end_ts}")
            self._end_ts = t
            # A recent reading after the end is rejected when applied in canonical order.
            for entry in [entry for entry in self._recent if entry[0] > t]:
                self._recent.remove(entry)
                heapq.heappush(self._pending, entry)
            self._recent_min = min((entry[0] for entry in self._recent), default=_FAR)
        if isinstance(event, SessionStart) and self._start_ts is None:
            # Applied on arrival, not when the final horizon passes it (L + M later, 10 min
            # by default): nothing before a session's start can be applied anyway, and its
            # participants being declared lets their frames and speech go to the IPU builders
            # as compact intervals instead of waiting as whole events (memory). Only two
            # *different* session.start events for one session (invalid input) could then
            # depend on order: the first to arrive wins.
            self._seen[key] = known
            self._apply(tag, event)
            joins = [entry for entry in self._pending if isinstance(entry[-1], ParticipantJoin)
                     and entry[0] >= event.ts_ms]
            if joins:  # held before the start arrived: now they may settle early too
                self._pending = [entry for entry in self._pending if entry not in joins]
                heapq.heapify(self._pending)
                for entry in joins:
                    self._keep_recent(entry)
        else:
            self._hold(event, key, known, tag)
        if known > self._known_max:
            self._known_max = known
            self._settle()
        live = self._live
        if live is not None:
            # The live copy has consumed what starts before its frontier: an event starting
            # there or later is simply fed to it; an earlier one makes it stale.
            if t >= live._advanced:
                try:
                    live.ingest(event, tag)
                except ValidationError:  # cannot happen (same state); rebuild to be safe
                    self._live = None
            else:
                self._live = None
        horizon = self._known_max - lateness - (0 if self._speculative else self._segment_ms)
        if horizon > self._horizon:
            self._horizon = horizon
            if not self._speculative and horizon - self._advanced >= self._step:
                self.advance()
        return True

    def _hold(self, event: Event, key: tuple[Any, ...], known: int, tag: Any) -> None:
        """Keep an accepted event until the horizon passes its start, as compactly as is safe.

        Once a participant is declared (by session.start, applied on arrival, or by its first
        join, applied ``allowed_lateness_ms`` after its time by :meth:`_settle`), an event of
        it that starts at or after the session's start and its declaration can
        no longer be rejected when applied, so its speech and frames go straight to its IPU
        builder (which consumes intervals in start order below the horizon only: arrival
        order still cannot matter), and its other events wait without a ``tag``. An earlier
        one waits as it is, to be rejected in canonical order.
        """
        t = event_time(event)
        started = self._start_ts is not None and t >= self._start_ts
        if isinstance(event, Activity):
            pid = event.participant_id
            add_to_ranges(self._seq_ranges(pid), event.seq)
            member = self._members.get(pid)  # _member inlined: the path of every batch
            if member is not None and started and t >= self._declared_at.get(pid, t):
                self._add_frames(member, event)
            else:
                heapq.heappush(self._pending, (*key, tag, event))
            return
        self._seen[key] = known
        if isinstance(event, Voice):
            self._voiced.add(event.participant_id)
        elif isinstance(event, Levels):
            if started and self._member(event.participant_id, t) is not None:
                heapq.heappush(self._level_hold(event.participant_id), (*key, tag, event))
                return
        elif isinstance(event, ParticipantJoin) and started:
            self._keep_recent((*key, tag, event))
            return
        elif isinstance(event, Speech | Network | ParticipantState):
            member = self._member(event.participant_id, t)
            if member is not None and started:
                if isinstance(event, Speech):
                    member.segments = True
                    member.builder.add([(event.start_ms, event.end_ms)])
                    return
                if isinstance(event, Network):
                    self._keep_recent((*key, None, event))
                    return
                tag = None
        heapq.heappush(self._pending, (*key, tag, event))

    def _keep_recent(self, entry: tuple[Any, ...]) -> None:
        self._recent.append(entry)
        if entry[0] < self._recent_min:
            self._recent_min = entry[0]

    def _level_hold(self, pid: str) -> list[tuple[Any, ...]]:
        hold = self._level_holds.get(pid)
        if hold is None:
            hold = self._level_holds[pid] = []
        return hold

    def _held_levels(self) -> list[tuple[Any, ...]]:
        return [entry for hold in self._level_holds.values() for entry in hold]

    def _release_levels(self, horizon: int) -> None:
        """Move the held level batches that start before ``horizon`` to the main hold, to be
        applied in canonical order with every other event there."""
        pending = self._pending
        for hold in self._level_holds.values():
            while hold and hold[0][0] < horizon:
                heapq.heappush(pending, heapq.heappop(hold))

    def _apply_levels_early(self, horizon: int) -> None:
        """Apply level batches that start before ``N - L - min(MAX_BATCH_MS, M)``, ahead of
        the final horizon (memory: a levels source would otherwise hold ``L + M``, 10 minutes
        by default, of samples).

        A batch spans at most ``MAX_BATCH_MS`` (models/events.py), so one still to come
        (known at ``>= N - L``, §9) starts at or after that bound: every batch of the
        participant starting before it has arrived and is applied here in start order, and
        the newest sample's hold is final up to it. The participant's first batch may create
        its levels track here only if it never sent a ``voice`` event: one still to come is
        later than the bound, so none can precede the batch and claim the participant (one
        state source, §1); otherwise the track is created at the final horizon as before.
        Level batches interact with nothing else but ``session.end``, whose time caps the bound
        (a batch at or after it is rejected in canonical order). The live copy applies the
        same batches, so live numbers do not move.
        """
        early = (self._known_max - self._config.allowed_lateness_ms
                 - min(MAX_BATCH_MS, self._segment_ms))
        if self._end_ts is not None:
            early = min(early, self._end_ts)
        if early <= horizon:
            return
        for pid, hold in self._level_holds.items():
            member = self._members[pid]
            track = member.track
            if not (isinstance(track, LevelTrack)
                    or (track is None and pid not in self._voiced)):
                continue
            while hold and hold[0][0] < early:
                self._apply(*heapq.heappop(hold)[-2:])
            if isinstance(member.track, LevelTrack):
                member.builder.add(member.track.extend(early))

    def _member(self, pid: str, t: int) -> Member | None:
        """The participant, if declared at ``t`` (in canonical order, §9)."""
        member = self._members.get(pid)
        if member is None or t < self._declared_at.get(pid, t):
            return None
        return member

    def _settle(self) -> None:
        """Apply the recent network readings and joins that are now ``allowed_lateness_ms``
        old (both span nothing: known time = ``ts_ms``).

        One still to come is known at ``>= N - L`` (§9), so nothing can precede an event
        before ``N - L`` any more but long events (segments, batches), and none of those can
        reject it: only a ``session.end`` before it could, and one still to come ends at
        ``>= N - L``. So a reading of a declared participant is accepted for good: its RTT
        and loss go to the participant's (order-free) figures and to the floor sweep, which
        keeps it in compact columns and applies it in time order when it gets there. A
        participant's first join declares it now, ``max_segment_ms`` earlier than the final
        horizon would, so its frames and segments go to its IPU builder as intervals instead
        of waiting as events; events of its before the join are rejected as in canonical
        order (:meth:`_member`). Later joins (a rejoin, a conflicting role) wait in the hold
        with the leaves they follow. The live copy (horizon ``N - L``) would apply exactly
        these events, so live numbers do not move.
        """
        before = self._known_max - self._config.allowed_lateness_ms
        if self._recent_min >= before:  # nothing due (checked for most events)
            return
        recent = self._recent
        self._recent = [entry for entry in recent if entry[0] >= before]
        self._recent_min = min((entry[0] for entry in self._recent), default=_FAR)
        for entry in sorted((entry for entry in recent if entry[0] < before),
                            key=lambda entry: entry[:-2]):
            event = entry[-1]
            if isinstance(event, ParticipantJoin):
                if event.participant_id in self._members:
                    heapq.heappush(self._pending, entry)
                else:
                    self._apply(entry[-2], event)
            else:
                self._add_network(self._members[event.participant_id], event)

    def _seq_ranges(self, participant_id: str) -> array[int]:
        ranges = self._seqs.get(participant_id)
        if ranges is None:
            ranges = self._seqs[participant_id] = array("q")
        return ranges

    def advance(self) -> None:
        """Process everything the current horizon makes final."""
        self._advance_to(self._horizon)

    def _advance_to(self, horizon: int) -> None:
        self._advanced = horizon
        if self._level_holds:
            self._release_levels(horizon)
        pending = self._pending
        while pending and pending[0][0] < horizon:
            self._apply(*heapq.heappop(pending)[-2:])
        if self._sweep is None:
            return
        if self._level_holds and not self._speculative:
            self._apply_levels_early(horizon)
        config = self._config
        for member in self._members.values():
            if member.track is not None:
                member.builder.add(member.track.extend(horizon))
        for pid, member in self._members.items():
            member.builder.advance(horizon, partial(self._ipu_closed, pid))
        known = horizon - config.min_pause_ms - config.min_speech_ms
        self._classifier.advance(known, self._open_ipus(horizon))
        self._sweep.advance(known - config.bc_max_ms - config.bc_context_ms)
        # A copy arriving now of an event known before this would be late anyway.
        self._prune_seen(self._known_max - 2 * config.allowed_lateness_ms)

    def drain(self) -> list[Output]:
        """Classified events, alerts and apply-time rejections since the last drain."""
        if not self._out:
            return []
        out = self._out[:]
        self._out.clear()
        return out

    def snapshot(self) -> dict[str, Any]:
        """The live running metrics (§10 schema, ``final: false``) up to
        :attr:`live_decided_ms`. Numbers up to :attr:`decided_ms` are final; later ones may
        still be corrected (§9 "Final and live"). ``alerts`` are the final engine's: an alert
        is only ever raised from final numbers (§7)."""
        if self._finished:
            return self._running_report()
        report = self._live_engine()._running_report()
        report["alerts"] = [dict(a) for a in self._alerts.log]
        report["quality"]["alerts_not_listed"] = self._alerts.dropped
        return report

    def _running_report(self) -> dict[str, Any]:
        sweep = self._sweep
        duration = sweep.t - self._start_ts if sweep and self._start_ts is not None else 0
        return self._report(max(duration, 0), end=sweep.t if sweep else 0, final=False)

    def _live_engine(self) -> SessionEngine:
        """The live copy, advanced to the newest known time - ``allowed_lateness_ms``: built
        from this engine (a pickle round trip) when missing or stale, then fed incrementally
        (see :meth:`ingest`). Its own outputs are dropped: only final ones are published."""
        live = self._live
        if live is None:
            live = pickle.loads(pickle.dumps(self, pickle.HIGHEST_PROTOCOL))
            live._speculative = True
            live._step = _FAR
            live._out.clear()
            self._live = live
        horizon = self._known_max - self._config.allowed_lateness_ms
        if horizon > live._advanced:
            live._horizon = horizon
            live._advance_to(horizon)
            live._out.clear()
        return live

    def finish(self) -> dict[str, Any]:
        """Close the session and return the final report (§10).

        With a ``session.end``, ``D`` runs to its ``ts_ms``; without one (idle timeout or end
        of input), ``D`` ends at the last speech offset (§1).
        """
        if self._finished:
            raise SessionStateError("session.end", "session already closed")
        self._live = None
        for entry in self._recent:
            heapq.heappush(self._pending, entry)
        self._recent = []
        self._recent_min = _FAR
        self._release_levels(_FAR)
        while self._pending:
            self._apply(*heapq.heappop(self._pending)[-2:])
            self._release_levels(_FAR)  # a participant declared meanwhile takes its own
        self._finished = True
        if self._start_ts is None or self._sweep is None:
            raise SessionStateError("session.start", "never received for this session")
        end = self._end_ts if self._end_applied else None
        # Open speaking states end with the session: at session.end, else at the newest time
        # the session's events reached (nothing is known after it).
        for member in self._members.values():
            if member.track is not None:
                member.builder.add(member.track.close(self._known_max if end is None else end))
        for pid, member in self._members.items():
            member.builder.finish(end, partial(self._ipu_closed, pid))
        self._classifier.finish({})
        if end is None:
            end = max(self._last_ipu_end, self._start_ts)
        for member in self._members.values():
            close_presence(member, end)
        self._sweep.finish(end)
        self._final_end = end
        return self._report(end - self._start_ts, end=end, final=True)

    # --- stages -------------------------------------------------------------------------------

    def _push_ipu(self, time_ms: int, is_onset: bool, pid: str, is_bc: bool) -> None:
        assert self._sweep is not None
        self._sweep.push_ipu(time_ms, is_onset, pid, is_bc)

    def _ipu_closed(self, pid: str, start: int, end: int) -> None:
        if end > self._last_ipu_end:
            self._last_ipu_end = end
        self._classifier.closed(pid, start, end)

    def _open_ipus(self, horizon: int) -> dict[str, tuple[int, int]]:
        """Open IPUs as ``(start, end so far)``, the end capped at ``horizon``: what lies
        beyond it could still be cut by a ``session.end`` arriving later (at or after
        ``N - L``), so the classifier's early decision that an IPU is longer than
        ``bc_max_ms`` (§3) rests on final speech only, whatever the arrival order."""
        result = {}
        for pid, member in self._members.items():
            open_ipu = member.builder.open_ipu
            if open_ipu is not None:
                start, end = open_ipu
                result[pid] = (start, min(end, horizon))
        return result

    def _prune_seen(self, before: int) -> None:
        seen = self._seen
        if seen:
            for key in [k for k, t in seen.items() if t < before]:
                del seen[key]

    # --- applying events in canonical order ------------------------------------------------

    def _reject(self, event: Event, field: str, reason: str) -> None:
        self.rejected += 1
        error = ValidationError(f"{event.type}.{field}", reason)
        self._out.append(Rejection(event, error, self._applying_tag))

    def _apply(self, tag: Any, event: Event) -> None:
        self._applying_tag = tag
        if isinstance(event, SessionStart):
            self._apply_start(event)
            return
        t = event_time(event)
        field = start_field(event)
        if self._start_ts is None:
            self._reject(event, "session_id", "no session.start precedes this event")
            return
        if t < self._start_ts:
            self._reject(event, field, f"{t} is before session.start ({self._start_ts})")
            return
        if self._end_applied:
            self._reject(event, field, f"{t} is at or after session.end ({self._end_ts})")
            return
        if isinstance(event, SessionEnd):
            self._end_applied = True
            return
        span = known_time(event) - t
        if span > self._segment_ms:  # accepted before the session.start declaring the bound
            self._reject(event, span_field(event),
                         f"spans {span} ms, more than max_segment_ms={self._segment_ms}")
            return
        if isinstance(event, ParticipantJoin):
            self._apply_join(event)
            return
        member = self._member(event.participant_id, t)
        if member is None:
            self._reject(event, "participant_id", "not declared by session.start or "
                         "participant.join")
            return
        if isinstance(event, Activity):
            self._add_frames(member, event)
        elif isinstance(event, Speech):
            member.segments = True
            member.builder.add([(event.start_ms, event.end_ms)])
        elif isinstance(event, Voice):
            self._apply_voice(event, member)
        elif isinstance(event, Levels):
            self._apply_levels(event, member)
        elif isinstance(event, Network):
            self._add_network(member, event)
        elif isinstance(event, ParticipantState):
            self._apply_state(event, member)

    def _add_network(self, member: Member, event: Network) -> None:
        member.rtt.add(event.rtt_rounded_ms)
        loss = -1.0
        if event.loss_pct is not None:
            loss = event.loss_pct
            member.loss_sum += round(loss / LOSS_UNIT)
            member.loss_n += 1
        assert self._sweep is not None
        self._sweep.push_network(
            event.ts_ms, event.participant_id, event.round_trip_ms, event.rtt_rounded_ms, loss
        )

    def _add_frames(self, member: Member, event: Activity) -> None:
        # Batches are deduplicated by seq, so their spans sum to the time covered (capped at
        # D in the report should a source send overlapping batches).
        member.covered_ms += event.end_ms - event.start_ms
        member.frames = True
        member.builder.add(event.voiced_runs(self._level_table))

    def _track(self, member: Member, kind: type[VoiceTrack | LevelTrack],
               event: Voice | Levels) -> VoiceTrack | LevelTrack | None:
        """The participant's voice or levels track; ``None`` (event rejected) when the
        participant already sends the other of the two (one state source per participant)."""
        track = member.track
        if track is None:
            config = self._config
            track = member.track = (
                VoiceTrack() if kind is VoiceTrack
                else LevelTrack(config.level_hold_ms, config.level_voiced_dbov))
        elif not isinstance(track, kind):
            self._reject(event, "type", f"participant {event.participant_id} already sends "
                         f"{source_of(member)} events; one state source per participant (§1)")
            return None
        return track

    def _apply_voice(self, event: Voice, member: Member) -> None:
        track = self._track(member, VoiceTrack, event)
        if not isinstance(track, VoiceTrack):
            return
        if event.speaking and self._exclusive and not track.speaking:
            # A dominant-speaker source: an onset ends every other open segment (§1).
            for other in self._members.values():
                if other is not member and isinstance(other.track, VoiceTrack):
                    other.builder.add(other.track.close(event.ts_ms))
        member.builder.add(track.change(event.ts_ms, event.speaking))

    def _apply_levels(self, event: Levels, member: Member) -> None:
        track = self._track(member, LevelTrack, event)
        if not isinstance(track, LevelTrack):
            return
        first = event.first_ms
        if first <= track.last_ts:
            self._reject(event, "samples[0][0]", f"{first} is not after the participant's "
                         f"previous sample ({track.last_ts}): batches overlap")
            return
        member.builder.add(track.add(event))

    def _apply_start(self, event: SessionStart) -> None:
        if self._start_ts is not None:
            self._reject(event, "ts_ms", f"session already started at {self._start_ts}")
            return
        self._start_ts = event.ts_ms
        self._exclusive = event.exclusive
        self.clinic_id = event.clinic_id
        self._sweep = FloorSweep(self._config, event.ts_ms, self._tally, self._alerts, self._out)
        for participant in event.participants:
            self._declare(participant.participant_id, participant.role, event.ts_ms)

    def _apply_join(self, event: ParticipantJoin) -> None:
        member = self._members.get(event.participant_id)
        if member is None:
            self._declare(event.participant_id, event.role, event.ts_ms)
        elif member.role != event.role:
            self._reject(event, "role", f"participant already joined as {member.role}")
        elif member.present_since < 0:  # rejoining after a leave
            member.present_since = event.ts_ms
            self._availability_changed(event.participant_id, member, event.ts_ms)

    def _declare(self, pid: str, role: Role, ts: int) -> None:
        member = Member(role, self._config)
        member.present_since = ts
        self._members[pid] = member
        self._declared_at[pid] = ts
        # Its level batches held so far (not declared when they came) join its own hold, so
        # that every batch it may still apply early is there (see _apply_levels_early).
        pending = self._pending
        # Not those already due (declared while the hold is applied up to _advanced).
        since = max(ts, self._advanced)
        batches = [entry for entry in pending if isinstance(entry[-1], Levels)
                   and entry[-1].participant_id == pid and entry[0] >= since]
        if batches:
            moved = {id(entry) for entry in batches}
            pending[:] = [entry for entry in pending if id(entry) not in moved]
            heapq.heapify(pending)
            hold = self._level_hold(pid)
            for entry in batches:
                heapq.heappush(hold, entry)
        self._classifier.add_participant(pid)
        assert self._sweep is not None
        self._sweep.add_participant(pid, role)
        self._sweep.push_available(ts, pid, True)

    def _apply_state(self, event: ParticipantState, member: Member) -> None:
        ts = event.ts_ms
        before = member.available
        if event.type == "participant.mute":
            if member.muted_since < 0:
                member.muted_since = ts
        elif event.type == "participant.unmute":
            if member.muted_since >= 0:
                member.muted_ms += ts - member.muted_since
                member.muted_since = -1
        else:
            close_presence(member, ts)
        if event.type != "participant.unmute" and isinstance(member.track, VoiceTrack):
            member.builder.add(member.track.close(ts))  # mute or leave ends a segment (§1)
        if member.available != before:
            self._availability_changed(event.participant_id, member, ts)

    def _availability_changed(self, pid: str, member: Member, ts: int) -> None:
        assert self._sweep is not None
        self._sweep.push_available(ts, pid, member.available)

    # --- report ------------------------------------------------------------------------------

    def _report(self, duration: int, *, end: int, final: bool) -> dict[str, Any]:
        quality = quality_block(self._members, duration, end, self._config.rtt_degraded_ms)
        quality["alerts_not_listed"] = self._alerts.dropped
        quality["overlap_visible"] = not self._exclusive
        return build_report(
            session_id=self.session_id,
            clinic_id=self.clinic_id,
            duration_ms=duration,
            tally=self._tally,
            roles_present={m.role for m in self._members.values()},
            quality=quality,
            alerts=[dict(a) for a in self._alerts.log],
            final=final,
            exclusive=self._exclusive,
        )


_STATE_SLOTS = tuple(name for name in SessionEngine.__slots__ if name != "_live")
