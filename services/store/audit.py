"""The audit log's records (issue 19, point 6): who read or changed what, and when.

Every read of a report, timeline, trend, list or export, every directory, consent or retention
change and every erasure appends one :class:`AuditRecord` to ``audit_log``: the token's id
(never the token), its scope, the clinic, the action and what it touched. Nothing updates or
deletes a row except the audit retention purge. Actions CLI commands take (``rapport purge``,
``rapport erase``) are recorded with the token id ``cli``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.store.schema import AuditEntry

CLI_TOKEN_ID = "cli"  # the token id of actions taken with the command line
MAX_TARGET_LENGTH = 1000


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
