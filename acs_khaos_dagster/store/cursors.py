"""Named watermarks of the inbound feeds.

A cursor advances in the same transaction as the data it covers::

    with store.transaction() as session:
        write_rows(session, rows)
        store.cursors.set("acs.despatch_events", {"after_id": last_id}, session)

so a crash between the two cannot skip data or take it twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.schema import Cursor


class Cursors:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, name: str, default: Any = None, session: Session | None = None) -> Any:
        with self._db.transaction(session) as s:
            row = s.get(Cursor, name)
            return default if row is None else row.value

    def set(self, name: str, value: Any, session: Session) -> None:
        """Advance ``name`` to ``value`` (any JSON value) inside the caller's transaction."""
        if session is None:
            raise ValueError("a cursor is written in the caller's transaction: pass its session")
        now = self._db.now()
        stmt = self._db.insert(Cursor).values(name=name, value=value, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Cursor.name], set_={"value": value, "updated_at": now}
        )
        session.execute(stmt)
        # The ORM may hold a stale copy from an earlier get() in this session.
        cached = session.get(Cursor, name, populate_existing=True)
        assert cached is not None

    def all(self) -> dict[str, Any]:
        with self._db.transaction() as s:
            return {row.name: row.value for row in s.scalars(select(Cursor).order_by(Cursor.name))}
