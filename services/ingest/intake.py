"""Validation of posted events, shared by ``POST /v1/events`` and the ``/v1/stream`` socket.

A body (or socket message) is a JSON array of events, or JSON Lines (one event per line).
Each event is validated with :func:`models.events.parse_event` (METRICS.md §9); the accepted
ones are published to ``rapport.events`` as received but with every participant id replaced by
its pseudonym (services/store/pseudonyms.py; issue 16 finding 5), keyed by the session key
``clinic_id session_id`` (models/topics.py); each rejected one goes to the dead-letter topic
as a :func:`models.records.rejected_record` (raw bytes, its participant ids pseudonymized when
it is a JSON object; reason, field) and is reported back as ``{"index", "field", "error"}``.
``index`` is the event's position in the array, or its 0-based line number in JSON Lines
(blank lines count).

Tenancy (issue 16 finding 1): the caller's clinic comes from its token (an ``admin`` token
names it, services/ingest/access.py) and is part of every event's key, so a session is
(clinic, session id) from here on: another clinic's session of the same id is another session,
and nothing here depends on, or reveals, which ids other clinics use. A ``session.start``
whose ``clinic_id`` is not the caller's makes the whole request ``403`` (nothing is published,
nothing dead-lettered: the data is not the caller's to post).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from models.errors import ValidationError
from models.events import SessionEnd, SessionStart, decode_json, is_identifier, parse_event
from models.records import RejectReason, Source, rejected_record
from models.topics import session_key
from services.ingest.access import AccessDenied, Caller
from services.ingest.publisher import Outgoing
from services.store.pseudonyms import Pseudonymizer

if TYPE_CHECKING:
    from services.ingest.consent import ConsentCheck


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
    # Sessions by session key ("clinic_id session_id"): started, ended, of every accepted event.
    starts: list[str] = field(default_factory=list)
    ends: list[str] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
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


def check_events(items: list[tuple[int, bytes, Any]], caller: Caller, hide: Pseudonymizer,
                 origin: str, clock: Callable[[], float] = time.time,
                 consent: ConsentCheck | None = None) -> Checked:
    """Validate every item of a caller acting for one clinic (``caller.clinic`` set;
    services/ingest/access.py); raise :class:`AccessDenied` (403) on a tenancy violation.
    ``consent`` (services/ingest/consent.py) refuses the events of sessions whose client has
    no recorded consent when the clinic requires it: reported back and counted under the
    reason ``consent``, neither published nor dead-lettered."""
    clinic = caller.clinic
    if clinic is None:
        raise AccessDenied(422, "clinic", "an admin token must name the clinic it posts for "
                                          "(?clinic=C)")
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
            if isinstance(value, dict):
                raw = orjson.dumps(hide.apply(value))  # no raw participant id on any topic
            record = rejected_record(reason, error, Source(origin, -1, index, now_ms, raw),
                                     session_id=session_id, clinic_id=clinic)
            key = _key(clinic, session_id)
            dead.append(Outgoing("dlq", key, orjson.dumps(record)))
            checked.rejections.append(Rejection(index, error.field, str(error)))
            checked.reasons[reason.value] = checked.reasons.get(reason.value, 0) + 1
            continue
        caller.check_session(event.session_id)  # session tokens: their own session only
        key = session_key(clinic, event.session_id)
        name = key.decode()
        if isinstance(event, SessionStart) and event.clinic_id != clinic:
            raise AccessDenied(403, "session.start.clinic_id",
                               f"{event.clinic_id!r} is not the clinic of this token")
        refusal = consent.refusal(event) if consent is not None else None
        if refusal is not None:
            checked.rejections.append(Rejection(index, refusal.field, str(refusal)))
            checked.reasons["consent"] = checked.reasons.get("consent", 0) + 1
            continue
        if isinstance(event, SessionStart):
            checked.starts.append(name)
        if isinstance(event, SessionEnd):
            checked.ends.append(name)
        checked.sessions.add(name)
        checked.records.append(Outgoing("events", key, orjson.dumps(hide.apply(value))))
        checked.accepted += 1
    checked.records.extend(dead)
    return checked


def _key(clinic: str, session_id: str | None) -> bytes | None:
    """The dead-letter key of a rejected event: its session key when it names a valid id."""
    return session_key(clinic, session_id) if session_id and is_identifier(session_id) \
        else None
