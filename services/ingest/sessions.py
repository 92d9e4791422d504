"""Live WebRTC sessions: who joined, who left, and the lifecycle events they produce.

The first participant whose offer arrives starts the session (``session.start`` with its
clinic and that participant); later ones ``participant.join``. A participant leaves
(``participant.leave``) on ``DELETE …/participants/{id}`` or when its connection fails or
closes; ``POST /v1/sessions/{id}/end`` closes every peer and publishes ``session.end``. All
times are this process's receive clock (METRICS.md §1). ``seq`` of a participant's activity
batches continues across reconnections, so a rejoining participant's batches are never taken
for repeats.

Sessions are held by (clinic, session id) (issue 16 finding 1): the same id in two clinics is
two live sessions, and nothing here answers differently for an id another clinic uses.
Participant ids are pseudonyms already (the signaling routes pseudonymize them on entry).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from models.events import Role, parse_event
from models.log_context import context
from models.topics import session_key
from services.ingest.publisher import LiveEmitter, Outgoing

log = logging.getLogger(__name__)

MAX_ENDED = 10_000  # ended session ids remembered (offers for them are refused)


class Peer(Protocol):
    async def close(self) -> None:
        """Stop receiving; publish what is still buffered (idempotent)."""
        ...


@dataclass(slots=True)
class LiveParticipant:
    participant_id: str
    role: Role
    next_seq: int = 0
    present: bool = False
    peer: Peer | None = None


@dataclass(slots=True)
class LiveSession:
    session_id: str
    clinic_id: str
    participants: dict[str, LiveParticipant] = field(default_factory=dict)


class SessionError(Exception):
    """A signaling request that contradicts the session (``status`` 404 or 409)."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


Key = tuple[str, str]  # (clinic_id, session_id)


class LiveSessions:
    def __init__(self, emitter: LiveEmitter, now_ms: Callable[[], int], *,
                 refused: Callable[[str, str], bool] = lambda clinic, session: False) -> None:
        self.emitter = emitter
        self.now_ms = now_ms
        # (clinic, session) → whether the session was refused for want of a client's consent
        # (issue 19; services/ingest/consent.py): nothing more of it is published.
        self.refused = refused
        self.live: dict[Key, LiveSession] = {}
        self._ended: OrderedDict[Key, None] = OrderedDict()

    def emit(self, clinic_id: str, event: dict[str, Any]) -> None:
        """Publish one wire-v1 event of ours, of a session of ``clinic_id`` (validated like
        anyone's: a bug here must not reach the workers as an invalid event)."""
        parse_event(event)
        if self.refused(clinic_id, str(event["session_id"])):
            return
        self.emitter.emit(Outgoing("events", session_key(clinic_id, str(event["session_id"])),
                                   orjson.dumps(event)))

    def emitter_of(self, clinic_id: str) -> Callable[[dict[str, Any]], None]:
        """:meth:`emit` for the sessions of one clinic (what a participant's peer calls)."""
        return lambda event: self.emit(clinic_id, event)

    def get(self, clinic_id: str, session_id: str) -> LiveSession | None:
        return self.live.get((clinic_id, session_id))

    def session(self, clinic_id: str, session_id: str) -> LiveSession:
        session = self.live.get((clinic_id, session_id))
        if session is None:
            raise SessionError(404, "session_id", f"no live session {session_id!r}")
        return session

    def join(self, session_id: str, participant_id: str, role: Role,
             clinic_id: str) -> LiveParticipant:
        """Register a participant (starting the session if needed) and publish the event."""
        key = (clinic_id, session_id)
        if key in self._ended:
            raise SessionError(409, "session_id", f"session {session_id!r} has ended")
        session = self.live.get(key)
        now = self.now_ms()
        if session is None:
            session = self.live[key] = LiveSession(session_id, clinic_id)
            participant = session.participants[participant_id] = LiveParticipant(
                participant_id, role, present=True)
            self.emit(clinic_id, {
                "type": "session.start", "session_id": session_id, "ts_ms": now,
                "clinic_id": clinic_id,
                "participants": [{"participant_id": participant_id, "role": role}]})
            log.info("session %s started by participant %s", session_id, participant_id,
                     extra=context(session=session_id))
            return participant
        known = session.participants.get(participant_id)
        if known is None:
            participant = session.participants[participant_id] = LiveParticipant(
                participant_id, role)
        else:
            participant = known
        if participant.role != role:
            raise SessionError(409, "role", f"participant {participant_id!r} joined as "
                                            f"{participant.role}")
        if not participant.present:
            participant.present = True
            self.emit(clinic_id, {"type": "participant.join", "session_id": session_id,
                       "participant_id": participant_id, "role": role, "ts_ms": now})
            log.info("participant %s joined session %s", participant_id, session_id,
                     extra=context(session=session_id))
        return participant

    async def leave(self, clinic_id: str, session_id: str, participant_id: str) -> bool:
        """Close the participant's peer (flushing its frames) and publish its leave; False
        when it was not present."""
        session = self.live.get((clinic_id, session_id))
        participant = session.participants.get(participant_id) if session else None
        if participant is None or not participant.present:
            return False
        peer, participant.peer = participant.peer, None
        participant.present = False
        if peer is not None:
            await peer.close()
        self.emit(clinic_id, {"type": "participant.leave", "session_id": session_id,
                   "participant_id": participant_id, "ts_ms": self.now_ms()})
        log.info("participant %s left session %s", participant_id, session_id,
                 extra=context(session=session_id))
        return True

    async def end(self, clinic_id: str, session_id: str) -> None:
        """Every participant leaves, then ``session.end``; the id cannot start again here."""
        session = self.session(clinic_id, session_id)
        for participant_id in list(session.participants):
            await self.leave(clinic_id, session_id, participant_id)
        key = (clinic_id, session_id)
        self.live.pop(key, None)
        self._ended[key] = None
        while len(self._ended) > MAX_ENDED:
            self._ended.popitem(last=False)
        self.emit(clinic_id, {"type": "session.end", "session_id": session_id,
                              "ts_ms": self.now_ms()})
        log.info("session %s ended", session_id, extra=context(session=session_id))

    async def close_all(self) -> None:
        """Shutdown: participants leave (their frames flushed); sessions stay open (they end
        by the workers' idle timeout, or by an explicit end elsewhere)."""
        for (clinic_id, session_id), session in list(self.live.items()):
            for participant_id in list(session.participants):
                await self.leave(clinic_id, session_id, participant_id)

