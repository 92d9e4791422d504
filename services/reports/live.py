"""The live dashboard's state (issue 5, "Live dashboard"): active sessions, per clinic, with
their latest quality snapshot and recent alerts, fanned out to Server-Sent Events subscribers.

:class:`LiveHub` is fed the workers' output records (models/records.py) by
:class:`~services.reports.live_consumer.LiveConsumer` (or directly, in tests):

- a ``quality`` record replaces the session's :class:`LiveSession` summary: talk share, turns
  and response latency per role, balance index, turns per minute, interruptions, lapses, RTT
  and loss, the session time decided (``event_time_ms``) and its length so far;
- an ``alert`` record (§7, raised or cleared) is added to the session's recent alerts (the
  newest :data:`RECENT_ALERTS`) and its set of active alerts;
- a ``report`` record ends the session (its final report is in the store); so does
  ``idle_timeout_s`` of wall-clock time without records (:meth:`LiveHub.expire`). The topics
  are not ordered with each other, so a session's last updates may be read after its report:
  the hub remembers the newest :data:`ENDED_MEMORY` reported sessions and ignores their
  records.

Only the summary is kept and sent, never the raw snapshot: participant ids (which the
snapshot's quality block is keyed by) never leave the hub, and the alerts' participant ids
are replaced by the store's pseudonyms (``hide``), as everywhere else in the report service.

Taps (:meth:`LiveHub.add_tap`; the therapist's coach, services/reports/coach.py) get every
``quality`` and ``alert`` record the hub takes, raw, and hear of every session it ends.

Subscribers (:meth:`LiveHub.subscribe`) see the sessions of one clinic (``None``: every
clinic, for admin tokens). Each gets its own bounded queue of :class:`LiveEvent`; a
subscriber that falls :data:`QUEUE_LIMIT` events behind is dropped (its stream ends, and an
``EventSource`` reconnects and starts again from a fresh snapshot), so a slow browser never
holds memory or slows the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

RECENT_ALERTS = 5
QUEUE_LIMIT = 1_000
DEFAULT_IDLE_TIMEOUT_S = 120.0
ENDED_MEMORY = 10_000
ROLES = ("therapist", "client", "other")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _dig(data: Any, *path: str) -> Any:
    for step in path:
        data = data.get(step) if isinstance(data, dict) else None
    return data


def summarize(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's figures of a running report (METRICS.md §10 schema, no ids)."""
    found = snapshot.get("roles")
    roles: dict[str, Any] = found if isinstance(found, dict) else {}
    per_role: dict[str, dict[str, Any]] = {}
    for role in [r for r in ROLES if r in roles] + sorted(set(roles) - set(ROLES)):
        figures = roles[role]
        per_role[str(role)] = {
            "talk_share": _number(_dig(figures, "talk_share")),
            "talk_s": _number(_dig(figures, "talk_s")),
            "turns": _number(_dig(figures, "turns")),
            "longest_monologue_s": _number(_dig(figures, "longest_monologue_s")),
            "latency_median_ms": _number(_dig(figures, "response_latency_ms", "median")),
        }
    session = snapshot.get("session") or {}
    return {
        "duration_s": _number(snapshot.get("duration_s")),
        "roles": per_role,
        "balance_index": _number(_dig(session, "balance_index")),
        "turns_per_min": _number(_dig(session, "turns_per_min")),
        "speaker_changes": _number(_dig(session, "speaker_changes")),
        "overlap_s": _number(_dig(session, "overlap_s")),
        "lapses": _number(_dig(session, "lapses", "count")),
        "interruptions": {
            "therapist_to_client": _number(_dig(session, "interruptions",
                                                "therapist_to_client", "successful")),
            "client_to_therapist": _number(_dig(session, "interruptions",
                                                "client_to_therapist", "successful")),
        },
        "rtt_p95_ms": _number(_dig(snapshot, "quality", "rtt_p95_ms")),
        "loss_pct": _number(_dig(snapshot, "quality", "loss_pct")),
        "low_confidence": bool(_dig(snapshot, "quality", "low_confidence")),
    }


@dataclass(slots=True)
class LiveSession:
    """One active session as the dashboard shows it."""

    session_id: str
    clinic_id: str
    event_time_ms: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_ALERTS))
    active_alerts: set[str] = field(default_factory=set)
    updates: int = 0
    updated_at: float = 0.0  # wall clock (epoch s) of the last record
    seen: float = 0.0  # monotonic time of the last record (idle timeout)

    def to_dict(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "clinic_id": self.clinic_id,
                "event_time_ms": self.event_time_ms, "updates": self.updates,
                "updated_at": round(self.updated_at, 3), **self.summary,
                "alerts": list(self.alerts), "active_alerts": sorted(self.active_alerts)}


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One Server-Sent Event: ``kind`` is ``session`` (a session's new state; ``data`` is
    :meth:`LiveSession.to_dict`) or ``ended`` (``session_id``, ``clinic_id``, ``reason``:
    ``report`` or ``idle``). Events carry no hub-wide number: each stream numbers the events
    it sends itself (services/reports/live_pages.py), so a clinic learns nothing of how busy
    the others are (issue 16 finding 9)."""

    kind: str
    clinic_id: str
    data: dict[str, Any]


class Subscription:
    """A subscriber's queue; :meth:`get` returns None once the stream must end (the hub
    closed, or this subscriber fell too far behind)."""

    def __init__(self, clinic: str | None, limit: int) -> None:
        self.clinic = clinic
        self.dropped = False
        self._queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(limit + 1)
        self._limit = limit

    def wants(self, event: LiveEvent) -> bool:
        return self.clinic is None or self.clinic == event.clinic_id

    def offer(self, event: LiveEvent | None) -> bool:
        """Queue ``event``; False (and the stream ends) when the subscriber is behind."""
        if self.dropped:
            return False
        if event is not None and self._queue.qsize() >= self._limit:
            self.dropped = True
            event = None
        self._queue.put_nowait(event)
        return not self.dropped

    async def get(self) -> LiveEvent | None:
        return await self._queue.get()


class RecordTap(Protocol):
    """Something fed the hub's accepted records (before ``hide``: never to be sent as is)."""

    def apply(self, record: dict[str, Any]) -> None: ...

    def end(self, clinic: str, session_id: str, reason: str) -> None: ...


class LiveHub:
    """Active sessions and their subscribers (see the module docstring). Not thread-safe:
    use it from one event loop."""

    def __init__(self, *, idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
                 hide: Callable[[Any], Any] | None = None, queue_limit: int = QUEUE_LIMIT,
                 clock: Callable[[], float] = time.monotonic, feed: str | None = None
                 ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.feed = feed  # where the records come from (a broker), None when nowhere
        self._hide = hide or (lambda value: value)
        self._queue_limit = queue_limit
        self._clock = clock
        # By (clinic_id, session_id): two clinics' sessions of one id are two (issue 16).
        self._sessions: dict[tuple[str, str], LiveSession] = {}
        self._ended: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._subscribers: set[Subscription] = set()
        self._taps: list[RecordTap] = []
        self.closed = False

    def add_tap(self, tap: RecordTap) -> None:
        self._taps.append(tap)

    # --- records in ------------------------------------------------------------------------

    def apply(self, record: dict[str, Any]) -> bool:
        """Take one worker output record; True if the dashboard changed."""
        kind, session_id = record.get("type"), record.get("session_id")
        clinic = record.get("clinic_id")
        if not isinstance(session_id, str) or not isinstance(clinic, str):
            return False
        key = (clinic, session_id)
        if kind == "report":
            return self.end(clinic, session_id, "report")
        if kind not in ("quality", "alert") or key in self._ended:
            return False
        for tap in self._taps:
            tap.apply(record)
        live = self._sessions.get(key)
        if live is None:
            live = self._sessions[key] = LiveSession(session_id, clinic)
        if kind == "quality":
            snapshot = record.get("snapshot")
            if isinstance(snapshot, dict):
                live.summary = summarize(snapshot)
            moment = record.get("event_time_ms")
            if isinstance(moment, int) and (live.event_time_ms is None
                                            or moment >= live.event_time_ms):
                live.event_time_ms = moment
        else:
            self._add_alert(live, record.get("alert"))
        live.updates += 1
        live.updated_at, live.seen = time.time(), self._clock()
        self._publish("session", clinic, live.to_dict())
        return True

    def _add_alert(self, live: LiveSession, alert: Any) -> None:
        if not isinstance(alert, dict) or not isinstance(alert.get("alert"), str):
            return
        shown = self._hide({k: v for k, v in alert.items() if k != "kind"})
        name = str(shown["alert"])
        cleared = name.endswith(".cleared")
        base = name.removesuffix(".cleared")
        shown["alert"], shown["cleared"] = base, cleared
        live.alerts.appendleft(shown)
        (live.active_alerts.discard if cleared else live.active_alerts.add)(base)

    def end(self, clinic: str, session_id: str, reason: str) -> bool:
        """Drop a session (its report arrived, or it went idle); after its report, later
        records of it are ignored (an idle session may come back)."""
        key = (clinic, session_id)
        if reason == "report":
            self._ended[key] = None
            self._ended.move_to_end(key)
            if len(self._ended) > ENDED_MEMORY:
                self._ended.popitem(last=False)
        for tap in self._taps:
            tap.end(clinic, session_id, reason)
        live = self._sessions.pop(key, None)
        if live is None:
            return False
        self._publish("ended", live.clinic_id, {"session_id": session_id,
                                                "clinic_id": live.clinic_id, "reason": reason})
        return True

    def expire(self) -> int:
        """End every session without records for ``idle_timeout_s``; how many ended."""
        limit = self._clock() - self.idle_timeout_s
        idle = [key for key, s in self._sessions.items() if s.seen <= limit]
        for clinic, session_id in idle:
            self.end(clinic, session_id, "idle")
        return len(idle)

    # --- subscribers out -------------------------------------------------------------------

    def sessions(self, clinic: str | None) -> list[dict[str, Any]]:
        """The active sessions ``clinic`` may see (every clinic's for None), by clinic and
        session id."""
        return [s.to_dict() for _, s in sorted(self._sessions.items())
                if clinic is None or s.clinic_id == clinic]

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @contextlib.contextmanager
    def subscribe(self, clinic: str | None) -> Iterator[Subscription]:
        """A subscription for the life of the ``with`` block."""
        subscription = Subscription(clinic, self._queue_limit)
        if self.closed:
            subscription.offer(None)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self.closed = True
        for subscription in list(self._subscribers):
            subscription.offer(None)

    def _publish(self, kind: str, clinic: str, data: dict[str, Any]) -> None:
        event = LiveEvent(kind, clinic, data)
        for subscription in list(self._subscribers):
            if subscription.wants(event) and not subscription.offer(event):
                log.info("live subscriber fell %d events behind; its stream ends",
                         self._queue_limit)
                self._subscribers.discard(subscription)
