"""When the integration last did what the brand overview reports: read-only queries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.outbox.records import DONE
from acs_khaos_dagster.store.schema import Effect
from acs_khaos_dagster.store.tables.stock import StockSnapshot


class Activity:
    def __init__(self, db: Database) -> None:
        self._db = db

    def last_done(self, kind: str) -> datetime | None:
        """When the newest effect of ``kind`` the target confirmed was settled."""
        query = select(func.max(Effect.updated_at)).where(Effect.kind == kind, Effect.state == DONE)
        with self._db.transaction() as s:
            return s.scalar(query)

    def newest_snapshot_at(self) -> datetime | None:
        """The time of the newest ACS stock snapshot taken in (whatever became of it)."""
        with self._db.transaction() as s:
            return s.scalar(select(func.max(StockSnapshot.snapshot_at)))
