"""Topic names and partitioning of the streaming pipeline (issue "Streaming workers").

Every topic is keyed by ``session_id`` and has the same partition count, so a session's
events, its state and its outputs live on the same partition number; the partition count
bounds how many workers can share the load. Names are configurable; these are the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.broker import TopicSpec

DEFAULT_PARTITIONS = 8


@dataclass(frozen=True, slots=True)
class Topics:
    events: str = "rapport.events"  # wire v1 in
    quality: str = "rapport.quality"  # periodic per-session snapshots
    alerts: str = "rapport.alerts"  # alert raised / cleared
    reports: str = "rapport.reports"  # final report per session
    dlq: str = "rapport.events.dlq"  # every rejected event, with the reason

    def specs(self, partitions: int = DEFAULT_PARTITIONS) -> list[TopicSpec]:
        """What an embedded broker must pre-create (it would auto-create with 4)."""
        names = (self.events, self.quality, self.alerts, self.reports, self.dlq)
        return [TopicSpec(name, partitions) for name in names]
