"""Floor analysis (METRICS.md §4–§6): a time-ordered sweep over IPU onsets and offsets.

The sweep sees every IPU (backchannels flagged) in time order, up to a frontier below which
nothing can change any more. Two speaking sets are kept:

- the *raw* set (all IPUs): talk time, overlap, mutual silence, lapses (§6);
- the *floor* set (backchannels removed, §3): stretches, pauses, gaps, overlaps, speaker
  changes, turns, monologues (§4), interruptions and collisions (§5).

At one millisecond offsets are processed before onsets, so when B starts at the very ms A
stops the stretch between is a silence of 0 ms: a gap of 0 ms (§4).
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_right
from typing import Any

from models.alerts import AlertTracker
from models.classified import Classified
from models.config import EngineConfig
from models.events import Role
from models.report import RoleTally, SessionTally

OFFSET, CONTROL, ONSET = 0, 1, 2


class _Speaker:
    __slots__ = ("available", "ipu_bc", "ipu_start", "role", "rtt", "rtt_at_onset", "speaking")

    def __init__(self, role: Role) -> None:
        self.role: Role = role
        self.speaking = False
        self.ipu_start = -1
        self.ipu_bc = False
        self.rtt = 0  # current round trip (ms): latest network event, 0 when unknown (§4)
        self.rtt_at_onset = 0
        self.available = False  # present and unmuted (§2.4)

    def to_state(self) -> list[Any]:
        return [self.role, self.speaking, self.ipu_start, self.ipu_bc, self.rtt,
                self.rtt_at_onset, self.available]

    @classmethod
    def from_state(cls, state: Any) -> _Speaker:
        speaker = cls(state[0])
        (_, speaker.speaking, speaker.ipu_start, speaker.ipu_bc, speaker.rtt,
         speaker.rtt_at_onset, speaker.available) = state
        return speaker


class FloorSweep:
    """Consumes onsets/offsets/control changes in time order; updates tallies, emits events."""

    __slots__ = (
        "_between_overlap",
        "_candidates",
        "_config",
        "_floor",
        "_heap",
        "_last_offset_pid",
        "_last_solo",
        "_last_solo_end",
        "_last_solo_offset",
        "_max_silence_between",
        "_mono_start",
        "_net_base",
        "_net_loss",
        "_net_pid",
        "_net_rt",
        "_net_rtt",
        "_net_ts",
        "_out",
        "_pids",
        "_raw",
        "_silence_start",
        "_speakers",
        "_spoken",
        "_turn_pid",
        "_turn_start",
        "alerts",
        "last_offset_ms",
        "t",
        "tally",
    )

    def __init__(
        self,
        config: EngineConfig,
        start_ms: int,
        tally: SessionTally,
        alerts: AlertTracker,
        out: list[Any],
    ) -> None:
        self._config = config
        self.tally = tally
        self.alerts = alerts
        self._out = out
        self.t = start_ms  # everything before t is integrated
        self._heap: list[tuple[Any, ...]] = []
        self._speakers: dict[str, _Speaker] = {}
        self._pids: list[str] = []  # participants in order of addition: _net_pid indexes it
        # Network readings not yet reached, as columns sorted by time: 11 bytes a reading
        # instead of ~170 as a heap tuple (a session holds up to max_segment_ms of them, 10
        # minutes by default). A column is widened to 64 bits when a value does not fit
        # (times are offsets from _net_base, the session's start; a loss above 32.767 %).
        # They enter the heap only when the sweep reaches them.
        self._net_base = start_ms
        self._net_ts = array("I")
        self._net_pid = array("B")  # index into _pids
        self._net_rt = array("H")  # RTT + jitter buffer, ms
        self._net_rtt = array("H")  # RTT alone, ms
        self._net_loss = array("h")  # loss_pct in 1/1000 %, or -1 when not reported
        self._raw = 0  # number of participants in an IPU (backchannels included)
        self._floor: list[str] = []  # participants holding non-backchannel IPUs, onset order
        self._silence_start = start_ms  # start of the current raw mutual silence, or -1
        self._spoken = False
        self._last_offset_pid = ""
        self.last_offset_ms = -1
        # Transition state (§4): the last solo stretch and what has happened since it ended.
        self._last_solo = ""
        self._last_solo_end = -1
        self._last_solo_offset = -1  # offset of the IPU ongoing when that stretch ended
        self._between_overlap = False
        self._max_silence_between = 0
        self._turn_pid = ""
        self._turn_start = -1
        self._mono_start = -1
        self._candidates: list[tuple[str, str, int]] = []  # (X, Y, onset of Y) §5

    # --- checkpoints -------------------------------------------------------------------------

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/state_codec.py); config, tallies, alerts and ``out`` are
        the engine's. The heap is kept as it is (a valid heap, entries as lists)."""
        heap = [list(entry) for entry in self._heap]
        base = self._net_base
        for i in range(len(self._net_ts)):
            heap.append([self._net_ts[i] + base, CONTROL, self._pids[self._net_pid[i]], "net",
                         self._net_rt[i], self._net_rtt[i], self._net_loss[i]])
        for entry in heap:
            if entry[3] == "net":  # the checkpoint holds loss_pct as a float (format 3)
                entry[6] = entry[6] / 1000 if entry[6] >= 0 else -1.0
        heap.sort()  # a sorted list is a valid heap
        return [self.t, heap,
                [[pid, speaker.to_state()] for pid, speaker in self._speakers.items()],
                self._raw, self._floor, self._silence_start, self._spoken,
                self._last_offset_pid, self.last_offset_ms, self._last_solo,
                self._last_solo_end, self._last_solo_offset, self._between_overlap,
                self._max_silence_between, self._turn_pid, self._turn_start, self._mono_start,
                [list(candidate) for candidate in self._candidates]]

    @classmethod
    def from_state(cls, state: Any, config: EngineConfig, tally: SessionTally,
                   alerts: AlertTracker, out: list[Any]) -> FloorSweep:
        (t, heap, speakers, raw, floor, silence_start, spoken, last_offset_pid,
         last_offset_ms, last_solo, last_solo_end, last_solo_offset, between_overlap,
         max_silence_between, turn_pid, turn_start, mono_start, candidates) = state
        sweep = cls(config, t, tally, alerts, out)
        sweep._speakers = {pid: _Speaker.from_state(value) for pid, value in speakers}
        sweep._pids = list(sweep._speakers)
        for entry in heap:
            if entry[3] == "net":
                time_ms, _, pid, _, round_trip, rtt, loss = entry
                sweep._queue_network(time_ms, pid, round_trip, rtt,
                                     round(loss * 1000) if loss >= 0 else -1)
            else:
                sweep._heap.append(tuple(entry))
        heapq.heapify(sweep._heap)
        sweep._raw, sweep._floor, sweep._silence_start = raw, list(floor), silence_start
        sweep._spoken, sweep._last_offset_pid, sweep.last_offset_ms = (
            spoken, last_offset_pid, last_offset_ms)
        sweep._last_solo, sweep._last_solo_end, sweep._last_solo_offset = (
            last_solo, last_solo_end, last_solo_offset)
        sweep._between_overlap, sweep._max_silence_between = (
            between_overlap, max_silence_between)
        sweep._turn_pid, sweep._turn_start, sweep._mono_start = (
            turn_pid, turn_start, mono_start)
        sweep._candidates = [(x, y, onset) for x, y, onset in candidates]
        return sweep

    # --- input -----------------------------------------------------------------------------

    def add_participant(self, participant_id: str, role: Role) -> None:
        if participant_id not in self._speakers:
            self._speakers[participant_id] = _Speaker(role)
            self._pids.append(participant_id)
            if role not in self.tally.roles:
                self.tally.roles[role] = RoleTally()

    def push_ipu(self, time_ms: int, is_onset: bool, participant_id: str, is_bc: bool) -> None:
        heapq.heappush(
            self._heap, (time_ms, ONSET if is_onset else OFFSET, participant_id, is_bc)
        )

    def push_network(
        self, time_ms: int, participant_id: str, round_trip_ms: int, rtt_ms: int, loss: float
    ) -> None:
        """``round_trip_ms`` (RTT + jitter buffer) corrects latencies and decides collisions
        (§4, §5); ``rtt_ms`` alone feeds the network alert (§7) with ``loss`` (``loss_pct``,
        or -1 when not reported), which the alert judges in 1/1000 % (models/alerts.py).

        A reading may come any time before the sweep reaches ``time_ms``, in any order: it
        waits in compact columns and is applied in the same order as if it had been pushed
        onto the heap (time, then participant, then values)."""
        self._queue_network(time_ms, participant_id, round_trip_ms, rtt_ms,
                            round(loss * 1000) if loss >= 0 else -1)

    def _queue_network(self, time_ms: int, participant_id: str, round_trip_ms: int,
                       rtt_ms: int, loss_milli: int) -> None:
        offset = time_ms - self._net_base
        times = self._net_ts
        # Mostly in time order: an append; otherwise an insertion (arrays of a few KiB).
        i = len(times) if not times or times[-1] <= offset else bisect_right(times, offset)
        pid = self._pids.index(participant_id)
        for name, value in (("_net_ts", offset), ("_net_pid", pid), ("_net_rt", round_trip_ms),
                            ("_net_rtt", rtt_ms), ("_net_loss", loss_milli)):
            column = getattr(self, name)
            try:
                column.insert(i, value)
            except OverflowError:  # rare: this column widened to 64 bits
                column = array("q", column)
                column.insert(i, value)
                setattr(self, name, column)

    def _release_network(self, frontier_ms: int) -> None:
        """Move the readings before ``frontier_ms`` onto the heap (their order is the heap's)."""
        times, base = self._net_ts, self._net_base
        limit = frontier_ms - base
        n = bisect_right(times, limit - 1) if times and times[0] < limit else 0
        if not n:
            return
        pids, heap = self._pids, self._heap
        for i in range(n):
            heapq.heappush(heap, (times[i] + base, CONTROL, pids[self._net_pid[i]], "net",
                                  self._net_rt[i], self._net_rtt[i], self._net_loss[i]))
        for column in (times, self._net_pid, self._net_rt, self._net_rtt, self._net_loss):
            del column[:n]

    def push_available(self, time_ms: int, participant_id: str, available: bool) -> None:
        heapq.heappush(self._heap, (time_ms, CONTROL, participant_id, "avail", available))

    # --- sweep -------------------------------------------------------------------------------

    def advance(self, frontier_ms: int, *, integrate: bool = True) -> None:
        """Process everything strictly before ``frontier_ms`` and integrate up to it.

        All changes at one millisecond are applied together and judged as one transition of
        the floor: a set that holds for 0 ms is not a stretch (§4 stretches are maximal).
        """
        self._release_network(frontier_ms)
        heap = self._heap
        while heap and heap[0][0] < frontier_ms:
            t = heap[0][0]
            self._integrate(t)
            before = tuple(self._floor)
            onsets: list[str] = []
            while heap and heap[0][0] == t:
                item = heapq.heappop(heap)
                rank, pid = item[1], item[2]
                if rank == ONSET:
                    if self._onset(t, pid, item[3]):
                        onsets.append(pid)
                elif rank == OFFSET:
                    self._offset(t, pid, item[3])
                elif item[3] == "net":
                    self._speakers[pid].rtt = item[4]
                    self.alerts.network(pid, t, item[5], item[6])
                else:
                    self._speakers[pid].available = item[4]
            if tuple(self._floor) != before:
                self._floor_changed(t, before, onsets)
        if integrate and frontier_ms > self.t:
            self._integrate(frontier_ms)

    def _integrate(self, t1: int) -> None:
        t0 = self.t
        if t1 <= t0:
            return
        dt = t1 - t0
        raw = self._raw
        tally = self.tally
        alerts = self.alerts
        if raw:
            therapist = 0
            roles = tally.roles
            for speaker in self._speakers.values():
                partners = raw
                if speaker.speaking:
                    roles[speaker.role].talk_ms += dt
                    partners -= 1
                    if speaker.role == "therapist":
                        therapist += 1
                # Backchannel expectation (§6 v1.1): the talk of every other participant
                # (backchannels included, same role too) heard by this member while present
                # and unmuted; the role's figure is the sum over its members.
                if partners and speaker.available:
                    roles[speaker.role].exposure_ms += dt * partners
            tally.speech_union_ms += dt
            if raw >= 2:
                tally.overlap_ms += dt
            alerts.talk(t0, t1, therapist, raw)
        else:
            alerts.talk(t0, t1, 0, 0)
            alerts.silence(self._silence_start, t1)
        if len(self._floor) == 1 and self._floor[0] == self._turn_pid:
            role = self._speakers[self._turn_pid].role
            if role == "therapist":
                alerts.monologue(self._mono_start, t1, self._turn_pid)
        alerts.tick(t1)
        self.t = t1

    def _onset(self, t: int, pid: str, is_bc: bool) -> bool:
        """Raw-level onset; returns whether ``pid`` joined the floor (not a backchannel)."""
        speaker = self._speakers[pid]
        if self._raw == 0:
            self._silence_ended(t, pid)
        self._raw += 1
        speaker.speaking = True
        speaker.ipu_start = t
        speaker.ipu_bc = is_bc
        speaker.rtt_at_onset = speaker.rtt
        if is_bc:
            self.tally.roles[speaker.role].backchannels += 1
            return False
        self._floor.append(pid)
        return True

    def _offset(self, t: int, pid: str, is_bc: bool) -> None:
        speaker = self._speakers[pid]
        self._raw -= 1
        speaker.speaking = False
        self._out.append(
            Classified(
                "ipu", speaker.ipu_start,
                {"participant_id": pid, "role": speaker.role, "start_ms": speaker.ipu_start,
                 "end_ms": t, "backchannel": is_bc},
            )
        )
        self.last_offset_ms = t
        if self._raw == 0:
            self._silence_start = t
            self._last_offset_pid = pid
        if is_bc:
            return
        if self._last_solo == pid and self._last_solo_offset < 0:
            # The IPU that was ongoing when pid's last solo stretch ended has ended (§4). Once
            # set, offset_A stays: A speaking again inside the overlap that follows is talk
            # and overlap, not A's turn (§4 v1.1).
            self._last_solo_offset = t
        self._floor.remove(pid)

    def _silence_ended(self, t: int, pid: str) -> None:
        length = t - self._silence_start
        if self._spoken:
            if length > self._max_silence_between:
                self._max_silence_between = length
            if length >= self._config.lapse_ms:
                tally = self.tally
                tally.lapses += 1
                tally.longest_lapse_ms = max(tally.longest_lapse_ms, length)
                before = self._speakers[self._last_offset_pid].role
                broke = self._speakers[pid].role
                tally.roles[before].lapses_preceded += 1
                tally.roles[broke].lapses_broken += 1
                self._out.append(
                    Classified(
                        "lapse", self._silence_start,
                        {"start_ms": self._silence_start, "end_ms": t,
                         "preceded_by": self._last_offset_pid, "preceded_by_role": before,
                         "broken_by": pid, "broken_by_role": broke},
                    )
                )
        self.alerts.silence_ended(t)
        self._spoken = True

    # --- floor transitions (§4) and interruptions (§5) ----------------------------------------

    def _floor_changed(self, t: int, before: tuple[str, ...], onsets: list[str]) -> None:
        floor = self._floor
        old, new = len(before), len(floor)
        if old == 1:
            # The solo stretch of `holder` ends here (the set changed). If the holder stopped,
            # its offset is now; if it was talked over, it comes when its IPU ends.
            holder = before[0]
            self._last_solo = holder
            self._last_solo_end = t
            self._last_solo_offset = -1 if holder in floor else t
            self._between_overlap = False
            self._max_silence_between = 0
        if new >= 2:
            self._between_overlap = True
            if old == 1 and before[0] in floor:
                # X-solo -> overlap: every newcomer of this ms is judged on its own against X
                # (§5 v1.1), on the same overlap stretch (which lasts until one speaker or
                # nobody is left).
                for newcomer in onsets:
                    self._maybe_interruption(t, before[0], newcomer)
        elif old >= 2 and self._candidates:
            self._resolve(t)
        if new == 1:
            self._solo_started(t, floor[0])

    def _maybe_interruption(self, t: int, x: str, y: str) -> None:
        sx, sy = self._speakers[x], self._speakers[y]
        since_x = t - sx.ipu_start
        if since_x < sy.rtt_at_onset:
            self.tally.collisions += 1
            self._out.append(
                Classified(
                    "collision", t,
                    {"by": y, "by_role": sy.role, "of": x, "of_role": sx.role,
                     "onset_gap_ms": since_x, "rtt_ms": sy.rtt_at_onset},
                )
            )
        elif since_x >= self._config.int_min_floor_ms:
            self._candidates.append((x, y, t))

    def _resolve(self, t: int) -> None:
        candidates, self._candidates = self._candidates, []
        for x, y, onset in candidates:
            self._resolve_one(t, x, y, onset)

    def _resolve_one(self, t: int, x: str, y: str, onset: int) -> None:
        floor = self._floor
        overlap = t - onset
        if overlap < self._config.int_min_overlap_ms or len(floor) != 1:
            return  # a short overlap, or one resolving into silence: neither (§5)
        if floor[0] == y:
            outcome = "successful"
        elif floor[0] == x:
            outcome = "unsuccessful"
        else:
            return  # resolved into a third speaker
        sx, sy = self._speakers[x], self._speakers[y]
        tally = self.tally
        by = tally.roles[sy.role]
        if outcome == "successful":
            by.successful += 1
            tally.roles[sx.role].interrupted += 1
        else:
            by.unsuccessful += 1
        counts = tally.interruptions.setdefault((sy.role, sx.role), [0, 0])
        counts[0 if outcome == "successful" else 1] += 1
        self._out.append(
            Classified(
                "interruption", onset,
                {"by": y, "by_role": sy.role, "of": x, "of_role": sx.role,
                 "direction": f"{sy.role}_to_{sx.role}", "outcome": outcome,
                 "overlap_ms": overlap},
            )
        )
        self.alerts.interruption(onset, sy.role, sx.role, outcome == "successful")

    def _solo_started(self, t: int, b: str) -> None:
        sb = self._speakers[b]
        onset_b = sb.ipu_start
        tally = self.tally
        a = self._last_solo
        if not a:
            self._start_turn(b, onset_b)
        elif a == b:
            if not self._between_overlap:
                tally.roles[sb.role].pauses.add(t - self._last_solo_end)
            if self._max_silence_between >= self._config.lapse_ms:
                self._end_monologue(a, self._last_solo_offset)
                self._mono_start = onset_b
        else:
            sa = self._speakers[a]
            offset_a = self._last_solo_offset
            overlap = self._between_overlap
            latency = onset_b - offset_a
            corrected = latency - sb.rtt_at_onset
            tally.speaker_changes += 1
            role = tally.roles[sb.role]
            role.latency.add(latency)
            role.corrected_latency.add(corrected)
            if not overlap:
                role.gaps.add(t - self._last_solo_end)
            self._out.append(
                Classified(
                    "speaker_change", onset_b,
                    {"from": a, "from_role": sa.role, "to": b, "to_role": sb.role,
                     "transition": "overlap" if overlap else "gap", "latency_ms": latency,
                     "corrected_latency_ms": corrected},
                )
            )
            self._end_turn(offset_a)
            self._start_turn(b, onset_b)

    def _start_turn(self, pid: str, onset: int) -> None:
        self._turn_pid = pid
        self._turn_start = onset
        self._mono_start = onset
        self.tally.roles[self._speakers[pid].role].turns += 1

    def _end_turn(self, offset: int) -> None:
        pid = self._turn_pid
        if not pid:
            return
        role = self._speakers[pid].role
        tally = self.tally
        tally.roles[role].turn_ms += offset - self._turn_start
        tally.roles[role].completed_turns += 1
        self._end_monologue(pid, offset)
        self._turn_pid = ""

    def _end_monologue(self, pid: str, offset: int) -> None:
        role = self.tally.roles[self._speakers[pid].role]
        length = offset - self._mono_start
        if length > role.longest_monologue_ms:
            role.longest_monologue_ms = length
        self.alerts.monologue_ended(offset, pid)

    # --- end of session ----------------------------------------------------------------------

    def finish(self, end_ms: int) -> None:
        """Process everything, integrate to ``end_ms`` and close the last turn."""
        self.advance(2**62, integrate=False)
        if end_ms > self.t:
            self._integrate(end_ms)
        if self._turn_pid:
            self._end_turn(self._last_solo_offset)
        self.alerts.clear_all(max(end_ms, self.t))

    @property
    def holding(self) -> str:
        """Participant currently holding the floor alone, or ``""``."""
        return self._floor[0] if len(self._floor) == 1 else ""
