"""The close sheets: cut-off accruals, differences within tolerance, the month's stock
adjustments by reason, and stock valuation by site (selling site included)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from acs_khaos_dagster.reports._tables import Column, TableSpec
from acs_khaos_dagster.reports.pack_registry import (
    PackSheet,
    SummaryFigure,
    Tables,
    count_figure,
    int_figure,
    money_figure,
    where,
)

ADJUSTMENT_KINDS = ("variance", "write_off", "ex_hire", "status_move")
VARIANCE_ORIGINS = ("within_tolerance", "approved", "")

CUTOFF_ACCRUALS = TableSpec(
    "cutoff_accruals",
    "Cut-off accruals",
    (
        Column("shipment_id", "text", "Shipment", "ACS shipment reference."),
        Column("order_number", "text", "Order", "Khaos order number."),
        Column("invoice_id", "text", "Invoice", "Khaos invoice id (empty: never posted).", True),
        Column(
            "status", "text", "Status at cut-off", "despatched_not_posted or posted_not_invoiced."
        ),
        Column("despatch_date", "date", "Despatched (UK)", "Despatch date, in the month."),
        Column(
            "issue_date",
            "date",
            "Issued (UK)",
            "Invoice issue date after the cut-off, if any.",
            True,
        ),
        Column("issue_period", "text", "Issue period", "Month the invoice was issued in.", True),
        Column("units", "int", "Units", "Units despatched."),
        Column(
            "net_value", "money", "Net value (£)", "units × UnitNet, net of VAT: the accrual.", True
        ),
        Column("vat_basis", "text", "VAT basis", "The VAT tax point and the period it falls in."),
        Column(
            "cost_value",
            "money",
            "Cost (£ at cost)",
            "units × CostPrice as at the period: the cost-of-sales side.",
            True,
        ),
        Column("action", "text", "Action", "Post at the cut-off, reverse on the 1st."),
    ),
)
WITHIN_TOLERANCE = TableSpec(
    "within_tolerance",
    "Within tolerance",
    (
        Column("stock_id", "int", "Stock ID", "Khaos StockID."),
        Column("stock_code", "text", "Stock code", "Khaos StockCode."),
        Column("site_name", "text", "Site", "Khaos site name."),
        Column("unexplained", "int", "Unexplained (units)", "ACS − Khaos, not explained."),
        Column(
            "unexplained_value", "money", "Unexplained value (£ at cost)", "Signed, at cost.", True
        ),
    ),
)
ADJUSTMENTS = TableSpec(
    "adjustments",
    "Stock adjustments",
    (
        Column("applied_at", "datetime", "Applied (UK)", "When Khaos confirmed the adjustment."),
        Column("ref", "text", "Reference", "The adjustment group reference sent to Khaos."),
        Column("reason_code", "text", "Reason", "The reason code in Khaos's adjustment report."),
        Column(
            "kind",
            "text",
            "Kind",
            "variance, write_off, ex_hire or status_move (transfer/refurbish).",
            allowed=ADJUSTMENT_KINDS,
        ),
        Column(
            "origin",
            "text",
            "Variance origin",
            "within_tolerance (pushed without approval) or approved (a held variance).",
            True,
            VARIANCE_ORIGINS,
        ),
        Column("stock_id", "int", "Stock ID", "Khaos StockID."),
        Column("site_name", "text", "Site", "Khaos site name."),
        Column("units", "int", "Units", "Change to Level (+ in, − out)."),
        Column("value", "money", "Value (£ at cost)", "As sent to Khaos, signed with the units."),
    ),
)
STOCK_BY_SITE = TableSpec(
    "stock_by_site",
    "Stock by site",
    (
        Column("site_id", "int", "Site ID", "Khaos site id."),
        Column("site_name", "text", "Site", "Khaos site name."),
        Column("selling", "text", "Selling site", "yes for the site the website sells from."),
        Column("units", "int", "Units (Level)", "Khaos Level at the as-at moment."),
        Column(
            "value_at_cost", "money", "Value (£ at cost)", "Level × CostPrice as at the period."
        ),
    ),
)


def _accrual_figures(t: Tables) -> list[SummaryFigure]:
    a, title = t["cutoff_accruals"], CUTOFF_ACCRUALS.title
    return [
        count_figure("accrual-shipments", "Accrual: shipments", a, f"'{title}': rows"),
        money_figure(
            "accrual-net-value",
            "Accrual: net sales not invoiced at the cut-off (£)",
            a["net_value"],
            f"'{title}': sum of Net value",
        ),
        money_figure(
            "accrual-cost-value",
            "Accrual: cost of those sales (£ at cost)",
            a["cost_value"],
            f"'{title}': sum of Cost",
        ),
    ]


def _adjustment_figures(t: Tables) -> list[SummaryFigure]:
    a, title = t["adjustments"], ADJUSTMENTS.title
    out: list[SummaryFigure] = []
    for kind, label in (("variance", "VARIANCE"), ("write_off", "WRITEOFF"), ("ex_hire", "EXHIRE")):
        rows = where(a, "kind", kind)
        out.append(
            int_figure(
                f"adjustments-{kind.replace('_', '-')}-units",
                f"{label} adjustments in the month (units, net)",
                rows["units"],
                f"'{title}': sum of Units where Kind = {kind}",
            )
        )
        out.append(
            money_figure(
                f"adjustments-{kind.replace('_', '-')}-value",
                f"{label} adjustments in the month (£ at cost, net)",
                rows["value"],
                f"'{title}': sum of Value where Kind = {kind}",
            )
        )
    for origin in ("within_tolerance", "approved"):
        out.append(
            money_figure(
                f"variance-{origin.replace('_', '-')}-value",
                f"VARIANCE {origin.replace('_', ' ')} (£ at cost, net)",
                a.loc[(a["kind"] == "variance") & (a["origin"] == origin), "value"],
                f"'{title}': sum of Value where Kind = variance and Variance origin = {origin}",
            )
        )
    return out


def _site_figures(t: Tables) -> list[SummaryFigure]:
    s, title = t["stock_by_site"], STOCK_BY_SITE.title
    return [
        int_figure(
            "stock-units",
            "Stock in Khaos, all sites (units)",
            s["units"],
            f"'{title}': sum of Units",
        ),
        money_figure(
            "stock-value",
            "Stock in Khaos, all sites (£ at cost)",
            s["value_at_cost"],
            f"'{title}': sum of Value",
        ),
        money_figure(
            "stock-value-selling",
            "Stock on the selling site (£ at cost)",
            where(s, "selling", "yes")["value_at_cost"],
            f"'{title}': sum of Value where Selling site = yes",
        ),
    ]


def _largest(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def order(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(_k=frame[column].abs()).sort_values("_k", ascending=False)

    return order


CLOSE_SHEETS: tuple[PackSheet, ...] = (
    PackSheet(
        CUTOFF_ACCRUALS,
        _accrual_figures,
        (
            "Cut-off accruals: despatched in the month, not invoiced by the cut-off",
            _largest("net_value"),
        ),
    ),
    PackSheet(
        WITHIN_TOLERANCE,
        html=("Differences within tolerance (booked as VARIANCE)", _largest("unexplained_value")),
    ),
    PackSheet(ADJUSTMENTS, _adjustment_figures),
    PackSheet(STOCK_BY_SITE, _site_figures, ("Stock by site", _largest("value_at_cost"))),
)
