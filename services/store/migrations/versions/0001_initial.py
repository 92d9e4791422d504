"""Initial report store: sessions, alerts, timeline items, tokens (issue 5).

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("clinic_id", sa.String(200), nullable=False),
        sa.Column("therapist", sa.String(64), nullable=True),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("ended_by", sa.String(32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alert_types", sa.String(500), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_clinic_id", "sessions", ["clinic_id"])
    op.create_index("ix_sessions_therapist", "sessions", ["therapist"])
    op.create_index("ix_sessions_started_at_ms", "sessions", ["started_at_ms"])
    op.create_index("ix_sessions_clinic_started", "sessions", ["clinic_id", "started_at_ms"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("clinic_id", sa.String(200), nullable=False),
        sa.Column("alert", sa.String(64), nullable=False),
        sa.Column("cleared", sa.Boolean(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("session_id", "alert", "cleared", "ts_ms",
                            name="uq_alerts_session_id_alert_cleared_ts_ms"),
    )
    op.create_index("ix_alerts_session_id", "alerts", ["session_id"])

    op.create_table(
        "timeline_items",
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("clinic_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "n", name="pk_timeline_items"),
    )

    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("clinic_id", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_tokens"),
    )
    op.create_index("ix_tokens_clinic_id", "tokens", ["clinic_id"])


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("timeline_items")
    op.drop_table("alerts")
    op.drop_table("sessions")
