"""orders: release finished_at, decided despatch events, indexes for the open-order reads

Revision ID: 0011_releases_finished_at
Revises: 0009_shipment_invoices
Create Date: 2026-12-06 23:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_releases_finished_at"
down_revision: str | None = "0009_shipment_invoices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("order_releases") as batch:
        batch.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(batch.f("ix_order_releases_finished_at"), ["finished_at"], unique=False)
        batch.create_index(
            batch.f("ix_order_releases_acknowledged_at"), ["acknowledged_at"], unique=False
        )

    # ``observe`` reads the release-stage clocks still running, not every observation.
    op.create_index(
        op.f("ix_order_observations_at_release_since"),
        "order_observations",
        ["at_release_since"],
        unique=False,
    )

    # The events whose shipment is decided, so the posting step reads only the others.
    with op.batch_alter_table("despatch_events") as batch:
        batch.add_column(
            sa.Column("decided", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_index(batch.f("ix_despatch_events_decided"), ["decided"], unique=False)
    events = sa.table("despatch_events", sa.column("shipment_id"), sa.column("decided"))
    postings = sa.table("shipment_postings", sa.column("shipment_id"), sa.column("state"))
    op.execute(
        events.update()
        .where(
            events.c.shipment_id.in_(
                sa.select(postings.c.shipment_id).where(postings.c.state.in_(("queued", "nothing")))
            )
        )
        .values(decided=sa.true())
    )


def downgrade() -> None:
    with op.batch_alter_table("despatch_events") as batch:
        batch.drop_index(batch.f("ix_despatch_events_decided"))
        batch.drop_column("decided")
    op.drop_index(op.f("ix_order_observations_at_release_since"), table_name="order_observations")
    with op.batch_alter_table("order_releases") as batch:
        batch.drop_index(batch.f("ix_order_releases_acknowledged_at"))
        batch.drop_index(batch.f("ix_order_releases_finished_at"))
        batch.drop_column("finished_at")
