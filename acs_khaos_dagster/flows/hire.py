"""Hire flow steps: a hire unit's write-off value at the valuation basis, and overdue
hires from the newest ACS unit snapshot.

Plain functions over the store and the settings (no Dagster): the returns group's
``khaos_write_offs`` takes ``hire_write_off_value``; the ``hire_overdue`` asset takes
``overdue_from_snapshot`` and raises the result through the exception queue.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.domain.hire import HireStage
from acs_khaos_dagster.domain.hire_valuation import HireOverdue, overdue_hires
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.hire import HireBook

_EXPECTED = ("unique_sku", "expected_return_date", "snapshot_at")


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
