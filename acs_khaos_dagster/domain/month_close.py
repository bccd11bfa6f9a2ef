"""The month-end pack's tables for one month, as at its cut-off (or a preview's moment).

Pure: the month's stored daily reconciliation frames, the costs as at the period and
the stock adjustments Khaos confirmed in, ``MonthTables`` out (the frames of
``reports.MonthEndInputs``).

- **Final**: every day of the month reconciled; figures as at the cut-off, 23:59:59 UK
  time on the last day (``reconciliation.month_end_cutoff``).
- **Preview**: built while the month is open, as at its own moment — the end of the
  newest day every table has, or now if that day is still running — and aged at that
  moment, never at the month end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd

from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.domain.cutoff import cutoff_accruals
from acs_khaos_dagster.domain.reconciliation import DEFAULT_AGE_BUCKETS, AgeBucket

ADJUSTMENT_INPUT_COLUMNS = (
    "applied_at",
    "ref",
    "reason_code",
    "stock_id",
    "site_id",
    "units",
    "value",
)


@dataclass(frozen=True, eq=False)
class MonthTables:
    """The frames of ``reports.MonthEndInputs`` for one month."""

    stock_reconciliation: pd.DataFrame
    order_to_cash: pd.DataFrame
    returns: pd.DataFrame
    exceptions: pd.DataFrame
    drift_by_day: pd.DataFrame
    non_sellable_value: pd.DataFrame
    sheets: dict[str, pd.DataFrame] = field(default_factory=dict)
    as_at: datetime | None = None
    preview: bool = False

    def as_kwargs(self) -> dict[str, Any]:
        return dict(self.__dict__)


def end_of_day(day: date) -> datetime:
    """23:59:59 UK time on ``day``, in UTC."""
    following = datetime.combine(day + timedelta(days=1), time(0), tzinfo=me.UK)
    return following.astimezone(UTC) - timedelta(seconds=1)


def within_tolerance_rows(stock: pd.DataFrame) -> pd.DataFrame:
    """The stock rows whose difference is within tolerance: the next push books them as
    ``VARIANCE`` without approval (``reconciliation.StockClass.WITHIN_TOLERANCE``)."""
    rows = stock.loc[stock["classification"].astype(str) == "within_tolerance"]
    columns = ["stock_id", "stock_code", "site_name", "unexplained", "unexplained_value"]
    return rows[columns].reset_index(drop=True)


def stock_by_site(
    stock: pd.DataFrame,
    selling_site_ids: Iterable[int],
    cost_prices: Mapping[int, Any] | None = None,
) -> pd.DataFrame:
    """Khaos Level in every site, the selling site included, valued at CostPrice as at
    the period: ``site_id, site_name, selling (yes/no), units, value_at_cost``.

    Without a CostPrice for a StockID, the row's own difference value ÷ difference
    (the reconciliation's cost that day) when there is one, else £0.
    """
    columns = ["site_id", "site_name", "selling", "units", "value_at_cost"]
    if stock.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    selling = {int(s) for s in selling_site_ids}
    costs = {int(k): float(v) for k, v in (cost_prices or {}).items()}
    rows = stock.copy()
    difference = pd.to_numeric(rows["difference"])
    implied = pd.to_numeric(rows["value"], errors="coerce") / difference.where(difference != 0)
    cost = rows["stock_id"].astype("int64").map(costs).fillna(implied).fillna(0.0)
    rows["site_id"] = rows["site_id"].astype("int64")
    rows["units"] = pd.to_numeric(rows["khaos_level"]).astype("int64")
    rows["_pence"] = (rows["units"] * cost * 100).round()
    if "site_name" not in rows.columns:
        rows["site_name"] = ""
    rows["site_name"] = rows["site_name"].fillna("").astype(str)
    out = rows.groupby("site_id", as_index=False).agg(
        site_name=("site_name", "first"), units=("units", "sum"), _pence=("_pence", "sum")
    )
    out["site_name"] = out["site_name"].where(out["site_name"] != "", out["site_id"].astype(str))
    out["selling"] = out["site_id"].isin(selling).map({True: "yes", False: "no"})
    out["value_at_cost"] = (out["_pence"] / 100).round(2)
    return out[columns].sort_values("site_id", ignore_index=True)


def month_adjustments(
    adjustments: pd.DataFrame | None,
    start: datetime,
    as_at: datetime,
    *,
    reasons: Any,
    site_names: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """Stock adjustment lines Khaos confirmed between ``start`` and ``as_at``, by kind.

    ``adjustments`` (``ADJUSTMENT_INPUT_COLUMNS``): one row per line of each adjustment
    effect the outbox confirmed, ``units`` its change to Level, ``value`` as sent.
    ``reasons`` is the install's ``KhaosReasons``: ``kind`` is ``variance`` (``origin``
    ``approved`` for a held variance finance approved — its group ref carries ``-A`` —
    else ``within_tolerance``), ``write_off``, ``ex_hire`` or ``status_move``.
    """
    columns = ["applied_at", "ref", "reason_code", "kind", "origin", "stock_id"]
    columns += ["site_name", "units", "value"]
    if adjustments is None or adjustments.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    a = adjustments.copy()
    a["applied_at"] = pd.to_datetime(a["applied_at"], utc=True)
    a = a.loc[(a["applied_at"] >= pd.Timestamp(start)) & (a["applied_at"] <= pd.Timestamp(as_at))]
    code = a["reason_code"].astype(str).str.upper()
    kinds = {reasons.variance: "variance", reasons.write_off: "write_off"}
    kinds[reasons.ex_hire] = "ex_hire"
    a["kind"] = code.map(kinds).fillna("status_move")
    approved = a["ref"].astype(str).str.contains(r"-A[^-]*-B\d+$", regex=True)
    a["origin"] = ""
    a.loc[a["kind"] == "variance", "origin"] = "within_tolerance"
    a.loc[(a["kind"] == "variance") & approved, "origin"] = "approved"
    names = dict(site_names or {})
    a["site_name"] = a["site_id"].map(lambda s: names.get(int(s), str(s)))
    return a.sort_values(["applied_at", "ref", "stock_id"], ignore_index=True)[columns]


def month_tables(
    month: str,
    daily: Mapping[str, Mapping[date, pd.DataFrame]],
    drift_by_day: pd.DataFrame | None,
    *,
    selling_site_ids: Iterable[int],
    cost_prices: Mapping[int, Any] | None = None,
    adjustments: pd.DataFrame | None = None,
    reasons: Any = None,
    site_names: Mapping[int, str] | None = None,
    now: datetime | None = None,
    buckets: Sequence[AgeBucket] = DEFAULT_AGE_BUCKETS,
    preview: bool = False,
) -> MonthTables:
    """The pack's tables from the month's daily frames (``daily[table][day]``).

    Raises ``MonthIncomplete`` when a day of the month lacks one of ``DAILY_TABLES``,
    unless ``preview``: then the pack is built as at the end of the newest day every
    table has (or ``now``, if earlier), and says so. ``cost_prices`` are the costs as at
    the pack's day (``flows.period_costs``), so a rebuild gives the same figures.
    """
    from acs_khaos_dagster.domain.layout import KhaosReasons

    gaps = me.missing_days(month, {table: daily.get(table, {}).keys() for table in me.DAILY_TABLES})
    start, cutoff = me.month_bounds(month)
    last = me.month_days(month)[-1]
    if gaps and not preview:
        raise me.MonthIncomplete(month, gaps)
    if preview:
        complete = set.intersection(*(set(daily.get(t, {})) for t in me.DAILY_TABLES))
        if not complete:
            raise me.MonthIncomplete(month, gaps)
        last = max(complete)
        as_at = min(end_of_day(last), now or cutoff, cutoff)
    else:
        as_at = cutoff
    stock = me.pack_stock(daily["stock"][last])
    cash = daily["order_to_cash"][last]
    drift = me.month_drift(drift_by_day, daily["stock"], month)
    # The as-at day's drift is the stock sheet's own: the summary ties to this sheet.
    units, value = me.drift_of_stock(stock)
    drift = drift.loc[drift["day"] != last]
    today = pd.DataFrame([{"day": last, "unexplained_units": units, "unexplained_value": value}])
    drift = pd.concat([drift, today], ignore_index=True).sort_values("day", ignore_index=True)
    return MonthTables(
        stock_reconciliation=stock,
        order_to_cash=me.pack_order_to_cash(cash, month, buckets, as_at),
        returns=me.pack_returns(
            me.month_returns(daily["returns"], month), month, cost_prices, as_at
        ),
        exceptions=daily["exceptions"][last].reset_index(drop=True),
        drift_by_day=drift,
        non_sellable_value=me.non_sellable_value(stock, selling_site_ids, cost_prices),
        sheets={
            "cutoff_accruals": cutoff_accruals(cash, month, as_at),
            "within_tolerance": within_tolerance_rows(stock),
            "adjustments": month_adjustments(
                adjustments,
                start,
                as_at,
                reasons=reasons or KhaosReasons(),
                site_names=site_names,
            ),
            "stock_by_site": stock_by_site(stock, selling_site_ids, cost_prices),
        },
        as_at=as_at,
        preview=preview,
    )
