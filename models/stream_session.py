"""A session as the streaming workers hold it: the engine plus the bookkeeping that makes
at-least-once delivery give exactly-once results (issue "Streaming workers").

Both classes are what a worker persists (checkpointed, see :mod:`models.checkpoint`) in its
changelog-backed table, one entry per session, keyed by ``session_id``:

- :class:`StreamSession` while the session is open. ``(last_offset, last_index)`` is the newest
  input position already applied (record offset, and event index within a multi-event
  record): an event redelivered after a crash (at or before that position, same partition) is
  skipped, because its effect is already in the restored state.
- :class:`ClosedSession` once the final report is published: a small marker so a redelivered
  event neither reopens the session nor publishes its report twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from models import checkpoint
from models.session import SessionEngine

EndedBy = Literal["session.end", "idle_timeout", "unreportable"]


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

    @property
    def session_id(self) -> str:
        return self.engine.session_id

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

    def replayed(self, partition: int, offset: int, index: int = 0) -> bool:
        return partition == self.partition and (offset, index) <= (self.last_offset,
                                                                     self.last_index)


SessionState = StreamSession | ClosedSession


def load_state(data: bytes) -> SessionState:
    """Restore a persisted session state (raises ``CheckpointError`` on anything else)."""
    return cast(SessionState, checkpoint.load(data, (StreamSession, ClosedSession)))
