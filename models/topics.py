"""Topic names and partitioning of the streaming pipeline (issue "Streaming workers").

Every topic is keyed by ``session_id`` and has the same partition count, so a session's
events, its state and its outputs live on the same partition number; the partition count
bounds how many workers can share the load. Names are configurable; these are the defaults.

Pure data, below both the Faust adapter (streams/) and the services (ingest, reports, the
embedded broker), so none of them needs Faust or a Kafka client to know a topic's name.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PARTITIONS = 8
DEFAULT_APP_ID = "rapport"
SESSIONS_TABLE = "sessions"  # per-session engine state (changelog-backed Faust table)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create, with its partition count (services/broker.py pre-creates them)."""

    name: str
    partitions: int
    replication: int = 1


@dataclass(frozen=True, slots=True)
class Topics:
    events: str = "rapport.events"  # wire v1 in
    quality: str = "rapport.quality"  # live per-session snapshots and classified events
    alerts: str = "rapport.alerts"  # alert raised / cleared
    reports: str = "rapport.reports"  # final report per session
    dlq: str = "rapport.events.dlq"  # every rejected event, with the reason

    def outputs(self) -> dict[str, str]:
        """Output role (as in ``models.processor.OutputRecord.topic``) -> topic name."""
        return {"quality": self.quality, "alerts": self.alerts, "reports": self.reports,
                "dlq": self.dlq}

    def specs(self, partitions: int = DEFAULT_PARTITIONS,
              app_id: str = DEFAULT_APP_ID) -> list[TopicSpec]:
        """Every topic a worker group needs, Faust's table changelog included: what an
        embedded broker must pre-create (it would auto-create with 4 partitions, and Faust
        refuses a changelog whose partition count differs from its source topic's)."""
        names = (self.events, self.quality, self.alerts, self.reports, self.dlq,
                 changelog_topic(app_id))
        return [TopicSpec(name, partitions) for name in names]


def changelog_topic(app_id: str = DEFAULT_APP_ID) -> str:
    """Faust's name for the sessions table's changelog."""
    return f"{app_id}-{SESSIONS_TABLE}-changelog"
