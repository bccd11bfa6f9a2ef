"""The refund liability at a cut-off: what the brand owes customers for goods it has back.

Every sale return ACS received by the cut-off whose credit Khaos has not raised, **from
any month** (an open refund from February is still owed at the end of March), including
returned units the integration could not match to an order: the customer is owed the
refund whatever the paperwork, and the 14-day clock runs from receipt. Such a unit is a
refund owed, never stock drift.

What Khaos says is what counts: the credit value is Khaos's own ``CreditValue`` read back
(``ExportCustomerReturns``), never the integration's sum of ``UnitNet``; that sum is
shown beside it only as what was asked for. A credit Khaos does not (yet) hold is
``missing`` — never "none" and £0 like a hire return, which owes nothing and is left out.

**When a refund is settled.** The modelled Khaos contract gives a credit note's id, value
and status (``none``, ``review``, ``raised``) but no payment state, so the liability
closes when the credit note is **raised**; that the customer was paid is checked by
finance in the payment system (docs/runbooks/refund_due.md). A unit settled by hand
(its ``return_unmatched`` closed by a person after raising the credit in Khaos) is left
out: the hand credit is in Khaos under finance's own reference.

**VAT basis.** ``UnitNet`` is the order line's net (ex-VAT) price and Khaos's credit of a
return is raised from those lines, so both values are net of VAT; the VAT on a credit
follows the original invoice's VAT treatment in Khaos.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd

from acs_khaos_dagster.domain.returns import UK_TIME_ZONE, refund_deadline

VAT_BASIS = "net of VAT (Khaos credit from order-line UnitNet)"
MISSING = "missing"
LIABILITY_COLUMNS = (
    "return_ref",
    "associated_ref",
    "unique_skus",
    "received_at_uk",
    "deadline_uk",
    "days_left",
    "matched",
    "credit_status",
    "khaos_credit_value",
    "asked_value",
    "vat_basis",
    "note",
)
"""``khaos_credit_value`` is Khaos's own figure (empty when missing); ``asked_value`` the
sum of UnitNet the integration posted (empty for an unmatched unit: no order line)."""


def _uk(value: datetime, tz: ZoneInfo) -> str:
    return pd.Timestamp(value).tz_convert(tz).strftime("%Y-%m-%d %H:%M")


def refund_liability(
    postings: pd.DataFrame,
    units: pd.DataFrame,
    khaos_credits: dict[str, tuple[str, Decimal]],
    cutoff: datetime,
    *,
    days: int = 14,
    time_zone: str = UK_TIME_ZONE,
) -> pd.DataFrame:
    """Refunds owed at ``cutoff`` (``LIABILITY_COLUMNS``), oldest deadline first.

    ``postings``: the store's return parts (``associated_ref, return_ref, is_hire,
    received_at, goods_value``). ``units``: the store's returned units (``return_ref,
    unique_sku, received_at, order_item_id, associated_ref, is_hire, settled_by_hand_at``).
    ``khaos_credits``: ``AssociatedRef`` → (credit status, CreditValue) as read back from
    Khaos; a part absent from it has no credit in Khaos (``missing``).
    """
    tz = ZoneInfo(time_zone)
    cut = pd.Timestamp(cutoff)
    rows: list[dict[str, object]] = []
    sale = postings[~postings["is_hire"].astype(bool)] if not postings.empty else postings
    skus = units.groupby("associated_ref")["unique_sku"].agg(lambda s: "|".join(sorted(s)))
    for p in sale.to_dict("records"):
        received = pd.Timestamp(p["received_at"])
        if received > cut:
            continue
        status, value = khaos_credits.get(p["associated_ref"], (MISSING, None))
        if status == "raised":
            continue
        rows.append(
            _row(
                p["return_ref"],
                p["associated_ref"],
                skus.get(p["associated_ref"], ""),
                received,
                cut,
                days,
                tz,
                True,
                status,
                value,
                Decimal(str(p["goods_value"])),
                "" if status != MISSING else "no credit in Khaos for this part",
            )
        )
    waiting = (
        units[
            units["associated_ref"].isna()
            & units["order_item_id"].isna()
            & units["settled_by_hand_at"].isna()
            & ~units["is_hire"].eq(True)
        ]
        if not units.empty
        else units
    )
    for u in waiting.to_dict("records"):
        received = pd.Timestamp(u["received_at"])
        if received > cut:
            continue
        rows.append(
            _row(
                u["return_ref"],
                "",
                u["unique_sku"],
                received,
                cut,
                days,
                tz,
                False,
                MISSING,
                None,
                None,
                "unmatched: no order line, so no credit; see return_unmatched",
            )
        )
    frame = pd.DataFrame(rows, columns=list(LIABILITY_COLUMNS))
    return frame.sort_values(["deadline_uk", "return_ref"], ignore_index=True)


def _row(
    return_ref: str,
    associated_ref: str,
    unique_skus: str,
    received: pd.Timestamp,
    cut: pd.Timestamp,
    days: int,
    tz: ZoneInfo,
    matched: bool,
    status: str,
    credit: Decimal | None,
    asked: Decimal | None,
    note: str,
) -> dict[str, object]:
    deadline = refund_deadline(received.to_pydatetime(), days, str(tz))
    return {
        "return_ref": return_ref,
        "associated_ref": associated_ref,
        "unique_skus": unique_skus,
        "received_at_uk": _uk(received, tz),
        "deadline_uk": _uk(deadline, tz),
        "days_left": round((pd.Timestamp(deadline) - cut).total_seconds() / 86400, 2),
        "matched": matched,
        "credit_status": status,
        "khaos_credit_value": credit,
        "asked_value": asked,
        "vat_basis": VAT_BASIS,
        "note": note,
    }
