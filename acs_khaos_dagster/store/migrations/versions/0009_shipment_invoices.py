"""stock push: shipments whose invoice was seen issued

Revision ID: 0009_shipment_invoices
Revises: 0003
Create Date: 2026-12-06 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_shipment_invoices"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shipment_invoices",
        sa.Column("shipment_id", sa.String(length=80), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shipment_id", name=op.f("pk_shipment_invoices")),
    )


def downgrade() -> None:
    op.drop_table("shipment_invoices")
