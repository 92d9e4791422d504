"""The clinic directory and consent records (issue 19, points 1 and 4).

Directory: a clinic's display labels for its own participants, by pseudonym and role, sealed
at rest (services/store/labels.py). Only the clinic's own pages and directory API open them;
reports, analytics, Kafka, logs and metrics keep pseudonyms.

Consent: per client, whether the clinic recorded consent to analysis, by which token and when
(the latest record; every change is also in the audit log). A clinic whose policy requires
consent (services/store/policies.py) has sessions of clients without ``analysis: true``
rejected at the ingest.

Functions take the caller's SQLAlchemy session and pseudonyms (the facade,
:class:`~services.store.ReportStore`, pseudonymizes platform ids first).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.errors import ValidationError
from services.store.labels import LabelError, LabelSealer
from services.store.policies import PolicyDefaults, get_policy
from services.store.schema import Consent, DirectoryEntry

log = logging.getLogger(__name__)

Role = Literal["therapist", "client"]
ROLES: tuple[Role, ...] = ("therapist", "client")


@dataclass(frozen=True, slots=True)
class Label:
    """One directory entry, opened: ``label`` is None when it does not open (wrong key)."""

    participant: str
    role: Role
    label: str | None
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    participant: str
    analysis: bool
    recorded_at: datetime
    recorded_by: str


def check_role(role: object) -> Role:
    if role not in ROLES:
        raise ValidationError("role", f"must be one of {', '.join(ROLES)}")
    return role


def set_label(session: Session, sealer: LabelSealer, clinic_id: str, participant: str,
              role: Role, label: str, by: str, at: datetime) -> bool:
    """Create or replace the participant's label; True when it was new."""
    sealed = sealer.seal(clinic_id, participant, label)
    row = session.get(DirectoryEntry, (clinic_id, participant))
    if row is None:
        session.add(DirectoryEntry(clinic_id=clinic_id, participant=participant, role=role,
                                   label=sealed, updated_at=at, updated_by=by))
        session.flush()
        return True
    row.role, row.label, row.updated_at, row.updated_by = role, sealed, at, by
    session.flush()
    return False


def _open(sealer: LabelSealer, row: DirectoryEntry) -> str | None:
    try:
        return sealer.open(row.clinic_id, row.participant, row.label)
    except LabelError:
        log.warning("a display label of clinic %s does not open with the label key",
                    row.clinic_id)
        return None


def list_labels(session: Session, sealer: LabelSealer, clinic_id: str) -> list[Label]:
    """The clinic's directory, therapists first, then by label."""
    rows = session.scalars(select(DirectoryEntry).where(DirectoryEntry.clinic_id == clinic_id))
    entries = [Label(row.participant, check_role(row.role), _open(sealer, row), row.updated_at,
                     row.updated_by) for row in rows]
    return sorted(entries, key=lambda e: (ROLES.index(e.role), (e.label or "").casefold(),
                                          e.participant))


def label_of(session: Session, sealer: LabelSealer, clinic_id: str,
             participant: str) -> Label | None:
    row = session.get(DirectoryEntry, (clinic_id, participant))
    if row is None:
        return None
    return Label(row.participant, check_role(row.role), _open(sealer, row), row.updated_at,
                 row.updated_by)


def labels_for(session: Session, sealer: LabelSealer, clinic_id: str) -> dict[str, str]:
    """Pseudonym → display label of one clinic (labels that do not open are left out)."""
    return {entry.participant: entry.label for entry in list_labels(session, sealer, clinic_id)
            if entry.label is not None}


def delete_label(session: Session, clinic_id: str, participant: str) -> bool:
    """Remove the participant's entry; True if there was one."""
    result = session.execute(delete(DirectoryEntry).where(
        DirectoryEntry.clinic_id == clinic_id, DirectoryEntry.participant == participant))
    return bool(getattr(result, "rowcount", 0))


def set_consent(session: Session, clinic_id: str, participant: str, analysis: bool, by: str,
                at: datetime) -> ConsentRecord:
    """Record the client's consent to analysis (replacing the previous record)."""
    if not isinstance(analysis, bool):
        raise ValidationError("analysis", "must be true or false")
    row = session.get(Consent, (clinic_id, participant))
    if row is None:
        row = Consent(clinic_id=clinic_id, participant=participant, analysis=analysis,
                      recorded_at=at, recorded_by=by)
        session.add(row)
    else:
        row.analysis, row.recorded_at, row.recorded_by = analysis, at, by
    session.flush()
    return ConsentRecord(participant, analysis, at, by)


def consent_of(session: Session, clinic_id: str, participant: str) -> ConsentRecord | None:
    row = session.get(Consent, (clinic_id, participant))
    if row is None:
        return None
    return ConsentRecord(row.participant, row.analysis, row.recorded_at, row.recorded_by)


def list_consents(session: Session, clinic_id: str) -> list[ConsentRecord]:
    """The clinic's consent records, newest first."""
    rows = session.scalars(select(Consent).where(Consent.clinic_id == clinic_id)
                           .order_by(Consent.recorded_at.desc(), Consent.participant))
    return [ConsentRecord(r.participant, r.analysis, r.recorded_at, r.recorded_by)
            for r in rows]


def consented(session: Session, clinic_id: str, participants: list[str]) -> set[str]:
    """Which of ``participants`` have consent to analysis recorded (``analysis: true``)."""
    if not participants:
        return set()
    rows = session.scalars(select(Consent.participant).where(
        Consent.clinic_id == clinic_id, Consent.participant.in_(participants),
        Consent.analysis.is_(True)))
    return set(rows)


class ConsentMissing(ValidationError):
    """A worker record of a session whose client has no recorded consent to analysis, in a
    clinic that requires it: refused by the store (issue 19, point 4), so a platform writing
    straight into Kafka cannot bypass the ingest's check. ``clients`` are pseudonyms."""

    def __init__(self, session_id: str, clients: list[str]) -> None:
        super().__init__("participants", f"session {session_id}: client(s) "
                                         f"{', '.join(clients)} have no recorded consent to "
                                         "analysis (clinic requires it)")
        self.session_id = session_id
        self.clients = clients


def missing_consent(session: Session, clinic_id: str, defaults: PolicyDefaults,
                    clients: Iterable[str]) -> list[str]:
    """The client pseudonyms without consent to analysis, when the clinic requires it."""
    wanted = sorted(set(clients))
    if not wanted or not get_policy(session, clinic_id, defaults).require_consent:
        return []
    given = consented(session, clinic_id, wanted)
    return [p for p in wanted if p not in given]
