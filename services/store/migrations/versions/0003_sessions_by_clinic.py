"""Sessions identified by (clinic, session id) (issue 16 finding 1).

Two clinics may use the same session id: the primary keys of ``sessions`` and
``timeline_items`` and the unique key of ``alerts`` take ``clinic_id`` first. Every existing
row already carries its clinic, and the old keys were unique on ``session_id`` alone, so the
rows move over unchanged and no key can collide. SQLite cannot alter a primary key in place:
its tables are copied (Alembic's batch mode), PostgreSQL alters them.

Revision ID: 0003
Revises: 0002 (session tokens)
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", recreate="auto") as batch:
        batch.drop_constraint("pk_sessions", type_="primary")
        batch.create_primary_key("pk_sessions", ["clinic_id", "session_id"])
    with op.batch_alter_table("timeline_items", recreate="auto") as batch:
        batch.drop_constraint("pk_timeline_items", type_="primary")
        batch.create_primary_key("pk_timeline_items", ["clinic_id", "session_id", "n"])
    with op.batch_alter_table("alerts", recreate="auto") as batch:
        batch.drop_constraint("uq_alerts_session_id_alert_cleared_ts_ms", type_="unique")
        batch.create_unique_constraint(
            "uq_alerts_clinic_id_session_id_alert_cleared_ts_ms",
            ["clinic_id", "session_id", "alert", "cleared", "ts_ms"])
        batch.drop_index("ix_alerts_session_id")
        batch.create_index("ix_alerts_clinic_session", ["clinic_id", "session_id"])


def downgrade() -> None:
    """Back to keys by session id alone: fails (duplicate key) if two clinics share an id."""
    with op.batch_alter_table("alerts", recreate="auto") as batch:
        batch.drop_index("ix_alerts_clinic_session")
        batch.create_index("ix_alerts_session_id", ["session_id"])
        batch.drop_constraint("uq_alerts_clinic_id_session_id_alert_cleared_ts_ms",
                              type_="unique")
        batch.create_unique_constraint("uq_alerts_session_id_alert_cleared_ts_ms",
                                       ["session_id", "alert", "cleared", "ts_ms"])
    with op.batch_alter_table("timeline_items", recreate="auto") as batch:
        batch.drop_constraint("pk_timeline_items", type_="primary")
        batch.create_primary_key("pk_timeline_items", ["session_id", "n"])
    with op.batch_alter_table("sessions", recreate="auto") as batch:
        batch.drop_constraint("pk_sessions", type_="primary")
        batch.create_primary_key("pk_sessions", ["session_id"])
