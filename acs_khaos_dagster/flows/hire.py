"""Hire flow steps: a hire unit's write-off value at the valuation basis, each hire unit's
lifecycle, and overdue hires from the newest ACS unit snapshot.

Plain functions over the store and the settings (no Dagster): the returns group's
``khaos_write_offs`` takes ``hire_write_off_value``, ``hire_unit_lifecycle`` takes
``hire_lifecycle``; the ``hire_overdue`` asset takes ``raise_overdue_hires``, which raises
``overdue_from_snapshot``'s result through the exception queue.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.domain.hire import HireStage
from acs_khaos_dagster.domain.hire_fold import HireFold, fold_hire_lifecycle
from acs_khaos_dagster.domain.hire_valuation import HireOverdue, overdue_hires
from acs_khaos_dagster.flows.figures import Figures, table
from acs_khaos_dagster.flows.queues import sync_exceptions
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.exceptions import ExceptionType
from acs_khaos_dagster.store.hire import HireBook
from acs_khaos_dagster.store.hire_lifecycle import HireLifecycleBook

_EXPECTED = ("unique_sku", "expected_return_date", "snapshot_at")
# Where the stock flow keeps its unit snapshots as Parquet, under ``data_dir``
# (``stock/units/{snapshot_id}.parquet``; ``snapshots`` is the older layout). Every
# ``*.parquet`` below them with unit columns is read.
SNAPSHOT_FOLDERS = ("snapshots", "stock/units")
SNAPSHOT_COLUMNS = ("unique_sku", "sku", "status", "last_event_at", "snapshot_at")
HIRE_OVERDUE = ExceptionType.HIRE_OVERDUE
OVERDUE_COLUMNS = ["unique_sku", "sku", "expected_return_date", "days_overdue"]


@dataclass(frozen=True)
class HireLifecycle:
    """Per hire unit where it is now (``LIFECYCLE_COLUMNS``); how many snapshots and hire
    returns this run folded in, and how many new snapshot files it left out because they
    were not newer than the newest folded before (``snapshots_late``)."""

    lifecycle: pd.DataFrame
    snapshots_read: int
    hire_returns: int
    snapshots_late: int = 0
    units_rewritten: int = 0


def hire_write_off_value(conf: Settings, db: Store) -> Callable[[str, Decimal], Decimal]:
    """(unique SKU, CostPrice) → the unit's value at the hire basis after its rentals so far
    (each ACS despatch of the unit is one rental).

    The rentals are counted from every despatch event kept, so only when a hire unit is
    written off: most returns runs write none off, and the count grows with the history."""

    @cache
    def rentals() -> Counter[str]:
        counted: Counter[str] = Counter()
        for (_sku, unit), count in HireBook(db.db).unit_despatches().items():
            counted[unit] += count
        return counted

    def value(unit: str, cost: Decimal) -> Decimal:
        return conf.hire.unit_value(cost, rentals()[unit])

    return value


def newest_expected_returns(
    folders: Iterable[Path], units: Collection[str] | None = None
) -> pd.DataFrame:
    """``unique_sku, expected_return_date`` from the newest kept unit snapshot that has the
    column (empty when none has); with ``units``, only those units' rows are read (a
    brand's snapshot is millions of units, few of them out on hire)."""
    newest: tuple[datetime, Path] | None = None
    for folder in folders:
        for path in sorted(folder.rglob("*.parquet")) if folder.is_dir() else []:
            if set(_EXPECTED) - set(pq.read_schema(path).names):
                continue
            taken = pc.max(pq.read_table(path, columns=["snapshot_at"])["snapshot_at"]).as_py()
            if taken is None:
                continue
            at = pd.Timestamp(taken)
            if newest is None or at > newest[0]:
                newest = (at, path)
    if newest is None:
        return pd.DataFrame(columns=["unique_sku", "expected_return_date"])
    wanted = None
    if units is not None:
        wanted = pc.field("unique_sku").isin(pa.array(sorted(set(units)), type=pa.string()))
    return pq.read_table(newest[1], columns=list(_EXPECTED[:2]), filters=wanted).to_pandas()


def units_out(lifecycle: pd.DataFrame) -> set[str]:
    """The hire units with the customer now (lifecycle stage ``out``)."""
    return set(lifecycle.loc[lifecycle["stage"] == HireStage.OUT.value, "unique_sku"])


def overdue_from_snapshot(
    conf: Settings, lifecycle: pd.DataFrame, expected: pd.DataFrame, now: datetime
) -> list[HireOverdue]:
    """Hire units out with the customer (lifecycle stage ``out``) past their expected
    return date in the newest snapshot, with the settings' grace days."""
    out = lifecycle.loc[lifecycle["stage"] == HireStage.OUT.value, ["unique_sku", "sku"]]
    dated = out.merge(expected, on="unique_sku", how="left")
    return overdue_hires(
        dated, now, grace_days=conf.hire.overdue_grace_days, time_zone=conf.time_zone
    )


@dataclass(frozen=True)
class OverdueHires:
    """The hires overdue now (``OVERDUE_COLUMNS``) and the ``hire_overdue`` exceptions open."""

    frame: pd.DataFrame
    open_overdue: int

    def figures(self) -> Figures:
        return {
            "hires_overdue": len(self.frame),
            "open_hire_overdue": self.open_overdue,
            "sample": table(self.frame),
        }


def raise_overdue_hires(
    db: Store, conf: Settings, lifecycle: pd.DataFrame, now: datetime
) -> OverdueHires:
    """Each unit out past its expected return date (newest unit snapshot) keeps a
    ``hire_overdue`` exception open for operations; a unit seen back closes its own."""
    expected = newest_expected_returns(
        (conf.data_dir / f for f in SNAPSHOT_FOLDERS), units=units_out(lifecycle)
    )
    overdue = overdue_from_snapshot(conf, lifecycle, expected, now)
    open_counts = sync_exceptions(db, overdue, [HIRE_OVERDUE])
    frame = pd.DataFrame([o.details for o in overdue], columns=OVERDUE_COLUMNS)
    return OverdueHires(frame, open_counts.get(HIRE_OVERDUE, 0))


def unit_snapshots(folder: Path, hire_skus: set[str]) -> list[tuple[datetime, pd.DataFrame]]:
    """Each kept unit snapshot's time and its hire units (only those rows are read: a
    brand's snapshot is millions of units, a tenth of them for hire at most)."""
    found = []
    for path in sorted(folder.rglob("*.parquet")) if folder.is_dir() else []:
        taken = snapshot_time(path)
        if taken is not None:
            found.append((taken, hire_units_of(path, hire_skus)))
    return found


def snapshot_time(path: Path) -> datetime | None:
    """When a kept unit snapshot was taken (None: not a unit snapshot, or empty)."""
    if {"unique_sku", "sku", "status", "snapshot_at"} - set(pq.read_schema(path).names):
        return None
    taken = pc.max(pq.read_table(path, columns=["snapshot_at"])["snapshot_at"]).as_py()
    return None if taken is None else pd.Timestamp(taken).to_pydatetime()


def hire_units_of(path: Path, hire_skus: set[str]) -> pd.DataFrame:
    names = pq.read_schema(path).names
    return pq.read_table(
        path,
        columns=[c for c in SNAPSHOT_COLUMNS if c in names],
        filters=[("sku", "in", sorted(hire_skus))] if hire_skus else [("sku", "==", "")],
    ).to_pandas()


def hire_lifecycle(db: Store, acs: AcsClient, conf: Settings) -> HireLifecycle:
    """Per hire unit: where it is now, since when, and its history, from the ACS unit
    snapshots kept by the stock flow and the hire returns ACS reported.

    Incremental (``domain.hire_fold``): the lifecycle folded so far is kept in the store,
    and a run reads only the snapshot files it has not folded yet and the returns and
    write-offs recorded since its last run (``flows.hire_fold``)."""
    return fold_new_snapshots(db, conf, {p.sku for p in acs.iter_products() if p.is_hire})


# --- the incremental fold ---------------------------------------------------------------

FOLD_CURSOR = "hire.lifecycle"


@dataclass(frozen=True)
class FoldCursor:
    """What the fold has taken so far (the store's ``hire.lifecycle`` cursor).

    ``files``: each kept snapshot file folded (or left out as late), relative to the data
    folder, with its snapshot time; files the retention removed drop out of it.
    ``hire_skus``: SKUs known for hire only from a matched return. The returns and
    write-offs watermarks say which rows are new (re-reading one folds nothing twice).
    """

    latest: datetime | None = None
    files: dict[str, str] = field(default_factory=dict)
    hire_skus: frozenset[str] = frozenset()
    returns_after_batch: int = 0
    returns_matched_since: datetime | None = None
    moves_since: datetime | None = None

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> FoldCursor:
        if not value:
            return cls()
        return cls(
            latest=_time(value.get("latest")),
            files=dict(value.get("files", {})),
            hire_skus=frozenset(value.get("hire_skus", [])),
            returns_after_batch=int(value.get("returns_after_batch", 0)),
            returns_matched_since=_time(value.get("returns_matched_since")),
            moves_since=_time(value.get("moves_since")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "latest": _iso(self.latest),
            "files": dict(sorted(self.files.items())),
            "hire_skus": sorted(self.hire_skus),
            "returns_after_batch": self.returns_after_batch,
            "returns_matched_since": _iso(self.returns_matched_since),
            "moves_since": _iso(self.moves_since),
        }


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _iso(value: datetime | pd.Timestamp | None) -> str | None:
    return None if value is None else pd.Timestamp(value).isoformat()


def _newest(values: pd.Series, before: datetime | None) -> datetime | None:
    found = values.dropna()
    newest = None if found.empty else found.max().to_pydatetime()
    return max((t for t in (before, newest) if t is not None), default=None)


def folded_through(db: Store) -> datetime | None:
    """The newest snapshot time the hire lifecycle has folded (None: it never ran), so the
    snapshot retention keeps every snapshot it has still to fold."""
    return FoldCursor.from_json(db.cursors.get(FOLD_CURSOR)).latest


def fold_new_snapshots(db: Store, conf: Settings, hire_skus: set[str]) -> HireLifecycle:
    """Fold the kept snapshot files not folded yet, and the hire returns and write-offs
    recorded since the last run, into the lifecycle kept in the store."""
    book = HireLifecycleBook(db.db)
    cursor = FoldCursor.from_json(db.cursors.get(FOLD_CURSOR))
    returns = book.returns_since(cursor.returns_after_batch, cursor.returns_matched_since)
    known = hire_skus | cursor.hire_skus
    hire_units = returns[returns["is_hire"].eq(True) | returns["sku"].isin(known)]
    from_returns = cursor.hire_skus | set(hire_units.loc[hire_units["is_hire"].eq(True), "sku"])
    known |= set(hire_units["sku"])
    moves = book.retirements_since(cursor.moves_since)

    files: dict[str, str] = {}
    fresh: list[tuple[datetime, Path]] = []
    late = 0
    for folder in SNAPSHOT_FOLDERS:
        root = conf.data_dir / folder
        for path in sorted(root.rglob("*.parquet")) if root.is_dir() else []:
            name = path.relative_to(conf.data_dir).as_posix()
            if name in cursor.files:
                files[name] = cursor.files[name]
                continue
            taken = snapshot_time(path)
            if taken is None:
                continue
            files[name] = taken.isoformat()
            if cursor.latest is not None and taken <= cursor.latest:
                late += 1  # older than what is folded: the history runs forward only
            else:
                fresh.append((taken, path))
    snapshots = [(taken, hire_units_of(path, known)) for taken, path in sorted(fresh)]
    events = pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_sku": hire_units["unique_sku"],
                    "sku": hire_units["sku"],
                    "stage": HireStage.BACK.value,
                    "at": hire_units["received_at"],
                }
            ),
            pd.DataFrame(
                {
                    "unique_sku": moves["unique_sku"],
                    "sku": "",
                    "stage": HireStage.RETIRED.value,
                    "at": moves["happened_at"],
                }
            ),
        ],
        ignore_index=True,
    )
    latest = pd.Timestamp(cursor.latest) if cursor.latest else None
    before, last_seen = book.load(latest)
    state = HireFold(before, last_seen, latest)
    folded = fold_hire_lifecycle(
        state, snapshots, events, hire_skus=known, policy=conf.status_policy
    )
    batches = returns["batch_id"].dropna()
    advanced = FoldCursor(
        latest=folded.latest.to_pydatetime() if folded.latest is not None else None,
        files=files,
        hire_skus=frozenset(from_returns),
        returns_after_batch=max([cursor.returns_after_batch, *map(int, batches)]),
        returns_matched_since=_newest(returns["matched_at"], cursor.returns_matched_since),
        moves_since=_newest(moves["created_at"], cursor.moves_since),
    )
    with db.transaction() as session:
        rewritten = book.save(
            (before, last_seen, latest),
            (folded.entries, folded.last_seen, folded.latest),
            session,
            rebuilt=folded.rebuilt,
        )
        db.cursors.set(FOLD_CURSOR, advanced.to_json(), session)
    return HireLifecycle(folded.lifecycle(), len(snapshots), len(hire_units), late, rewritten)
