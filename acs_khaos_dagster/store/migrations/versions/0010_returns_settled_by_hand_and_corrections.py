"""returns: units settled by hand, corrected ACS rows

Revision ID: 0010_returns_corrections
Revises: 0005
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_returns_corrections"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("returned_units") as batch:
        batch.add_column(sa.Column("settled_by_hand_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("settled_by_hand_by", sa.String(length=120)))
        batch.add_column(sa.Column("settled_by_hand_note", sa.Text()))
    op.create_table(
        "returned_unit_corrections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("return_ref", sa.String(length=60), nullable=False),
        sa.Column("unique_sku", sa.String(length=60), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["ingested_files.id"],
            name=op.f("fk_returned_unit_corrections_batch_id_ingested_files"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_returned_unit_corrections")),
    )
    op.create_index(
        op.f("ix_returned_unit_corrections_return_ref"),
        "returned_unit_corrections",
        ["return_ref"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_returned_unit_corrections_return_ref"), table_name="returned_unit_corrections"
    )
    op.drop_table("returned_unit_corrections")
    with op.batch_alter_table("returned_units") as batch:
        batch.drop_column("settled_by_hand_note")
        batch.drop_column("settled_by_hand_by")
        batch.drop_column("settled_by_hand_at")
