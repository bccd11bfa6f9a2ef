"""The pack's "Write-offs" sheet: the month's write-offs by the route that booked them.

Two routes, never added together as one figure (``shared/ARCHITECTURE.md``, one mover
per event):

- ``khaos_adjustment``: a unit still in Khaos's Level (a hire unit graded BER) written off
  by a stock adjustment (reason WRITEOFF), at the value the adjustment carried. These are
  the lines of Khaos's own stock adjustment report for the month, so their total ties to
  it.
- ``ber_sale_return``: a sale return graded BER or disposed. The unit left Level when its
  invoice was issued and the customer return was posted with a write-off reason: there is
  no adjustment. Shown at CostPrice as a memo of what was lost.
"""

from __future__ import annotations

import pandas as pd

from acs_khaos_dagster.reports._tables import Column, TableSpec
from acs_khaos_dagster.reports.pack_registry import (
    PackSheet,
    SummaryFigure,
    Tables,
    int_figure,
    money_figure,
    where,
)

ROUTES = ("khaos_adjustment", "ber_sale_return")
WRITE_OFFS = TableSpec(
    "write_offs",
    "Write-offs",
    (
        Column("unique_sku", "text", "Unit", "ACS unique SKU of the unit written off."),
        Column("return_ref", "text", "Return", "ACS return reference."),
        Column("stock_id", "int", "Stock ID", "Khaos StockID.", nullable=True),
        Column(
            "route",
            "text",
            "Route",
            "khaos_adjustment (a WRITEOFF stock adjustment in Khaos) or ber_sale_return "
            "(a sale return posted with a write-off reason; no adjustment).",
            allowed=ROUTES,
        ),
        Column(
            "reference",
            "text",
            "Khaos reference",
            "The adjustment's GroupRef, or the customer return part's AssociatedRef.",
            nullable=True,
        ),
        Column("units", "int", "Units", "Units written off (1 per unit)."),
        Column(
            "value",
            "money",
            "Value (£)",
            "khaos_adjustment: the value the adjustment carried (the hire valuation basis); "
            "ber_sale_return: CostPrice, a memo.",
        ),
    ),
)


def _figures(tables: Tables) -> list[SummaryFigure]:
    rows = tables["write_offs"]
    adjusted = where(rows, "route", "khaos_adjustment")
    returned = where(rows, "route", "ber_sale_return")
    wo = WRITE_OFFS.title
    return [
        int_figure(
            "written-off-adjustment-units",
            "Written off by Khaos adjustment (units)",
            adjusted["units"],
            f"'{wo}': sum of Units where Route = khaos_adjustment",
        ),
        money_figure(
            "written-off-adjustment-value",
            "Written off by Khaos adjustment (£, ties to Khaos's adjustment report)",
            adjusted["value"],
            f"'{wo}': sum of Value where Route = khaos_adjustment",
        ),
        int_figure(
            "written-off-ber-returns-units",
            "BER sale returns (units; left Level when invoiced, no adjustment)",
            returned["units"],
            f"'{wo}': sum of Units where Route = ber_sale_return",
        ),
        money_figure(
            "written-off-ber-returns-value",
            "BER sale returns (£ at cost, memo)",
            returned["value"],
            f"'{wo}': sum of Value where Route = ber_sale_return",
        ),
    ]


def _largest(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("value", ascending=False)


WRITE_OFF_SHEETS: tuple[PackSheet, ...] = (
    PackSheet(WRITE_OFFS, _figures, ("Write-offs by route", _largest)),
)
