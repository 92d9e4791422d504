"""Topic names, keys and partitioning of the streaming pipeline (issue "Streaming workers").

A session is identified by its clinic *and* its id (issue 16: two clinics may use the same
session id and never meet). Every topic is keyed by the *session key*

    <clinic_id> SP <session_id>           e.g. b"c1 s1" (ASCII, one space, 0x20)

which is unambiguous for every valid pair: wire ids are 1..128 printable ASCII characters
without spaces (METRICS.md §9, models/events.py ``_ID_PATTERN``), so the first space is the
only one and splits the key. Every topic has the same partition count, so a session's events,
its state and its outputs live on the same partition number; the partition count bounds how
many workers can share the load. Names are configurable; these are the defaults.

Pure data, below both the Faust adapter (streams/) and the services (ingest, reports, the
embedded broker), so none of them needs Faust or a Kafka client to know a topic's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import ValidationError
from models.events import MAX_ID_LENGTH, is_identifier

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


KEY_SEPARATOR = b" "


def session_key(clinic_id: str, session_id: str) -> bytes:
    """The Kafka key (and worker table key) of a session: ``clinic_id SP session_id``."""
    return f"{clinic_id} {session_id}".encode("ascii")


# Keys already parsed (every event of a record, and every record of a session, has the same
# key): a look-up instead of decoding and matching them again. Cleared when full.
_PARSED: dict[bytes, tuple[str, str]] = {}
_PARSED_MAX = 65_536


def parse_session_key(key: bytes | None) -> tuple[str, str]:
    """``(clinic_id, session_id)`` of a session key; ``ValidationError`` naming ``key`` for a
    missing key, one without a clinic (a bare session id, as keyed before issue 16) or one
    whose parts are not wire ids."""
    parsed = _PARSED.get(key) if type(key) is bytes else None
    if parsed is not None:
        return parsed
    parsed = _parse_session_key(key)
    if type(key) is bytes:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = parsed
    return parsed


def _parse_session_key(key: bytes | None) -> tuple[str, str]:
    if not key:
        raise ValidationError("key", "missing: records are keyed by 'clinic_id session_id'")
    clinic, separator, session = key.partition(KEY_SEPARATOR)
    if not separator:
        raise ValidationError("key", "names no clinic: records are keyed by "
                                     "'clinic_id session_id' (one space between)")
    try:
        clinic_id, session_id = clinic.decode("ascii"), session.decode("ascii")
    except UnicodeDecodeError:
        raise ValidationError("key", "must be printable ASCII") from None
    if not (is_identifier(clinic_id) and is_identifier(session_id)):
        raise ValidationError("key", f"clinic and session ids must each be 1..{MAX_ID_LENGTH} "
                                     "printable ASCII characters, no spaces")
    return clinic_id, session_id
