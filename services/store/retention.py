"""The retention purge (issue 19, point 5): storage limitation, clinic by clinic.

A clinic keeps its sessions ``retention_days`` (its policy, services/store/policies.py, else
``RAPPORT_RETENTION_DAYS``, default 365) and its audit log ``audit_retention_days`` (default
2192, six years). :func:`purge_clinic` deletes, in one transaction per clinic:

- every session that started (``started_at_ms``, METRICS.md §10 list entry) before
  ``now - retention_days``, with its timeline items (§2–§6), alert transitions (§7) and
  roster rows (``session_participants``);
- timeline items and alerts of no stored session (a session whose report never came) whose
  time is a wall clock (epoch ms, METRICS.md §1) before the same cut-off; items on a relative
  session clock cannot be dated and stay until their session is purged or erased;
- audit entries written before ``now - audit_retention_days``;

and appends one audit entry (action ``purge``) naming the cut-offs and the counts, when it
deleted anything. Directory entries, consents and policies are the clinic's settings, not
session data: the purge keeps them (erasure removes a participant's).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Delete, and_, delete, exists, func, select
from sqlalchemy.orm import Session

from services.store import audit as audit_
from services.store.audit import AuditRecord, iso, utc
from services.store.policies import Policy
from services.store.schema import (
    AlertRow,
    AuditEntry,
    SessionParticipant,
    SessionRow,
    TimelineItem,
)
from services.store.sessions import EPOCH_CLOCK_FROM_MS

PURGE_ACTION = "purge"


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    """What the purge deleted (or, in a dry run, would delete) in one clinic."""

    clinic_id: str
    sessions: int = 0
    timeline_items: int = 0
    alerts: int = 0
    session_participants: int = 0
    audit_entries: int = 0

    @property
    def total(self) -> int:
        return (self.sessions + self.timeline_items + self.alerts + self.session_participants
                + self.audit_entries)

    def as_dict(self) -> dict[str, int]:
        counts = asdict(self)
        del counts["clinic_id"]
        return counts


def clinics(session: Session) -> list[str]:
    """Every clinic with rows the purge may delete, sorted."""
    found: set[str] = set()
    for column in (SessionRow.clinic_id, TimelineItem.clinic_id, AlertRow.clinic_id,
                   AuditEntry.clinic_id):
        found.update(session.scalars(select(column).distinct()))
    return sorted(found)


def cutoff_ms(now: datetime, days: int) -> int:
    return int((utc(now) - timedelta(days=days)).timestamp() * 1000)


def _run(session: Session, statement: Delete, dry_run: bool) -> int:
    if dry_run:
        table = statement.table
        where = statement.whereclause
        query = select(func.count()).select_from(table)
        if where is not None:
            query = query.where(where)
        return int(session.scalar(query) or 0)
    return int(session.execute(statement.execution_options(synchronize_session=False))
               .rowcount or 0)  # type: ignore[attr-defined]


def purge_clinic(session: Session, policy: Policy, now: datetime, *, token_id: str,
                 dry_run: bool = False) -> PurgeCounts:
    """Delete (or count, with ``dry_run``) what ``policy``'s clinic keeps no longer."""
    clinic = policy.clinic_id
    before_ms = cutoff_ms(now, policy.retention_days)
    audit_before = utc(now) - timedelta(days=policy.audit_retention_days)
    old = and_(SessionRow.clinic_id == clinic, SessionRow.started_at_ms < before_ms)
    old_ids = select(SessionRow.session_id).where(old)

    def of_old_or_orphan(table: type[TimelineItem] | type[AlertRow]) -> ColumnElement[bool]:
        stored = exists().where(SessionRow.clinic_id == table.clinic_id,
                                SessionRow.session_id == table.session_id)
        orphan = and_(~stored, table.ts_ms >= EPOCH_CLOCK_FROM_MS, table.ts_ms < before_ms)
        return and_(table.clinic_id == clinic, (table.session_id.in_(old_ids)) | orphan)

    counts = PurgeCounts(
        clinic,
        timeline_items=_run(session, delete(TimelineItem).where(
            of_old_or_orphan(TimelineItem)), dry_run),
        alerts=_run(session, delete(AlertRow).where(of_old_or_orphan(AlertRow)), dry_run),
        session_participants=_run(session, delete(SessionParticipant).where(
            SessionParticipant.clinic_id == clinic,
            SessionParticipant.session_id.in_(old_ids)), dry_run),
        sessions=_run(session, delete(SessionRow).where(old), dry_run),
        audit_entries=_run(session, delete(AuditEntry).where(
            AuditEntry.clinic_id == clinic, AuditEntry.at < audit_before), dry_run),
    )
    if counts.total and not dry_run:
        kept_from = utc(now) - timedelta(days=policy.retention_days)
        target = (f"sessions started before {iso(kept_from)}; "
                  f"audit entries before {iso(audit_before)}")
        audit_.append(session, AuditRecord(clinic, token_id, token_id, PURGE_ACTION, target,
                                           counts.as_dict()), utc(now))
    return counts
