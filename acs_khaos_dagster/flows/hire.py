"""Hire flow steps: a hire unit's write-off value at the valuation basis, each hire unit's
lifecycle, and overdue hires from the newest ACS unit snapshot.

Plain functions over the store and the settings (no Dagster): the returns group's
``khaos_write_offs`` takes ``hire_write_off_value``, ``hire_unit_lifecycle`` takes
``hire_lifecycle``; the ``hire_overdue`` asset takes ``overdue_from_snapshot`` and raises
the result through the exception queue.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.domain.hire import HireStage, hire_unit_lifecycle
from acs_khaos_dagster.domain.hire_valuation import HireOverdue, overdue_hires
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.hire import HireBook
from acs_khaos_dagster.store.returns import ReturnsRepository

_EXPECTED = ("unique_sku", "expected_return_date", "snapshot_at")
# Where the stock flow keeps its unit snapshots as Parquet, under ``data_dir``
# (``stock/units/{snapshot_id}.parquet``; ``snapshots`` is the older layout). Every
# ``*.parquet`` below them with unit columns is read.
SNAPSHOT_FOLDERS = ("snapshots", "stock/units")
SNAPSHOT_COLUMNS = ("unique_sku", "sku", "status", "last_event_at", "snapshot_at")


@dataclass(frozen=True)
class HireLifecycle:
    """Per hire unit where it is now (``LIFECYCLE_COLUMNS``), from how many snapshots and
    hire returns."""

    lifecycle: pd.DataFrame
    snapshots_read: int
    hire_returns: int


def hire_write_off_value(conf: Settings, db: Store) -> Callable[[str, Decimal], Decimal]:
    """(unique SKU, CostPrice) → the unit's value at the hire basis after its rentals so far
    (each ACS despatch of the unit is one rental)."""
    rentals: Counter[str] = Counter()
    for (_sku, unit), count in HireBook(db.db).unit_despatches().items():
        rentals[unit] += count

    def value(unit: str, cost: Decimal) -> Decimal:
        return conf.hire.unit_value(cost, rentals[unit])

    return value


def newest_expected_returns(folders: Iterable[Path]) -> pd.DataFrame:
    """``unique_sku, expected_return_date`` from the newest kept unit snapshot that has the
    column (empty when none has)."""
    newest: tuple[datetime, Path] | None = None
    for folder in folders:
        for path in sorted(folder.rglob("*.parquet")) if folder.is_dir() else []:
            if set(_EXPECTED) - set(pq.read_schema(path).names):
                continue
            taken = pq.read_table(path, columns=["snapshot_at"])["snapshot_at"]
            if len(taken) == 0:
                continue
            at = pd.Timestamp(max(v for v in taken.to_pylist() if v is not None))
            if newest is None or at > newest[0]:
                newest = (at, path)
    if newest is None:
        return pd.DataFrame(columns=["unique_sku", "expected_return_date"])
    return pq.read_table(newest[1], columns=list(_EXPECTED[:2])).to_pandas()


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


def unit_snapshots(folder: Path, hire_skus: set[str]) -> list[tuple[datetime, pd.DataFrame]]:
    """Each kept unit snapshot's time and its hire units (only those rows are read: a
    brand's snapshot is millions of units, a tenth of them for hire at most)."""
    found = []
    for path in sorted(folder.rglob("*.parquet")) if folder.is_dir() else []:
        names = pq.read_schema(path).names
        if {"unique_sku", "sku", "status", "snapshot_at"} - set(names):
            continue
        taken = pc.max(pq.read_table(path, columns=["snapshot_at"])["snapshot_at"]).as_py()
        if taken is None:
            continue
        units = pq.read_table(
            path,
            columns=[c for c in SNAPSHOT_COLUMNS if c in names],
            filters=[("sku", "in", sorted(hire_skus))] if hire_skus else [("sku", "==", "")],
        )
        found.append((pd.Timestamp(taken).to_pydatetime(), units.to_pandas()))
    return found


def hire_lifecycle(db: Store, acs: AcsClient, conf: Settings) -> HireLifecycle:
    """Per hire unit: where it is now, since when, and its history, from the ACS unit
    snapshots kept by the stock flow and the hire returns ACS reported."""
    hire_skus = {p.sku for p in acs.iter_products() if p.is_hire}
    repo = ReturnsRepository(db.db)
    units = repo.units()
    moves = repo.moves()
    hire_units = units[units["is_hire"].eq(True) | units["sku"].isin(hire_skus)]
    hire_skus |= set(hire_units["sku"])
    snapshots = [s for f in SNAPSHOT_FOLDERS for s in unit_snapshots(conf.data_dir / f, hire_skus)]
    events = [
        {
            "unique_sku": r.unique_sku,
            "sku": r.sku,
            "stage": HireStage.BACK.value,
            "at": r.received_at,
        }
        for r in hire_units.itertuples(index=False)
    ]
    events += [
        {
            "unique_sku": m.unique_sku,
            "sku": "",
            "stage": HireStage.RETIRED.value,
            "at": m.happened_at,
        }
        for m in moves.itertuples(index=False)
        if m.adjust_by < 0 and m.happened_at is not None
    ]
    lifecycle = hire_unit_lifecycle(
        snapshots,
        pd.DataFrame(events, columns=["unique_sku", "sku", "stage", "at"]),
        hire_skus=hire_skus,
        policy=conf.status_policy,
    )
    return HireLifecycle(lifecycle, len(snapshots), len(hire_units))
