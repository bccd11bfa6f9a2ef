"""orders: partial indexes for the running order clocks

Revision ID: 0013_order_clock_indexes
Revises: 0011_releases_finished_at
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_order_clock_indexes"
down_revision: str | None = "0011_releases_finished_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AT_RELEASE = sa.text("at_release_since IS NOT NULL")
_RUNNING = sa.text("at_release_since IS NOT NULL OR back_order_since IS NOT NULL")


def upgrade() -> None:
    # The condition is the reads' own, so SQLite's planner takes the index for them: on
    # the plain index it scanned every observation ever made for ``IS NOT NULL``.
    for name, where in (
        ("ix_order_observations_at_release", _AT_RELEASE),
        ("ix_order_observations_running", _RUNNING),
    ):
        op.create_index(
            name,
            "order_observations",
            ["order_code"],
            unique=False,
            sqlite_where=where,
            postgresql_where=where,
        )


def downgrade() -> None:
    op.drop_index("ix_order_observations_running", table_name="order_observations")
    op.drop_index("ix_order_observations_at_release", table_name="order_observations")
