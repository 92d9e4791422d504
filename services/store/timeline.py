"""A session's timeline and alerts: the classified events and alert transitions the streaming
workers publish while it runs (issue 5; METRICS.md §2–§7).

Timeline items are the IPUs (§2, with their backchannel flag §3), speaker changes (§4),
interruptions and collisions (§5) and lapses (§6) of ``rapport.quality`` records, stored under
the ordinal ``n`` their worker gave them: a redelivered record repeats the same ``n`` and
inserts nothing. Alerts (§7) are stored per transition (raised, cleared), unique per session,
type, direction and time, whether they come from ``rapport.alerts`` or from the final report.
Both may arrive before the session's report, so each row carries its clinic: a session is
(clinic, session id) in every key and query (issue 16 finding 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from services.store.database import Database
from services.store.records import AlertRecord, QualityRecord
from services.store.schema import AlertRow, SessionRow, TimelineItem

MAX_TIMELINE_PAGE = 20_000
DEFAULT_TIMELINE_PAGE = 5_000


def timeline_rows(record: QualityRecord, details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the record's events; ``details`` are their pseudonymized detail dicts."""
    return [
        {"session_id": record.session_id, "n": event.n, "clinic_id": record.clinic_id,
         "kind": event.kind, "ts_ms": event.ts_ms, "payload": detail}
        for event, detail in zip(record.events, details, strict=True)
    ]


def add_timeline(db: Database, session: Session, rows: list[dict[str, Any]]) -> int:
    unique = {(row["clinic_id"], row["session_id"], row["n"]): row for row in rows}
    # (a record repeating an n keeps its last copy)
    return db.insert_ignoring_duplicates(session, TimelineItem, list(unique.values()))


def add_alert(db: Database, session: Session, record: AlertRecord,
              detail: dict[str, Any]) -> bool:
    row = {"session_id": record.session_id, "clinic_id": record.clinic_id,
           "alert": record.alert, "cleared": record.cleared, "ts_ms": record.ts_ms,
           "detail": detail}
    return db.insert_ignoring_duplicates(session, AlertRow, [row]) == 1


def session_known(session: Session, clinic: str, session_id: str) -> bool:
    """Whether the store holds anything of the session (clinic, session id): its report or,
    before that, timeline items or alerts. One statement of three indexed lookups whatever
    the answer, so a missing id and another clinic's cost the same (issue 16 finding 9)."""
    return bool(session.scalar(select(or_(
        exists().where(SessionRow.clinic_id == clinic, SessionRow.session_id == session_id),
        exists().where(TimelineItem.clinic_id == clinic,
                       TimelineItem.session_id == session_id),
        exists().where(AlertRow.clinic_id == clinic, AlertRow.session_id == session_id)))))


@dataclass(frozen=True, slots=True)
class TimelinePage:
    items: list[dict[str, Any]]
    next_after: int | None  # pass as ``after`` for the next page
    total: int


def timeline(session: Session, clinic: str, session_id: str, *,
             kinds: frozenset[str] | None = None, after: int | None = None,
             limit: int = DEFAULT_TIMELINE_PAGE) -> TimelinePage:
    """Items in ``n`` order (the order their worker decided them)."""
    statement = select(TimelineItem).where(TimelineItem.clinic_id == clinic,
                                           TimelineItem.session_id == session_id)
    if kinds:
        statement = statement.where(TimelineItem.kind.in_(sorted(kinds)))
    counted = select(func.count()).select_from(statement.subquery())
    if after is not None:
        statement = statement.where(TimelineItem.n > after)
    limit = max(1, min(limit, MAX_TIMELINE_PAGE))
    rows = list(session.scalars(statement.order_by(TimelineItem.n).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [{"n": r.n, "kind": r.kind, "ts_ms": r.ts_ms, **r.payload} for r in rows]
    return TimelinePage(items, rows[-1].n if more else None, int(session.scalar(counted) or 0))


def alerts(session: Session, clinic: str, session_id: str) -> list[dict[str, Any]]:
    """Alert transitions in time order, raised before cleared at the same instant."""
    rows = session.scalars(select(AlertRow).where(AlertRow.clinic_id == clinic,
                                                  AlertRow.session_id == session_id)
                           .order_by(AlertRow.ts_ms, AlertRow.cleared, AlertRow.alert))
    return [{**r.detail, "alert": r.alert, "cleared": r.cleared, "ts_ms": r.ts_ms} for r in rows]
