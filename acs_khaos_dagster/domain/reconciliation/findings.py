"""Findings to raise as exceptions, each with a stable key.

Part of ``domain.reconciliation`` (see its docstring); code moved verbatim."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from acs_khaos_dagster.domain.reconciliation.cash import ORDER_TO_CASH_COLUMNS, CashStatus
from acs_khaos_dagster.domain.reconciliation.common import (
    FINDING_PREFIX,
    _ts,
    _utc,
)
from acs_khaos_dagster.domain.reconciliation.order_status import (
    ORDER_STATUS_COLUMNS,
    OrderMismatch,
)
from acs_khaos_dagster.domain.reconciliation.returns import RETURNS_RECONCILIATION_COLUMNS
from acs_khaos_dagster.domain.reconciliation.stock import (
    STOCK_RECONCILIATION_COLUMNS,
    StockClass,
)

# =====================================================================================
# 6. findings to raise
# =====================================================================================


@dataclass(frozen=True)
class Finding:
    """One problem for the exception queue (``flows.common.sync_exceptions`` takes these).

    ``entity_ref`` is stable — it names the thing, never the day or the run — so the
    same problem seen every night is one exception: one alert when it opens, one when it
    closes (``auto_resolve``). Every key starts with ``FINDING_PREFIX``.
    """

    type: str
    entity_ref: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def owns_finding(entity_ref: str) -> bool:
    """For ``sync_exceptions(..., owns=owns_finding)``: the refs this module raises."""
    return entity_ref.startswith(FINDING_PREFIX)


def finding_key(source: str, *parts: Any) -> str:
    """``recon:<source>:<part>:...``.

    >>> finding_key("stock", 101, 1)
    'recon:stock:101:1'
    """
    return ":".join([FINDING_PREFIX.rstrip(":"), source, *(str(p) for p in parts)])


def _plain(value: Any) -> Any:
    """A finding detail as plain JSON: dates as ISO text, NaN/NaT/NA as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return None if value != value else value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):  # pd.Timestamp is a datetime
        return None if pd.isna(value) else value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, np.generic):
        return _plain(value.item())
    return str(value)


def drift_findings(
    stock: pd.DataFrame | None = None,
    order_status: pd.DataFrame | None = None,
    cash: pd.DataFrame | None = None,
    returns: pd.DataFrame | None = None,
    *,
    not_invoiced_after_hours: float = 48.0,
    credit_missing_after_hours: float = 24.0,
    now: datetime | None = None,
) -> list[Finding]:
    """The problems the reconciliation tables show, as ``drift`` exceptions (owner
    finance, ``DEFAULT_OWNERS``).

    - stock: each StockID × site classified ``unexplained`` → ``recon:stock:{id}:{site}``.
      (``push_missing`` is already an ``effect_failed`` exception on the parked push;
      ``in_flight`` is timing: neither is raised again here.)
    - order status: each order not ``in_step`` → ``recon:order:{order}:{mismatch}``.
    - order to cash: each shipment not invoiced whose age exceeds
      ``not_invoiced_after_hours`` → ``recon:cash:{shipment_id}`` (same key whether it is
      not posted or not invoiced, so posting it does not reopen a second alert).
    - returns: each unit needing a write-off that has none (``missing`` or
      ``missing_reason``) → ``recon:writeoff:{unique_sku}``; each sale return part
      whose credit Khaos does not have (``missing`` or ``none``) ``credit_missing_after_hours``
      after receipt (``now`` needed) → ``recon:credit:{associated_ref or return_ref}``.
      (The refund deadline itself is ``refund_due``, raised by the returns flow.)
    """
    out: list[Finding] = []
    drift = "drift"
    if stock is not None and not stock.empty:
        bad = stock.loc[stock["classification"] == str(StockClass.UNEXPLAINED)]
        for r in bad.itertuples(index=False):
            value = (
                "unknown value" if pd.isna(r.unexplained_value) else f"£{r.unexplained_value:,.2f}"
            )
            out.append(
                Finding(
                    drift,
                    finding_key("stock", int(r.stock_id), int(r.site_id)),
                    f"StockID {r.stock_id} site {r.site_id}: ACS {r.acs_units}, Khaos Level "
                    f"{r.khaos_level}; {int(r.unexplained):+d} unit(s) ({value}) unexplained "
                    "by timing or unconfirmed pushes.",
                    {k: _plain(getattr(r, k)) for k in STOCK_RECONCILIATION_COLUMNS},
                    "stock",
                )
            )
    if order_status is not None and not order_status.empty:
        bad = order_status.loc[order_status["mismatch"] != str(OrderMismatch.IN_STEP)]
        for r in bad.itertuples(index=False):
            out.append(
                Finding(
                    drift,
                    finding_key("order", r.order_number, r.mismatch),
                    r.message,
                    {k: _plain(getattr(r, k)) for k in ORDER_STATUS_COLUMNS},
                    "order_status",
                )
            )
    if cash is not None and not cash.empty:
        late = cash.loc[
            (cash["status"] != str(CashStatus.INVOICED))
            & (cash["age_hours"] > not_invoiced_after_hours)
        ]
        for r in late.itertuples(index=False):
            what = (
                "was never posted to Khaos"
                if r.status == str(CashStatus.DESPATCHED_NOT_POSTED)
                else f"is posted but its invoice is not issued (stage {r.invoice_stage})"
            )
            out.append(
                Finding(
                    drift,
                    finding_key("cash", r.shipment_id),
                    f"Shipment {r.shipment_id} of order {r.order_number}, despatched "
                    f"{r.age_hours:.0f} h ago, {what}: £{r.value_waiting:,.2f} not invoiced.",
                    {k: _plain(getattr(r, k)) for k in ORDER_TO_CASH_COLUMNS},
                    "order_to_cash",
                )
            )
    if returns is not None and not returns.empty:
        bad = returns.loc[returns["write_off_status"].isin(["missing", "missing_reason"])]
        for r in bad.itertuples(index=False):
            how = (
                "no write-off adjustment in Khaos (the unit is still in Level)"
                if r.write_off_status == "missing"
                else "its Khaos return has no write-off reason for it"
            )
            out.append(
                Finding(
                    drift,
                    finding_key("writeoff", r.unique_sku),
                    f"Unit {r.unique_sku} (return {r.return_ref}) was graded {r.grade}: {how}.",
                    {k: _plain(getattr(r, k)) for k in RETURNS_RECONCILIATION_COLUMNS},
                    "returns",
                )
            )
        if now is not None:
            age = (_ts(now) - _utc(returns["received_at"])).dt.total_seconds() / 3600
            no_credit = returns.loc[
                returns["credit_status"].isin(["missing", "none"])
                & (returns["credit_mode"] != "none")
                & (age > credit_missing_after_hours)
            ].copy()
            no_credit["_part"] = no_credit["associated_ref"].where(
                no_credit["associated_ref"] != "", no_credit["return_ref"]
            )
            for part, units in no_credit.groupby("_part", sort=True):
                value = units["credit_pending_value"].sum()
                out.append(
                    Finding(
                        drift,
                        finding_key("credit", part),
                        f"Return {part}: {len(units)} graded unit(s) but no credit in Khaos "
                        f"({units['credit_status'].iloc[0]}); £{value:,.2f} owed.",
                        {
                            "associated_ref": part,
                            "units": sorted(units["unique_sku"].astype(str)),
                            "credit_pending_value": round(float(value), 2),
                        },
                        "returns",
                    )
                )
    return sorted(out, key=lambda f: f.entity_ref)


def findings_frame(findings: Iterable[Finding]) -> pd.DataFrame:
    """Findings as a table: ``type, entity_ref, source, message``."""
    rows = [
        {"type": f.type, "entity_ref": f.entity_ref, "source": f.source, "message": f.message}
        for f in findings
    ]
    return pd.DataFrame(rows, columns=["type", "entity_ref", "source", "message"])
