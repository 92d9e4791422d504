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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


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
