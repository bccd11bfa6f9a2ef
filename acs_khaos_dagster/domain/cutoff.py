"""Cut-off: what a month earned but Khaos had not invoiced by its last moment.

A month is reconciled **as at** its cut-off, 23:59:59 UK time on its last day
(``reconciliation.month_end_cutoff``). Goods despatched in the month are revenue of the
month; an invoice Khaos issues only after the cut-off (the 1st, for a parcel that left
on the 31st) belongs to the next month's ledger. Finance never backdates that invoice
into a closed month (or a closed VAT period): it posts an **accrual** at the cut-off
for the goods value and reverses it on the 1st of the next month, when the invoice
books the sale.

Pure: the ``order_to_cash`` table in (``reconciliation.order_to_cash`` computed as at
the cut-off), the accrual list out.

VAT (HMRC, VAT Notice 700 §14): the basic tax point of goods is the day they are
despatched; an invoice issued within 14 days after it moves the tax point to the
invoice date. So the accrual is always net of VAT (UnitNet), and ``vat_basis`` says in
which period the VAT falls: the invoice's (issued, or still issuable, within 14 days)
or the despatch's (no invoice within 14 days: output VAT is due for the despatch period
whether or not Khaos has issued anything).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

UK_TIME_ZONE = "Europe/London"
# Days after despatch within which an invoice becomes the VAT tax point.
VAT_INVOICE_DAYS = 14
ACCRUAL_ACTION = "post at the cut-off, reverse on the 1st"

CUTOFF_ACCRUAL_COLUMNS = (
    "shipment_id",
    "order_number",
    "invoice_id",
    "status",
    "despatch_date",
    "period",
    "issue_date",
    "issue_period",
    "units",
    "net_value",
    "vat_basis",
    "cost_value",
    "action",
)


def vat_basis(despatch_day: object, issue_day: object, cutoff_day: object) -> str:
    """Where the VAT of a shipment not invoiced by the cut-off falls, in words.

    >>> from datetime import date
    >>> vat_basis(date(2026, 3, 31), date(2026, 4, 1), date(2026, 3, 31))
    'net of VAT; tax point 2026-04-01 (invoice within 14 days of despatch): VAT in 2026-04'
    >>> vat_basis(date(2026, 3, 2), None, date(2026, 3, 31))
    'net of VAT; tax point 2026-03-02 (no invoice within 14 days of despatch): VAT in 2026-03'
    >>> vat_basis(date(2026, 3, 30), None, date(2026, 3, 31))
    'net of VAT; tax point open: the invoice date if issued by 2026-04-13, else 2026-03-30'
    """
    despatched = pd.Timestamp(despatch_day).date()
    latest = despatched + timedelta(days=VAT_INVOICE_DAYS)
    if issue_day is not None and not pd.isna(issue_day):
        issued = pd.Timestamp(issue_day).date()
        if issued <= latest:
            point, why = issued, "invoice within 14 days of despatch"
        else:
            point, why = despatched, "no invoice within 14 days of despatch"
        return f"net of VAT; tax point {point.isoformat()} ({why}): VAT in {point:%Y-%m}"
    if pd.Timestamp(cutoff_day).date() > latest:
        return (
            f"net of VAT; tax point {despatched.isoformat()} (no invoice within 14 days of "
            f"despatch): VAT in {despatched:%Y-%m}"
        )
    return (
        f"net of VAT; tax point open: the invoice date if issued by {latest.isoformat()}, "
        f"else {despatched.isoformat()}"
    )


def cutoff_accruals(
    cash: pd.DataFrame, month: str, cutoff: datetime, tz: str = UK_TIME_ZONE
) -> pd.DataFrame:
    """Shipments despatched in ``month`` and not invoiced by ``cutoff``: the accrual list.

    ``cash`` is ``reconciliation.order_to_cash`` as at ``cutoff`` (its ``status`` already
    says "not issued by the cut-off" for an invoice issued afterwards). One row per
    shipment (``CUTOFF_ACCRUAL_COLUMNS``): ``invoice_id`` (empty while never posted),
    ``despatch_date`` and ``period`` (UK), ``issue_date`` and ``issue_period`` (UK, empty
    while not issued), ``net_value`` = Σ units × UnitNet (ex VAT), ``vat_basis`` (see
    ``vat_basis``), ``cost_value`` = Σ units × CostPrice (for the cost-of-sales side),
    ``action`` = post and reverse. Shipments despatched in earlier months and still not
    invoiced are earlier months' accruals, carried in the order-to-cash sheet.
    """
    columns = list(CUTOFF_ACCRUAL_COLUMNS)
    if cash is None or cash.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    c = cash.loc[(cash["period"].astype(str) == month) & (cash["status"] != "invoiced")].copy()
    if c.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    cutoff_day = pd.Timestamp(cutoff).tz_convert(tz).date()
    issue = pd.to_datetime(c["issue_date"], utc=True)
    c["issue_date"] = [None if pd.isna(t) else t.tz_convert(tz).date() for t in issue]
    c["issue_period"] = c.get("issue_period", pd.Series("", index=c.index)).fillna("")
    c["despatch_date"] = [pd.Timestamp(d).date() for d in c["despatch_date"]]
    c["net_value"] = pd.to_numeric(c["value"], errors="coerce")
    c["cost_value"] = pd.to_numeric(c.get("cost_value"), errors="coerce")
    c["invoice_id"] = c["invoice_id"].map(lambda i: "" if pd.isna(i) else str(int(i)))
    c["vat_basis"] = [
        vat_basis(d, i, cutoff_day)
        for d, i in zip(c["despatch_date"], c["issue_date"], strict=True)
    ]
    c["action"] = ACCRUAL_ACTION
    return c.sort_values(["despatch_date", "shipment_id"], ignore_index=True)[columns]
