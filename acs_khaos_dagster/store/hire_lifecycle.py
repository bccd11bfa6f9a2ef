"""The hire lifecycle as folded so far, and the hire events new since a watermark.

``flows.hire.hire_lifecycle`` loads the fold (``load``), folds in what is new and writes it
back (``save``) in the transaction that advances its cursor, so a run reads only the
snapshots and events that arrived since the last one (issue 23: flat cost over time).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.tables.hire import HireLifecycleEntry, HireLifecycleUnit
from acs_khaos_dagster.store.tables.returns import ReturnedUnit, ReturnStockMove

ENTRY_FIELDS = ("unique_sku", "sku", "stage", "at", "status", "source", "snapshot_at")
RETURN_FIELDS = ("unique_sku", "sku", "received_at", "is_hire", "batch_id", "matched_at")
MOVE_FIELDS = ("unique_sku", "happened_at", "created_at")
_CHUNK = 500
_UTC = "datetime64[ns, UTC]"


def _frame(rows: Iterable[Any], fields: tuple[str, ...], times: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(fields))
    if frame.empty:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in fields})
    for column in times:
        frame[column] = pd.to_datetime(frame[column], utc=True).astype(_UTC)
    return frame


def _unit_signatures(entries: pd.DataFrame) -> pd.Series:
    """One number per unit that changes when any of its entries (or their order) does."""
    if entries.empty:
        return pd.Series(dtype="uint64")
    rows = pd.util.hash_pandas_object(entries[list(ENTRY_FIELDS)], index=False).to_numpy()
    position = entries.groupby("unique_sku", sort=False).cumcount().to_numpy() + 1
    mixed = pd.Series(rows * position.astype("uint64"), index=entries["unique_sku"].to_numpy())
    return mixed.groupby(level=0).sum()


class HireLifecycleBook:
    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self, session: Session | None = None) -> tuple[pd.DataFrame, pd.Series]:
        """(every unit's entries in order, ``ENTRY_FIELDS``; unique SKU → last seen)."""
        with self._db.transaction(session) as s:
            entries = _frame(
                s.execute(
                    select(*(getattr(HireLifecycleEntry, f) for f in ENTRY_FIELDS)).order_by(
                        HireLifecycleEntry.unique_sku, HireLifecycleEntry.position
                    )
                ),
                ENTRY_FIELDS,
                ("at", "snapshot_at"),
            )
            seen = _frame(
                s.execute(select(HireLifecycleUnit.unique_sku, HireLifecycleUnit.last_seen_at)),
                ("unique_sku", "last_seen_at"),
                ("last_seen_at",),
            )
        return entries, seen.set_index("unique_sku")["last_seen_at"].rename(None)

    def save(
        self,
        before: pd.DataFrame,
        entries: pd.DataFrame,
        last_seen: pd.Series,
        session: Session,
    ) -> int:
        """Write the fold: the entries of the units whose entries changed since ``before``
        (what ``load`` gave), and every unit's last sighting. Returns the units rewritten."""
        old, new = _unit_signatures(before), _unit_signatures(entries)
        changed = sorted(
            set(new.index[~new.eq(old.reindex(new.index))]) | set(old.index.difference(new.index))
        )
        for start in range(0, len(changed), _CHUNK):
            chunk = changed[start : start + _CHUNK]
            session.execute(
                delete(HireLifecycleEntry).where(HireLifecycleEntry.unique_sku.in_(chunk))
            )
        rows = entries.loc[entries["unique_sku"].isin(changed), list(ENTRY_FIELDS)].copy()
        if not rows.empty:
            rows["position"] = rows.groupby("unique_sku", sort=False).cumcount()
            records = [
                {
                    **r,
                    "at": r["at"].to_pydatetime(),
                    "snapshot_at": r["snapshot_at"].to_pydatetime(),
                }
                for r in rows.to_dict("records")
            ]
            session.execute(insert(HireLifecycleEntry), records)
        session.execute(delete(HireLifecycleUnit))
        if not last_seen.empty:
            session.execute(
                insert(HireLifecycleUnit),
                [
                    {"unique_sku": str(unit), "last_seen_at": pd.Timestamp(at).to_pydatetime()}
                    for unit, at in last_seen.items()
                ],
            )
        return len(changed)

    def returns_since(
        self, after_batch: int, matched_since: datetime | None, session: Session | None = None
    ) -> pd.DataFrame:
        """Returned units of files after ``after_batch``, or matched since ``matched_since``
        (matching is what says a unit is a hire unit; it may come a run later)."""
        query = select(*(getattr(ReturnedUnit, f) for f in RETURN_FIELDS))
        newer = ReturnedUnit.batch_id > after_batch
        if matched_since is not None:
            query = query.where(or_(newer, ReturnedUnit.matched_at >= matched_since))
        else:
            query = query.where(newer)
        with self._db.transaction(session) as s:
            rows = s.execute(query.order_by(ReturnedUnit.batch_id, ReturnedUnit.line_number))
            return _frame(rows, RETURN_FIELDS, ("received_at", "matched_at"))

    def retirements_since(
        self, since: datetime | None, session: Session | None = None
    ) -> pd.DataFrame:
        """Stock moves that took a unit out of Khaos's Level (written off or ex-hired),
        recorded since ``since``."""
        query = select(*(getattr(ReturnStockMove, f) for f in MOVE_FIELDS)).where(
            ReturnStockMove.adjust_by < 0, ReturnStockMove.happened_at.is_not(None)
        )
        if since is not None:
            query = query.where(ReturnStockMove.created_at >= since)
        with self._db.transaction(session) as s:
            rows = s.execute(query.order_by(ReturnStockMove.created_at))
            return _frame(rows, MOVE_FIELDS, ("happened_at", "created_at"))
