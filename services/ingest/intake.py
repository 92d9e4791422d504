"""Validation of posted events, shared by ``POST /v1/events`` and the ``/v1/stream`` socket.

A body (or socket message) is a JSON array of events, or JSON Lines (one event per line).
Each event is validated with :func:`models.events.parse_event` (METRICS.md §9); the accepted
ones are published to ``rapport.events`` exactly as received (keyed by ``session_id``), each
rejected one goes to the dead-letter topic as a :func:`models.records.rejected_record` (raw
bytes, reason, field) and is reported back as ``{"index", "field", "error"}``. ``index`` is the
event's position in the array, or its 0-based line number in JSON Lines (blank lines count).

Tenancy: a ``session.start`` must carry the caller's clinic, and an event of a session that
this process has seen start for another clinic is refused too; either makes the whole request
``403`` (nothing is published, nothing dead-lettered: the data is not the caller's to post).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.errors import ValidationError
from models.events import SessionEnd, SessionStart, decode_json, parse_event
from models.records import RejectReason, Source, rejected_record
from services.ingest.access import AccessDenied, Caller
from services.ingest.publisher import Outgoing

MAX_TRACKED_SESSIONS = 100_000


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    field: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "error": self.error}


@dataclass(slots=True)
class Checked:
    """The outcome of one body: records to publish (events then dead letters) and reasons."""

    records: list[Outgoing] = field(default_factory=list)
    accepted: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    starts: list[tuple[str, str]] = field(default_factory=list)  # (session_id, clinic_id)
    ends: list[str] = field(default_factory=list)  # session ids of accepted session.end
    sessions: set[str] = field(default_factory=set)  # session ids of every accepted event
    reasons: dict[str, int] = field(default_factory=dict)  # rejections by reason

    @property
    def status(self) -> int:
        """202 all accepted, 207 some, 422 none (an empty body counts as all accepted)."""
        if not self.rejections:
            return 202
        return 207 if self.accepted else 422

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"accepted": self.accepted}
        if self.rejections:
            out["rejected"] = len(self.rejections)
            out["errors"] = [r.to_dict() for r in self.rejections]
        return out


# Work one request or message may cause (issue 16: a 1 MiB array of 524,000 tiny elements took
# 16 s and 1.6 GB to answer). The WebRTC ingest and the SDK send at most a few hundred events a
# second per session; JSON Lines count their non-empty lines.
MAX_EVENTS_PER_REQUEST = 10_000
MAX_NESTING = 16


class SessionClinics:
    """The clinic of each session seen starting here (bounded, least recently used out)."""

    def __init__(self, limit: int = MAX_TRACKED_SESSIONS) -> None:
        self.limit = limit
        self._clinics: OrderedDict[str, str] = OrderedDict()

    def get(self, session_id: str) -> str | None:
        return self._clinics.get(session_id)

    def remember(self, session_id: str, clinic_id: str) -> None:
        self._clinics[session_id] = clinic_id
        self._clinics.move_to_end(session_id)
        while len(self._clinics) > self.limit:
            self._clinics.popitem(last=False)


class BodyLimitError(ValidationError):
    """A body over a work limit (events per request, nesting): answered with ``status``
    (413 or 422) naming the limit, and dead-lettered whole."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__("body", reason)
        self.status = status


def nested_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays/objects more than ``limit`` levels (the event itself is
    level 1). Iterative, so a hostile depth costs no recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, list | dict))
    return False


def split_body(body: bytes, *, max_events: int = MAX_EVENTS_PER_REQUEST,
               max_depth: int = MAX_NESTING) -> list[tuple[int, bytes, Any]] | ValidationError:
    """``(index, raw bytes, decoded value or ValidationError)`` per event, or one
    ValidationError for the body as a whole: not valid JSON, more than ``max_events`` events
    (:class:`BodyLimitError`, 413) or, in an array, an element nested more than ``max_depth``
    levels (422; wire events nest 3). The limits bound the work one request can cause."""
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        # orjson decodes in C and refuses more than 1024 levels by itself; the cost beyond
        # decoding is per element, so the count is checked before any of it.
        try:
            values = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return ValidationError("body", f"not a valid JSON array ({exc})")
        if not isinstance(values, list):  # pragma: no cover - "[" guarantees a list
            return ValidationError("body", "must be a JSON array or JSON Lines")
        if len(values) > max_events:
            return BodyLimitError(413, f"{len(values)} events, more than the limit of "
                                       f"{max_events} per request; send smaller batches")
        if any(isinstance(v, list | dict) and nested_deeper(v, max_depth) for v in values):
            return BodyLimitError(422, f"an element nests more than {max_depth} levels "
                                       "(a wire event nests at most 3)")
        return [(i, orjson.dumps(v), v) for i, v in enumerate(values)]
    lines = body.split(b"\n")
    if len(lines) > max_events and sum(1 for line in lines if line.strip()) > max_events:
        return BodyLimitError(413, f"more than the limit of {max_events} events per request; "
                                   "send smaller batches")
    items: list[tuple[int, bytes, Any]] = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            value = decode_json(line)
        except ValidationError as error:
            items.append((number, line, error))
            continue
        if isinstance(value, list | dict) and nested_deeper(value, max_depth):
            value = ValidationError("event", f"nests more than {max_depth} levels (a wire "
                                             "event nests at most 3)")
        items.append((number, line.rstrip(b"\r"), value))
    return items


def check_events(items: list[tuple[int, bytes, Any]], caller: Caller, clinics: SessionClinics,
                 origin: str, clock: Callable[[], float] = time.time) -> Checked:
    """Validate every item; raise :class:`AccessDenied` (403) on a tenancy violation."""
    checked = Checked()
    now_ms = int(clock() * 1000)
    dead: list[Outgoing] = []
    for index, raw, value in items:
        try:
            if isinstance(value, ValidationError):
                raise value
            event = parse_event(value)
        except ValidationError as error:
            reason = RejectReason.MALFORMED_JSON if error.field in ("json", "event") \
                else RejectReason.INVALID
            session_id = value.get("session_id") if isinstance(value, dict) else None
            session_id = session_id if isinstance(session_id, str) else None
            record = rejected_record(reason, error, Source(origin, -1, index, now_ms, raw),
                                     session_id=session_id, clinic_id=caller.clinic)
            key = session_id.encode() if session_id else None
            dead.append(Outgoing("dlq", key, orjson.dumps(record)))
            checked.rejections.append(Rejection(index, error.field, str(error)))
            checked.reasons[reason.value] = checked.reasons.get(reason.value, 0) + 1
            continue
        caller.check_session(event.session_id)  # session tokens: their own session only
        if isinstance(event, SessionStart):
            caller.check_clinic(event.clinic_id, "session.start.clinic_id")
            checked.starts.append((event.session_id, event.clinic_id))
        else:
            known = clinics.get(event.session_id)
            if known is not None and caller.clinic is not None and known != caller.clinic:
                raise AccessDenied(403, "clinic_id", f"session {event.session_id!r} belongs "
                                   "to another clinic than this token's")
        if isinstance(event, SessionEnd):
            checked.ends.append(event.session_id)
        checked.sessions.add(event.session_id)
        checked.records.append(Outgoing("events", event.session_id.encode(), raw))
        checked.accepted += 1
    checked.records.extend(dead)
    return checked


def remember_starts(checked: Checked, clinics: SessionClinics) -> None:
    """After a successful publish: remember which clinic each started session belongs to."""
    for session_id, clinic_id in checked.starts:
        clinics.remember(session_id, clinic_id)
