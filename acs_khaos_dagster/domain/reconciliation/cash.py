"""Order to cash: every ACS shipment against its Khaos posting and invoice.

Part of ``domain.reconciliation`` (see its docstring); code moved verbatim."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from acs_khaos_dagster.domain.reconciliation.common import (
    ISSUED_STAGES,
    UK_TIME_ZONE,
    _cost_scaled,
    _pence,
    _pounds,
    _require,
    _ts,
    _utc,
)

# =====================================================================================
# 3. order to cash
# =====================================================================================


class CashStatus(StrEnum):
    DESPATCHED_NOT_POSTED = "despatched_not_posted"
    POSTED_NOT_INVOICED = "posted_not_invoiced"
    INVOICED = "invoiced"


@dataclass(frozen=True)
class AgeBucket:
    """Shipments aged ``lower_days`` ≤ age < ``upper_days``."""

    label: str
    lower_days: float
    upper_days: float


DEFAULT_AGE_BUCKETS: tuple[AgeBucket, ...] = (
    AgeBucket("0-1 d", 0, 1),
    AgeBucket("1-3 d", 1, 3),
    AgeBucket("3-7 d", 3, 7),
    AgeBucket(">7 d", 7, math.inf),
)

ORDER_TO_CASH_COLUMNS = (
    "shipment_id",
    "order_number",
    "despatched_at",
    "despatch_date",
    "period",
    "units",
    "value",
    "posted_at",
    "invoice_id",
    "invoice_stage",
    "issue_date",
    "issue_period",
    "status",
    "age_hours",
    "age_bucket",
    "value_waiting",
    "duplicate_invoice_ids",
    "cost_value",
)


def month_end_cutoff(year: int, month: int, tz: str = UK_TIME_ZONE) -> datetime:
    """23:59:59 local time on the last day of the month, as a UTC datetime.

    >>> month_end_cutoff(2024, 3).isoformat()  # BST began that Sunday morning
    '2024-03-31T22:59:59+00:00'
    >>> month_end_cutoff(2024, 10).isoformat()  # back on GMT since the 27th
    '2024-10-31T23:59:59+00:00'
    """
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1-12, got {month}")
    # Midnight starting the next month, less one second of real time: never ambiguous in
    # the UK (the clocks change at 01:00 UTC, not at midnight).
    first_next = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=ZoneInfo(tz))
    return first_next.astimezone(UTC) - timedelta(seconds=1)


def _bucket(age_days: pd.Series, buckets: Sequence[AgeBucket]) -> pd.Series:
    out = pd.Series("", index=age_days.index, dtype=object)
    for b in buckets:
        out[(age_days >= b.lower_days) & (age_days < b.upper_days)] = b.label
    return out


def order_to_cash(
    shipments: pd.DataFrame,
    postings: pd.DataFrame,
    invoices: pd.DataFrame,
    as_at: datetime,
    tz: str = UK_TIME_ZONE,
    *,
    issued_stages: Sequence[int] = ISSUED_STAGES,
    buckets: Sequence[AgeBucket] = DEFAULT_AGE_BUCKETS,
    cancelled_stage: int = 1,
    cost_prices: Mapping[int, Any] | pd.Series | None = None,
) -> pd.DataFrame:
    """Every ACS shipment despatched by ``as_at`` against its Khaos posting and invoice.

    ``shipments`` — what ACS despatched (its despatch events, or ``GET orders`` for a
    shipment whose event never came): ``shipment_id, order_number, despatched_at, units,
    unit_net``, one row per shipment line (lines are summed; ``value`` = Σ units ×
    UnitNet of the Khaos order line).
    ``postings`` — despatches posted to Khaos and confirmed (``ImportDespatch`` read
    back): ``shipment_id, invoice_id`` (+ optional ``posted_at``). A posting still in the
    outbox is not a posting.
    ``invoices`` — the Khaos invoices (``ExportOrderStatusEx``): ``invoice_id, stage_id``
    (+ optional ``issue_date``, ``external_ref``).

    ``status`` **as at** ``as_at``: ``despatched_not_posted`` (no confirmed posting — the
    seed's hidden killer: Khaos will never invoice it), ``posted_not_invoiced`` (its
    invoice is not in ``issued_stages`` 70–73 — including one missing or cancelled — or
    was issued only *after* ``as_at``), ``invoiced`` (issued by ``as_at``; an issued
    invoice without an issue date counts as issued).

    Month end: pass ``as_at = month_end_cutoff(year, month)``. Shipments count by their
    despatch (to the second: a despatch at 23:59:59.4 is in). An invoice is never dated
    by its despatch: one issued on the 1st for a parcel that left on the 31st is
    ``posted_not_invoiced`` at the cut-off, so the month accrues it
    (``domain.cutoff.cutoff_accruals``) and nobody backdates the invoice.
    ``despatch_date`` and ``period`` (YYYY-MM) are the despatch's UK date,
    ``issue_period`` the issue's UK month (empty while not issued).
    ``cost_value``: Σ units × CostPrice of the lines (``shipments.stock_id`` with
    ``cost_prices``, as at the day reconciled; NaN where unknown).

    ``age_hours`` since despatch at ``as_at``; ``age_bucket`` by ``buckets`` (days);
    ``value_waiting`` = value while not invoiced, else 0. Sorted by despatch.

    ``duplicate_invoice_ids``: other Khaos invoices of the same shipment (comma text) —
    a second posting's invoice, or a live invoice carrying the shipment's ExternalRef —
    listed, never dropped: the shipment's status follows its last posting, and
    ``domain.duplicates`` raises the duplicate.
    """
    _require(
        shipments,
        ("shipment_id", "order_number", "despatched_at", "units", "unit_net"),
        "shipments",
    )
    _require(postings, ("shipment_id", "invoice_id"), "postings")
    _require(invoices, ("invoice_id", "stage_id"), "invoices")
    cutoff = _ts(as_at)
    lines = shipments.copy()
    lines["shipment_id"] = lines["shipment_id"].astype(str)
    lines["despatched_at"] = _utc(lines["despatched_at"])
    pence = (
        lines["units"].astype("int64")
        * pd.to_numeric(lines["unit_net"].map(str), errors="coerce")
        * 100
    ).round()
    lines["_pence"] = pence
    stock_ids = (
        pd.to_numeric(lines["stock_id"], errors="coerce")
        if "stock_id" in lines.columns
        else pd.Series(np.nan, index=lines.index)
    )
    cost = _cost_scaled(stock_ids.fillna(-1).astype("int64"), cost_prices)
    lines["_cost"] = _pence(lines["units"].astype("int64"), cost.where(stock_ids.notna()))
    s = lines.groupby("shipment_id", as_index=False).agg(
        order_number=("order_number", "first"),
        despatched_at=("despatched_at", "min"),
        units=("units", "sum"),
        _pence=("_pence", "sum"),
        _cost=("_cost", lambda c: c.sum(min_count=len(c))),
    )
    s = s.loc[s["despatched_at"].dt.floor("s") <= cutoff].copy()
    s["value"] = _pounds(s["_pence"])

    p = postings.copy()
    p["shipment_id"] = p["shipment_id"].astype(str)
    if "posted_at" not in p.columns:
        p["posted_at"] = pd.NaT
    p["posted_at"] = _utc(p["posted_at"])
    p = p.drop_duplicates(["shipment_id", "invoice_id"], keep="last")
    invoices_of: dict[str, set[int]] = {}
    for shipment, invoice in zip(p["shipment_id"], p["invoice_id"], strict=True):
        if pd.notna(invoice):
            invoices_of.setdefault(shipment, set()).add(int(invoice))
    p = p.drop_duplicates("shipment_id", keep="last")[["shipment_id", "invoice_id", "posted_at"]]
    inv = invoices.copy()
    if "issue_date" not in inv.columns:
        inv["issue_date"] = pd.NaT
    inv["issue_date"] = _utc(inv["issue_date"])
    if "external_ref" in inv.columns:
        live = inv.loc[(inv["stage_id"] != cancelled_stage) & (inv["external_ref"] != "")]
        for ref, invoice in zip(live["external_ref"], live["invoice_id"], strict=True):
            invoices_of.setdefault(str(ref), set()).add(int(invoice))
    inv = inv.drop_duplicates("invoice_id", keep="last")[["invoice_id", "stage_id", "issue_date"]]
    inv = inv.rename(columns={"stage_id": "invoice_stage"})
    s = s.merge(p, on="shipment_id", how="left")
    s = (
        s.merge(inv, on="invoice_id", how="left")
        if not s.empty
        else s.assign(invoice_stage=np.nan, issue_date=pd.NaT)
    )

    s["issue_date"] = _utc(s["issue_date"])
    posted = s["invoice_id"].notna()
    issued = s["invoice_stage"].isin(list(issued_stages)) & (
        s["issue_date"].isna() | (s["issue_date"] <= cutoff)
    )
    s["status"] = np.select(
        [~posted, ~issued],
        [str(CashStatus.DESPATCHED_NOT_POSTED), str(CashStatus.POSTED_NOT_INVOICED)],
        default=str(CashStatus.INVOICED),
    )
    local = s["despatched_at"].dt.tz_convert(tz)
    s["despatch_date"] = local.dt.date
    s["period"] = local.dt.strftime("%Y-%m")
    s["issue_period"] = s["issue_date"].dt.tz_convert(tz).dt.strftime("%Y-%m").fillna("")
    s["cost_value"] = _pounds(s["_cost"])
    s["age_hours"] = ((cutoff - s["despatched_at"]).dt.total_seconds() / 3600).round(2)
    s["age_bucket"] = _bucket(s["age_hours"] / 24, buckets)
    s["value_waiting"] = s["value"].where(s["status"] != str(CashStatus.INVOICED), 0.0)
    s["duplicate_invoice_ids"] = [
        ",".join(
            str(i)
            for i in sorted(
                invoices_of.get(shipment, set()) - {int(kept) if pd.notna(kept) else -1}
            )
        )
        for shipment, kept in zip(s["shipment_id"], s["invoice_id"], strict=True)
    ]
    s["units"] = s["units"].astype("int64")
    s["invoice_stage"] = s["invoice_stage"].astype("Int64")
    return s.sort_values(["despatched_at", "shipment_id"], ignore_index=True)[
        list(ORDER_TO_CASH_COLUMNS)
    ]


def order_to_cash_ageing(
    df: pd.DataFrame, buckets: Sequence[AgeBucket] = DEFAULT_AGE_BUCKETS
) -> pd.DataFrame:
    """Shipments not yet invoiced, by status × age bucket: ``status, age_bucket,
    shipments, units, value_waiting``. Every status × bucket appears (zeros included), in
    bucket order, so charts and totals are stable."""
    waiting = df.loc[df["status"] != str(CashStatus.INVOICED)].copy()
    waiting["age_bucket"] = _bucket(waiting["age_hours"] / 24, buckets)
    waiting["_pence"] = (waiting["value_waiting"] * 100).round()
    grid = pd.MultiIndex.from_product(
        [
            [str(CashStatus.DESPATCHED_NOT_POSTED), str(CashStatus.POSTED_NOT_INVOICED)],
            [b.label for b in buckets],
        ],
        names=["status", "age_bucket"],
    )
    out = (
        waiting.groupby(["status", "age_bucket"])
        .agg(shipments=("shipment_id", "count"), units=("units", "sum"), _pence=("_pence", "sum"))
        .reindex(grid, fill_value=0)
        .reset_index()
    )
    out["value_waiting"] = _pounds(out["_pence"])
    out["shipments"] = out["shipments"].astype("int64")
    out["units"] = out["units"].astype("int64")
    return out[["status", "age_bucket", "shipments", "units", "value_waiting"]]
