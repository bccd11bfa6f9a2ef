"""The hire lifecycle as folded so far, and the hire events new since a watermark.

``flows.hire.hire_lifecycle`` loads the fold (``load``), folds in what is new and writes it
back (``save``) in the transaction that advances its cursor, so a run reads only the
snapshots and events that arrived since the last one (issue 23: flat cost over time).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import String, delete, insert, or_, select, type_coerce
from sqlalchemy.orm import Session

from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.tables.hire import HireLifecycleEntry, HireLifecycleUnit
from acs_khaos_dagster.store.tables.returns import ReturnedUnit, ReturnStockMove

ENTRY_FIELDS = ("unique_sku", "sku", "stage", "at", "status", "source", "snapshot_at")
RETURN_FIELDS = ("unique_sku", "sku", "received_at", "is_hire", "batch_id", "matched_at")
MOVE_FIELDS = ("unique_sku", "happened_at", "created_at")
_CHUNK = 500
_INSERT_CHUNK = 5_000
_UTC = "datetime64[ns, UTC]"


def _frame(rows: Iterable[Any], fields: tuple[str, ...], times: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(rows), columns=list(fields))
    if frame.empty:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in fields})
    for column in times:
        frame[column] = _times(frame[column])
    return frame


def _times(values: pd.Series) -> pd.Series:
    """Stored times, parsed in one pass (SQLite gives UTC text, PostgreSQL aware times)."""
    return pd.to_datetime(values, utc=True, format="mixed").astype(_UTC)


def _raw(column: Any) -> Any:
    """A time column read as the database gives it, parsed by ``_times`` rather than one
    value at a time: the lifecycle is the whole fleet's history."""
    return type_coerce(column, String)


def _row_hashes(entries: pd.DataFrame) -> pd.DataFrame:
    """``unique_sku, position, hash`` per entry (position within its unit)."""
    return pd.DataFrame(
        {
            "unique_sku": entries["unique_sku"].to_numpy(),
            "position": entries.groupby("unique_sku", sort=False).cumcount().to_numpy(),
            # Nullable integers: an outer merge keeps them exact (floats would round).
            "hash": pd.array(
                pd.util.hash_pandas_object(entries[list(ENTRY_FIELDS)], index=False)
                .to_numpy()
                .view("int64"),
                dtype="Int64",
            ),
        }
    )


def _stored_last_seen(last_seen: pd.Series, latest: pd.Timestamp | None) -> pd.Series:
    """What ``hire_lifecycle_units`` holds: NaT for units in the newest snapshot."""
    if latest is None or last_seen.empty:
        return last_seen
    return last_seen.where(last_seen != latest)


class HireLifecycleBook:
    def __init__(self, db: Database) -> None:
        self._db = db

    def load(
        self, latest: pd.Timestamp | None, session: Session | None = None
    ) -> tuple[pd.DataFrame, pd.Series]:
        """(every unit's entries in order, ``ENTRY_FIELDS``; unique SKU → last seen), with
        ``latest`` the newest snapshot folded (the cursor's)."""
        entry = HireLifecycleEntry
        columns = [
            _raw(getattr(entry, f)) if f in ("at", "snapshot_at") else getattr(entry, f)
            for f in ENTRY_FIELDS
        ]
        with self._db.transaction(session) as s:
            # Core rows (no ORM loading): the whole fleet's history is read each run.
            conn = s.connection()
            entries = _frame(
                conn.execute(select(*columns).order_by(entry.unique_sku, entry.position)),
                ENTRY_FIELDS,
                ("at", "snapshot_at"),
            )
            seen = _frame(
                conn.execute(
                    select(HireLifecycleUnit.unique_sku, _raw(HireLifecycleUnit.last_seen_at))
                ),
                ("unique_sku", "last_seen_at"),
                ("last_seen_at",),
            )
        last_seen = seen.set_index("unique_sku")["last_seen_at"].rename(None)
        if latest is not None:
            last_seen = last_seen.fillna(latest)
        return entries, last_seen.astype(_UTC)

    def save(
        self,
        before: tuple[pd.DataFrame, pd.Series, pd.Timestamp | None],
        after: tuple[pd.DataFrame, pd.Series, pd.Timestamp | None],
        session: Session,
        rebuilt: Collection[str] | None = None,
    ) -> int:
        """Write the fold ``after`` over ``before`` (what ``load`` gave, and the newest
        snapshot time of each): new entries appended, a unit whose earlier entries changed
        rewritten, and only the sightings that changed. ``rebuilt``: the only units whose
        entries may differ (the fold's), when known. Returns the units written."""
        (old, old_seen, old_latest), (new, new_seen, new_latest) = before, after
        if rebuilt is not None:
            old = old.loc[old["unique_sku"].isin(rebuilt)]
            new = new.loc[new["unique_sku"].isin(rebuilt)]
        merged = _row_hashes(old).merge(
            _row_hashes(new), on=["unique_sku", "position"], how="outer", suffixes=("_o", "_n")
        )
        differs = merged["hash_o"].notna() & (
            merged["hash_n"].isna() | (merged["hash_o"] != merged["hash_n"]).fillna(True)
        )
        rewrite = set(merged.loc[differs, "unique_sku"])
        appended = merged.loc[merged["hash_o"].isna(), ["unique_sku", "position"]]
        appended = appended.loc[~appended["unique_sku"].isin(rewrite)]
        for chunk in _chunks(sorted(rewrite)):
            session.execute(
                delete(HireLifecycleEntry).where(HireLifecycleEntry.unique_sku.in_(chunk))
            )
        positioned = new.assign(position=new.groupby("unique_sku", sort=False).cumcount())
        rows = pd.concat(
            [
                positioned.loc[positioned["unique_sku"].isin(rewrite)],
                positioned.merge(appended, on=["unique_sku", "position"]),
            ],
            ignore_index=True,
        )
        _insert(session, HireLifecycleEntry, rows[[*ENTRY_FIELDS, "position"]])

        was = _stored_last_seen(old_seen, old_latest)
        now = _stored_last_seen(new_seen, new_latest)
        known = now.index.isin(was.index)
        prior = was.reindex(now.index)
        same = known & ((prior == now) | (prior.isna() & now.isna())).to_numpy()
        changed = now.loc[~same]
        for chunk in _chunks(sorted(changed.index.astype(str))):
            session.execute(
                delete(HireLifecycleUnit).where(HireLifecycleUnit.unique_sku.in_(chunk))
            )
        _insert(
            session,
            HireLifecycleUnit,
            pd.DataFrame({"unique_sku": changed.index.astype(str), "last_seen_at": changed.array}),
        )
        return len(rewrite | set(appended["unique_sku"]))

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


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _insert(session: Session, table: Any, frame: pd.DataFrame) -> None:
    """Insert ``frame``'s rows in order, ``_INSERT_CHUNK`` at a time: a first fold writes
    the whole fleet's history, and its rows as dicts (and SQLAlchemy's copies of them)
    at once would take several times the frame's memory."""
    for start in range(0, len(frame), _INSERT_CHUNK):
        part = frame.iloc[start : start + _INSERT_CHUNK]
        columns = {}
        for name in part.columns:
            values = part[name]
            if isinstance(values.dtype, pd.DatetimeTZDtype):
                columns[name] = [None if pd.isna(v) else v.to_pydatetime() for v in values]
            else:
                columns[name] = values.tolist()
        records = [
            dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)
        ]
        session.connection().execute(insert(table.__table__), records)
