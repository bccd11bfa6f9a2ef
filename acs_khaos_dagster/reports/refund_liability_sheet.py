"""The pack's "Refund liability" sheet: refunds owed to customers at the cut-off.

One row per return part (or unmatched returned unit) received by the cut-off whose credit
Khaos has not raised, from any month (``domain.refund_liability``). The credit value is
Khaos's own figure read back; a credit Khaos does not hold says ``missing`` and has no
value — never "none" and £0. An unmatched unit carries its refund clock like any other.
"""

from __future__ import annotations

import pandas as pd

from acs_khaos_dagster.reports._tables import Column, TableSpec
from acs_khaos_dagster.reports.pack_registry import (
    PackSheet,
    SummaryFigure,
    Tables,
    count_figure,
    money_figure,
    where,
)

REFUND_LIABILITY = TableSpec(
    "refund_liability",
    "Refund liability",
    (
        Column("return_ref", "text", "Return", "ACS return reference."),
        Column(
            "associated_ref",
            "text",
            "Khaos return part",
            "AssociatedRef of the Khaos customer return part; empty for an unmatched unit.",
            nullable=True,
        ),
        Column("unique_skus", "text", "Units", "The returned units (unique SKUs), | separated."),
        Column("received_at_uk", "text", "Received (UK)", "When ACS received it, UK time."),
        Column(
            "deadline_uk",
            "text",
            "Refund deadline (UK)",
            "End of the 14th day after the day of receipt, UK time: the refund clock.",
        ),
        Column(
            "days_left",
            "number",
            "Days left",
            "Days from the pack's as-at moment to the deadline; negative = overdue.",
        ),
        Column(
            "matched",
            "text",
            "Matched",
            "matched (to its order line) or unmatched (see the return_unmatched runbook).",
            allowed=("matched", "unmatched"),
        ),
        Column(
            "credit_status",
            "text",
            "Khaos credit",
            "Khaos's credit status read back: review (pre-credit waiting for finance), none, "
            "or missing (Khaos holds no credit for it).",
        ),
        Column(
            "khaos_credit_value",
            "money",
            "Khaos credit value (£, net)",
            "Khaos's own CreditValue; empty when the credit is missing.",
            nullable=True,
        ),
        Column(
            "asked_value",
            "money",
            "Posted value (£, net)",
            "Sum of the order lines' UnitNet the integration posted; empty when unmatched.",
            nullable=True,
        ),
        Column("vat_basis", "text", "VAT basis", "The VAT basis of both values."),
        Column("note", "text", "Note", "Why it is here when not plain.", nullable=True),
    ),
)


def liability_frame(liability: pd.DataFrame) -> pd.DataFrame:
    """``domain.refund_liability`` output in the sheet's shape (matched as words)."""
    out = liability.copy()
    out["matched"] = out["matched"].map(lambda m: "matched" if bool(m) else "unmatched")
    out["associated_ref"] = out["associated_ref"].replace("", None)
    return out


def _figures(tables: Tables) -> list[SummaryFigure]:
    owed = tables["refund_liability"]
    rl = REFUND_LIABILITY.title
    return [
        count_figure(
            "refund-liability-count",
            "Refunds owed at the cut-off (returns not credited)",
            owed,
            f"'{rl}': rows",
        ),
        money_figure(
            "refund-liability-posted-value",
            "Refund liability: goods value of the returns owed (£, net of VAT)",
            owed["asked_value"],
            f"'{rl}': sum of Posted value (unmatched returns carry none: see their rows)",
        ),
        money_figure(
            "refund-liability-khaos-value",
            "of which Khaos holds a credit value (£, net of VAT; tie-out)",
            owed["khaos_credit_value"],
            f"'{rl}': sum of Khaos credit value",
        ),
        count_figure(
            "refund-liability-missing-count",
            "Refunds owed with no credit in Khaos (missing)",
            where(owed, "credit_status", "missing"),
            f"'{rl}': rows where Khaos credit = missing",
        ),
        count_figure(
            "refund-liability-overdue-count",
            "Refunds owed past their deadline",
            owed.loc[owed["days_left"] < 0],
            f"'{rl}': rows where Days left < 0",
        ),
    ]


def _soonest(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("days_left")


REFUND_SHEETS: tuple[PackSheet, ...] = (
    PackSheet(REFUND_LIABILITY, _figures, ("Refunds owed, soonest deadline first", _soonest)),
)
