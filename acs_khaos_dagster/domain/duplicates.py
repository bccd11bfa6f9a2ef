"""Khaos records held twice under one external reference, whatever made them so.

Khaos does not de-duplicate: the same ``ImportDespatch``, ``ImportStockAdjustments`` or
``ImportCustomerReturns`` twice ships, adjusts or credits twice. The integration sends
each effect once and reads back before any resend, yet a write Khaos applies after every
read-back found nothing, a person keying the same thing again, or a fault nobody
foresaw still ends in two records under one reference. Nothing else would say so: the
reconciliation tables count one record per reference. So every night these rules look
at what Khaos holds, per reference the integration sends:

=====================  ======================  ==========================================
record                 reference               value at stake (the repeats beyond the first)
=====================  ======================  ==========================================
invoice                ``ExternalRef``         units × UnitNet on the repeated invoices
stock adjustment       ``GroupRef``            ``Value`` of the repeated "adjust by" lines
write-off              ``GroupRef``            (an adjustment with the write-off reason)
customer return        ``AssociatedRef``       the repeats' credit value, else their goods
=====================  ======================  ==========================================

The record kept as "the first" is the one with the lowest Khaos id; the others are the
repeats. A cancelled invoice (stage 1) is not at stake and not counted. A repeated
"adjust to" line set the same Level again: it is reported (the record is there twice)
with no units or value at stake. Pure functions over DataFrames, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

EXCEPTION_TYPE = "khaos_duplicate"
INVOICE = "invoice"
ADJUSTMENT = "stock adjustment"
WRITE_OFF = "write-off"
CUSTOMER_RETURN = "customer return"
_SLUG = {INVOICE: "invoice", ADJUSTMENT: "adjustment", WRITE_OFF: "write_off"}
_SLUG[CUSTOMER_RETURN] = "return"
REF_PREFIX = "dup:"

INVOICE_COLUMNS = ("invoice_id", "invoice_code", "external_ref", "stage_id", "units", "value")
ADJUSTMENT_COLUMNS = ("group_id", "group_ref", "site_id", "reason_code", "adjust_by", "value")
RETURN_COLUMNS = ("return_id", "associated_ref", "credit_note_id", "units", "value")


@dataclass(frozen=True)
class KhaosDuplicate:
    """One external reference Khaos holds more than one record under."""

    record: str  # INVOICE | ADJUSTMENT | WRITE_OFF | CUSTOMER_RETURN
    reference_field: str  # ExternalRef | GroupRef | AssociatedRef
    reference: str
    kept: str  # the first record, e.g. "invoice 200001 (INV200001)"
    repeats: tuple[str, ...]
    units: int  # units the repeats moved
    value: Decimal  # value at stake
    extra: dict[str, Any] = field(default_factory=dict)

    type = EXCEPTION_TYPE

    @property
    def entity_ref(self) -> str:
        """``dup:<record>:<reference>``: one exception per reference, stable across runs."""
        return f"{REF_PREFIX}{_SLUG[self.record]}:{self.reference}"

    @property
    def message(self) -> str:
        many = len(self.repeats) + 1
        return (
            f"Khaos holds {many} {self.record}s under {self.reference_field} "
            f"{self.reference}: {self.kept} and {', '.join(self.repeats)}; "
            f"£{self.value:,.2f} ({self.units} units) at stake"
        )

    @property
    def details(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "reference_field": self.reference_field,
            "reference": self.reference,
            "kept": self.kept,
            "repeats": list(self.repeats),
            "units": self.units,
            "value": str(self.value),
            **self.extra,
        }


def _require(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")


def _money(value: Any) -> Decimal:
    if value is None or (isinstance(value, float) and value != value):
        return Decimal("0")
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _repeated(frame: pd.DataFrame, ref: str, record_id: str) -> pd.DataFrame:
    """Rows whose reference has more than one distinct record id."""
    frame = frame.loc[frame[ref].astype(str).str.strip() != ""]
    counts = frame.groupby(ref)[record_id].nunique()
    return frame.loc[frame[ref].isin(counts[counts > 1].index)]


def duplicate_invoices(invoices: pd.DataFrame, *, cancelled_stage: int = 1) -> list[KhaosDuplicate]:
    """Invoices sharing a despatch ``ExternalRef`` (one ACS shipment posted twice).

    ``invoices``: ``INVOICE_COLUMNS``, one row per invoice; ``units`` and ``value`` (UnitNet
    × quantity) of its lines.

    >>> frame = pd.DataFrame(
    ...     [(1, "INV1", "SO1-1", 16, 2, 40.0), (2, "INV2", "SO1-1", 16, 2, 40.0)],
    ...     columns=INVOICE_COLUMNS)
    >>> [(d.kept, d.repeats, d.value) for d in duplicate_invoices(frame)]
    [('invoice 1 (INV1)', ('invoice 2 (INV2)',), Decimal('40.00'))]
    """
    _require(invoices, INVOICE_COLUMNS, "invoices")
    live = invoices.loc[invoices["stage_id"] != cancelled_stage].drop_duplicates("invoice_id")
    out = []
    for ref, rows in _repeated(live, "external_ref", "invoice_id").groupby("external_ref"):
        rows = rows.sort_values("invoice_id")
        names = [f"invoice {r.invoice_id} ({r.invoice_code})" for r in rows.itertuples()]
        repeats = rows.iloc[1:]
        out.append(
            KhaosDuplicate(
                record=INVOICE,
                reference_field="ExternalRef",
                reference=str(ref),
                kept=names[0],
                repeats=tuple(names[1:]),
                units=int(repeats["units"].sum()),
                value=sum((_money(v) for v in repeats["value"]), Decimal("0")),
                extra={"invoice_ids": [int(i) for i in rows["invoice_id"]]},
            )
        )
    return out


def duplicate_adjustments(groups: pd.DataFrame, *, write_off_code: str) -> list[KhaosDuplicate]:
    """Adjustment groups saved twice under one ``GroupRef``; one whose lines all carry the
    install's write-off code (``write_off_code``) is a write-off.

    ``groups``: ``ADJUSTMENT_COLUMNS``, one row per line (``adjust_by`` null for an
    "adjust to" line; ``value`` the line's Value).
    """
    _require(groups, ADJUSTMENT_COLUMNS, "groups")
    out = []
    for ref, rows in _repeated(groups, "group_ref", "group_id").groupby("group_ref"):
        ids = sorted(int(i) for i in rows["group_id"].unique())
        write_off = bool((rows["reason_code"].astype(str) == write_off_code).all())
        record = WRITE_OFF if write_off else ADJUSTMENT
        repeats = rows.loc[rows["group_id"] != ids[0]]
        moved = repeats.loc[repeats["adjust_by"].notna()]
        out.append(
            KhaosDuplicate(
                record=record,
                reference_field="GroupRef",
                reference=str(ref),
                kept=f"adjustment group {ids[0]}",
                repeats=tuple(f"adjustment group {i}" for i in ids[1:]),
                units=int(moved["adjust_by"].astype("int64").abs().sum()),
                value=sum((abs(_money(v)) for v in moved["value"]), Decimal("0")),
                extra={"group_ids": ids, "site_id": int(rows["site_id"].iloc[0])},
            )
        )
    return out


def duplicate_returns(returns: pd.DataFrame) -> list[KhaosDuplicate]:
    """Customer returns imported twice under one ``AssociatedRef`` (credited and restocked
    or written off twice).

    ``returns``: ``RETURN_COLUMNS``, one row per return; ``value`` its credit value, or
    its goods value where no credit was raised; ``units`` its items' quantity.
    """
    _require(returns, RETURN_COLUMNS, "returns")
    unique = returns.drop_duplicates("return_id")
    out = []
    for ref, rows in _repeated(unique, "associated_ref", "return_id").groupby("associated_ref"):
        rows = rows.sort_values("return_id")

        def name(r: Any) -> str:
            note = r.credit_note_id
            credit = "" if note is None or pd.isna(note) else f", credit note {int(note)}"
            return f"customer return {r.return_id}{credit}"

        names = [name(r) for r in rows.itertuples()]
        repeats = rows.iloc[1:]
        out.append(
            KhaosDuplicate(
                record=CUSTOMER_RETURN,
                reference_field="AssociatedRef",
                reference=str(ref),
                kept=names[0],
                repeats=tuple(names[1:]),
                units=int(repeats["units"].sum()),
                value=sum((_money(v) for v in repeats["value"]), Decimal("0")),
                extra={"return_ids": [int(i) for i in rows["return_id"]]},
            )
        )
    return out
