"""The rental fleet: what a hire unit is worth, and which hires are overdue.

Pure: no Dagster, no I/O.

Valuation
---------
A hire garment is a rental asset, not stock for sale: it earns fees and wears with every
rental. ``HireValuation`` (settings ``hire``) says how the pack values it:

- ``basis = "cost"``: at CostPrice, as Khaos holds it.
- ``basis = "depreciated"``: CostPrice less ``depreciation_per_rental`` (a share of cost)
  for each rental so far, never below ``floor`` (a share of cost).

>>> rule = HireValuation(basis="depreciated", depreciation_per_rental=Decimal("0.1"),
...                      floor=Decimal("0.3"))
>>> rule.unit_value(Decimal("100.00"), rentals=2)
Decimal('80.00')
>>> rule.unit_value(Decimal("100.00"), rentals=12)
Decimal('30.00')

A hire write-off (a unit still in Level graded BER) is valued at the same basis, so the
write-off removes what the fleet carried. In the pack the fleet is valued per StockID:
a StockID's rentals so far are spread over its units (``rentals_per_unit``), the value per
unit at that average, times Khaos's Level — Khaos holds counts per StockID, not units.

Overdue hires
-------------
A hire unit with the customer (stage ``out``) past its ``expected_return_date`` by more
than ``overdue_grace_days`` days (UK calendar days) is overdue: an owned ``hire_overdue``
exception for operations, keyed by the unit and the date it was due, so a new hire of the
same unit is a new exception and a returned unit's exception closes itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

CENT = Decimal("0.01")
UK_TIME_ZONE = "Europe/London"


class HireValuation(BaseModel):
    """How hire units are valued (settings ``hire``; see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    basis: Literal["cost", "depreciated"] = "cost"
    depreciation_per_rental: Decimal = Field(Decimal("0.10"), ge=0, le=1)
    floor: Decimal = Field(Decimal("0.20"), ge=0, le=1)
    overdue_grace_days: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _depreciates(self) -> HireValuation:
        if self.basis == "depreciated" and self.depreciation_per_rental == 0:
            raise ValueError("a depreciated basis needs depreciation_per_rental above 0")
        return self

    def unit_value(self, cost: Decimal, rentals: float) -> Decimal:
        """One unit's value after ``rentals`` rentals (a fleet average may be fractional)."""
        cost = Decimal(str(cost))
        if self.basis == "cost":
            return cost.quantize(CENT, rounding=ROUND_HALF_UP)
        share = max(self.floor, Decimal(1) - self.depreciation_per_rental * Decimal(str(rentals)))
        return (cost * min(share, Decimal(1))).quantize(CENT, rounding=ROUND_HALF_UP)

    def describe(self) -> str:
        if self.basis == "cost":
            return "cost"
        per = f"{self.depreciation_per_rental * 100:.4g}%"
        return f"cost less {per} of cost per rental, floor {self.floor * 100:.4g}% of cost"


def hire_fleet(
    stock: pd.DataFrame,
    hire_stock_ids: Collection[int],
    cost_prices: Mapping[int, Any],
    rentals: Mapping[int, int],
    valuation: HireValuation,
    on_hire_site: int,
) -> pd.DataFrame:
    """The "Hire fleet" sheet from the stock reconciliation rows (per StockID × site).

    ``rentals``: StockID → rentals so far (hire despatches of its units by the as-at moment).
    Rows of non-hire StockIDs, or with no Level, are left out.
    """
    columns = [
        "stock_id",
        "stock_code",
        "site_name",
        "on_hire",
        "units",
        "rentals_per_unit",
        "value_at_cost",
        "book_value",
        "basis",
    ]
    hire = {int(s) for s in hire_stock_ids}
    rows = stock.loc[stock["stock_id"].astype("int64").isin(hire)].copy()
    rows["units"] = pd.to_numeric(rows["khaos_level"]).astype("int64")
    rows = rows.loc[rows["units"] != 0]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    fleet = rows.groupby(rows["stock_id"].astype("int64"))["units"].sum()
    out = []
    for row in rows.to_dict("records"):
        stock_id = int(row["stock_id"])
        cost = Decimal(str(cost_prices.get(stock_id, 0) or 0))
        units = int(row["units"])
        per_unit = rentals.get(stock_id, 0) / fleet[stock_id] if fleet[stock_id] > 0 else 0.0
        out.append(
            {
                "stock_id": stock_id,
                "stock_code": str(row.get("stock_code") or ""),
                "site_name": str(row.get("site_name") or row["site_id"]),
                "on_hire": "yes" if int(row["site_id"]) == on_hire_site else "no",
                "units": units,
                "rentals_per_unit": round(per_unit, 2),
                "value_at_cost": float(cost * units),
                "book_value": float(valuation.unit_value(cost, per_unit) * units),
                "basis": valuation.describe(),
            }
        )
    return pd.DataFrame(out, columns=columns).sort_values(
        ["stock_id", "site_name"], ignore_index=True
    )


# --- overdue hires -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HireOverdue:
    """One hire unit still with the customer after its expected return date."""

    unique_sku: str
    sku: str
    expected_return: date
    days_overdue: int

    @property
    def type(self) -> str:
        return "hire_overdue"

    @property
    def entity_ref(self) -> str:
        return f"hire:{self.unique_sku}:{self.expected_return.isoformat()}"

    @property
    def message(self) -> str:
        return (
            f"hire unit {self.unique_sku} ({self.sku}) was due back on "
            f"{self.expected_return.isoformat()} and is still with the customer "
            f"({self.days_overdue} day(s) overdue)"
        )

    @property
    def details(self) -> dict[str, Any]:
        return {
            "unique_sku": self.unique_sku,
            "sku": self.sku,
            "expected_return_date": self.expected_return.isoformat(),
            "days_overdue": self.days_overdue,
        }


def overdue_hires(
    units_out: pd.DataFrame,
    now: datetime,
    *,
    grace_days: int = 0,
    time_zone: str = UK_TIME_ZONE,
) -> list[HireOverdue]:
    """Units with the customer past their expected return date (plus ``grace_days``).

    ``units_out``: hire units whose stage is ``out`` (with the customer) in the newest
    snapshot, with ``unique_sku``, ``sku`` and ``expected_return_date`` (a date or a
    timestamp; missing = no date agreed, never overdue). A unit is overdue from the day
    after its expected return date (UK calendar), so one due back today is not.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(ZoneInfo(time_zone)).date()
    found = []
    for row in units_out.to_dict("records"):
        due = row.get("expected_return_date")
        if due is None or pd.isna(due):
            continue
        stamp = pd.Timestamp(due)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert(time_zone)
        expected = stamp.date()
        late = (today - expected).days
        if late > grace_days:
            found.append(
                HireOverdue(
                    unique_sku=str(row["unique_sku"]),
                    sku=str(row.get("sku") or ""),
                    expected_return=expected,
                    days_overdue=late,
                )
            )
    return sorted(found, key=lambda o: (o.expected_return, o.unique_sku))


def order_kinds(order_to_cash: pd.DataFrame, hire_orders: Collection[str]) -> pd.DataFrame:
    """The "Order to cash by kind" rows: each shipment marked ``hire`` when its order is a
    hire order (its lines are hire lines), else ``sale``."""
    hire = {str(o) for o in hire_orders}
    out = order_to_cash[["shipment_id", "order_number", "status", "value_waiting"]].copy()
    out["kind"] = out["order_number"].astype(str).map(lambda o: "hire" if o in hire else "sale")
    return out[["shipment_id", "order_number", "kind", "status", "value_waiting"]]
