"""The pack's core sheets: stock, order to cash, returns, exceptions, drift, non-sellable.

Sign convention everywhere: unit differences are **ACS − Khaos** (positive: the
warehouse holds more than the ledger), valued at CostPrice as at the period.
"""

from __future__ import annotations

import pandas as pd

from acs_khaos_dagster.reports._tables import Column, ReportInputError, TableSpec, slug
from acs_khaos_dagster.reports.pack_registry import (
    PackSheet,
    SummaryFigure,
    Tables,
    count_figure,
    int_figure,
    money_figure,
    where,
)

STOCK_CLASSIFICATIONS = ("in_step", "in_flight", "push_missing", "within_tolerance", "unexplained")
ORDER_TO_CASH_STATUSES = ("despatched_not_posted", "posted_not_invoiced", "invoiced")
CREDIT_STATUSES = ("raised", "review", "none")
SIGN = "ACS − Khaos: positive = the warehouse holds more than Khaos's Level"

STOCK_RECONCILIATION = TableSpec(
    "stock_reconciliation",
    "Stock reconciliation",
    (
        Column("stock_id", "int", "Stock ID", "Khaos StockID."),
        Column("stock_code", "text", "Stock code", "Khaos StockCode (the SKU)."),
        Column("site_id", "int", "Site ID", "Khaos site id."),
        Column("site_name", "text", "Site", "Khaos site name."),
        Column("acs_units", "int", "ACS units", "ACS units for this site under the status policy."),
        Column("khaos_level", "int", "Khaos Level", "Khaos Level (ExportStockStatus)."),
        Column("difference", "int", "Difference (units)", f"acs_units − khaos_level ({SIGN})."),
        Column("value", "money", "Difference value (£ at cost)", "difference × CostPrice, signed."),
        Column(
            "explained_in_flight",
            "int",
            "In transit / timing (units)",
            "Part of the difference that is timing only: despatched not yet invoiced, "
            "restocked not yet processed, changes still in the outbox (ACS − Khaos).",
        ),
        Column(
            "explained_push_missing",
            "int",
            "Unconfirmed pushes (units)",
            "Part of the difference a stock push the outbox gave up on would have moved.",
        ),
        Column(
            "unexplained",
            "int",
            "Unexplained (units)",
            "difference − in transit − unconfirmed pushes (ACS − Khaos).",
        ),
        Column(
            "unexplained_value",
            "money",
            "Unexplained value (£ at cost)",
            "unexplained × CostPrice, signed; empty when the cost price is unknown.",
            nullable=True,
        ),
        Column(
            "classification",
            "text",
            "Classification",
            "unexplained (beyond tolerance: drift), within_tolerance (booked as VARIANCE by "
            "the next push), push_missing, in_flight (timing), in_step.",
            allowed=STOCK_CLASSIFICATIONS,
        ),
    ),
)
ORDER_TO_CASH = TableSpec(
    "order_to_cash",
    "Order to cash",
    (
        Column("shipment_id", "text", "Shipment", "ACS shipment reference."),
        Column("order_number", "text", "Order", "Khaos order number."),
        Column("despatched_at", "datetime", "Despatched (UK)", "Despatch time; naive = UK time."),
        Column(
            "status",
            "text",
            "Status",
            "As at the pack's as-at moment: "
            + ", ".join(ORDER_TO_CASH_STATUSES)
            + " (an invoice issued later is not invoiced yet).",
            allowed=ORDER_TO_CASH_STATUSES,
        ),
        Column("age_days", "int", "Age (days)", "Whole days since despatch at the as-at moment."),
        Column(
            "value_waiting",
            "money",
            "Value waiting (£)",
            "Goods value (units × UnitNet, net of VAT) not yet invoiced (0 once invoiced).",
        ),
        Column("ageing_bucket", "text", "Ageing bucket", "Age band at the as-at moment."),
        Column("invoice_id", "text", "Invoice", "Khaos invoice id (empty: never posted).", True),
        Column(
            "issue_date", "date", "Issued (UK)", "Invoice issue date; empty if not issued.", True
        ),
        Column("issue_period", "text", "Issue period", "Month of issue (YYYY-MM).", True),
        Column("period", "text", "Despatch period", "Month of despatch (YYYY-MM), UK time."),
        Column("value", "money", "Net value (£)", "units × UnitNet, net of VAT.", True),
    ),
)
RETURNS = TableSpec(
    "returns",
    "Returns",
    (
        Column("return_ref", "text", "Return", "ACS return reference."),
        Column("part", "text", "Part", "The returned unit (its unique SKU)."),
        Column("grade", "text", "Grade", "ACS grade (A, B, C, BER, ...)."),
        Column(
            "credit_status",
            "text",
            "Credit",
            "raised (credit note raised), review (pending review) or none.",
            allowed=CREDIT_STATUSES,
        ),
        Column("credit_value", "money", "Credit value (£)", "Value of the credit (raised/review)."),
        Column("written_off_units", "int", "Units written off", "Units written off for this part."),
        Column("write_off_value", "money", "Write-off value (£ at cost)", "At CostPrice."),
        Column(
            "refund_days_left",
            "int",
            "Refund days left",
            "Whole days left of the 14-day refund window at the as-at moment; negative = "
            "overdue; empty = refunded/n/a.",
            nullable=True,
        ),
        Column("order_number", "text", "Order", "The Khaos order the unit was sold on.", True),
        Column("order_date", "date", "Ordered (UK)", "Date of that order.", True),
        Column("received_date", "date", "Received (UK)", "Date ACS received the return.", True),
        Column("hire", "text", "Sale or hire", "sale, or hire (a hire return owes no credit)."),
    ),
)
EXCEPTIONS = TableSpec(
    "exceptions",
    "Exceptions",
    (
        Column("type", "text", "Exception type", "Exception type code."),
        Column("owner", "text", "Owner team", "operations, finance, ecommerce, integration..."),
        Column("count", "int", "Open", "Open exceptions of this type and owner."),
        Column("oldest_age_hours", "number", "Oldest (hours)", "Age of the oldest open one."),
        Column(
            "over_target",
            "int",
            "Over target",
            "How many of them are older than the owner team's target age (0..count).",
        ),
    ),
)
DRIFT_BY_DAY = TableSpec(
    "drift_by_day",
    "Drift by day",
    (
        Column("day", "date", "Day", "A day of the month (UK)."),
        Column(
            "unexplained_units",
            "int",
            "Unexplained units",
            "Σ |Unexplained (units)| of that day's rows classified unexplained.",
        ),
        Column(
            "unexplained_value",
            "money",
            "Unexplained value (£ at cost)",
            "Σ |Unexplained value| of those rows.",
        ),
    ),
)
NON_SELLABLE_VALUE = TableSpec(
    "non_sellable_value",
    "Non-sellable stock",
    (
        Column("site_name", "text", "Site", "Khaos non-sellable site name."),
        Column("units", "int", "Units", "Units (Level) in the site."),
        Column("value_at_cost", "money", "Value (£ at cost)", "units × CostPrice."),
    ),
)


# --- summary figures ------------------------------------------------------------------------


def _stock_figures(t: Tables) -> list[SummaryFigure]:
    stock, sr = t["stock_reconciliation"], STOCK_RECONCILIATION.title
    drift = where(stock, "classification", "unexplained")
    small = where(stock, "classification", "within_tolerance")
    return [
        int_figure(
            "unexplained-drift-units",
            "Unexplained stock drift (units, gross)",
            drift["unexplained"].abs(),
            f"'{sr}': sum of |Unexplained (units)| where Classification = unexplained",
        ),
        money_figure(
            "unexplained-drift-value",
            "Unexplained stock drift (£ at cost, gross)",
            drift["unexplained_value"].abs(),
            f"'{sr}': sum of |Unexplained value| where Classification = unexplained",
        ),
        money_figure(
            "unexplained-drift-net-value",
            "Unexplained stock drift (£ at cost, net)",
            drift["unexplained_value"],
            f"'{sr}': sum of Unexplained value where Classification = unexplained",
        ),
        count_figure(
            "stock-rows-in-step",
            "Stock rows in step",
            where(stock, "classification", "in_step"),
            f"'{sr}': rows where Classification = in_step",
        ),
        count_figure(
            "stock-rows-within-tolerance",
            "Stock rows with a difference within tolerance",
            small,
            f"'{sr}': rows where Classification = within_tolerance",
        ),
        int_figure(
            "within-tolerance-units",
            "Differences within tolerance (units, gross)",
            small["unexplained"].abs(),
            f"'{sr}': sum of |Unexplained (units)| where Classification = within_tolerance",
        ),
        money_figure(
            "within-tolerance-value",
            "Differences within tolerance (£ at cost, gross)",
            small["unexplained_value"].abs(),
            f"'{sr}': sum of |Unexplained value| where Classification = within_tolerance",
        ),
        int_figure(
            "in-transit-units",
            "Timing differences (units, net)",
            stock["explained_in_flight"],
            f"'{sr}': sum of In transit / timing (units)",
        ),
    ]


def _stock_check(t: Tables) -> None:
    s = t["stock_reconciliation"]
    wrong = s["difference"] != s["acs_units"] - s["khaos_level"]
    if wrong.any():
        row = int(wrong.idxmax())
        raise ReportInputError(
            f"stock_reconciliation.difference: row {row} is not acs_units - khaos_level"
        )
    parts = s["explained_in_flight"] + s["explained_push_missing"] + s["unexplained"]
    wrong = s["difference"] != parts
    if wrong.any():
        raise ReportInputError(
            f"stock_reconciliation.unexplained: row {int(wrong.idxmax())} is not difference "
            "- in transit - unconfirmed pushes"
        )


def _cash_figures(t: Tables) -> list[SummaryFigure]:
    o2c, oc = t["order_to_cash"], ORDER_TO_CASH.title
    waiting = o2c[o2c["status"] != "invoiced"]
    return [
        count_figure(
            "shipments-not-invoiced",
            "Shipments despatched, not invoiced",
            waiting,
            f"'{oc}': rows where Status is not invoiced",
        ),
        money_figure(
            "value-despatched-not-posted",
            "Value waiting: despatched, not posted",
            where(o2c, "status", "despatched_not_posted")["value_waiting"],
            f"'{oc}': sum of Value waiting where Status = despatched_not_posted",
        ),
        money_figure(
            "value-posted-not-invoiced",
            "Value waiting: posted, not invoiced",
            where(o2c, "status", "posted_not_invoiced")["value_waiting"],
            f"'{oc}': sum of Value waiting where Status = posted_not_invoiced",
        ),
        money_figure(
            "value-despatched-not-invoiced",
            "Value waiting: despatched, not invoiced (total)",
            waiting["value_waiting"],
            f"'{oc}': sum of Value waiting where Status is not invoiced",
        ),
    ]


def _returns_figures(t: Tables) -> list[SummaryFigure]:
    returns, rt = t["returns"], RETURNS.title
    raised, review = (
        where(returns, "credit_status", "raised"),
        where(returns, "credit_status", "review"),
    )
    return [
        count_figure(
            "credits-raised-count", "Credits raised", raised, f"'{rt}': rows where Credit = raised"
        ),
        money_figure(
            "credits-raised-value",
            "Credits raised (£)",
            raised["credit_value"],
            f"'{rt}': sum of Credit value where Credit = raised",
        ),
        count_figure(
            "credits-review-count",
            "Credits pending review",
            review,
            f"'{rt}': rows where Credit = review",
        ),
        money_figure(
            "credits-review-value",
            "Credits pending review (£)",
            review["credit_value"],
            f"'{rt}': sum of Credit value where Credit = review",
        ),
        # Write-offs are totalled on their own sheet, split by route (a Khaos adjustment or a
        # BER sale return): one total of both would not tie to Khaos's adjustment report.
    ]


def _non_sellable_figures(t: Tables) -> list[SummaryFigure]:
    sites, ns = t["non_sellable_value"], NON_SELLABLE_VALUE.title
    return [
        int_figure(
            "non-sellable-units",
            "Units in non-sellable sites",
            sites["units"],
            f"'{ns}': sum of Units",
        ),
        money_figure(
            "non-sellable-value",
            "Stock in non-sellable sites (£ at cost)",
            sites["value_at_cost"],
            f"'{ns}': sum of Value",
        ),
    ]


def _exception_figures(t: Tables) -> list[SummaryFigure]:
    exceptions, ex = t["exceptions"], EXCEPTIONS.title
    figures = [
        int_figure(
            "open-exceptions", "Open exceptions", exceptions["count"], f"'{ex}': sum of Open"
        ),
        int_figure(
            "open-exceptions-over-target",
            "Open exceptions over target age",
            exceptions["over_target"],
            f"'{ex}': sum of Over target",
        ),
    ]
    used: set[str] = set()
    for owner in sorted(exceptions["owner"].unique()):
        key = f"open-exceptions-{slug(owner)}"
        while key in used:  # two owners that differ only in punctuation or case
            key += "-x"
        used.add(key)
        figures.append(
            int_figure(
                key,
                f"Open exceptions: {owner}",
                where(exceptions, "owner", owner)["count"],
                f"'{ex}': sum of Open where Owner team = {owner}",
            )
        )
    return figures


def _exceptions_check(t: Tables) -> None:
    x = t["exceptions"]
    over = (x["over_target"] < 0) | (x["over_target"] > x["count"])
    if over.any():
        raise ReportInputError(
            f"exceptions.over_target: row {int(over.idxmax())} is not between 0 and count"
        )


# --- HTML orderings -------------------------------------------------------------------------


def _by_abs_value(frame: pd.DataFrame) -> pd.DataFrame:
    drifting = frame[frame["classification"] != "in_step"]
    return drifting.assign(_k=drifting["value"].abs()).sort_values("_k", ascending=False)


def _oldest_waiting(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] != "invoiced"].sort_values("age_days", ascending=False)


def _credits_first(frame: pd.DataFrame) -> pd.DataFrame:
    interesting = frame[(frame["credit_status"] != "none") | (frame["written_off_units"] > 0)]
    return interesting.sort_values(["credit_value", "write_off_value"], ascending=False)


CORE_SHEETS: tuple[PackSheet, ...] = (
    PackSheet(
        STOCK_RECONCILIATION,
        _stock_figures,
        ("Largest stock differences (not in step)", _by_abs_value),
        _stock_check,
    ),
    PackSheet(ORDER_TO_CASH, _cash_figures, ("Oldest shipments not yet invoiced", _oldest_waiting)),
    PackSheet(RETURNS, _returns_figures, ("Credits and write-offs", _credits_first)),
    PackSheet(
        EXCEPTIONS,
        _exception_figures,
        (
            "Open exceptions, oldest first",
            lambda f: f.sort_values("oldest_age_hours", ascending=False),
        ),
        _exceptions_check,
    ),
    PackSheet(DRIFT_BY_DAY),
    PackSheet(
        NON_SELLABLE_VALUE,
        _non_sellable_figures,
        (
            "Stock in non-sellable sites",
            lambda f: f.sort_values("value_at_cost", ascending=False),
        ),
    ),
)
