"""Session tokens (issue 18): short-lived tokens minted from an ingest or admin token for one
session and participant (services/store/tokens.py).

A session token is a row of ``tokens`` with scope ``session`` and these columns set: its parent
token's hash (it dies with the parent), the session, the participant's pseudonym (never the id
in clear), the role and the expiry. Other tokens leave them null. Session tokens expired for
more than a week are deleted as new ones are minted (indexed by expiry).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("parent_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("session_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("participant", sa.String(64), nullable=True))
        batch.add_column(sa.Column("role", sa.String(16), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_tokens_parent_hash", ["parent_hash"])
        batch.create_index("ix_tokens_expires_at", ["expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_index("ix_tokens_expires_at")
        batch.drop_index("ix_tokens_parent_hash")
        batch.drop_column("expires_at")
        batch.drop_column("role")
        batch.drop_column("participant")
        batch.drop_column("session_id")
        batch.drop_column("parent_hash")
