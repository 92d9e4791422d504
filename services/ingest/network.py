"""``network`` events from aiortc's RTCP statistics (METRICS.md §4/§9: the engine needs each
participant's round trip for collisions and corrected latency).

- **jitter** and **loss** come from the inbound RTP stream (``inbound-rtp``: RFC 3550
  interarrival jitter in RTP timestamp units, cumulative packets received and lost); loss is
  reported per interval, as a percentage of the packets expected in it.
- **RTT** needs RTCP reports about packets *we* send: the browser's receiver reports on our
  sender reports (``remote-inbound-rtp.roundTripTime``). That is why the ingest answers a
  ``sendrecv`` offer with a silent track of its own (``IngestConfig.rtt_probe``): a receive-only
  endpoint gets no RTT from RTCP. Without it, no ``network`` event is published (``rtt_ms`` is
  required): the engine then treats the round trip as unknown (0), never as a made-up number.

**Order** (:class:`ReadingOrder`). A reading is stamped with the ingest's clock when it is
taken, while a participant's frames are published once the media has reached them, which
trails that clock by a batch and the hold (about 1.5 s) in normal running, and by as long as
the ingest is behind its incoming packets when its event loop stalls (something else in
the process holding it). The engine rejects an event whose known time is more than
``allowed_lateness_ms`` (5000 by default) behind the session's newest (METRICS.md §9), so
readings published ahead of frames over 5 s behind them made those frames late: the likely
cause of a browser test's intermittent CI failure (both participants' first 11 s
dead-lettered), which holding the ingest's event loop reproduces. So each
reading waits until the participant's published frames reach to within
:data:`MAX_LEAD_MS` of it; a participant whose media has not started publishes its readings at
once (there are no frames to keep order with).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# The most a network reading may lead its participant's published frames (ms): well under the
# engine's default allowed lateness (5000), above what frames trail the clock by in normal
# running (a 1 s batch, the 200 ms hold, a 250 ms tick).
MAX_LEAD_MS = 2500
# Readings held at most (one per 5 s: ten minutes); past it the oldest goes out anyway, so a
# participant whose frames stop for good cannot hold memory without bound.
MAX_HELD = 120


@dataclass(slots=True)
class NetworkSampler:
    """Turns successive stats reports of one peer into ``network`` events."""

    session_id: str
    participant_id: str
    clock_rate: int = 48_000
    _received: int = 0
    _lost: int = 0

    def sample(self, stats: Iterable[Any], now_ms: int) -> dict[str, Any] | None:
        """The event for this report (``stats``: aiortc stats objects), or None without RTT."""
        rtt_s: float | None = None
        jitter: float | None = None
        received = lost = None
        for item in stats:
            kind = getattr(item, "type", None)
            if kind == "remote-inbound-rtp" and getattr(item, "roundTripTime", None):
                rtt_s = float(item.roundTripTime)
            elif kind == "inbound-rtp" and getattr(item, "kind", "audio") == "audio":
                jitter = float(item.jitter) * 1000.0 / self.clock_rate
                received, lost = int(item.packetsReceived), int(item.packetsLost)
        loss_pct: float | None = None
        if received is not None and lost is not None:
            new_received = max(received - self._received, 0)
            new_lost = max(lost - self._lost, 0)
            self._received, self._lost = received, lost
            expected = new_received + new_lost
            loss_pct = round(100.0 * new_lost / expected, 2) if expected else 0.0
        if rtt_s is None:
            return None
        event: dict[str, Any] = {
            "type": "network", "session_id": self.session_id,
            "participant_id": self.participant_id, "ts_ms": now_ms,
            "rtt_ms": round(min(rtt_s * 1000.0, 60_000.0), 1)}
        if jitter is not None:
            event["jitter_ms"] = round(min(jitter, 60_000.0), 1)
        if loss_pct is not None:
            event["loss_pct"] = min(loss_pct, 100.0)
        return event


@dataclass(slots=True)
class ReadingOrder:
    """One participant's network readings, held until its published frames catch up (see
    "Order" in the module docstring). Each method returns the readings now due, in order."""

    max_lead_ms: int = MAX_LEAD_MS
    max_held: int = MAX_HELD
    frames_through_ms: int | None = None  # the end of the participant's last published frame
    _held: deque[dict[str, Any]] = field(default_factory=deque)

    def reading(self, event: dict[str, Any], media_started: bool) -> list[dict[str, Any]]:
        """A new reading (a ``network`` event); ``media_started``: the participant's first
        packet has arrived, so frames will follow."""
        if not media_started and self.frames_through_ms is None and not self._held:
            return [event]
        self._held.append(event)
        return self._due()

    def frames(self, end_ms: int) -> list[dict[str, Any]]:
        """The participant's frames are published up to ``end_ms``."""
        if self.frames_through_ms is None or end_ms > self.frames_through_ms:
            self.frames_through_ms = end_ms
        return self._due()

    def flush(self) -> list[dict[str, Any]]:
        """Everything held (the participant leaves: its last frames are published)."""
        out = list(self._held)
        self._held.clear()
        return out

    @property
    def held(self) -> int:
        return len(self._held)

    def _due(self) -> list[dict[str, Any]]:
        out = []
        held, through = self._held, self.frames_through_ms
        while held and (len(held) > self.max_held or (
                through is not None and held[0]["ts_ms"] <= through + self.max_lead_ms)):
            out.append(held.popleft())
        return out
