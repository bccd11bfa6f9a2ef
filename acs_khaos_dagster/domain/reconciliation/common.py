"""Constants and money/time helpers the reconciliation rules share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from acs_khaos_dagster.domain.stock_push import price_floats, price_series

UK_TIME_ZONE = "Europe/London"
ISSUED_STAGES: tuple[int, ...] = (70, 71, 72, 73)
CANCELLED_STAGE = 1
# Cost prices carried as integer ten-thousandths of a pound (Khaos keeps four places),
# as in ``stock_push``: exact, vectorised tolerance and value arithmetic.
_COST_SCALE = 10_000
# Prefix of every finding key: ``sync_exceptions(..., owns=owns_finding)`` then closes
# only the reconciliation's own ``drift`` rows.
FINDING_PREFIX = "recon:"


def _require(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it has {list(frame.columns)}")


def _utc(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True)


def _ts(value: datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{value!r} must be timezone-aware")
    return ts.tz_convert("UTC")


def _cost_scaled(
    stock_ids: pd.Series, cost_prices: Mapping[int, Any] | pd.Series | None
) -> pd.Series:
    """CostPrice per row in ten-thousandths of a pound (float; NaN where unknown)."""
    if cost_prices is None:
        return pd.Series(np.nan, index=stock_ids.index, dtype=float)
    series = cost_prices if isinstance(cost_prices, pd.Series) else price_series(cost_prices)
    series = price_floats(series.astype(object))
    series.index = series.index.astype("int64")
    return (stock_ids.map(series) * _COST_SCALE).round()


def _pence(units: pd.Series, cost_scaled: pd.Series) -> pd.Series:
    """``units × cost`` in whole pence, half away from zero; NaN where the cost is unknown."""
    raw = units.abs() * cost_scaled
    pence = np.floor((raw + _COST_SCALE // 200) / (_COST_SCALE // 100))
    return np.sign(units) * pence


def _pounds(pence: pd.Series) -> pd.Series:
    return (pence / 100).round(2)
