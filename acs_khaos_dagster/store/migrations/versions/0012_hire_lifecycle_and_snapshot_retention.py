"""hire: lifecycle state; stock: snapshot retention

Revision ID: 0012
Revises: 0004
Create Date: 2026-12-07 02:44:54.163522
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
# It alters ``stock_snapshot`` (revision 0004), so it follows that branch.
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hire_lifecycle_entries",
        sa.Column("unique_sku", sa.String(length=60), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=60), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=120), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("snapshot_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("unique_sku", "position", name=op.f("pk_hire_lifecycle_entries")),
    )
    op.create_table(
        "hire_lifecycle_units",
        sa.Column("unique_sku", sa.String(length=60), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("unique_sku", name=op.f("pk_hire_lifecycle_units")),
    )
    with op.batch_alter_table("stock_snapshot", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("counts_pruned_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("stock_snapshot", schema=None) as batch_op:
        batch_op.drop_column("counts_pruned_at")
        batch_op.drop_column("pruned_at")

    op.drop_table("hire_lifecycle_units")
    op.drop_table("hire_lifecycle_entries")
