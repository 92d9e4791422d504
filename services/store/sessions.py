"""Finished sessions: storing final reports and querying them (issue 5; METRICS.md §10).

A report is stored once per session id: a redelivered ``report`` record (at-least-once
delivery) inserts nothing and changes nothing (``INSERT … ON CONFLICT DO NOTHING``, so two
consumers racing on the same session cannot both write). Next to the report the row keeps
what the API filters and lists on — clinic, therapist pseudonym, start time, alert types — and
a small ``summary`` of headline metrics (§6), so a list of a thousand sessions never loads a
thousand reports.

Listing is newest first, by ``started_at_ms`` then ``session_id``, with keyset pagination: the
cursor is the position of the last row returned, so pages stay stable while reports arrive.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session, defer

from models.errors import ValidationError
from services.store.database import Database
from services.store.records import ReportRecord
from services.store.schema import AlertRow, SessionParticipant, SessionRow

# A session clock at or after 2000-01-01 is taken to be Unix epoch milliseconds (an ingest
# point's wall clock, METRICS.md §1); earlier values are a relative clock (simulations).
EPOCH_CLOCK_FROM_MS = 946_684_800_000
MAX_PAGE = 1000
DEFAULT_PAGE = 50

# Headline metrics kept in the summary column: name -> path in the §10 report.
SUMMARY_FIELDS: dict[str, tuple[str, ...]] = {
    "therapist_talk_share": ("roles", "therapist", "talk_share"),
    "client_talk_share": ("roles", "client", "talk_share"),
    "balance_index": ("session", "balance_index"),
    "turns_per_min": ("session", "turns_per_min"),
    "speaker_changes": ("session", "speaker_changes"),
    "overlap_s": ("session", "overlap_s"),
    "silence_ratio": ("session", "silence_ratio"),
    "lapses": ("session", "lapses", "count"),
    "interruption_asymmetry": ("session", "interruption_asymmetry"),
    "therapist_interruptions": ("roles", "therapist", "interruptions_made", "successful"),
    "client_interruptions": ("roles", "client", "interruptions_made", "successful"),
    "therapist_longest_monologue_s": ("roles", "therapist", "longest_monologue_s"),
    "therapist_backchannels_per_min": ("roles", "therapist", "backchannels_per_min"),
    "therapist_latency_median_ms": ("roles", "therapist", "response_latency_ms", "median"),
    "client_latency_median_ms": ("roles", "client", "response_latency_ms", "median"),
}


def _dig(report: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = report
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Headline metrics of a §10 report (``None`` where the report has no value)."""
    summary = {name: _dig(report, path) for name, path in SUMMARY_FIELDS.items()}
    summary["alerts"] = len(report.get("alerts") or [])
    return summary


def started_at_ms(record: ReportRecord, received: datetime) -> int:
    """Epoch milliseconds of the session start: the session clock itself when it is a wall
    clock, else the receive time minus the session's length on its own clock."""
    if record.start_ms >= EPOCH_CLOCK_FROM_MS:
        return record.start_ms
    elapsed = max(record.event_time_ms - record.start_ms, 0)
    return int(received.timestamp() * 1000) - elapsed


def alert_types(report: dict[str, Any]) -> list[str]:
    types = {str(a.get("type")) for a in report.get("alerts") or [] if a.get("type")}
    return sorted(types)


def report_alert_rows(record: ReportRecord, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's alert episodes (§10 ``alerts``) as raised/cleared alert rows."""
    rows = []
    for episode in report.get("alerts") or []:
        kind, ts = episode.get("type"), episode.get("ts_ms")
        if not isinstance(kind, str) or not isinstance(ts, int):
            continue
        detail = {k: v for k, v in episode.items() if k not in ("type", "ts_ms", "cleared_ms")}
        base = {"session_id": record.session_id, "clinic_id": record.clinic_id, "alert": kind}
        rows.append({**base, "cleared": False, "ts_ms": ts, "detail": detail})
        cleared = episode.get("cleared_ms")
        if isinstance(cleared, int):
            rows.append({**base, "cleared": True, "ts_ms": cleared, "detail": {}})
    return rows


def save_report(db: Database, session: Session, record: ReportRecord,
                report: dict[str, Any], therapist: str | None, received: datetime,
                roster: Sequence[tuple[str, str]] = ()) -> bool:
    """Insert the session's row unless it exists; ``report`` is already pseudonymized, and so
    is ``roster``, the (participant, role) pairs of its participants (issue 19)."""
    duration = float(report["duration_s"])
    row = {
        "session_id": record.session_id,
        "clinic_id": record.clinic_id,
        "therapist": therapist,
        "start_ms": record.start_ms,
        "end_ms": record.start_ms + round(duration * 1000),
        "started_at_ms": started_at_ms(record, received),
        "duration_s": duration,
        "ended_by": record.ended_by,
        "received_at": received,
        "alert_types": "|" + "".join(f"{t}|" for t in alert_types(report)),
        "summary": summarize(report),
        "report": report,
    }
    if not db.insert_ignoring_duplicates(session, SessionRow, [row]):
        return False
    db.insert_ignoring_duplicates(session, AlertRow, report_alert_rows(record, report))
    people = {participant: role for participant, role in roster}
    if therapist is not None:
        people.setdefault(therapist, "therapist")
    db.insert_ignoring_duplicates(session, SessionParticipant, [
        {"clinic_id": record.clinic_id, "session_id": record.session_id,
         "participant": participant, "role": role} for participant, role in people.items()])
    return True


# --- queries ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position of the last row of a page (newest-first order: start, session id, clinic;
    a cursor made before issue 16 has no clinic, read as "")."""

    started_at_ms: int
    session_id: str
    clinic_id: str = ""

    def encode(self) -> str:
        raw = orjson.dumps([self.started_at_ms, self.session_id, self.clinic_id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            if raw.startswith("["):
                started, session_id, clinic_id = orjson.loads(raw)
                if not isinstance(started, int) or not isinstance(session_id, str) \
                        or not isinstance(clinic_id, str):
                    raise ValueError(raw)
                started = str(started)
            else:  # "started:session_id", made before issue 16
                started, _, session_id = raw.partition(":")
                clinic_id = ""
            if not session_id or len(started) > 20:
                raise ValueError(raw)
            started_ms = int(started)
            # A database integer is 64-bit: a forged cursor must not reach it as anything else.
            if not -(2**63) <= started_ms < 2**63:
                raise ValueError(raw)
            return cls(started_ms, session_id, clinic_id)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise ValidationError("cursor", "not a cursor returned by this API") from None


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """Filters of a session list; ``clinic`` None means every clinic (admin only)."""

    clinic: str | None = None
    therapist: str | None = None
    from_ms: int | None = None  # started at or after (epoch ms)
    until_ms: int | None = None  # started before (epoch ms)
    alert: str | None = None  # had at least one alert of this type (§7)
    limit: int = DEFAULT_PAGE
    cursor: Cursor | None = None


@dataclass(frozen=True, slots=True)
class SessionPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _filtered(query: SessionQuery) -> Select[SessionRow]:
    statement = select(SessionRow).options(defer(SessionRow.report))
    if query.clinic is not None:
        statement = statement.where(SessionRow.clinic_id == query.clinic)
    if query.therapist is not None:
        statement = statement.where(SessionRow.therapist == query.therapist)
    if query.from_ms is not None:
        statement = statement.where(SessionRow.started_at_ms >= query.from_ms)
    if query.until_ms is not None:
        statement = statement.where(SessionRow.started_at_ms < query.until_ms)
    if query.alert is not None:
        statement = statement.where(SessionRow.alert_types.contains(f"|{query.alert}|",
                                                                    autoescape=True))
    return statement


def list_sessions(session: Session, query: SessionQuery) -> SessionPage:
    statement = _filtered(query)
    if query.cursor is not None:
        c = query.cursor
        statement = statement.where(or_(
            SessionRow.started_at_ms < c.started_at_ms,
            and_(SessionRow.started_at_ms == c.started_at_ms, SessionRow.session_id < c.session_id),
            and_(SessionRow.started_at_ms == c.started_at_ms, SessionRow.session_id == c.session_id,
                 SessionRow.clinic_id < c.clinic_id),
        ))
    limit = max(1, min(query.limit, MAX_PAGE))
    statement = statement.order_by(SessionRow.started_at_ms.desc(), SessionRow.session_id.desc(),
                                   SessionRow.clinic_id.desc()).limit(limit + 1)
    rows = list(session.scalars(statement))
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = None
    if more:
        last = rows[-1]
        cursor = Cursor(last.started_at_ms, last.session_id, last.clinic_id).encode()
    return SessionPage([describe(row) for row in rows], cursor)


def iter_sessions(session: Session, query: SessionQuery, batch: int = MAX_PAGE
                  ) -> Iterator[dict[str, Any]]:
    """Every session matching ``query`` (its limit and cursor ignored), newest first."""
    cursor = None
    while True:
        page = list_sessions(session, SessionQuery(
            query.clinic, query.therapist, query.from_ms, query.until_ms, query.alert,
            batch, cursor))
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = Cursor.decode(page.next_cursor)


def get_session(session: Session, clinic: str, session_id: str) -> SessionRow | None:
    """The session (clinic, session id): one primary-key lookup, whether the id is unknown
    or another clinic's (the same answer, at the same cost)."""
    return session.get(SessionRow, (clinic, session_id))


def clinics_of(session: Session, session_id: str, limit: int = 2) -> list[str]:
    """Up to ``limit`` clinics that have a stored session of this id (for an admin who did
    not name the clinic: one is the session, several are ambiguous)."""
    return list(session.scalars(select(SessionRow.clinic_id)
                                .where(SessionRow.session_id == session_id)
                                .order_by(SessionRow.clinic_id).limit(limit)))


def therapist_sessions(session: Session, therapist: str, clinic: str | None,
                       from_ms: int | None, until_ms: int | None, limit: int
                       ) -> list[dict[str, Any]]:
    """The therapist's most recent ``limit`` sessions, oldest first (a trend's x axis)."""
    query = SessionQuery(clinic=clinic, therapist=therapist, from_ms=from_ms, until_ms=until_ms,
                         limit=limit)
    return list(reversed(list_sessions(session, query).items))


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:  # SQLite keeps no zone; everything is stored in UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def iso_ms(epoch_ms: int) -> str:
    return _iso(datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc))


def describe(row: SessionRow) -> dict[str, Any]:
    """A session's list entry: identity, times, alert types and headline metrics."""
    return {
        "session_id": row.session_id,
        "clinic_id": row.clinic_id,
        "therapist": row.therapist,
        "started_at": iso_ms(row.started_at_ms),
        "start_ms": row.start_ms,
        "end_ms": row.end_ms,
        "duration_s": row.duration_s,
        "ended_by": row.ended_by,
        "received_at": _iso(row.received_at),
        "alert_types": [t for t in row.alert_types.split("|") if t],
        "metrics": dict(row.summary),
    }
