"""audit log: refuse TRUNCATE as well (a statement-level trigger on PostgreSQL)

The row triggers of 0001 refuse UPDATE and DELETE, but TRUNCATE fires no row trigger:
``TRUNCATE audit_log`` emptied the log. A statement-level trigger refuses it, for the
owner too. (Only the owner can disable a trigger; in production the owner is the
migration role, whose credentials the running integration does not have: see
``store/roles.py`` and deploy/README.md.) SQLite has no TRUNCATE; its limits are in
RELIABILITY.md.

Revision ID: 0008_audit
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_audit"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
