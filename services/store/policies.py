"""A clinic's policy (issue 19, points 4 and 5): how long its reports and its audit log are
kept, and whether a client's consent is required before their sessions are analysed.

A clinic without a row has the process defaults (:class:`PolicyDefaults`, from
``RAPPORT_RETENTION_DAYS`` and ``RAPPORT_AUDIT_RETENTION_DAYS``; consent not required).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from models.errors import ValidationError
from services.store.schema import ClinicPolicy

MAX_DAYS = 36_500  # a century: anything longer is a typo, not a policy


@dataclass(frozen=True, slots=True)
class PolicyDefaults:
    retention_days: int = 365
    audit_retention_days: int = 2192  # six years


@dataclass(frozen=True, slots=True)
class Policy:
    clinic_id: str
    retention_days: int
    audit_retention_days: int
    require_consent: bool
    explicit: bool  # False: the clinic has set nothing; these are the defaults
    updated_at: datetime | None = None
    updated_by: str | None = None


def check_days(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        raise ValidationError(field, f"must be a whole number of days from 1 to {MAX_DAYS}")
    return value


def get_policy(session: Session, clinic_id: str, defaults: PolicyDefaults) -> Policy:
    row = session.get(ClinicPolicy, clinic_id)
    if row is None:
        return Policy(clinic_id, defaults.retention_days, defaults.audit_retention_days,
                      False, explicit=False)
    return Policy(clinic_id, row.retention_days, row.audit_retention_days, row.require_consent,
                  True, row.updated_at, row.updated_by)


def set_policy(session: Session, clinic_id: str, defaults: PolicyDefaults, *, by: str,
               at: datetime, retention_days: int | None = None,
               audit_retention_days: int | None = None,
               require_consent: bool | None = None) -> Policy:
    """Change the fields given (None keeps the current value, or the default)."""
    current = get_policy(session, clinic_id, defaults)
    if require_consent is not None and not isinstance(require_consent, bool):
        raise ValidationError("require_consent", "must be true or false")
    values = {
        "retention_days": check_days("retention_days", retention_days)
        if retention_days is not None else current.retention_days,
        "audit_retention_days": check_days("audit_retention_days", audit_retention_days)
        if audit_retention_days is not None else current.audit_retention_days,
        "require_consent": require_consent if require_consent is not None
        else current.require_consent,
    }
    row = session.get(ClinicPolicy, clinic_id)
    if row is None:
        session.add(ClinicPolicy(clinic_id=clinic_id, updated_at=at, updated_by=by, **values))
    else:
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at, row.updated_by = at, by
    session.flush()
    return get_policy(session, clinic_id, defaults)

