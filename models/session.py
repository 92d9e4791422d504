"""The incremental, per-session metric engine (METRICS.md §1–§7, §9).

Events are accepted in any order within ``allowed_lateness_ms`` and applied in a canonical
order once the session's watermark passes them, so the final report never depends on arrival
order or on duplicates. Processing then runs in three stages, each trailing the previous one
by exactly the look-ahead its rules need::

    horizon H = newest event time - allowed_lateness_ms      (events before H are final)
      IPU building (§2)               up to H
      backchannel decision (§3)       up to H - min_pause - min_speech
      floor sweep (§4-§7)             up to that - bc_max - bc_context   (H - 2300 ms)

An event's time is ``start_ms`` for ``speech``/``activity`` and ``ts_ms`` otherwise; an event
earlier than the horizon when it arrives is late (:class:`~models.errors.LateEventError`).
Live sources must therefore send each voiced segment, or a piece of it, within
``allowed_lateness_ms`` of its start (touching pieces merge, §2.1).
"""

from __future__ import annotations

import heapq
from array import array
from functools import partial
from typing import Any

from models.alerts import AlertTracker
from models.backchannel import BackchannelClassifier
from models.classified import Output, Rejection
from models.config import EngineConfig
from models.errors import LateEventError, SessionStateError, ValidationError
from models.events import (
    Activity,
    Event,
    Network,
    ParticipantJoin,
    ParticipantState,
    Role,
    SessionEnd,
    SessionStart,
    Speech,
    level_translation,
)
from models.floor import FloorSweep
from models.participants import Member, close_presence, quality_block
from models.report import SessionTally, build_report

# Canonical application order among events at the same ms.
_RANK = {
    "session.start": 0,
    "participant.join": 1,
    "participant.unmute": 2,
    "participant.mute": 3,
    "network": 4,
    "speech": 5,
    "activity": 6,
    "participant.leave": 7,
    "session.end": 8,
}
_FAR = 2**62


def event_time(event: Event) -> int:
    """The time (ms) an event is ordered and judged late by: its start, or its ``ts_ms``."""
    if isinstance(event, Activity | Speech):
        return event.start_ms
    return event.ts_ms


def _canonical_key(event: Event) -> tuple[Any, ...]:
    """A total order on distinct events; equal keys mean the same event (a duplicate)."""
    kind = event.type
    if isinstance(event, Activity):
        return (event.start_ms, 6, event.participant_id, event.seq)
    if isinstance(event, Speech):
        return (event.start_ms, 5, event.participant_id, event.end_ms)
    if isinstance(event, Network):
        # The readings enter as one hash of numbers (stable across processes, unlike str
        # hashes): a small key that still orders conflicting readings deterministically.
        content = tuple(-1.0 if v is None else v for v in (
            event.rtt_ms, event.jitter_ms, event.loss_pct, event.jitter_buffer_ms))
        return (event.ts_ms, 4, event.participant_id, hash(content))
    if isinstance(event, SessionStart):
        roster = tuple((p.participant_id, p.role) for p in event.participants)
        return (event.ts_ms, 0, event.clinic_id, roster)
    if isinstance(event, ParticipantJoin):
        return (event.ts_ms, 1, event.participant_id, event.role)
    if isinstance(event, ParticipantState):
        return (event.ts_ms, _RANK[kind], event.participant_id)
    return (event.ts_ms, 8)


class SessionEngine:
    """Incremental analyzer for one session. Pure: time comes only from the events.

    ``ingest`` validates order and duplicates and buffers; processing happens when the
    horizon has moved ``advance_step_ms`` (0: on every move), or on ``advance``/``finish``.
    Outputs (classified events, alerts, apply-time rejections) collect until ``drain``.
    """

    __slots__ = (
        "_advanced",
        "_alerts",
        "_applying_tag",
        "_classifier",
        "_config",
        "_end_applied",
        "_end_ts",
        "_final_end",
        "_finished",
        "_horizon",
        "_last_ipu_end",
        "_level_table",
        "_max_seen",
        "_members",
        "_out",
        "_pending",
        "_seen",
        "_seqs",
        "_start_key",
        "_start_ts",
        "_step",
        "_sweep",
        "_tally",
        "clinic_id",
        "duplicates",
        "rejected",
        "session_id",
    )

    def __init__(
        self, session_id: str, config: EngineConfig | None = None, *, advance_step_ms: int = 0
    ) -> None:
        self.session_id = session_id
        self._config = config = config or EngineConfig()
        self._step = advance_step_ms
        self._level_table = level_translation(config.level_voiced_dbov)
        self._out: list[Output] = []
        self._pending: list[tuple[Any, ...]] = []
        self._seen: dict[tuple[Any, ...], int] = {}  # non-activity keys -> event time
        self._seqs: dict[str, array[int]] = {}  # activity seq ranges per participant
        self._max_seen = -_FAR
        self._horizon = -_FAR
        self._advanced = -_FAR
        self._start_ts: int | None = None
        self._start_key: tuple[Any, ...] | None = None
        self._end_ts: int | None = None
        self._end_applied = False
        self._finished = False
        self._final_end: int | None = None
        self.clinic_id: str | None = None
        self._members: dict[str, Member] = {}
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

    # --- public API -------------------------------------------------------------------------

    @property
    def horizon_ms(self) -> int:
        """Events earlier than this are late; everything before it is final."""
        return self._horizon

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
        """Session-clock time (ms) up to which the floor analysis is final (the snapshot's
        end); ``None`` before ``session.start`` is applied."""
        return self._sweep.t if self._sweep is not None else None

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

        Raises ``LateEventError`` for an event older than the horizon and
        ``SessionStateError`` for one after ``session.end`` or after :meth:`finish`.
        """
        kind = event.type
        if event.session_id != self.session_id:
            raise ValidationError(f"{kind}.session_id", "routed to the wrong session")
        if self._finished:
            raise SessionStateError(f"{kind}.session_id", "session already closed")
        t = event_time(event)
        if isinstance(event, Activity):
            key: tuple[Any, ...] = (t, 6, event.participant_id, event.seq)
            ranges = self._seq_ranges(event.participant_id)
            if _in_ranges(ranges, event.seq):
                self.duplicates += 1
                return False
        else:
            key = _canonical_key(event)
            # session.start and session.end are recognised whatever their age: a consumer
            # replaying from an old offset must not turn them into errors.
            if (
                key in self._seen
                or key == self._start_key
                or (isinstance(event, SessionEnd) and event.ts_ms == self._end_ts)
            ):
                self.duplicates += 1
                return False
        if t < self._horizon:
            field = "start_ms" if isinstance(event, Activity | Speech) else "ts_ms"
            raise LateEventError(
                f"{kind}.{field}",
                f"{t} is more than allowed_lateness_ms={self._config.allowed_lateness_ms} "
                f"behind the session's newest event ({self._max_seen})",
            )
        if self._end_ts is not None and t >= self._end_ts and not isinstance(event, SessionEnd):
            raise SessionStateError(
                f"{kind}.{'start_ms' if isinstance(event, Activity | Speech) else 'ts_ms'}",
                f"{t} is at or after session.end ({self._end_ts})",
            )
        if isinstance(event, SessionStart) and self._start_key is None:
            self._start_key = key  # kept for good: a redelivered start is never "late"
        if isinstance(event, SessionEnd):
            if self._end_ts is not None:
                raise SessionStateError("session.end.ts_ms", f"session ended at {self._end_ts}")
            self._end_ts = t
        if isinstance(event, Activity):
            _add_to_ranges(ranges, event.seq)
            member = self._members.get(event.participant_id)
            if member is not None:
                # Declared participant: the batch can go straight to its IPU builder, which
                # consumes intervals in start order below the horizon only, so arrival order
                # still cannot matter. Keeps the lateness buffer free of frame payloads.
                self._add_frames(member, event)
            else:
                heapq.heappush(self._pending, (*key, tag, event))
        else:
            self._seen[key] = t
            heapq.heappush(self._pending, (*key, tag, event))
        if t > self._max_seen:
            self._max_seen = t
            self._horizon = t - self._config.allowed_lateness_ms
            if self._horizon - self._advanced >= self._step:
                self.advance()
        return True

    def _seq_ranges(self, participant_id: str) -> array[int]:
        ranges = self._seqs.get(participant_id)
        if ranges is None:
            ranges = self._seqs[participant_id] = array("q")
        return ranges

    def advance(self) -> None:
        """Process everything the current horizon makes final."""
        horizon = self._horizon
        self._advanced = horizon
        pending = self._pending
        while pending and pending[0][0] < horizon:
            self._apply(*heapq.heappop(pending)[-2:])
        if self._sweep is None:
            return
        config = self._config
        for pid, member in self._members.items():
            member.builder.advance(horizon, partial(self._ipu_closed, pid))
        known = horizon - config.min_pause_ms - config.min_speech_ms
        self._classifier.advance(known, self._open_ipus())
        self._sweep.advance(known - config.bc_max_ms - config.bc_context_ms)
        self._prune_seen(horizon - config.allowed_lateness_ms)

    def drain(self) -> list[Output]:
        """Classified events, alerts and apply-time rejections since the last drain."""
        if not self._out:
            return []
        out = self._out[:]
        self._out.clear()
        return out

    def snapshot(self) -> dict[str, Any]:
        """The running metrics (§10 schema, ``final: false``) up to the floor sweep's frontier."""
        sweep = self._sweep
        duration = sweep.t - self._start_ts if sweep and self._start_ts is not None else 0
        return self._report(max(duration, 0), end=sweep.t if sweep else 0, final=False)

    def finish(self) -> dict[str, Any]:
        """Close the session and return the final report (§10).

        With a ``session.end``, ``D`` runs to its ``ts_ms``; without one (idle timeout or end
        of input), ``D`` ends at the last speech offset (§1).
        """
        if self._finished:
            raise SessionStateError("session.end", "session already closed")
        while self._pending:
            self._apply(*heapq.heappop(self._pending)[-2:])
        self._finished = True
        if self._start_ts is None or self._sweep is None:
            raise SessionStateError("session.start", "never received for this session")
        end = self._end_ts if self._end_applied else None
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

    def _open_ipus(self) -> dict[str, tuple[int, int]]:
        result = {}
        for pid, member in self._members.items():
            open_ipu = member.builder.open_ipu
            if open_ipu is not None:
                result[pid] = open_ipu
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
        time_field = "start_ms" if isinstance(event, Activity | Speech) else "ts_ms"
        if self._start_ts is None:
            self._reject(event, "session_id", "no session.start precedes this event")
            return
        if t < self._start_ts:
            self._reject(event, time_field, f"{t} is before session.start ({self._start_ts})")
            return
        if self._end_applied:
            self._reject(event, time_field, f"{t} is at or after session.end ({self._end_ts})")
            return
        if isinstance(event, SessionEnd):
            self._end_applied = True
            return
        if isinstance(event, ParticipantJoin):
            self._apply_join(event)
            return
        member = self._members.get(event.participant_id)
        if member is None:
            self._reject(event, "participant_id", "not declared by session.start or "
                         "participant.join")
            return
        if isinstance(event, Activity):
            self._add_frames(member, event)
        elif isinstance(event, Speech):
            member.segments = True
            member.builder.add([(event.start_ms, event.end_ms)])
        elif isinstance(event, Network):
            member.rtt.add(event.rtt_rounded_ms)
            loss = -1.0
            if event.loss_pct is not None:
                loss = event.loss_pct
                member.loss_sum += loss
                member.loss_n += 1
            assert self._sweep is not None
            self._sweep.push_network(
                t, event.participant_id, event.round_trip_ms, event.rtt_rounded_ms, loss
            )
        elif isinstance(event, ParticipantState):
            self._apply_state(event, member)

    def _add_frames(self, member: Member, event: Activity) -> None:
        # Batches are deduplicated by seq, so their spans sum to the time covered (capped at
        # D in the report should a source send overlapping batches).
        member.covered_ms += event.end_ms - event.start_ms
        member.frames = True
        member.builder.add(event.voiced_runs(self._level_table))

    def _apply_start(self, event: SessionStart) -> None:
        if self._start_ts is not None:
            self._reject(event, "ts_ms", f"session already started at {self._start_ts}")
            return
        self._start_ts = event.ts_ms
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
        if member.available != before:
            self._availability_changed(event.participant_id, member, ts)

    def _availability_changed(self, pid: str, member: Member, ts: int) -> None:
        assert self._sweep is not None
        self._sweep.push_available(ts, pid, member.available)

    # --- report ------------------------------------------------------------------------------

    def _report(self, duration: int, *, end: int, final: bool) -> dict[str, Any]:
        quality = quality_block(self._members, duration, end, self._config.rtt_degraded_ms)
        quality["alerts_not_listed"] = self._alerts.dropped
        return build_report(
            session_id=self.session_id,
            clinic_id=self.clinic_id,
            duration_ms=duration,
            tally=self._tally,
            roles_present={m.role for m in self._members.values()},
            quality=quality,
            alerts=[dict(a) for a in self._alerts.log],
            final=final,
        )


def _in_ranges(ranges: array[int], value: int) -> bool:
    return any(ranges[i] <= value <= ranges[i + 1] for i in range(0, len(ranges), 2))


def _add_to_ranges(ranges: array[int], value: int) -> None:
    """Insert into sorted disjoint inclusive ranges, flattened (low, high, low, high, ...),
    merging neighbours: seqs mostly arrive contiguous, so this stays one range."""
    for i in range(0, len(ranges), 2):
        low, high = ranges[i], ranges[i + 1]
        if value == high + 1:
            ranges[i + 1] = value
            if i + 2 < len(ranges) and ranges[i + 2] == value + 1:
                ranges[i + 1] = ranges[i + 3]
                del ranges[i + 2 : i + 4]
            return
        if value == low - 1:
            ranges[i] = value
            return
        if value < low:
            ranges[i:i] = array("q", (value, value))
            return
    ranges.extend((value, value))
