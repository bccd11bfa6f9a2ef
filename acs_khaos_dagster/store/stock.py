"""Stock snapshots taken in from ACS and what became of them (refused, pushed, skipped)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from acs_khaos_dagster.domain.stock_guards import SnapshotTotals
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.tables.stock import StockSnapshot


class StockSnapshots:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        *,
        snapshot_id: str,
        file_id: int,
        file_name: str,
        snapshot_at: datetime,
        partition_day: str,
        totals: SnapshotTotals,
        counts_path: str,
        units_path: str,
        session: Session,
    ) -> StockSnapshot:
        """Record a snapshot in the caller's transaction (the one that closes its file)."""
        now = self._db.now()
        row = StockSnapshot(
            snapshot_id=snapshot_id,
            file_id=file_id,
            file_name=file_name,
            snapshot_at=snapshot_at,
            partition_day=partition_day,
            total_units=totals.total,
            sellable_units=totals.sellable,
            unknown_units=totals.unknown,
            counts_path=counts_path,
            units_path=units_path,
            state="ingested",
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        return row

    def by_file(self, file_id: int, session: Session | None = None) -> StockSnapshot | None:
        with self._db.transaction(session) as s:
            return s.scalars(
                select(StockSnapshot).where(StockSnapshot.file_id == file_id)
            ).one_or_none()

    def get(self, snapshot_id: str, session: Session | None = None) -> StockSnapshot | None:
        with self._db.transaction(session) as s:
            return s.scalars(
                select(StockSnapshot).where(StockSnapshot.snapshot_id == snapshot_id)
            ).one_or_none()

    def newest_of_day(self, day: str, session: Session | None = None) -> StockSnapshot | None:
        """The newest snapshot taken in for a snapshot day (a partition)."""
        with self._db.transaction(session) as s:
            return s.scalars(
                select(StockSnapshot)
                .where(StockSnapshot.partition_day == day)
                .order_by(StockSnapshot.snapshot_at.desc(), StockSnapshot.id.desc())
                .limit(1)
            ).one_or_none()

    def newest(self, session: Session | None = None) -> StockSnapshot | None:
        """The newest snapshot by ACS's snapshot time (ties: the file taken in last)."""
        with self._db.transaction(session) as s:
            return s.scalars(
                select(StockSnapshot)
                .order_by(StockSnapshot.snapshot_at.desc(), StockSnapshot.id.desc())
                .limit(1)
            ).one_or_none()

    def last_pushed(self, session: Session | None = None) -> StockSnapshot | None:
        """The newest pushed snapshot: its time bounds what may be pushed next, and its
        totals are the plausibility guard's baseline (the last accepted snapshot)."""
        with self._db.transaction(session) as s:
            return s.scalars(
                select(StockSnapshot)
                .where(StockSnapshot.state == "pushed")
                .order_by(StockSnapshot.snapshot_at.desc(), StockSnapshot.id.desc())
                .limit(1)
            ).one_or_none()

    def last_accepted_totals(self, session: Session | None = None) -> SnapshotTotals | None:
        row = self.last_pushed(session)
        if row is None:
            return None
        return SnapshotTotals(
            total=row.total_units, sellable=row.sellable_units, unknown=row.unknown_units
        )

    def mark(
        self,
        snapshot_id: str,
        state: str,
        *,
        session: Session,
        reasons: list[str] | None = None,
        summary: dict[str, Any] | None = None,
        pushed_at: datetime | None = None,
        only_from: str | None = None,
    ) -> StockSnapshot | None:
        """Set the snapshot's state (``None``, nothing changed, if ``only_from`` is given
        and the snapshot is no longer in that state: another run got there first)."""
        row = session.scalars(
            select(StockSnapshot)
            .where(StockSnapshot.snapshot_id == snapshot_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        if only_from is not None and row.state != only_from:
            return None
        row.state = state
        row.reasons = reasons
        row.summary = summary
        row.pushed_at = pushed_at
        row.updated_at = self._db.now()
        session.flush()
        return row

    def prunable(self, before: datetime, session: Session | None = None) -> list[StockSnapshot]:
        """Snapshots taken before ``before`` whose kept files are not all removed yet."""
        with self._db.transaction(session) as s:
            return list(
                s.scalars(
                    select(StockSnapshot)
                    .where(
                        StockSnapshot.snapshot_at < before,
                        or_(
                            StockSnapshot.pruned_at.is_(None),
                            StockSnapshot.counts_pruned_at.is_(None),
                        ),
                    )
                    .order_by(StockSnapshot.snapshot_at, StockSnapshot.id)
                )
            )

    def mark_pruned(self, snapshot_id: str, *, units: bool, counts: bool, session: Session) -> None:
        """Record that the retention removed the snapshot's unit-level files and/or its
        per-status counts (a time already recorded is kept)."""
        row = session.scalars(
            select(StockSnapshot).where(StockSnapshot.snapshot_id == snapshot_id)
        ).one()
        now = self._db.now()
        if units and row.pruned_at is None:
            row.pruned_at = now
        if counts and row.counts_pruned_at is None:
            row.counts_pruned_at = now
        row.updated_at = now
        session.flush()

    def all(self) -> list[StockSnapshot]:
        with self._db.transaction() as s:
            return list(s.scalars(select(StockSnapshot).order_by(StockSnapshot.id)))
