"""The month-end pack's extra sheets (issue 17 points 4, 7, 8): application steps.

Plain functions over the store, the Khaos client and the settings; the ``month_end_pack``
asset calls ``extra_pack_sheets`` and passes the frames to ``MonthEndInputs.sheets``.

- Refund liability: every sale return part not credited at the cut-off, from any month,
  with Khaos's own credit read back now (``ExportCustomerReturns`` per part, as the
  returns flow reads it), plus the unmatched returned units with their refund clock.
- Write-offs: the month's WRITEOFF adjustments Khaos confirmed (one per unit still in
  Level, at the value it carried), apart from the month's BER sale returns (no
  adjustment; at CostPrice as a memo).
- Hire fleet: hire StockIDs' Level per site at the hire valuation basis; these rows leave
  the "Non-sellable stock" sheet (``without_hire``).
- Order to cash by kind: hire fees apart from sales.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.errors import NotFoundError
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.domain.hire_valuation import hire_fleet, order_kinds
from acs_khaos_dagster.domain.refund_liability import refund_liability
from acs_khaos_dagster.domain.returns import StockMoveKind
from acs_khaos_dagster.reports.refund_liability_sheet import liability_frame
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.hire import HireBook
from acs_khaos_dagster.store.products import SkuIdentities
from acs_khaos_dagster.store.returns import ReturnsRepository


def khaos_credits(client: KhaosClient, refs: Collection[str]) -> dict[str, tuple[str, Decimal]]:
    """``AssociatedRef`` → (credit status, CreditValue) as Khaos holds it; a part Khaos
    does not hold is absent (its credit is ``missing``)."""
    found: dict[str, tuple[str, Decimal]] = {}
    for ref in sorted(set(refs)):
        try:
            returns = client.export_customer_returns(associated_ref=ref)
        except NotFoundError:
            continue
        if returns:
            first = min(returns, key=lambda r: r.return_id)  # a duplicate is khaos_duplicate's
            found[ref] = (first.credit_status, first.credit_value)
    return found


def refund_liability_sheet(
    conf: Settings, db: Store, client: KhaosClient, cutoff: datetime
) -> pd.DataFrame:
    """The "Refund liability" rows at ``cutoff``, Khaos's credits read back now."""
    repo = ReturnsRepository(db.db)
    postings, units = repo.postings(), repo.units()
    if postings.empty:
        asked: list[str] = []
    else:
        sale = postings[~postings["is_hire"].astype(bool)]
        received = pd.to_datetime(sale["received_at"], utc=True) <= pd.Timestamp(cutoff)
        asked = list(sale.loc[received & (sale["credit_status"] != "raised"), "associated_ref"])
    credits = khaos_credits(client, asked)
    # A part the store already knows raised stays out without asking Khaos again.
    for ref in postings.loc[postings["credit_status"] == "raised", "associated_ref"]:
        credits.setdefault(ref, ("raised", Decimal("0")))
    owed = refund_liability(
        postings, units, credits, cutoff, days=conf.returns.refund_days, time_zone=conf.time_zone
    )
    return liability_frame(owed)


def write_off_rows(
    db: Store, month: str, month_returns: pd.DataFrame, cost_prices: Mapping[int, Any]
) -> pd.DataFrame:
    """The "Write-offs" rows of ``month`` (see the module docstring)."""
    start, cutoff = me.month_bounds(month)
    rows: list[dict[str, Any]] = []
    moves = ReturnsRepository(db.db).moves()
    for move in moves.loc[moves["kind"] == StockMoveKind.WRITE_OFF.value].to_dict("records"):
        effect = db.outbox.by_key(move["group_ref"])
        if effect is None or effect.state != "done":
            continue
        if not start <= effect.updated_at <= cutoff:
            continue  # Khaos saved it in another month
        rows.append(
            {
                "unique_sku": move["unique_sku"],
                "return_ref": move["return_ref"],
                "stock_id": int(move["stock_id"]),
                "route": "khaos_adjustment",
                "reference": move["group_ref"],
                "units": abs(int(move["adjust_by"])),
                "value": abs(float(Decimal(str(move["value"])))),
            }
        )
    if not month_returns.empty:
        sale = month_returns.loc[
            ~month_returns["is_hire"].astype("boolean").fillna(False).astype(bool)
            & (month_returns["write_off_status"].astype(str) == "written_off")
        ]
        costs = {int(k): float(v) for k, v in cost_prices.items()}
        for unit in sale.to_dict("records"):
            stock_id = unit.get("stock_id")
            known = stock_id is not None and not pd.isna(stock_id)
            rows.append(
                {
                    "unique_sku": unit["unique_sku"],
                    "return_ref": unit["return_ref"],
                    "stock_id": int(stock_id) if known else None,
                    "route": "ber_sale_return",
                    "reference": unit.get("associated_ref") or None,
                    "units": 1,
                    "value": costs.get(int(stock_id), 0.0) if known else 0.0,
                }
            )
    columns = ["unique_sku", "return_ref", "stock_id", "route", "reference", "units", "value"]
    return pd.DataFrame(rows, columns=columns)


def hire_stock_ids(master: pd.DataFrame | None) -> set[int]:
    """Hire StockIDs from the products flow's SKU master (empty before it has run)."""
    if master is None or master.empty or "is_hire" not in master.columns:
        return set()
    return set(master.loc[master["is_hire"].astype(bool), "stock_id"].astype(int))


def rentals_by_stock_id(db: Store, until: datetime) -> dict[int, int]:
    """Hire StockID → how many times its units went out by ``until``."""
    by_sku = Counter[str]()
    for (sku, _unit), count in HireBook(db.db).unit_despatches(until).items():
        by_sku[sku] += count
    stock_of = {sku: stock_id for stock_id, sku in SkuIdentities(db.db).identity().items()}
    return {stock_of[sku]: n for sku, n in by_sku.items() if sku in stock_of}


def without_hire(stock: pd.DataFrame, hire_ids: Collection[int]) -> pd.DataFrame:
    """Stock rows of items for sale only: the hire fleet is reported on its own sheet."""
    return stock.loc[~stock["stock_id"].astype("int64").isin({int(i) for i in hire_ids})]


def extra_pack_sheets(
    conf: Settings,
    db: Store,
    client: KhaosClient,
    month: str,
    *,
    stock: pd.DataFrame,
    order_to_cash: pd.DataFrame,
    month_returns: pd.DataFrame,
    cost_prices: Mapping[int, Any],
    hire_ids: Collection[int],
    as_at: datetime,
) -> dict[str, pd.DataFrame]:
    """Every extra sheet's frame for ``MonthEndInputs.sheets``."""
    return {
        "refund_liability": refund_liability_sheet(conf, db, client, as_at),
        "write_offs": write_off_rows(db, month, month_returns, cost_prices),
        "hire_fleet": hire_fleet(
            stock,
            hire_ids,
            cost_prices,
            rentals_by_stock_id(db, as_at),
            conf.hire,
            conf.khaos.sites.on_hire,
        ),
        "order_to_cash_by_kind": order_kinds(order_to_cash, HireBook(db.db).hire_orders()),
    }
