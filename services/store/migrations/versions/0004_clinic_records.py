"""The clinic's own records (issue 19): who took part in each session, the clinic directory
(sealed display labels), consent, clinic policies (retention, consent required) and the
append-only audit log.

``session_participants`` is filled for sessions stored from now on (with their roster); a
session stored before knows only its therapist, which is copied from ``sessions.therapist``.

Revision ID: 0004
Revises: 0003 (sessions by clinic)
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = 200
PSEUDONYM = 64
TOKEN_ID = 16
ROLE = 16
LABEL = 1000


def upgrade() -> None:
    op.create_table(
        "session_participants",
        sa.Column("clinic_id", sa.String(ID), nullable=False),
        sa.Column("session_id", sa.String(ID), nullable=False),
        sa.Column("participant", sa.String(PSEUDONYM), nullable=False),
        sa.Column("role", sa.String(ROLE), nullable=False),
        sa.PrimaryKeyConstraint("clinic_id", "session_id", "participant",
                                name="pk_session_participants"),
    )
    op.create_index("ix_session_participants_clinic_participant", "session_participants",
                    ["clinic_id", "participant"])
    op.execute("INSERT INTO session_participants (clinic_id, session_id, participant, role) "
               "SELECT clinic_id, session_id, therapist, 'therapist' FROM sessions "
               "WHERE therapist IS NOT NULL")
    op.create_table(
        "directory",
        sa.Column("clinic_id", sa.String(ID), nullable=False),
        sa.Column("participant", sa.String(PSEUDONYM), nullable=False),
        sa.Column("role", sa.String(ROLE), nullable=False),
        sa.Column("label", sa.String(LABEL), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(TOKEN_ID), nullable=False),
        sa.PrimaryKeyConstraint("clinic_id", "participant", name="pk_directory"),
    )
    op.create_table(
        "consents",
        sa.Column("clinic_id", sa.String(ID), nullable=False),
        sa.Column("participant", sa.String(PSEUDONYM), nullable=False),
        sa.Column("analysis", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(TOKEN_ID), nullable=False),
        sa.PrimaryKeyConstraint("clinic_id", "participant", name="pk_consents"),
    )
    op.create_table(
        "clinic_policies",
        sa.Column("clinic_id", sa.String(ID), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("audit_retention_days", sa.Integer(), nullable=False),
        sa.Column("require_consent", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(TOKEN_ID), nullable=False),
        sa.PrimaryKeyConstraint("clinic_id", name="pk_clinic_policies"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.String(ID), nullable=False),
        sa.Column("token_id", sa.String(TOKEN_ID), nullable=False),
        sa.Column("scope", sa.String(ROLE), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(LABEL), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_clinic_at", "audit_log", ["clinic_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_clinic_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("clinic_policies")
    op.drop_table("consents")
    op.drop_table("directory")
    op.drop_index("ix_session_participants_clinic_participant",
                  table_name="session_participants")
    op.drop_table("session_participants")
