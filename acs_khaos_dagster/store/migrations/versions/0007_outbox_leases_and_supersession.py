"""outbox: claim renewals and superseded versions

Revision ID: 0007
Revises: 0001
Create Date: 2026-12-06 17:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_effects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("supersede_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("superseded_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("superseded_reason", sa.Text(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_outbox_effects_supersede_key"), ["supersede_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_effects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_effects_supersede_key"))
        batch_op.drop_column("superseded_reason")
        batch_op.drop_column("superseded_by")
        batch_op.drop_column("supersede_key")
        batch_op.drop_column("renewed_at")
