"""Per-token limits of the ingest (issue 16, finding 10): open sessions and event rate.

One ingest token once opened 10,000 sessions in one 0.9 MB request, and every worker held
their state until the idle timeout (METRICS.md §1). Two limits per token bound what one
client can cost, within this ingest process:

- **open sessions**: the ``session.start`` events accepted for the token, less the sessions
  it ended (``session.end``), less those without any event of the token for ``idle_s``
  (the workers close those by their idle timeout too). A request that would leave more than
  ``max_open_sessions`` open is refused whole;
- **event rate**: a token bucket of ``burst`` events refilled at ``events_per_s``; a request
  of ``n`` events takes ``n`` tokens, or is refused whole when fewer are left.

A refusal (:class:`LimitExceeded`) names the limit and how long to wait; the routes answer it
``429`` with ``Retry-After`` (HTTP) or an ack of status 429 (WebSocket). The clock is an
argument so the arithmetic is testable without sleeping; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

OPEN_SESSIONS = "max_open_sessions_per_token"
EVENT_RATE = "events_per_s_per_token"


@dataclass(frozen=True, slots=True)
class LimitExceeded:
    """A request refused by a per-token limit: ``limit`` names it (the setting's name),
    ``retry_after_s`` is a whole number of seconds >= 1 after which it may pass."""

    limit: str
    message: str
    retry_after_s: int


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


@dataclass(slots=True)
class _Bucket:
    level: float
    at: float


@dataclass(slots=True)
class _Sessions:
    last_seen: dict[str, float] = field(default_factory=dict)  # session id -> clock


class TokenLimits:
    """The open sessions and event buckets of every token seen by this process.

    Memory is bounded by the tokens that exist (each verified before it gets here) times
    ``max_open_sessions``."""

    def __init__(self, *, max_open_sessions: int, events_per_s: float, burst: int,
                 idle_s: float, clock: Callable[[], float]) -> None:
        if max_open_sessions < 1:
            raise ValueError(f"{OPEN_SESSIONS}: must be at least 1, got {max_open_sessions}")
        if events_per_s <= 0 or burst < 1:
            raise ValueError(f"{EVENT_RATE}: rate must be > 0 and burst >= 1, got "
                             f"{events_per_s} and {burst}")
        if idle_s <= 0:
            raise ValueError(f"idle_s: must be > 0, got {idle_s}")
        self.max_open_sessions = max_open_sessions
        self.events_per_s = events_per_s
        self.burst = burst
        self.idle_s = idle_s
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._sessions: dict[str, _Sessions] = {}

    # -- event rate -------------------------------------------------------------------------

    def take_events(self, token: str, count: int) -> LimitExceeded | None:
        """Take ``count`` events from the token's bucket, or refuse (taking none)."""
        now = self.clock()
        bucket = self._buckets.get(token)
        if bucket is None:
            bucket = self._buckets[token] = _Bucket(float(self.burst), now)
        elapsed = max(0.0, now - bucket.at)
        bucket.level = min(float(self.burst), bucket.level + elapsed * self.events_per_s)
        bucket.at = now
        if count <= bucket.level:
            bucket.level -= count
            return None
        if count > self.burst:
            wait = (self.burst - bucket.level) / self.events_per_s
            return LimitExceeded(EVENT_RATE, f"{count} events in one request, more than this "
                                 f"token's burst of {self.burst}; send smaller batches",
                                 _whole_seconds(wait))
        wait = (count - bucket.level) / self.events_per_s
        return LimitExceeded(EVENT_RATE, f"more than {self.events_per_s:g} events/s (burst "
                             f"{self.burst}) for this token; retry later", _whole_seconds(wait))

    # -- open sessions ----------------------------------------------------------------------

    def _expire(self, sessions: _Sessions, now: float) -> None:
        horizon = now - self.idle_s
        for session_id in [s for s, t in sessions.last_seen.items() if t <= horizon]:
            del sessions.last_seen[session_id]

    def open_count(self, token: str) -> int:
        """Sessions open for ``token`` now (after expiring the idle ones)."""
        sessions = self._sessions.get(token)
        if sessions is None:
            return 0
        self._expire(sessions, self.clock())
        return len(sessions.last_seen)

    def reserve(self, token: str, started: Iterable[str],
                ended: Iterable[str] = ()) -> LimitExceeded | frozenset[str]:
        """Check one request of ``token`` that starts ``started`` and ends ``ended``: refused
        (nothing changed) when more than ``max_open_sessions`` would be open afterwards;
        otherwise the sessions it newly starts are reserved at once, so concurrent requests
        cannot overshoot, and returned. After the request is accepted call :meth:`commit`;
        when it is not (broker error), :meth:`release` the reservation."""
        now = self.clock()
        sessions = self._sessions.setdefault(token, _Sessions())
        self._expire(sessions, now)
        open_ids = sessions.last_seen
        ended_ids = set(ended)
        new = frozenset(s for s in started if s not in open_ids and s not in ended_ids)
        closing = sum(1 for s in ended_ids if s in open_ids)
        after = len(open_ids) + len(new) - closing
        if new and after > self.max_open_sessions:
            oldest = min(open_ids.values(), default=now)
            if not open_ids:
                del self._sessions[token]
            return LimitExceeded(
                OPEN_SESSIONS, f"{after} open sessions, more than this token's limit of "
                f"{self.max_open_sessions}; end sessions (session.end) or wait for idle ones "
                "to expire", _whole_seconds(oldest + self.idle_s - now))
        for session_id in new:
            open_ids[session_id] = now
        return new

    def commit(self, token: str, ended: Iterable[str], seen: Iterable[str] = ()) -> None:
        """An accepted request: its ended sessions close; the idle clock of the token's open
        sessions it has events of (``seen``) restarts."""
        sessions = self._sessions.get(token)
        if sessions is None:
            return
        now = self.clock()
        open_ids = sessions.last_seen
        for session_id in seen:
            if session_id in open_ids:
                open_ids[session_id] = now
        for session_id in ended:
            open_ids.pop(session_id, None)
        if not open_ids:
            del self._sessions[token]

    def release(self, token: str, reserved: Iterable[str]) -> None:
        """Undo a reservation of a request that was not accepted after all."""
        sessions = self._sessions.get(token)
        if sessions is None:
            return
        for session_id in reserved:
            sessions.last_seen.pop(session_id, None)
        if not sessions.last_seen:
            del self._sessions[token]
