"""The therapist's private coach (issue 18, contract §5; docs/sdk.md "Coach"): what the coach
stream shows, derived per session from the workers' live ``quality`` and ``alert`` records
(models/records.py) as :class:`~services.reports.live.LiveHub` receives them.

Each ``quality`` record updates a session's :class:`CoachView`, whose :meth:`CoachView.to_dict`
is the ``coach`` event ``{"session_id", "at_ms", "talk_share_10min", "monologue_s",
"interruptions_made", "client_longest_uninterrupted_s", "nudges"}``:

- ``at_ms``: the record's ``event_time_ms``, how far the live numbers run (session clock, §1).
- ``talk_share_10min``: the therapist's share of all talk (§6 ``talk_share``, backchannels
  included, group roles summed) over the last 10 minutes, the window of §7
  ``therapist_dominance``. The snapshot carries cumulative ``talk_s`` per role; the coach keeps
  them per update, and the share is ``ΔT / Δall`` between the newest update and the newest one
  at least 10 min older (the session start while the session is shorter than that); ``null``
  when nobody spoke in the window. The history keeps one update per :data:`STEP_MS` (5 s, the
  workers' default snapshot interval), so the window's start is exact to 5 s.
- ``monologue_s``: the length of the therapist's current monologue (§4: a turn, split at mutual
  silences >= ``lapse_ms``), 0 when there is none. From the final ``ipu`` events (backchannels
  left out): a therapist IPU starts a new monologue unless it follows the therapist's previous
  one within ``lapse_ms`` with no other participant's IPU reaching past the therapist's last
  offset in between (the floor changed). The therapist last spoke at the later of that
  monologue's last IPU end and the newest update at which the therapist's live ``talk_s``
  grew; the monologue is current while less than ``lapse_ms`` has passed since then, and runs
  from its first IPU's start to then. Final IPUs lag the live numbers by the lateness
  allowance, so a monologue begun after another speaker shows only once its first IPU is final.
- ``interruptions_made``: the therapist's ``interruptions_made`` of the snapshot (§5, §6),
  successful plus unsuccessful; ``null`` when the source cannot see overlaps (§1 exclusive).
- ``client_longest_uninterrupted_s``: the client role's ``longest_monologue_s`` of the snapshot
  (§4/§6): its longest stretch of speech that no speaker change and no long silence cut.
- ``nudges``: the §7 alerts that started or ended with this update, each ``{"kind", "state":
  "started" | "ended", "text"}`` in plain language; a view sent on connection lists the alerts
  active now as started. ``long_monologue`` counts only for the therapist's own monologues.

No participant id ever leaves this module. State is kept per (clinic, session) and dropped when
the session's report arrives or it goes idle (the hub's rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

WINDOW_MS = 600_000  # §7 therapist_dominance: the last 10 minutes
STEP_MS = 5_000  # talk history kept at most one entry per this much session time
LAPSE_MS = 3_000  # §4 lapse_ms default: a mutual silence this long ends a monologue
QUEUE_LIMIT = 100

# Plain language (METRICS.md §7 interpretations; docs/metrics.md): started, ended.
NUDGES: dict[str, tuple[str, str]] = {
    "therapist_dominance": (
        "You have done most of the talking in the last 10 minutes. Consider leaving more "
        "room for your client.",
        "The talk is more balanced again."),
    "interruption_burst": (
        "You have interrupted your client several times in the last few minutes.",
        "No more interruptions in the last few minutes."),
    "long_monologue": (
        "You have been speaking for a long stretch. Your client may want to come in.",
        "Your long stretch of speaking has ended."),
    "long_silence": (
        "There has been a long silence. Silence can be therapeutic: this is only for your "
        "awareness.",
        "The silence has ended."),
    "network_degraded": (
        "The connection is poor (delay or loss). You may talk over each other without "
        "meaning to.",
        "The connection has recovered."),
}

Key = tuple[str, str]  # (clinic_id, session_id)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _dig(data: Any, *path: str) -> Any:
    for step in path:
        data = data.get(step) if isinstance(data, dict) else None
    return data


def nudge(kind: str, started: bool) -> dict[str, str]:
    texts = NUDGES.get(kind, (f"{kind} started.", f"{kind} ended."))
    return {"kind": kind, "state": "started" if started else "ended",
            "text": texts[0] if started else texts[1]}


@dataclass(slots=True)
class CoachView:
    """One session's coach state (see the module docstring for each number)."""

    session_id: str
    clinic_id: str
    lapse_ms: int = LAPSE_MS
    window_ms: int = WINDOW_MS
    at_ms: int | None = None
    talk: deque[tuple[int, float, float]] = field(default_factory=deque)  # (t, T, all)
    therapist_talk_s: float = 0.0
    talk_grew_ms: int | None = None  # the newest update at which the therapist's talk grew
    mono_start: int | None = None
    mono_end: int | None = None
    floor_taken: bool = False  # another participant spoke past the therapist's last offset
    interruptions_made: float | None = None
    client_longest_s: float | None = None
    roles: dict[str, str] = field(default_factory=dict)  # participant id -> role (never sent)
    active: set[str] = field(default_factory=set)

    # --- records in ------------------------------------------------------------------------

    def quality(self, record: dict[str, Any]) -> None:
        events = record.get("events")
        for item in sorted((e for e in events if isinstance(e, dict)) if isinstance(
                events, list) else [], key=lambda e: _number(e.get("n")) or 0):
            if item.get("kind") == "ipu":
                self._ipu(item)
        snapshot = record.get("snapshot")
        moment = record.get("event_time_ms")
        if not isinstance(snapshot, dict) or not isinstance(moment, int) \
                or (self.at_ms is not None and moment < self.at_ms):
            return
        self.at_ms = moment
        roles = snapshot.get("roles") if isinstance(snapshot.get("roles"), dict) else {}
        assert isinstance(roles, dict)
        therapist = _number(_dig(roles, "therapist", "talk_s")) or 0.0
        everyone = sum(_number(_dig(figures, "talk_s")) or 0.0 for figures in roles.values())
        if therapist > self.therapist_talk_s:
            self.talk_grew_ms = moment
        self.therapist_talk_s = therapist
        if len(self.talk) >= 2 and moment - self.talk[-2][0] < STEP_MS:
            self.talk[-1] = (moment, therapist, everyone)  # bounded: one per STEP_MS
        else:
            self.talk.append((moment, therapist, everyone))
        while len(self.talk) > 1 and self.talk[1][0] <= moment - self.window_ms:
            self.talk.popleft()  # keep one update at least a window old, as the baseline
        made = _dig(roles, "therapist", "interruptions_made")
        counts = [_number(made.get(k)) for k in ("successful", "unsuccessful")] \
            if isinstance(made, dict) else [None]
        self.interruptions_made = None if all(c is None for c in counts) \
            else sum(c or 0.0 for c in counts)
        self.client_longest_s = _number(_dig(roles, "client", "longest_monologue_s"))

    def _ipu(self, item: dict[str, Any]) -> None:
        start, end, role = item.get("start_ms"), item.get("end_ms"), item.get("role")
        participant = item.get("participant_id")
        if isinstance(participant, str) and isinstance(role, str):
            self.roles[participant] = role
        if not isinstance(start, int) or not isinstance(end, int) or item.get("backchannel"):
            return
        if role == "therapist":
            if self.mono_start is None or self.mono_end is None or self.floor_taken \
                    or start - self.mono_end >= self.lapse_ms:
                self.mono_start, self.mono_end, self.floor_taken = start, end, False
            else:
                self.mono_end = max(self.mono_end, end)
        elif self.mono_end is not None and end > self.mono_end:
            self.floor_taken = True

    def alert(self, alert: Any) -> dict[str, str] | None:
        """The nudge of an alert record's ``alert`` (None when it is not one for the coach)."""
        if not isinstance(alert, dict) or not isinstance(alert.get("alert"), str):
            return None
        name = alert["alert"]
        cleared = name.endswith(".cleared")
        kind = name.removesuffix(".cleared")
        participant = alert.get("participant_id")
        if kind == "long_monologue" and self.roles.get(str(participant)) != "therapist":
            return None  # a client's long narrative is nothing to nudge about
        if cleared == (kind not in self.active):
            return None  # a repeat (at-least-once delivery): once per episode
        (self.active.discard if cleared else self.active.add)(kind)
        return nudge(kind, not cleared)

    # --- numbers out -----------------------------------------------------------------------

    def talk_share_10min(self) -> float | None:
        if not self.talk:
            return None
        now, therapist, everyone = self.talk[-1]
        base = self.talk[0] if self.talk[0][0] <= now - self.window_ms else (now, 0.0, 0.0)
        spoken = everyone - base[2]
        if spoken <= 0:
            return None
        return round(min(max((therapist - base[1]) / spoken, 0.0), 1.0), 4)

    def monologue_s(self) -> float:
        if self.mono_start is None or self.mono_end is None or self.floor_taken \
                or self.at_ms is None:
            return 0.0
        spoke = max(self.mono_end, self.talk_grew_ms or self.mono_end)
        if self.at_ms - spoke >= self.lapse_ms:
            return 0.0
        return (spoke - self.mono_start) / 1000

    def to_dict(self, nudges: list[dict[str, str]] | None = None) -> dict[str, Any]:
        return {"session_id": self.session_id, "at_ms": self.at_ms,
                "talk_share_10min": self.talk_share_10min(),
                "monologue_s": round(self.monologue_s(), 3),
                "interruptions_made": self.interruptions_made,
                "client_longest_uninterrupted_s": self.client_longest_s,
                "nudges": nudges if nudges is not None
                else [nudge(kind, True) for kind in sorted(self.active)]}


class CoachSubscription:
    """One coach stream's queue; :meth:`get` returns None when the stream must end."""

    def __init__(self, key: Key, limit: int) -> None:
        self.key = key
        self.dropped = False
        self._limit = limit
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(limit + 1)

    def offer(self, event: dict[str, Any] | None) -> bool:
        """Queue ``event``; False (and the stream ends) when the subscriber is behind."""
        if self.dropped:
            return False
        if event is not None and self._queue.qsize() >= self._limit:
            self.dropped, event = True, None
        self._queue.put_nowait(event)
        return not self.dropped

    async def get(self) -> dict[str, Any] | None:
        return await self._queue.get()


class CoachHub:
    """Coach views of the live sessions, fed by a :class:`LiveHub` (``hub.add_tap``), and
    their subscribers. Not thread-safe: use it from one event loop."""

    def __init__(self, *, lapse_ms: int = LAPSE_MS, window_ms: int = WINDOW_MS,
                 queue_limit: int = QUEUE_LIMIT) -> None:
        self.lapse_ms = lapse_ms
        self.window_ms = window_ms
        self._queue_limit = queue_limit
        self._views: dict[Key, CoachView] = {}
        self._subscribers: set[CoachSubscription] = set()
        self.closed = False

    def apply(self, record: dict[str, Any]) -> None:
        """Take one ``quality`` or ``alert`` record (others are ignored)."""
        kind, session_id, clinic = (record.get("type"), record.get("session_id"),
                                    record.get("clinic_id"))
        if kind not in ("quality", "alert") or not isinstance(session_id, str) \
                or not isinstance(clinic, str):
            return
        key = (clinic, session_id)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = CoachView(session_id, clinic, self.lapse_ms,
                                                self.window_ms)
        if kind == "quality":
            view.quality(record)
            self._publish(key, view.to_dict([]))
        else:
            moved = view.alert(record.get("alert"))
            if moved is not None:
                self._publish(key, view.to_dict([moved]))

    def end(self, clinic: str, session_id: str, reason: str) -> None:
        """The session's report arrived (or it went idle): its state is dropped."""
        self._views.pop((clinic, session_id), None)

    def view(self, clinic: str, session_id: str) -> dict[str, Any]:
        """The coach event for a new stream: the session's numbers now (empty when it has
        none yet) and its active alerts as nudges."""
        found = self._views.get((clinic, session_id))
        return (found or CoachView(session_id, clinic)).to_dict()

    @contextlib.contextmanager
    def subscribe(self, clinic: str, session_id: str) -> Iterator[CoachSubscription]:
        subscription = CoachSubscription((clinic, session_id), self._queue_limit)
        if self.closed:
            subscription.offer(None)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    def close(self) -> None:
        self.closed = True
        for subscription in list(self._subscribers):
            subscription.offer(None)

    def _publish(self, key: Key, data: dict[str, Any]) -> None:
        for subscription in [s for s in self._subscribers if s.key == key]:
            if not subscription.offer(data):
                log.info("coach subscriber fell %d events behind; its stream ends",
                         self._queue_limit)
                self._subscribers.discard(subscription)
