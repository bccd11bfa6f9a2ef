"""The month-end pack's tables: the month's days, the six tables of the pack, the drift
series. Part of ``domain.month_end`` (see its docstring); code moved verbatim."""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from acs_khaos_dagster.domain.reconciliation import (
    DEFAULT_AGE_BUCKETS,
    AgeBucket,
    month_end_cutoff,
)
from acs_khaos_dagster.domain.sla import WorkingCalendar

UK = ZoneInfo("Europe/London")
# The daily tables the month-end pack needs for every day of the month, in the names of
# the reconciliation storage (``<data_dir>/reconciliation/<table>/<YYYY-MM-DD>.parquet``).
DAILY_TABLES: tuple[str, ...] = ("stock", "order_status", "order_to_cash", "returns", "exceptions")
# Khaos credit statuses as the pack shows them: a hire unit owes no credit and a return
# Khaos does not have has none yet.
_PACK_CREDIT = {"raised": "raised", "review": "review"}
_OPEN_REFUND_STATES = ("open", "due_soon", "overdue")


class MonthIncomplete(ValueError):
    """Some days of the month have no stored daily reconciliation."""

    def __init__(self, month: str, missing: Mapping[date, Sequence[str]]) -> None:
        self.month = month
        self.missing = dict(missing)
        super().__init__(describe_missing(month, missing))


def parse_month(month: str) -> tuple[int, int]:
    """``"2026-03"`` → ``(2026, 3)``; anything else is a ``ValueError``."""
    try:
        year, number = (int(part) for part in month.split("-"))
    except ValueError:
        raise ValueError(f"month {month!r} is not YYYY-MM") from None
    if not 1 <= number <= 12 or len(month) != 7:
        raise ValueError(f"month {month!r} is not YYYY-MM")
    return year, number


def month_days(month: str) -> list[date]:
    """Every calendar day of the month, in order."""
    year, number = parse_month(month)
    last = calendar.monthrange(year, number)[1]
    return [date(year, number, day) for day in range(1, last + 1)]


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The month in UTC: from 00:00 UK on the 1st (inclusive) to the cut-off (inclusive)."""
    year, number = parse_month(month)
    start = datetime(year, number, 1, tzinfo=UK).astimezone(UTC)
    return start, month_end_cutoff(year, number)


def missing_days(month: str, available: Mapping[str, Iterable[date]]) -> dict[date, list[str]]:
    """Days of the month lacking one or more of ``DAILY_TABLES`` → the tables they lack."""
    have = {table: set(available.get(table, ())) for table in DAILY_TABLES}
    out: dict[date, list[str]] = {}
    for day in month_days(month):
        lacking = [table for table in DAILY_TABLES if day not in have[table]]
        if lacking:
            out[day] = lacking
    return out


def describe_missing(month: str, missing: Mapping[date, Sequence[str]]) -> str:
    """One sentence a person can act on: which days, and which tables when not all."""
    if not missing:
        return f"{month}: every day is reconciled"
    parts = []
    for day, tables in sorted(missing.items()):
        what = "" if len(tables) == len(DAILY_TABLES) else f" ({', '.join(tables)})"
        parts.append(f"{day.isoformat()}{what}")
    return (
        f"The daily reconciliation of {month} is missing {len(missing)} day(s): "
        f"{', '.join(parts)}. Materialise those days of the reconciliation assets "
        "(partitions in the Dagster UI), then rebuild the month-end pack."
    )


# --- the six tables of the pack ---------------------------------------------------------------


def _floor_days(hours: pd.Series) -> pd.Series:
    return np.floor(hours / 24).astype("int64")


def _bucket_label(age_days: float, buckets: Sequence[AgeBucket]) -> str:
    for bucket in buckets:
        if bucket.lower_days <= age_days < bucket.upper_days:
            return bucket.label
    return buckets[-1].label if age_days >= buckets[-1].lower_days else buckets[0].label


def pack_stock(stock: pd.DataFrame) -> pd.DataFrame:
    """The last day's stock reconciliation as the pack's sheet.

    A row without a CostPrice has no value (NaN): the sheet shows £0.00 for it, and the
    reconciliation has already classified a non-zero one ``unexplained``.
    """
    out = stock.copy()
    out["value"] = pd.to_numeric(out["value"], errors="coerce").fillna(0.0)
    for column in ("stock_code", "site_name"):
        if column not in out.columns:
            out[column] = ""
        out[column] = out[column].fillna("").astype(str)
    return out.reset_index(drop=True)


def pack_order_to_cash(
    cash: pd.DataFrame,
    month: str,
    buckets: Sequence[AgeBucket] = DEFAULT_AGE_BUCKETS,
    as_at: datetime | None = None,
) -> pd.DataFrame:
    """Shipments despatched by ``as_at`` (default the cut-off), aged at it (whole days,
    bucketed). A preview passes its own moment: its ages are not the month end's."""
    cutoff = as_at or month_bounds(month)[1]
    out = cash.copy()
    out["despatched_at"] = pd.to_datetime(out["despatched_at"], utc=True)
    out = out.loc[out["despatched_at"].dt.floor("s") <= pd.Timestamp(cutoff)].copy()
    hours = (pd.Timestamp(cutoff) - out["despatched_at"]).dt.total_seconds() / 3600
    out["age_days"] = _floor_days(hours)
    out["ageing_bucket"] = [_bucket_label(h / 24, buckets) for h in hours]
    out["value_waiting"] = pd.to_numeric(out["value_waiting"], errors="coerce").fillna(0.0)
    invoice = pd.to_numeric(out.get("invoice_id"), errors="coerce")
    out["invoice_id"] = [None if pd.isna(i) else str(int(i)) for i in invoice]
    out["issue_date"] = _uk_dates(out.get("issue_date", pd.Series(None, index=out.index)))
    if "issue_period" not in out.columns:
        out["issue_period"] = ""
    return out.reset_index(drop=True)


def month_returns(daily: Mapping[date, pd.DataFrame], month: str) -> pd.DataFrame:
    """Every returned unit received in the month, as its latest daily reconciliation has it."""
    frames = [frame.assign(_day=day) for day, frame in sorted(daily.items()) if frame is not None]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["return_ref", "unique_sku", "received_at"])
    units = pd.concat(frames, ignore_index=True).sort_values("_day", kind="stable")
    units = units.drop_duplicates(["return_ref", "unique_sku"], keep="last")
    start, cutoff = month_bounds(month)
    received = pd.to_datetime(units["received_at"], utc=True)
    inside = (received >= pd.Timestamp(start)) & (received <= pd.Timestamp(cutoff))
    return units.loc[inside].drop(columns="_day").reset_index(drop=True)


def pack_returns(
    units: pd.DataFrame,
    month: str,
    cost_prices: Mapping[int, Any] | None = None,
    as_at: datetime | None = None,
) -> pd.DataFrame:
    """One row per returned unit (``part`` = its unique SKU) with credit and write-off.

    ``credit_status`` raised / review as Khaos has it, otherwise ``none`` (no return in
    Khaos yet, none raised, or a hire unit that owes no credit); ``credit_value`` only for
    raised and review. A unit is written off when its write-off is in Khaos, valued at
    CostPrice (``cost_prices``: StockID → CostPrice; £0 when unknown).
    ``refund_days_left``: whole days left of the refund window at ``as_at`` (default the
    cut-off; a preview's own moment), negative = overdue, empty once credited or when no
    refund is owed. ``order_number``, ``order_date``, ``received_date`` (UK) and ``hire``
    (sale / hire) say where the unit came from.
    """
    columns = [
        "return_ref",
        "part",
        "grade",
        "credit_status",
        "credit_value",
        "written_off_units",
        "write_off_value",
        "refund_days_left",
        "order_number",
        "order_date",
        "received_date",
        "hire",
    ]
    if units.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    cutoff = as_at or month_bounds(month)[1]
    costs = {int(k): float(v) for k, v in (cost_prices or {}).items()}
    u = units.reset_index(drop=True)
    status = u["credit_status"].astype(str).map(lambda s: _PACK_CREDIT.get(s, "none"))
    credit = pd.to_numeric(u["credit_value"], errors="coerce").fillna(0.0)
    written = (u["write_off_status"].astype(str) == "written_off").astype("int64")
    stock_ids = pd.to_numeric(u.get("stock_id"), errors="coerce")
    cost = stock_ids.map(lambda s: costs.get(int(s), 0.0) if pd.notna(s) else 0.0)
    deadline = pd.to_datetime(u["refund_deadline"], utc=True)
    left = (deadline - pd.Timestamp(cutoff)).dt.total_seconds() / 86400
    open_refund = u["refund_state"].astype(str).isin(_OPEN_REFUND_STATES)
    days_left = [
        math.floor(v) if is_open and pd.notna(v) else None
        for v, is_open in zip(left, open_refund, strict=True)
    ]
    return pd.DataFrame(
        {
            "return_ref": u["return_ref"].astype(str),
            "part": u["unique_sku"].astype(str),
            "grade": u["grade"].fillna("").astype(str),
            "credit_status": status,
            "credit_value": credit.where(status != "none", 0.0),
            "written_off_units": written,
            "write_off_value": (written * cost).round(2),
            "refund_days_left": pd.Series(days_left, dtype=object),
            "order_number": u.get("order_number", pd.Series(None, index=u.index)),
            "order_date": _uk_dates(u.get("order_date", pd.Series(None, index=u.index))),
            "received_date": _uk_dates(u["received_at"]),
            "hire": u["is_hire"].astype(bool).map({True: "hire", False: "sale"})
            if "is_hire" in u.columns
            else "sale",
        }
    )


def _uk_dates(values: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(values, utc=True)
    return pd.Series(
        [None if pd.isna(t) else t.tz_convert(UK).date() for t in stamps],
        index=values.index,
        dtype=object,
    )


def drift_of_stock(stock: pd.DataFrame) -> tuple[int, float]:
    """Gross unexplained drift of one day's stock reconciliation: (units, £ at cost).

    Only the *unexplained part* of each row classified ``unexplained`` (ACS 20, Khaos 10,
    6 in transit, £20 cost: 4 units, £80 — not the whole difference of 10)."""
    bad = stock.loc[stock["classification"].astype(str) == "unexplained"]
    units = int(pd.to_numeric(bad["unexplained"]).abs().sum())
    value = float(pd.to_numeric(bad["unexplained_value"], errors="coerce").fillna(0).abs().sum())
    return units, round(value, 2)


def month_drift(
    drift_by_day: pd.DataFrame | None, daily_stock: Mapping[date, pd.DataFrame], month: str
) -> pd.DataFrame:
    """``day, unexplained_units, unexplained_value`` for each day of the month.

    The stored series wins; a day it lacks is computed from that day's stock table.
    """
    known: dict[date, tuple[int, float]] = {}
    if drift_by_day is not None and not drift_by_day.empty:
        for row in drift_by_day.itertuples(index=False):
            day = pd.Timestamp(row.day).date()
            known[day] = (int(row.unexplained_units), float(row.unexplained_value))
    rows = []
    for day in month_days(month):
        if day in known:
            units, value = known[day]
        elif day in daily_stock:
            units, value = drift_of_stock(daily_stock[day])
        else:
            continue
        rows.append({"day": day, "unexplained_units": units, "unexplained_value": value})
    return pd.DataFrame(rows, columns=["day", "unexplained_units", "unexplained_value"])


def non_sellable_value(
    stock: pd.DataFrame,
    selling_site_ids: Iterable[int],
    cost_prices: Mapping[int, Any] | None = None,
) -> pd.DataFrame:
    """Khaos Level in every site but the selling ones, per site, valued at CostPrice.

    Without a CostPrice for a StockID it is taken from the row's own difference value
    (value ÷ difference) when that exists, else £0.
    """
    selling = {int(s) for s in selling_site_ids}
    costs = {int(k): float(v) for k, v in (cost_prices or {}).items()}
    rows = stock.loc[~stock["site_id"].astype("int64").isin(selling)].copy()
    if rows.empty:
        return pd.DataFrame(columns=["site_name", "units", "value_at_cost"])
    difference = pd.to_numeric(rows["difference"])
    implied = pd.to_numeric(rows["value"], errors="coerce") / difference.where(difference != 0)
    cost = rows["stock_id"].astype("int64").map(costs).fillna(implied).fillna(0.0)
    rows["units"] = pd.to_numeric(rows["khaos_level"]).astype("int64")
    rows["_pence"] = (rows["units"] * cost * 100).round()
    if "site_name" not in rows.columns:
        rows["site_name"] = rows["site_id"].astype(str)
    rows["site_name"] = rows["site_name"].fillna(rows["site_id"].astype(str)).astype(str)
    out = rows.groupby("site_name", as_index=False).agg(
        units=("units", "sum"), _pence=("_pence", "sum")
    )
    out["value_at_cost"] = (out["_pence"] / 100).round(2)
    return out[["site_name", "units", "value_at_cost"]].sort_values("site_name", ignore_index=True)


# The default finance calendar: weekdays that are not England-and-Wales bank holidays.
# The brand sets its own in settings (``finance_calendar``); the schedule reads it at
# each tick.
FINANCE_CALENDAR = WorkingCalendar(holiday_country="GB", holiday_subdivision="ENG")


def first_working_day(year: int, month: int, calendar: WorkingCalendar = FINANCE_CALENDAR) -> date:
    day = date(year, month, 1)
    while not calendar.is_working_day(day):
        day += timedelta(days=1)
    return day


def month_closed_on(day: date, calendar: WorkingCalendar = FINANCE_CALENDAR) -> str | None:
    """The month (``YYYY-MM``) whose pack is due on ``day``, or ``None`` if none is."""
    if day != first_working_day(day.year, day.month, calendar):
        return None
    previous = day.replace(day=1) - timedelta(days=1)
    return previous.strftime("%Y-%m")
