"""A session as the streaming workers hold it: the engine plus the bookkeeping that makes
at-least-once delivery give exactly-once results (issue "Streaming workers").

Both classes are what a worker persists (checkpointed, see :mod:`models.checkpoint`) in its
changelog-backed table, one entry per session, keyed by its session key (``clinic_id
session_id``, models/topics.py; the checkpoint itself is unchanged, the key says the clinic):

- :class:`StreamSession` while the session is open. ``(last_offset, last_index)`` is the newest
  input position already applied (record offset, and event index within a multi-event
  record): an event redelivered after a crash (at or before that position, same partition) is
  skipped, because its effect is already in the restored state.
- :class:`ClosedSession` once the final report is published: a small marker so a redelivered
  event neither reopens the session nor publishes its report twice.

A persisted entry that cannot be restored (:class:`~models.checkpoint.CheckpointError`: not a
checkpoint, another format version, corrupt bytes) is handed to the processor as an
:class:`UnreadableState`: the session is dead-lettered and closed as ``unreportable``, so one
bad entry never stops a worker from taking its partition over (issue 15, point 4).

The marker is written right after the report is on the broker, so a worker that dies between
the two leaves an open state behind whose report is already published. Each report record
therefore carries the input position it covers (header :data:`REPORT_POSITION_HEADER`), and a
worker taking a partition over reads the reports published since the table's last watermark
(:class:`PublishedReport`) and closes such sessions without publishing again
(:func:`reconcile`; docs/streaming.md, "Delivery guarantees").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast, get_args

import orjson

from models import checkpoint
from models.errors import ValidationError
from models.session import SessionEngine
from models.topics import parse_session_key

EndedBy = Literal["session.end", "idle_timeout", "unreportable"]

# Kafka header of a report record: "partition:offset:index" of the newest input it covers.
REPORT_POSITION_HEADER = "rapport-input"


@dataclass(slots=True)
class StreamSession:
    engine: SessionEngine
    partition: int
    last_offset: int = -1  # newest applied input offset on ``partition``
    last_index: int = -1  # ... and event index within that record
    last_record_ms: int = 0  # stream time of the newest input (idle timeout)
    end_record_ms: int | None = None  # stream time session.end was accepted at (grace)
    next_snapshot_ms: int | None = None  # session clock: next periodic quality update
    next_n: int = 0  # ordinal of the next classified event published for this session

    CHECKPOINT_KIND: ClassVar[str] = "open"

    @property
    def session_id(self) -> str:
        return self.engine.session_id

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/checkpoint.py)."""
        return [self.engine.to_state(), self.partition, self.last_offset, self.last_index,
                self.last_record_ms, self.end_record_ms, self.next_snapshot_ms, self.next_n]

    @classmethod
    def from_state(cls, state: Any) -> StreamSession:
        engine, *rest = state
        return cls(SessionEngine.from_state(engine), *rest)

    def replayed(self, partition: int, offset: int, index: int = 0) -> bool:
        """Whether this input was already applied (a redelivery after a restart)."""
        return partition == self.partition and (offset, index) <= (self.last_offset,
                                                                     self.last_index)


@dataclass(frozen=True, slots=True)
class ClosedSession:
    session_id: str
    partition: int
    last_offset: int
    last_index: int
    closed_record_ms: int  # stream time the report was published at (retention)
    ended_by: EndedBy

    CHECKPOINT_KIND: ClassVar[str] = "closed"

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/checkpoint.py)."""
        return [self.session_id, self.partition, self.last_offset, self.last_index,
                self.closed_record_ms, self.ended_by]

    @classmethod
    def from_state(cls, state: Any) -> ClosedSession:
        closed = cls(*state)
        if closed.ended_by not in get_args(EndedBy):
            raise ValueError(f"ended_by {closed.ended_by!r}")
        return closed

    def replayed(self, partition: int, offset: int, index: int = 0) -> bool:
        return partition == self.partition and (offset, index) <= (self.last_offset,
                                                                     self.last_index)


SessionState = StreamSession | ClosedSession


def load_state(data: bytes) -> SessionState:
    """Restore a persisted session state (raises ``CheckpointError`` on anything else)."""
    return cast(SessionState, checkpoint.load(data, (StreamSession, ClosedSession)))


@dataclass(frozen=True, slots=True)
class UnreadableState:
    """A session's persisted entry that :func:`load_state` refused: its session key
    (``clinic_id session_id``), the partition it was persisted for, the bytes as found and why
    they cannot be read."""

    key: str
    partition: int
    data: bytes
    error: str

    @property
    def digest(self) -> str:
        """SHA-256 of the bytes (hex): names the entry in logs and the dead-letter record."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True, slots=True)
class PublishedReport:
    """A final report found on the reports topic, as much of it as closing its session takes:
    its session key (the record's key), the input position it covers and when it was
    published (record timestamp, ms)."""

    key: str
    session_id: str
    partition: int
    last_offset: int
    last_index: int
    published_ms: int
    ended_by: EndedBy

    @classmethod
    def parse(cls, value: bytes, headers: Sequence[tuple[str, bytes]],
              timestamp_ms: int, key: bytes | None) -> PublishedReport | None:
        """The report in a record of the reports topic, or ``None`` for a record this worker
        cannot use (published by a version without the position header or the clinic in its
        key, or not a report)."""
        position = next((v for k, v in headers if k == REPORT_POSITION_HEADER), None)
        if position is None:
            return None
        try:
            partition, offset, index = (int(part) for part in position.split(b":"))
            record = orjson.loads(value)
            session_id, ended_by = record["session_id"], record["ended_by"]
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None
        if not isinstance(session_id, str) or ended_by not in get_args(EndedBy):
            return None
        try:
            clinic_id, keyed = parse_session_key(key)
        except ValidationError:
            return None
        if keyed != session_id:
            return None
        return cls(f"{clinic_id} {session_id}", session_id, partition, offset, index,
                   timestamp_ms, ended_by)


def report_position(session: StreamSession) -> bytes:
    """The value of :data:`REPORT_POSITION_HEADER` for ``session``'s final report."""
    return b"%d:%d:%d" % (session.partition, session.last_offset, session.last_index)


Keyed = tuple[str, SessionState]  # (session key, state)


def reconcile(states: Iterable[Keyed], published: Mapping[str, PublishedReport],
              ) -> tuple[list[Keyed], list[Keyed]]:
    """A partition's restored states with every published report's session closed:
    ``(states, markers to write)``, each with its session key (``published`` is by key).

    An open session whose report is already on the topic (its worker died before writing the
    marker) is closed as if the marker had been written; so is a reported session the table
    does not hold at all (its worker died before its first checkpoint). The marker takes the
    report's input position, so records replayed up to it are recognised as already applied
    and only events after it are rejected for a closed session, exactly as if the worker that
    published the report had not died."""
    kept: list[Keyed] = []
    closed: list[Keyed] = []
    held: set[str] = set()
    for key, state in states:
        held.add(key)
        report = published.get(key)
        if isinstance(state, StreamSession) and report is not None:
            marker = (key, _marker(report, state.last_record_ms))
            kept.append(marker)
            closed.append(marker)
        else:
            kept.append((key, state))
    for key, report in published.items():
        if key not in held:
            marker = (key, _marker(report, 0))
            kept.append(marker)
            closed.append(marker)
    return kept, closed


def _marker(report: PublishedReport, last_record_ms: int) -> ClosedSession:
    return ClosedSession(report.session_id, report.partition, report.last_offset,
                         report.last_index, max(last_record_ms, report.published_ms),
                         report.ended_by)
