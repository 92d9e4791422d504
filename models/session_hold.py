"""Holding a session's accepted events and applying them in canonical order (METRICS.md §1,
§9): the half of :class:`models.session.SessionEngine` that decides, per event, how compactly
it may wait until the horizon that makes it final, and what applying it does to the session's
participants, tracks and floor sweep.

Kept apart from the engine's public surface (ingest, horizons, live copy, report) only for
size: :class:`CanonicalOrder` is a mixin whose state lives in the engine's slots.
"""

from __future__ import annotations

import heapq
from array import array
from typing import Any

from models.alerts import AlertTracker
from models.backchannel import BackchannelClassifier
from models.classified import Output, Rejection
from models.config import EngineConfig
from models.errors import ValidationError
from models.event_order import (
    SeenKey,
    add_to_ranges,
    canonical_key,
    dedupe_key,
    event_time,
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
)
from models.floor import FloorSweep
from models.held_runs import HeldRun, new_run
from models.participants import LOSS_UNIT, Member, close_presence, source_of
from models.report import SessionTally
from models.sources import LevelTrack, VoiceTrack

_FAR = 2**62


class CanonicalOrder:
    """The engine's hold and canonical application (see the module docstring)."""

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
        "_known_max",
        "_level_table",
        "_members",
        "_out",
        "_pending",
        "_recent",
        "_recent_min",
        "_runs",
        "_seen",
        "_segment_ms",
        "_seqs",
        "_start_ts",
        "_state_hold",
        "_sweep",
        "_tally",
        "clinic_id",
        "rejected",
    )

    # The engine state this half holds or applies to (set up by SessionEngine.__init__).
    _config: EngineConfig
    _out: list[Output]
    _pending: list[tuple[Any, ...]]
    _recent: list[tuple[Any, ...]]
    _recent_min: int
    _state_hold: list[tuple[Any, ...]]
    _runs: dict[str, HeldRun]
    _declared_at: dict[str, int]
    _seen: dict[SeenKey, int]
    _seqs: dict[str, array[int]]
    _known_max: int
    _segment_ms: int
    _advanced: int
    _start_ts: int | None
    _end_ts: int | None
    _end_applied: bool
    _members: dict[str, Member]
    _exclusive: bool
    _tally: SessionTally
    _alerts: AlertTracker
    _sweep: FloorSweep | None
    _classifier: BackchannelClassifier
    _level_table: bytes
    _applying_tag: Any
    clinic_id: str | None
    rejected: int

    def _hold(self, event: Event, key: tuple[Any, ...], known: int, tag: Any) -> bool:
        """Keep an accepted event until the horizon passes its start, as compactly as is safe.

        Once a participant is declared (by session.start, applied on arrival, or by its first
        join, applied ``allowed_lateness_ms`` after its time by :meth:`_settle`), an event of
        it that starts at or after the session's start and its declaration can
        no longer be rejected when applied, so its speech and frames go straight to its IPU
        builder (which consumes intervals in start order below the horizon only: arrival
        order still cannot matter), and its other events wait without a ``tag``. An earlier
        one waits as it is, to be rejected in canonical order. ``True`` when the event waits
        in its participant's run (models/held_runs.py), which then recognises its copies.
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
            return False
        if isinstance(event, ParticipantJoin):
            if started:
                self._keep_recent((*key, tag, event))
                return False
        elif (isinstance(event, Speech | Network | Voice | Levels | ParticipantState) and started
              and self._member(event.participant_id, t) is not None):
            if isinstance(event, Speech):
                member = self._members[event.participant_id]
                member.segments = True
                member.builder.add([(event.start_ms, event.end_ms)])
                return False
            if isinstance(event, Network):
                self._keep_recent((*key, None, event))
                return False
            if isinstance(event, ParticipantState):
                # As before: nothing but a later-arriving session.end rejects it.
                heapq.heappush(self._state_hold, (*key, None, event))
                return False
            return self._hold_state(event, key, tag)
        heapq.heappush(self._pending, (*key, tag, event))
        return False

    def _hold_state(self, event: Voice | Levels, key: tuple[Any, ...], tag: Any) -> bool:
        """Hold a declared participant's ``voice`` or ``levels`` event for the state horizon:
        in the participant's run when it follows the run's last event in canonical order
        (models/held_runs.py: columns, a tenth of the memory), else on its own."""
        runs = self._runs
        run = runs.get(event.participant_id)
        if run is not None and run.append(event, tag):
            if len(run) == 1:  # the run was empty: it enters the heap under this event's key
                heapq.heappush(self._state_hold, (*key, tag, run))
            return True
        if run is None or not len(run):  # an empty run has no heap entry: replace it
            run = runs[event.participant_id] = new_run(event, tag)
            heapq.heappush(self._state_hold, (*key, tag, run))
            return True
        heapq.heappush(self._state_hold, (*key, tag, event))
        return False

    def _in_run(self, event: Voice | Levels) -> bool:
        """Whether ``event`` waits in its participant's run (a copy of it is a duplicate)."""
        run = self._runs.get(event.participant_id)
        return run is not None and run.holds(event)

    def _apply_entry(self, heap: list[tuple[Any, ...]], entry: tuple[Any, ...]) -> None:
        """Apply a heap entry just popped from ``heap``: a run applies its first event and
        re-enters ``heap`` under its next event's key (the order stays the canonical one)."""
        item = entry[-1]
        if isinstance(item, HeldRun):
            tag, event = item.pop()
            if len(item):
                heapq.heappush(heap, item.head_entry())
            # Out of the run, the event is remembered like any other until a copy of it
            # would be late anyway (models/session.py, _prune_seen).
            known = known_time(event)
            if known >= self._known_max - 2 * self._config.allowed_lateness_ms:
                self._seen[dedupe_key(canonical_key(event))] = known
            self._apply(tag, event)
        else:
            self._apply(entry[-2], item)

    def _keep_recent(self, entry: tuple[Any, ...]) -> None:
        self._recent.append(entry)
        if entry[0] < self._recent_min:
            self._recent_min = entry[0]

    def _release_state(self, horizon: int) -> None:
        """Move the held state events that start before ``horizon`` to the main hold, to be
        applied in canonical order with every other event there."""
        hold, pending = self._state_hold, self._pending
        while hold and hold[0][0] < horizon:
            heapq.heappush(pending, heapq.heappop(hold))

    def _apply_state_early(self, horizon: int) -> None:
        """Apply the held state events (``voice``, ``levels``, mutes, unmutes, leaves and
        rejoins of declared participants) that start before the **state horizon**
        ``S = N - L - min(MAX_BATCH_MS, M)``, ahead of the final horizon ``H = N - L - M``
        (memory: a voice or levels source would otherwise hold ``L + M``, 10 minutes by
        default, of them).

        Every event still to come is known at ``>= N - L`` (§9). The state events span
        nothing, and a ``levels`` batch spans at most ``MAX_BATCH_MS`` (models/events.py),
        so every one of them starting before ``S`` has arrived, and they are applied here in
        canonical order among themselves. Nothing else decides what they do: segments and
        frames go to the IPU builders in any order, first joins are applied at ``N - L``
        already, and the floor sweep orders availability changes by time. Only a
        ``session.end`` orders against everything, so ``S`` never passes one received (what
        is at or after it waits for the final horizon, to be rejected in canonical order),
        and one still to come is later than ``S``. Nothing still to come can cut a speaking
        state or a sample's hold before ``S`` either, so the tracks hand their intervals
        over up to it. The live copy applies the same events, so live numbers do not move.
        """
        early = (self._known_max - self._config.allowed_lateness_ms
                 - min(MAX_BATCH_MS, self._segment_ms))
        if self._end_ts is not None:
            early = min(early, self._end_ts)
        if early <= horizon:
            return
        hold = self._state_hold
        while hold and hold[0][0] < early:
            self._apply_entry(hold, heapq.heappop(hold))
        for member in self._members.values():
            if member.track is not None:
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
        order (:meth:`_member`). Later joins (a rejoin, a conflicting role) wait with the
        leaves they follow (:meth:`_apply_state_early`). The live copy (horizon ``N - L``)
        would apply exactly these events, so live numbers do not move.
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
                    heapq.heappush(self._state_hold, entry)
                else:
                    self._apply(entry[-2], event)
            else:
                self._add_network(self._members[event.participant_id], event)

    def _seq_ranges(self, participant_id: str) -> array[int]:
        ranges = self._seqs.get(participant_id)
        if ranges is None:
            ranges = self._seqs[participant_id] = array("q")
        return ranges

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
        # Its state events held so far (not declared when they came) join the state hold, so
        # that every one it may apply early is there (see _apply_state_early); not those
        # already due (declared while the main hold is applied up to _advanced).
        pending = self._pending
        since = max(ts, self._advanced)
        moving = [entry for entry in pending
                  if isinstance(entry[-1], Voice | Levels | ParticipantState)
                  and entry[-1].participant_id == pid and entry[0] >= since]
        if moving:
            moved = {id(entry) for entry in moving}
            pending[:] = [entry for entry in pending if id(entry) not in moved]
            heapq.heapify(pending)
            for entry in moving:
                heapq.heappush(self._state_hold, entry)
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
