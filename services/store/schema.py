"""The report store's tables, as typed SQLAlchemy 2 ORM classes (issue 5).

One row per finished session (its METRICS.md §10 final report), one per alert transition
(§7: raised or cleared), one per classified timeline item (the speech segments and floor
events of §2–§6 that the streaming workers publish in ``rapport.quality`` records), and one
per API token. Participant ids never reach these tables in clear: the store pseudonymizes them
before writing (:mod:`services.store.pseudonyms`); audio is never received at all.

Times: ``start_ms``/``end_ms``/``ts_ms`` are on the session clock (METRICS.md §1, integer
milliseconds); ``started_at_ms`` is the session start as Unix epoch milliseconds, the column
the API's date filters and ordering use (see :func:`services.store.sessions.started_at_ms`).
The schema is created and evolved only by the Alembic migrations in ``migrations/``; this
module must stay in step with the newest of them (a test compares the two).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LENGTH = 200  # session and clinic ids, as the platform sends them
PSEUDONYM_LENGTH = 64  # hex HMAC-SHA256
ALERT_LENGTH = 64
KIND_LENGTH = 32

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class SessionRow(Base):
    """A finished session and its final report (METRICS.md §10), pseudonymized. A session is
    (clinic, session id): two clinics may use the same id (issue 16; migration 0002)."""

    __tablename__ = "sessions"

    clinic_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, index=True)
    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    therapist: Mapped[str | None] = mapped_column(String(PSEUDONYM_LENGTH), index=True)
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    started_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    duration_s: Mapped[float] = mapped_column(Float)
    ended_by: Mapped[str] = mapped_column(String(KIND_LENGTH))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # "|long_silence|network_degraded|": a portable LIKE filter on both backends.
    alert_types: Mapped[str] = mapped_column(String(500), default="|")
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_sessions_clinic_started", "clinic_id", "started_at_ms"),)


class AlertRow(Base):
    """One alert transition (METRICS.md §7): ``alert`` raised, or cleared when ``cleared``."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    clinic_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    alert: Mapped[str] = mapped_column(String(ALERT_LENGTH))
    cleared: Mapped[bool] = mapped_column(Boolean)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("clinic_id", "session_id", "alert", "cleared", "ts_ms"),
                      Index("ix_alerts_clinic_session", "clinic_id", "session_id"))


class TimelineItem(Base):
    """One classified event of a session (an IPU, speaker change, interruption, collision or
    lapse; METRICS.md §2–§6), numbered ``n`` by the worker that decided it."""

    __tablename__ = "timeline_items"

    clinic_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(KIND_LENGTH))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class TokenRow(Base):
    """An API token, known only by its SHA-256 (the token itself is shown once, at creation)."""

    __tablename__ = "tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Session tokens only (scope "session", issue 18; migration 0002): the parent token it
    # dies with, its session, participant pseudonym, role and expiry. Null for other tokens.
    parent_hash: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    participant: Mapped[str | None] = mapped_column(String(PSEUDONYM_LENGTH), nullable=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True,
                                                        nullable=True)


# --- the clinic's own records (issue 19; migration 0004) -----------------------------------
LABEL_LENGTH = 1000  # a sealed label: base64 of nonce, ciphertext and tag
TOKEN_ID_LENGTH = 16
ROLE_LENGTH = 16


class SessionParticipant(Base):
    """Who took part in a stored session, by pseudonym and role (METRICS.md §1 roster): what
    follows a client over time, scopes a therapist's token, and finds what to erase. Written
    with the session's report; rows of sessions stored before 0004 hold only the therapist."""

    __tablename__ = "session_participants"

    clinic_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    participant: Mapped[str] = mapped_column(String(PSEUDONYM_LENGTH), primary_key=True)
    role: Mapped[str] = mapped_column(String(ROLE_LENGTH))

    __table_args__ = (Index("ix_session_participants_clinic_participant",
                            "clinic_id", "participant"),)


class DirectoryEntry(Base):
    """A clinic's display label for one of its participants (by pseudonym). ``label`` is
    sealed (encrypted and authenticated) with the label key; it is never stored in clear."""

    __tablename__ = "directory"

    clinic_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    participant: Mapped[str] = mapped_column(String(PSEUDONYM_LENGTH), primary_key=True)
    role: Mapped[str] = mapped_column(String(ROLE_LENGTH))
    label: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(TOKEN_ID_LENGTH))


class Consent(Base):
    """A client's consent to analysis as the clinic recorded it last (its history is in the
    audit log): who recorded it (token id) and when."""

    __tablename__ = "consents"

    clinic_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    participant: Mapped[str] = mapped_column(String(PSEUDONYM_LENGTH), primary_key=True)
    analysis: Mapped[bool] = mapped_column(Boolean)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(String(TOKEN_ID_LENGTH))


class ClinicPolicy(Base):
    """A clinic's settings; a clinic without a row has the defaults (services/settings.py):
    reports kept ``retention_days``, the audit log ``audit_retention_days``, and whether a
    client's consent is required before their sessions are analysed."""

    __tablename__ = "clinic_policies"

    clinic_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    retention_days: Mapped[int] = mapped_column(Integer)
    audit_retention_days: Mapped[int] = mapped_column(Integer)
    require_consent: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(TOKEN_ID_LENGTH))


class AuditEntry(Base):
    """One audited access or change: when, by which token (its id, never the token), in which
    clinic, what was done to what. Append-only: no API updates or deletes a row; only the
    audit retention purge removes old ones."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    clinic_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    token_id: Mapped[str] = mapped_column(String(TOKEN_ID_LENGTH))
    scope: Mapped[str] = mapped_column(String(ROLE_LENGTH))
    action: Mapped[str] = mapped_column(String(ALERT_LENGTH))
    target: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_log_clinic_at", "clinic_id", "at"),)
