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

An empty price list is never a day's record. Before the products flow has written a SKU
master (a first night) no CostPrice is known at all: that is missing evidence, not a
valuation of £0, and freezing it would leave the day at £0 for good. So nothing is
recorded until there are prices (the day is valued with none meanwhile), and an empty
record left by an older version counts as no record, so the first prices known replace it.
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
    """Record ``costs`` as the day's, unless the day has ended and has a record already.
    An empty price list is never recorded (see the module's docstring)."""
    if not costs:
        return
    path = day_costs_path(conf, day)
    running = now.astimezone(ZoneInfo(conf.time_zone)).date() <= date.fromisoformat(day)
    if running or not _recorded(path):
        _write(path, costs)


def _read(path: Path) -> dict[int, Decimal]:
    frame = pd.read_parquet(path)
    return {
        int(s): Decimal(str(c)) for s, c in zip(frame["stock_id"], frame["cost_price"], strict=True)
    }


def _recorded(path: Path) -> bool:
    """Whether the day has a record: an empty one is none (see the module's docstring)."""
    return path.exists() and bool(_read(path))


def period_cost_prices(conf: Settings, day: str) -> dict[int, Decimal]:
    """The day's recorded costs; without a record, today's costs, recorded for the day
    from now on (so every later rebuild uses the same) — unless there are none yet."""
    path = day_costs_path(conf, day)
    recorded = _read(path) if path.exists() else {}
    if recorded:
        return recorded
    costs = current_cost_prices(conf)
    if costs:
        _write(path, costs)
    return costs
