"""The pack's core sheets: stock, order to cash, returns, exceptions, drift, non-sellable.

Sign convention everywhere: unit differences are **ACS − Khaos** (positive: the
warehouse holds more than the ledger), valued at CostPrice as at the period.
"""

from __future__ import annotations

import pandas as pd

from acs_khaos_dagster.reports._tables import ReportInputError, slug
from acs_khaos_dagster.reports.pack_core_specs import (
    CREDIT_STATUSES,
    DRIFT_BY_DAY,
    EXCEPTIONS,
    NON_SELLABLE_VALUE,
    ORDER_TO_CASH,
    ORDER_TO_CASH_STATUSES,
    RETURNS,
    SIGN,
    STOCK_CLASSIFICATIONS,
    STOCK_RECONCILIATION,
)
from acs_khaos_dagster.reports.pack_registry import (
    PackSheet,
    SummaryFigure,
    Tables,
    count_figure,
    int_figure,
    money_figure,
    where,
)

# Re-exported: the core sheets' column specs live in ``pack_core_specs``.
__all__ = [
    "CORE_SHEETS",
    "CREDIT_STATUSES",
    "DRIFT_BY_DAY",
    "EXCEPTIONS",
    "NON_SELLABLE_VALUE",
    "ORDER_TO_CASH",
    "ORDER_TO_CASH_STATUSES",
    "RETURNS",
    "SIGN",
    "STOCK_CLASSIFICATIONS",
    "STOCK_RECONCILIATION",
]


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
