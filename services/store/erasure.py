"""Erasing a client or a therapist of one clinic (issue 19, point 5; GDPR art. 17).

:func:`erase` removes, in the caller's one transaction, everything the store holds of one
participant (by pseudonym) in one clinic:

- every session they took part in *in that role* (``session_participants``; for a therapist
  also ``sessions.therapist``), and every session whose report, timeline or alerts name their
  pseudonym (sessions stored before migration 0004, whose roster holds the therapist only, and
  unfinished sessions, which have no roster yet): its
  ``sessions`` row (report and summary, hence every trend point), ``timeline_items``,
  ``alerts`` and ``session_participants`` rows. The whole session goes, other participants'
  part of it included: a session's numbers are joint numbers and cannot be split;
- their ``directory`` entry (display label) and, unless ``keep_consent``, their ``consents``
  row (revoking consent keeps that row, now ``analysis: false``: it is the record of the
  refusal the ingest enforces);
- their tokens: ``therapist`` tokens bound to them and session tokens minted for them (the
  rows, since the ``participant`` column holds the pseudonym);
- their pseudonym in the audit log's ``target`` column (the only audit column that may name a
  participant), replaced by ``erased``.

Then it appends one audit record of the erasure naming the receipt, not the pseudonym, with
the counts in ``detail``. The receipt is a random id returned to the caller, so the clinic can
prove the erasure later without the log keeping who was erased.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Text, cast, delete, or_, select
from sqlalchemy.orm import Session

from models.errors import RapportError
from services.store import audit as audit_
from services.store.audit import AuditRecord, append
from services.store.schema import (
    AlertRow,
    Consent,
    DirectoryEntry,
    SessionParticipant,
    SessionRow,
    TimelineItem,
    TokenRow,
)

log = logging.getLogger(__name__)



class NothingToErase(RapportError, LookupError):
    """The clinic holds nothing of this participant in this role (the API answers ``404``,
    exactly as for another clinic's participant; nothing is written, not even an audit
    record, so the answer reveals nothing and changes nothing)."""


ErasedRole = Literal["client", "therapist"]
ALL_CLINICS = "*"  # the audit clinic of an admin's reads across every clinic


@dataclass(frozen=True, slots=True)
class Erasure:
    """What one erasure removed: ``receipt`` is the id its audit record names."""

    receipt: str
    role: ErasedRole
    sessions: int
    timeline_items: int
    alerts: int
    session_participants: int
    directory: int
    consents: int
    tokens: int
    audit_redacted: int

    def counts(self) -> dict[str, int]:
        return {"sessions": self.sessions, "timeline_items": self.timeline_items,
                "alerts": self.alerts, "session_participants": self.session_participants,
                "directory": self.directory, "consents": self.consents, "tokens": self.tokens,
                "audit_redacted": self.audit_redacted}

    def to_dict(self) -> dict[str, object]:
        return {"receipt": self.receipt, "role": self.role, "counts": self.counts()}


def new_receipt() -> str:
    return "erasure-" + secrets.token_hex(8)


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _sessions_of(session: Session, clinic_id: str, participant: str,
                 role: ErasedRole) -> list[str]:
    ids = set(session.scalars(select(SessionParticipant.session_id).where(
        SessionParticipant.clinic_id == clinic_id, SessionParticipant.participant == participant,
        SessionParticipant.role == role)))
    if role == "therapist":
        ids.update(session.scalars(select(SessionRow.session_id).where(
            SessionRow.clinic_id == clinic_id, SessionRow.therapist == participant)))
    # Sessions the roster does not show: stored before migration 0004 (rosters then held the
    # therapist only), or not finished (a timeline and alerts, no report yet). Their records
    # name the pseudonym in their JSON; a scan, but erasures are rare and must be complete.
    named: set[str] = set()
    for table, column in ((SessionRow, SessionRow.report), (TimelineItem, TimelineItem.payload),
                          (AlertRow, AlertRow.detail)):
        named.update(session.scalars(select(table.session_id).distinct().where(
            table.clinic_id == clinic_id,
            cast(column, Text).contains(participant, autoescape=True))))
    # ... except those where the roster shows them in the other role ("in that role").
    other = set(session.scalars(select(SessionParticipant.session_id).where(
        SessionParticipant.clinic_id == clinic_id, SessionParticipant.participant == participant,
        SessionParticipant.role != role)))
    if role == "client":
        other.update(session.scalars(select(SessionRow.session_id).where(
            SessionRow.clinic_id == clinic_id, SessionRow.therapist == participant)))
    return sorted(ids | (named - other))


def forget_session(session: Session, clinic_id: str, session_id: str) -> None:
    """Delete whatever the store holds of one session (a session refused for want of
    consent: its timeline and alerts arrive before its report)."""
    for table in (TimelineItem, AlertRow, SessionParticipant, SessionRow):
        session.execute(delete(table).where(table.clinic_id == clinic_id,
                                            table.session_id == session_id))


def redact_audit(session: Session, clinic_id: str, pseudonym: str) -> int:
    """Replace ``pseudonym`` by ``erased`` in the targets of the clinic's audit entries and
    of admins' every-clinic entries (services/store/audit.py ``redact``); returns how many
    entries changed."""
    return sum(audit_.redact(session, clinic, pseudonym, audit_.ERASED)
               for clinic in (clinic_id, ALL_CLINICS))


def erase(session: Session, clinic_id: str, participant: str, role: ErasedRole, *,
          token_id: str, scope: str, at: datetime, keep_consent: bool = False,
          action: str | None = None, missing_ok: bool = True) -> Erasure:
    """Erase ``participant`` (a pseudonym) as ``role`` from ``clinic_id``; audited as done by
    ``token_id`` of ``scope``. The caller commits (one transaction). When nothing was found
    and not ``missing_ok``, raise :class:`NothingToErase` (the caller's transaction then
    rolls back)."""
    receipt = new_receipt()
    ids = _sessions_of(session, clinic_id, participant, role)
    timeline = alerts = members = sessions = 0
    # Chunked: an IN list of thousands of ids is slow to plan and has backend limits.
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        timeline += _rowcount(session.execute(delete(TimelineItem).where(
            TimelineItem.clinic_id == clinic_id, TimelineItem.session_id.in_(chunk))))
        alerts += _rowcount(session.execute(delete(AlertRow).where(
            AlertRow.clinic_id == clinic_id, AlertRow.session_id.in_(chunk))))
        members += _rowcount(session.execute(delete(SessionParticipant).where(
            SessionParticipant.clinic_id == clinic_id,
            SessionParticipant.session_id.in_(chunk))))
        sessions += _rowcount(session.execute(delete(SessionRow).where(
            SessionRow.clinic_id == clinic_id, SessionRow.session_id.in_(chunk))))
    # Rows of theirs outside the erased sessions (a roster entry in another role).
    members += _rowcount(session.execute(delete(SessionParticipant).where(
        SessionParticipant.clinic_id == clinic_id, SessionParticipant.participant == participant)))
    directory = _rowcount(session.execute(delete(DirectoryEntry).where(
        DirectoryEntry.clinic_id == clinic_id, DirectoryEntry.participant == participant)))
    consents = 0
    if not keep_consent:
        consents = _rowcount(session.execute(delete(Consent).where(
            Consent.clinic_id == clinic_id, Consent.participant == participant)))
    tokens = _rowcount(session.execute(delete(TokenRow).where(
        TokenRow.clinic_id == clinic_id, TokenRow.participant == participant,
        or_(TokenRow.scope == "therapist", TokenRow.scope == "session"))))
    redacted = redact_audit(session, clinic_id, participant)
    erasure = Erasure(receipt, role, sessions, timeline, alerts, members, directory, consents,
                      tokens, redacted)
    if not missing_ok and not any(erasure.counts().values()):
        raise NothingToErase(f"{role}: not found")
    append(session, AuditRecord(clinic_id, token_id, scope, action or f"erase.{role}",
                                f"erasure {receipt}", erasure.counts()), at)
    session.flush()
    log.info("erased a %s of clinic %s (receipt %s): %s", role, clinic_id, receipt,
             erasure.counts())
    return erasure
