"""Cost prices as at a day: the valuation a past month is rebuilt with.

Khaos keeps one CostPrice per StockID, today's. Valuing a past month with it would
change a closed month's figures every time a price changes, so each reconciled UK day
records the costs it used (``<data_dir>/reconciliation/costs/<YYYY-MM-DD>.parquet``:
``stock_id, cost_price``) and everything valued for that day — the stock table, the
order-to-cash cost of sales, the month-end pack of a month whose last day it is — reads
that record. A record is written once, while its day is still running or when it has
none; afterwards it never changes, so rebuilding a month gives the same figures.

A day reconciled for the first time after it ended (a backfill) records the costs known
then: the best evidence available, frozen from that moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.private_files import private_partial

COSTS_TABLE = "costs"
SKU_MASTER = ("products", "sku_master.parquet")


def day_costs_path(conf: Settings, day: str) -> Path:
    return conf.data_dir / "reconciliation" / COSTS_TABLE / f"{day}.parquet"


def current_cost_prices(conf: Settings) -> dict[int, Decimal]:
    """StockID → CostPrice from the products flow's SKU master (today's), {} without one."""
    path = conf.data_dir.joinpath(*SKU_MASTER)
    if not path.exists():
        return {}
    master = pd.read_parquet(path)
    if master.empty:
        return {}
    return {
        int(s): Decimal(str(c))
        for s, c in zip(master["stock_id"], master["cost_price"], strict=True)
        if pd.notna(c)
    }


def _write(path: Path, costs: Mapping[int, Decimal | float]) -> None:
    frame = pd.DataFrame(
        {
            "stock_id": pd.Series([int(s) for s in costs], dtype="int64"),
            "cost_price": pd.Series([str(c) for c in costs.values()], dtype=object),
        }
    )
    with private_partial(path) as partial:  # write then rename: never half a file
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), partial)


def record_day_costs(
    conf: Settings, day: str, costs: Mapping[int, Decimal | float], now: datetime
) -> None:
    """Record ``costs`` as the day's, unless the day has ended and has a record already."""
    path = day_costs_path(conf, day)
    running = now.astimezone(ZoneInfo(conf.time_zone)).date() <= date.fromisoformat(day)
    if running or not path.exists():
        _write(path, costs)


def period_cost_prices(conf: Settings, day: str) -> dict[int, Decimal]:
    """The day's recorded costs; without a record, today's costs, recorded for the day
    from now on (so every later rebuild uses the same)."""
    path = day_costs_path(conf, day)
    if path.exists():
        frame = pd.read_parquet(path)
        return {
            int(s): Decimal(str(c))
            for s, c in zip(frame["stock_id"], frame["cost_price"], strict=True)
        }
    costs = current_cost_prices(conf)
    _write(path, costs)
    return costs
