"""The pack's hire sheets: the rental fleet apart from stock for sale, and hire fees apart
from sales in order to cash.

- "Hire fleet": Khaos Level of every hire StockID per site (hire stock, on hire, and the
  inspection/refurbishment sites a hire unit passes through), at cost and at the
  configured hire valuation basis (``domain.hire_valuation``). These units are never
  stock for sale: the "Non-sellable stock" sheet leaves hire StockIDs out.
- "Order to cash by kind": every shipment of the Order to cash sheet marked ``sale`` or
  ``hire`` (an order whose lines are hire lines), so hire fees waiting to be invoiced are
  never read as sales.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from acs_khaos_dagster.reports._tables import Column, ReportInputError, TableSpec, money_sum
from acs_khaos_dagster.reports.pack_registry import (
    PackSheet,
    SummaryFigure,
    Tables,
    count_figure,
    int_figure,
    money_figure,
    where,
)

HIRE_FLEET = TableSpec(
    "hire_fleet",
    "Hire fleet",
    (
        Column("stock_id", "int", "Stock ID", "Khaos StockID of a hire item."),
        Column("stock_code", "text", "Stock code", "Khaos StockCode."),
        Column("site_name", "text", "Site", "Khaos site holding the units."),
        Column(
            "on_hire",
            "text",
            "On hire",
            "yes when the site is the on-hire site (with a customer), else no.",
            allowed=("yes", "no"),
        ),
        Column("units", "int", "Units", "Khaos Level of the StockID in the site."),
        Column("rentals_per_unit", "number", "Rentals per unit", "Rentals so far ÷ fleet units."),
        Column("value_at_cost", "money", "Value at cost (£)", "units × CostPrice."),
        Column(
            "book_value",
            "money",
            "Book value (£)",
            "units × the unit value at the hire valuation basis (see Basis).",
        ),
        Column("basis", "text", "Basis", "The hire valuation basis the book value uses."),
    ),
)
KINDS = ("sale", "hire")
ORDER_TO_CASH_BY_KIND = TableSpec(
    "order_to_cash_by_kind",
    "Order to cash by kind",
    (
        Column("shipment_id", "text", "Shipment", "ACS shipment reference."),
        Column("order_number", "text", "Order", "Khaos order number."),
        Column(
            "kind",
            "text",
            "Sale or hire",
            "hire when the order's lines are hire lines (a hire fee), else sale.",
            allowed=KINDS,
        ),
        Column("status", "text", "Status", "As on the Order to cash sheet."),
        Column("value_waiting", "money", "Value waiting (£)", "As on the Order to cash sheet."),
    ),
)


def _fleet_figures(tables: Tables) -> list[SummaryFigure]:
    fleet = tables["hire_fleet"]
    out = where(fleet, "on_hire", "yes")
    hf = HIRE_FLEET.title
    return [
        int_figure(
            "hire-fleet-units", "Hire fleet (units)", fleet["units"], f"'{hf}': sum of Units"
        ),
        money_figure(
            "hire-fleet-book-value",
            "Hire fleet at the hire valuation basis (£)",
            fleet["book_value"],
            f"'{hf}': sum of Book value",
        ),
        money_figure(
            "hire-fleet-cost-value",
            "Hire fleet at cost (£, for comparison)",
            fleet["value_at_cost"],
            f"'{hf}': sum of Value at cost",
        ),
        int_figure(
            "hire-on-hire-units",
            "Hire units with customers (units)",
            out["units"],
            f"'{hf}': sum of Units where On hire = yes",
        ),
        money_figure(
            "hire-on-hire-book-value",
            "Hire units with customers at the hire valuation basis (£)",
            out["book_value"],
            f"'{hf}': sum of Book value where On hire = yes",
        ),
    ]


def _kind_figures(tables: Tables) -> list[SummaryFigure]:
    rows = tables["order_to_cash_by_kind"]
    waiting = rows.loc[rows["status"] != "invoiced"]
    ok = ORDER_TO_CASH_BY_KIND.title
    return [
        money_figure(
            "value-waiting-sales",
            "Value waiting: sales, not invoiced (£)",
            where(waiting, "kind", "sale")["value_waiting"],
            f"'{ok}': sum of Value waiting where Sale or hire = sale and Status is not invoiced",
        ),
        money_figure(
            "value-waiting-hire-fees",
            "Value waiting: hire fees, not invoiced (£)",
            where(waiting, "kind", "hire")["value_waiting"],
            f"'{ok}': sum of Value waiting where Sale or hire = hire and Status is not invoiced",
        ),
        count_figure(
            "hire-shipments-not-invoiced",
            "Hire shipments despatched, not invoiced",
            where(waiting, "kind", "hire"),
            f"'{ok}': rows where Sale or hire = hire and Status is not invoiced",
        ),
    ]


def check_kinds_tie(tables: Tables) -> None:
    """Sales plus hire fees waiting are the Order to cash sheet's value waiting."""
    by_kind, o2c = tables.get("order_to_cash_by_kind"), tables.get("order_to_cash")
    if by_kind is None or o2c is None or by_kind.empty:
        return
    ours = money_sum(by_kind.loc[by_kind["status"] != "invoiced", "value_waiting"])
    theirs = money_sum(o2c.loc[o2c["status"] != "invoiced", "value_waiting"])
    if ours != theirs:
        raise ReportInputError(
            f"order_to_cash_by_kind: value waiting £{ours} is not the Order to cash sheet's "
            f"£{theirs}"
        )


def _largest(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def order(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values(column, ascending=False)

    return order


HIRE_SHEETS: tuple[PackSheet, ...] = (
    PackSheet(HIRE_FLEET, _fleet_figures, ("Hire fleet by book value", _largest("book_value"))),
    PackSheet(ORDER_TO_CASH_BY_KIND, _kind_figures, check=check_kinds_tie),
)
