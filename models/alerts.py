"""Live alert rules (METRICS.md §7), evaluated on the session clock as the floor sweep advances.

Each rule fires once per episode and clears with a matching ``*.cleared`` event. State is
bounded: the dominance window is integrated in fixed buckets, the burst rule keeps the last
``burst_count`` interruption onsets, the network rule a 60 s window per participant.
"""

from __future__ import annotations

from array import array
from typing import Any

from models.classified import AlertEvent, AlertType
from models.config import AlertRules
from models.quantiles import percentile
from models.state_codec import ints_from_state, ints_to_state


class AlertTracker:
    """Evaluates every §7 rule; appends :class:`AlertEvent` to ``out`` and keeps a log."""

    __slots__ = (
        "_active",
        "_bucket",
        "_dom_speech",
        "_dom_therapist",
        "_net",
        "_out",
        "_recent_bursts",
        "_rules",
        "_sum_speech",
        "_sum_therapist",
        "dropped",
        "log",
        "max_log",
    )

    def __init__(self, rules: AlertRules, out: list[Any], max_log: int) -> None:
        self._rules = rules
        self._out = out
        self.log: list[dict[str, Any]] = []
        self.max_log = max_log
        self.dropped = 0
        self._active: dict[tuple[str, str], int] = {}  # (alert, participant or "") -> log index
        n = rules.dominance_window_ms // rules.dominance_bucket_ms
        # Talk ms per bucket: 16 bits while they fit (a bucket of 10 s with up to six
        # speakers), widened to 64 on overflow (a bucket may be configured up to the whole
        # clock range, times up to 64 speakers: < 2**59). Bounded state per session is the
        # point here.
        self._dom_therapist = array("H", bytes(2 * n))
        self._dom_speech = array("H", bytes(2 * n))
        self._sum_therapist = 0
        self._sum_speech = 0
        self._bucket = -1  # absolute index of the bucket being filled
        self._recent_bursts: list[int] = []  # the last burst_count onsets
        # Per participant: (ts - first ts, rtt ms, loss in 1/1000 % or -1) int64 triples over
        # the window, and the first ts. 64 bits, not 32: two readings of one participant may
        # lie up to the whole clock range apart (2**53 - 1 ms, METRICS.md §9), and 2**31 ms is
        # only 25 days (issue 14: a reading 2**31 ms after the first overflowed "i").
        self._net: dict[str, tuple[int, array[int]]] = {}

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/state_codec.py); rules, limit and ``out`` are the engine's."""
        return [self.log, self.dropped,
                [[alert, key, index] for (alert, key), index in self._active.items()],
                ints_to_state(self._dom_therapist), ints_to_state(self._dom_speech),
                self._sum_therapist, self._sum_speech, self._bucket, self._recent_bursts,
                [[pid, base, ints_to_state(window)] for pid, (base, window) in self._net.items()]]

    @classmethod
    def from_state(cls, state: Any, rules: AlertRules, out: list[Any],
                   max_log: int) -> AlertTracker:
        tracker = cls(rules, out, max_log)
        (tracker.log, tracker.dropped, active, therapist, speech, tracker._sum_therapist,
         tracker._sum_speech, tracker._bucket, tracker._recent_bursts, net) = state
        tracker._active = {(alert, key): index for alert, key, index in active}
        tracker._dom_therapist = ints_from_state(therapist)
        tracker._dom_speech = ints_from_state(speech)
        tracker._net = {pid: (base, ints_from_state(window)) for pid, base, window in net}
        return tracker

    # --- raising / clearing ---------------------------------------------------------------

    def _raise(self, alert: AlertType, ts: int, key: str = "", **detail: Any) -> None:
        if (alert, key) in self._active:
            return
        record = {"type": alert, "ts_ms": ts, "cleared_ms": None, **detail}
        if len(self.log) < self.max_log:
            self._active[(alert, key)] = len(self.log)
            self.log.append(record)
        else:
            self._active[(alert, key)] = -1
            self.dropped += 1
        self._out.append(AlertEvent(alert, False, ts, detail))

    def _clear(self, alert: AlertType, ts: int, key: str = "", **detail: Any) -> None:
        index = self._active.pop((alert, key), None)
        if index is None:
            return
        if index >= 0:
            self.log[index]["cleared_ms"] = ts
        self._out.append(AlertEvent(alert, True, ts, detail))

    def is_active(self, alert: AlertType, key: str = "") -> bool:
        return (alert, key) in self._active

    def clear_all(self, ts: int) -> None:
        """Session over: every open episode ends."""
        for alert, key in sorted(self._active):
            detail = {"participant_id": key} if key else {}
            self._clear(alert, ts, key, **detail)  # type: ignore[arg-type]

    # --- rules ---------------------------------------------------------------------------

    def talk(self, t0: int, t1: int, therapist_speaking: int, speaking: int) -> None:
        """Integrate ``[t0, t1)`` during which ``therapist_speaking`` therapist and ``speaking``
        participants in all talked (therapist_dominance)."""
        rules = self._rules
        if not rules.dominance_enabled:
            return
        width = rules.dominance_bucket_ms
        n = len(self._dom_speech)
        t = t0
        whole = 0  # whole buckets filled by this call, all at the same rate
        while t < t1:
            bucket = t // width
            if whole > n and (t1 - 1) // width > bucket:
                # The window holds nothing but this constant talk: every later boundary before
                # t1 sees the same window and so decides the same. Jump to t1's bucket (a
                # speaking stretch, or one IPU bridged by a large min_pause_ms, may span up to
                # the whole clock range; stepping 10 s buckets through 2**53 ms would not end).
                bucket = (t1 - 1) // width
                self._bucket = bucket - 1
                t = bucket * width
            if bucket != self._bucket:
                self._roll_to(bucket, t)
            if (
                not speaking
                and self._sum_speech == 0
                and not self.is_active("therapist_dominance")
            ):
                # Silence with an empty window: every boundary until t1 would evaluate to
                # nothing, so jump (times may be epoch ms; stepping bucket by bucket would not
                # end). At most one window of buckets is ever stepped through in silence.
                self._bucket = (t1 - 1) // width
                return
            stop = min(t1, (bucket + 1) * width)
            if speaking:
                i = bucket % n
                dt = stop - t
                therapist_ms = self._dom_therapist[i] + dt * therapist_speaking
                speech_ms = self._dom_speech[i] + dt * speaking
                try:
                    self._dom_therapist[i] = therapist_ms
                    self._dom_speech[i] = speech_ms
                except OverflowError:
                    self._widen_buckets()
                    self._dom_therapist[i] = therapist_ms
                    self._dom_speech[i] = speech_ms
                self._sum_therapist += dt * therapist_speaking
                self._sum_speech += dt * speaking
                if dt == width:
                    whole += 1
            t = stop

    def _widen_buckets(self) -> None:
        if self._dom_therapist.typecode == "H":
            self._dom_therapist = array("q", self._dom_therapist)
        if self._dom_speech.typecode == "H":
            self._dom_speech = array("q", self._dom_speech)

    def _roll_to(self, bucket: int, t: int) -> None:
        rules = self._rules
        n = len(self._dom_speech)
        if self._bucket >= 0:
            # Window ending at this bucket boundary is complete: evaluate, then recycle.
            boundary = bucket * rules.dominance_bucket_ms
            self._evaluate_dominance(boundary)
        start = self._bucket + 1 if self._bucket >= 0 else bucket
        for b in range(max(start, bucket - n + 1), bucket + 1):
            i = b % n
            self._sum_therapist -= self._dom_therapist[i]
            self._sum_speech -= self._dom_speech[i]
            self._dom_therapist[i] = 0
            self._dom_speech[i] = 0
        self._bucket = bucket

    def _evaluate_dominance(self, ts: int) -> None:
        rules = self._rules
        speech = self._sum_speech
        share = self._sum_therapist / speech if speech else 0.0
        if speech >= rules.dominance_min_speech_ms and share > rules.dominance_share:
            self._raise("therapist_dominance", ts, talk_share=round(share, 4))
        elif self.is_active("therapist_dominance"):
            self._clear("therapist_dominance", ts, talk_share=round(share, 4))

    def interruption(self, onset_ms: int, by_role: str, of_role: str, successful: bool) -> None:
        rules = self._rules
        if not (rules.burst_enabled and successful):
            return
        if by_role != "therapist" or of_role != "client":
            return
        recent = self._recent_bursts
        recent.append(onset_ms)
        if len(recent) > rules.burst_count:
            del recent[0]
        self.tick(onset_ms)

    def tick(self, now_ms: int) -> None:
        """Time-driven rules (burst window expiry)."""
        rules = self._rules
        if not rules.burst_enabled:
            return
        recent = self._recent_bursts
        full = len(recent) >= rules.burst_count
        if full and now_ms - recent[0] <= rules.burst_window_ms:
            self._raise("interruption_burst", now_ms, count=len(recent))
        elif self.is_active("interruption_burst") and (
            not full or now_ms - recent[0] > rules.burst_window_ms
        ):
            expiry = recent[0] + rules.burst_window_ms + 1 if full else now_ms
            self._clear("interruption_burst", min(expiry, now_ms))

    def monologue(self, start_ms: int, holding_until_ms: int, participant_id: str) -> None:
        rules = self._rules
        if rules.monologue_enabled and holding_until_ms - start_ms > rules.monologue_ms:
            self._raise(
                "long_monologue", start_ms + rules.monologue_ms, participant_id,
                participant_id=participant_id, monologue_start_ms=start_ms,
            )

    def monologue_ended(self, end_ms: int, participant_id: str) -> None:
        if self.is_active("long_monologue", participant_id):
            self._clear("long_monologue", end_ms, participant_id, participant_id=participant_id)

    def silence(self, start_ms: int, now_ms: int) -> None:
        rules = self._rules
        if rules.silence_enabled and now_ms - start_ms > rules.silence_ms:
            self._raise("long_silence", start_ms + rules.silence_ms, silence_start_ms=start_ms)

    def silence_ended(self, end_ms: int) -> None:
        if self.is_active("long_silence"):
            self._clear("long_silence", end_ms)

    def network(self, participant_id: str, ts: int, rtt_ms: int, loss_milli: int) -> None:
        """A reading: RTT (ms) and ``loss_pct`` in 1/1000 % (-1 when not reported)."""
        rules = self._rules
        if not rules.network_enabled:
            return
        entry = self._net.get(participant_id)
        if entry is None:
            entry = self._net[participant_id] = (ts, array("q"))
        base, window = entry
        window.extend((ts - base, rtt_ms, loss_milli))
        expired = 0
        while expired < len(window) and window[expired] <= ts - base - rules.network_window_ms:
            expired += 3
        if expired:
            del window[:expired]
        rtt_p95 = percentile(window[1::3], 0.95)
        reported = [loss / 1000 for loss in window[2::3] if loss >= 0]
        loss = sum(reported) / len(reported) if reported else 0.0
        detail = {"participant_id": participant_id, "rtt_p95_ms": round(rtt_p95, 1),
                  "loss_pct": round(loss, 2)}
        if rtt_p95 > rules.network_rtt_p95_ms or loss > rules.network_loss_pct:
            self._raise("network_degraded", ts, participant_id, **detail)
        elif self.is_active("network_degraded", participant_id):
            self._clear("network_degraded", ts, participant_id, **detail)
