"""The audit log's records (issue 19, point 6): who read or changed what, and when.

Every read of a report, timeline, trend, list or export, every directory, consent or retention
change and every erasure appends one :class:`AuditRecord` to ``audit_log``: the token's id
(never the token), its scope, the clinic, the action and what it touched. Nothing updates or
deletes a row except the audit retention purge. Actions CLI commands take (``rapport purge``,
``rapport erase``) are recorded with the token id ``cli``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from models.errors import ValidationError
from services.store.schema import AuditEntry

CLI_TOKEN_ID = "cli"  # the token id of actions taken with the command line
ERASED = "erased"  # what an erased participant's pseudonym becomes in audit targets
SERVICE_TOKEN_ID = "service"  # the token id of the reports service's own scheduled purge
MAX_TARGET_LENGTH = 1000
DEFAULT_AUDIT_PAGE = 100
MAX_AUDIT_PAGE = 1000


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action. ``clinic_id`` is the clinic whose data was touched (``*`` when an
    admin listed every clinic); ``target`` names what, e.g. ``session s1`` or
    ``client <pseudonym>``; ``detail`` holds the request's parameters (never personal data in
    clear: participant ids are pseudonyms, labels are not copied)."""

    clinic_id: str
    token_id: str
    scope: str
    action: str
    target: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def append(session: Session, record: AuditRecord, at: datetime) -> None:
    """Add ``record`` at time ``at`` in the caller's transaction."""
    session.add(AuditEntry(at=at, clinic_id=record.clinic_id, token_id=record.token_id,
                           scope=record.scope, action=record.action,
                           target=record.target[:MAX_TARGET_LENGTH], detail=dict(record.detail)))


# --- reading, redacting and purging (issue 19, points 5 and 6) -------------------------------


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (SQLite keeps no zone; everything is UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def iso(moment: datetime) -> str:
    return utc(moment).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class AuditCursor:
    """Position of the last entry of a page (newest-first order: ``at``, then ``id``)."""

    at: datetime
    id: int

    def encode(self) -> str:
        raw = orjson.dumps([iso(self.at), self.id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> AuditCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            at, entry_id = orjson.loads(raw)
            if not isinstance(at, str) or not isinstance(entry_id, int) \
                    or not 0 <= entry_id < 2**63:
                raise ValueError(raw)
            return cls(utc(datetime.fromisoformat(at.replace("Z", "+00:00"))), entry_id)
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise ValidationError("cursor", "not a cursor returned by this API") from None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """One clinic's entries with ``from_at <= at < to_at``, newest first, ``limit`` a page
    (1 to :data:`MAX_AUDIT_PAGE`), after ``cursor``."""

    clinic: str
    from_at: datetime | None = None
    to_at: datetime | None = None
    limit: int = DEFAULT_AUDIT_PAGE
    cursor: AuditCursor | None = None


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def describe(row: AuditEntry) -> dict[str, Any]:
    return {"id": row.id, "at": iso(row.at), "clinic_id": row.clinic_id,
            "token_id": row.token_id, "scope": row.scope, "action": row.action,
            "target": row.target, "detail": dict(row.detail or {})}


def list_entries(session: Session, query: AuditQuery) -> AuditPage:
    """A page of the clinic's audit log, newest first (``at`` descending, then ``id``), with
    keyset pagination: the next page starts after the last entry returned."""
    statement = select(AuditEntry).where(AuditEntry.clinic_id == query.clinic)
    if query.from_at is not None:
        statement = statement.where(AuditEntry.at >= utc(query.from_at))
    if query.to_at is not None:
        statement = statement.where(AuditEntry.at < utc(query.to_at))
    if query.cursor is not None:
        c = query.cursor
        statement = statement.where(or_(AuditEntry.at < c.at,
                                        and_(AuditEntry.at == c.at, AuditEntry.id < c.id)))
    limit = max(1, min(query.limit, MAX_AUDIT_PAGE))
    statement = statement.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit + 1)
    rows = list(session.scalars(statement))
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = AuditCursor(utc(rows[-1].at), rows[-1].id).encode() if more else None
    return AuditPage([describe(row) for row in rows], cursor)


def export_entries(session: Session, query: AuditQuery, cap: int) -> AuditPage:
    """Up to ``cap`` entries from ``query``'s cursor on, newest first, read a page at a time;
    ``next_cursor`` continues when more remain (a CSV export of a long window)."""
    items: list[dict[str, Any]] = []
    cursor = query.cursor
    while len(items) < cap:
        page = list_entries(session, AuditQuery(query.clinic, query.from_at, query.to_at,
                                                min(MAX_AUDIT_PAGE, cap - len(items)), cursor))
        items += page.items
        if page.next_cursor is None:
            return AuditPage(items, None)
        cursor = AuditCursor.decode(page.next_cursor)
    return AuditPage(items, cursor.encode() if cursor is not None else None)


def redact(session: Session, clinic: str, pseudonym: str, replacement: str) -> int:
    """Replace ``pseudonym`` by ``replacement`` inside the ``target`` of ``clinic``'s entries
    (an erasure: the audit log keeps that something was read, no longer whose it was); returns
    how many entries changed. SQL ``replace()``, the same on SQLite and PostgreSQL. Only
    ``target`` may name a participant (``detail`` never does), so only it is rewritten."""
    if not pseudonym:
        raise ValueError("redact needs a pseudonym")
    statement = (update(AuditEntry)
                 .where(AuditEntry.clinic_id == clinic,
                        AuditEntry.target.contains(pseudonym, autoescape=True))
                 .values(target=func.replace(AuditEntry.target, pseudonym, replacement))
                 .execution_options(synchronize_session=False))
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


def purge_entries(session: Session, clinic: str, before: datetime) -> int:
    """Delete ``clinic``'s entries written before ``before`` (the audit retention purge, the
    only deletion of audit entries); returns how many."""
    statement = (delete(AuditEntry)
                 .where(AuditEntry.clinic_id == clinic, AuditEntry.at < utc(before))
                 .execution_options(synchronize_session=False))
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


def count_entries(session: Session, clinic: str, before: datetime) -> int:
    """How many of ``clinic``'s entries :func:`purge_entries` would delete (dry runs)."""
    return int(session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.clinic_id == clinic, AuditEntry.at < utc(before))) or 0)
