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

How each accepted event waits and what applying it does is in :mod:`models.session_hold`
(a mixin of this class); the checkpoint form is in :mod:`models.session_state`.
"""

from __future__ import annotations

import heapq
import pickle
from array import array
from functools import partial
from typing import Any, ClassVar

from models.alerts import AlertTracker
from models.backchannel import BackchannelClassifier
from models.classified import Output
from models.config import EngineConfig
from models.errors import LateEventError, SessionStateError, ValidationError
from models.event_order import (
    RANK,
    SeenKey,
    canonical_key,
    dedupe_key,
    event_time,
    in_ranges,
    known_field,
    known_time,
    span_field,
    start_field,
)
from models.events import (
    Activity,
    Event,
    Levels,
    ParticipantJoin,
    SessionEnd,
    SessionStart,
    Voice,
    level_translation,
)
from models.floor import FloorSweep
from models.held_runs import HeldRun
from models.participants import Member, close_presence, quality_block
from models.report import SessionTally, build_report
from models.session_hold import CanonicalOrder
from models.session_state import engine_from_state, engine_to_state

__all__ = ["SessionEngine", "event_time", "known_time"]

_FAR = 2**62
_ACTIVITY_RANK = RANK["activity"]


class SessionEngine(CanonicalOrder):
    """Incremental analyzer for one session. Pure: time comes only from the events.

    ``ingest`` validates order and duplicates and buffers; processing happens when the
    final horizon has moved ``advance_step_ms`` (0: on every move), or on ``advance``/``finish``.
    Outputs (classified events, alerts, apply-time rejections) collect until ``drain``; they
    are final (never retracted). :meth:`snapshot` gives the live, speculative numbers.
    """

    __slots__ = (
        "_final_end",
        "_finished",
        "_horizon",
        "_last_ipu_end",
        "_live",
        "_speculative",
        "_start_key",
        "_step",
        "duplicates",
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
        # Voice, levels, mute, unmute, leave events and rejoins of declared participants, as
        # heap entries: applied at the state horizon (see _apply_state_early).
        self._state_hold: list[tuple[Any, ...]] = []
        # Each participant's voice or levels events in arrival order, as one entry of the
        # state hold (models/held_runs.py).
        self._runs: dict[str, HeldRun] = {}
        # When each participant was declared (session.start or its first join): events of
        # theirs before it are rejected, as in canonical order (joins are applied early).
        self._declared_at: dict[str, int] = {}
        self._seen: dict[SeenKey, int] = {}  # non-activity keys -> known time
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

    # --- checkpoints (models/session_state.py) ----------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The engine's complete state as plain data, the live copy excluded
        (:func:`models.session_state.engine_to_state`)."""
        return engine_to_state(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SessionEngine:
        """The engine :meth:`to_state` described (raises ``StateError`` or a ``KeyError``,
        ``TypeError`` or ``ValueError`` on a tree of another shape)."""
        return engine_from_state(cls, state)

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
        if isinstance(event, Activity):
            # Nearly every event of a frame source: event_time, known_time and
            # canonical_key inlined (models/event_order.py; same values).
            t = event.start_ms
            known = event.end_ms
            key: tuple[Any, ...] = (t, _ACTIVITY_RANK, event.participant_id, event.seq)
            seen_key: SeenKey = key  # activity copies are known by their seq
            if in_ranges(self._seq_ranges(event.participant_id), event.seq):
                self.duplicates += 1
                return False
        else:
            t = event_time(event)
            known = known_time(event)
            key = canonical_key(event)
            seen_key = dedupe_key(key)
            # session.start and session.end are recognised whatever their age: a consumer
            # replaying from an old offset must not turn them into errors.
            if (
                seen_key in self._seen
                or (isinstance(event, Voice | Levels) and self._in_run(event))
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
        self._accept(event, t, known, key, seen_key, tag)
        return True

    def _accept(self, event: Event, t: int, known: int, key: tuple[Any, ...],
                seen_key: SeenKey, tag: Any) -> None:
        """Take an event :meth:`ingest` found valid and new (``t``, ``known``: its event and
        known times; ``key``, ``seen_key``: its canonical and dedupe keys), and feed it to
        the live copy.

        The live copy gets it here, not through its own :meth:`ingest`: every check there
        would give the same answer as this engine's. The copy holds this engine's state as of
        when it was made plus every event accepted since (an event starting before its
        frontier discards it instead), so it has the same newest known time, session start
        and end, segment bound and seq ranges, and remembers the same keys of every event
        not yet late (both forget keys only ``2 * allowed_lateness_ms`` behind that time)."""
        if type(event) is Activity:  # nearly every event of a frame source
            self._hold(event, key, known, tag)
        else:
            self._accept_other(event, t, known, key, seen_key, tag)
        if known > self._known_max:
            self._known_max = known
            self._settle()
        live = self._live
        if live is not None:
            # The live copy has consumed what starts before its frontier: an event starting
            # there or later is simply fed to it; an earlier one makes it stale.
            if t >= live._advanced:
                try:
                    live._accept(event, t, known, key, seen_key, tag)
                except ValidationError:  # cannot happen (same state); rebuild to be safe
                    self._live = None
            else:
                self._live = None
        horizon = self._known_max - self._config.allowed_lateness_ms - (
            0 if self._speculative else self._segment_ms)
        if horizon > self._horizon:
            self._horizon = horizon
            if not self._speculative and horizon - self._advanced >= self._step:
                self.advance()

    def _accept_other(self, event: Event, t: int, known: int, key: tuple[Any, ...],
                      seen_key: SeenKey, tag: Any) -> None:
        """:meth:`_accept`'s part for an event other than an activity batch."""
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
        # Activity copies are known by their seq, and an event waiting in its participant's
        # run by the run (memory: a levels session would otherwise keep a key per batch).
        elif not self._hold(event, key, known, tag) and not isinstance(event, Activity):
            self._seen[seen_key] = known

    def advance(self) -> None:
        """Process everything the current horizon makes final."""
        self._advance_to(self._horizon)

    def _advance_to(self, horizon: int) -> None:
        self._advanced = horizon
        if self._state_hold:
            self._release_state(horizon)
        pending = self._pending
        while pending and pending[0][0] < horizon:
            self._apply_entry(pending, heapq.heappop(pending))
        if self._sweep is None:
            return
        if not self._speculative:
            self._apply_state_early(horizon)
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
        self._release_state(_FAR)
        while self._pending:
            self._apply_entry(self._pending, heapq.heappop(self._pending))
            self._release_state(_FAR)  # a participant declared meanwhile moved its own
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
        if seen and min(seen.values()) < before:
            # Rebuilt rather than deleted from: a dict never shrinks on deletion, so it would
            # keep the size of the busiest stretch (memory per session).
            self._seen = {k: t for k, t in seen.items() if t >= before}

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


_STATE_SLOTS = tuple(name for name in (*CanonicalOrder.__slots__, *SessionEngine.__slots__)
                     if name != "_live")
