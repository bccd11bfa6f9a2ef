"""Order status: each open order at ACS against Khaos.

Part of ``domain.reconciliation`` (see its docstring); code moved verbatim."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from acs_khaos_dagster.domain.reconciliation.common import (
    _require,
)

# =====================================================================================
# 2. order status
# =====================================================================================


class OrderMismatch(StrEnum):
    IN_STEP = "in_step"
    UNKNOWN_AT_ACS = "unknown_at_acs"  # Khaos sent it; ACS does not know it (or no status)
    UNKNOWN_IN_KHAOS = "unknown_in_khaos"  # ACS has an order Khaos does not list
    CANCELLED_IN_KHAOS_DESPATCHED_AT_ACS = "cancelled_in_khaos_despatched_at_acs"
    CANCELLED_IN_KHAOS_OPEN_AT_ACS = "cancelled_in_khaos_open_at_acs"
    CANCELLED_AT_ACS_OPEN_IN_KHAOS = "cancelled_at_acs_open_in_khaos"
    DESPATCHED_NO_EVENT = "despatched_no_event"  # ACS shipped; the event never arrived
    HELD_AT_ACS = "held_at_acs"


ACS_STATES = frozenset(
    {
        "RECEIVED",
        "HOLDING",
        "AWAITING_PICK",
        "PICKING",
        "PACKED",
        "PARTIALLY_DESPATCHED",
        "DESPATCHED",
        "CANCELLED",
        "ON_HIRE",
        "RETURN_DUE",
        "RETURNED",
    }
)
_ACS_SHIPPED = frozenset(
    {"PARTIALLY_DESPATCHED", "DESPATCHED", "ON_HIRE", "RETURN_DUE", "RETURNED"}
)

ORDER_STATUS_COLUMNS = (
    "order_number",
    "acs_status",
    "khaos_stage_ids",
    "khaos_cancelled",
    "acs_shipment_ids",
    "missing_shipment_ids",
    "mismatch",
    "message",
)


def _id_list(value: Any) -> tuple[str, ...]:
    """A cell holding ids: list/tuple/set/array, a comma-separated string, or empty."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(sorted(p.strip() for p in value.split(",") if p.strip()))
    if isinstance(value, Iterable):
        return tuple(sorted(str(v) for v in value if v is not None and str(v) != ""))
    if pd.isna(value):
        return ()
    return (str(value),)


def order_status_reconciliation(
    acs_orders: pd.DataFrame, khaos_orders: pd.DataFrame
) -> pd.DataFrame:
    """Every open order's status at ACS against Khaos: one row per order.

    ``acs_orders`` (``GET orders/{OrderNumber}`` per open order):
      ``order_number``; ``acs_status`` — an ``AcsOrderState`` value, or empty/None when
      ACS answered "not found"; ``acs_shipment_ids`` — the shipment ids ACS lists for the
      order (list, tuple or comma-separated string).
    ``khaos_orders`` (the open orders the integration sent to ACS):
      ``order_number``; ``khaos_stage_ids`` — stage ids of the order's invoices;
      ``khaos_cancelled`` — true when Khaos cancelled the order (its open invoices at
      stage 1); ``received_shipment_ids`` — shipment ids whose despatch event the
      integration received (its despatch ledger); ``posted_shipment_ids`` — those posted
      to Khaos (used when ``received_shipment_ids`` is absent; an event received but not
      posted shows in ``order_to_cash`` as despatched_not_posted).

    ``mismatch`` (first that applies, ``OrderMismatch``): unknown_at_acs,
    unknown_in_khaos, cancelled_in_khaos_despatched_at_acs (shipped a cancelled order),
    cancelled_in_khaos_open_at_acs, cancelled_at_acs_open_in_khaos,
    despatched_no_event (``missing_shipment_ids`` names them), held_at_acs, in_step.
    ``message`` says it in words for a person.
    """
    _require(acs_orders, ("order_number", "acs_status"), "acs_orders")
    _require(khaos_orders, ("order_number", "khaos_cancelled"), "khaos_orders")
    acs = acs_orders.copy()
    acs["order_number"] = acs["order_number"].astype(str)
    if "acs_shipment_ids" not in acs.columns:
        acs["acs_shipment_ids"] = None
    khaos = khaos_orders.copy()
    khaos["order_number"] = khaos["order_number"].astype(str)
    received_col = (
        "received_shipment_ids"
        if "received_shipment_ids" in khaos.columns
        else "posted_shipment_ids"
    )
    if received_col not in khaos.columns:
        khaos[received_col] = None
    if "khaos_stage_ids" not in khaos.columns:
        khaos["khaos_stage_ids"] = None

    t = acs[["order_number", "acs_status", "acs_shipment_ids"]].merge(
        khaos[["order_number", "khaos_stage_ids", "khaos_cancelled", received_col]],
        on="order_number",
        how="outer",
        indicator=True,
    )
    status = t["acs_status"].fillna("").astype(str).str.strip().str.upper()
    t["acs_status"] = status
    t["acs_shipment_ids"] = t["acs_shipment_ids"].map(_id_list)
    received = t[received_col].map(_id_list)
    t["khaos_stage_ids"] = t["khaos_stage_ids"].map(lambda v: tuple(int(s) for s in _id_list(v)))
    t["khaos_cancelled"] = t["khaos_cancelled"].astype("boolean").fillna(False).astype(bool)

    # Set difference per order, vectorised by exploding the id lists.
    shipped = t[["order_number", "acs_shipment_ids"]].explode("acs_shipment_ids").dropna()
    got = pd.DataFrame({"order_number": t["order_number"], "sid": received}).explode("sid")
    got = got.dropna().assign(_got=True)
    shipped = shipped.merge(
        got,
        left_on=["order_number", "acs_shipment_ids"],
        right_on=["order_number", "sid"],
        how="left",
    )
    lost = (
        shipped.loc[shipped["_got"].isna()]
        .groupby("order_number")["acs_shipment_ids"]
        .agg(lambda s: tuple(sorted(s)))
    )
    t["missing_shipment_ids"] = t["order_number"].map(lost)
    t["missing_shipment_ids"] = t["missing_shipment_ids"].map(
        lambda v: v if isinstance(v, tuple) else ()
    )

    in_khaos = t["_merge"] != "left_only"
    at_acs = (t["_merge"] != "right_only") & status.isin(ACS_STATES)
    cancelled_acs = status == "CANCELLED"
    shipped_acs = status.isin(_ACS_SHIPPED)
    conditions = [
        in_khaos & ~at_acs,
        ~in_khaos,
        t["khaos_cancelled"] & shipped_acs,
        t["khaos_cancelled"] & ~cancelled_acs,
        cancelled_acs & ~t["khaos_cancelled"],
        t["missing_shipment_ids"].map(len) > 0,
        status == "HOLDING",
    ]
    kinds = [
        OrderMismatch.UNKNOWN_AT_ACS,
        OrderMismatch.UNKNOWN_IN_KHAOS,
        OrderMismatch.CANCELLED_IN_KHAOS_DESPATCHED_AT_ACS,
        OrderMismatch.CANCELLED_IN_KHAOS_OPEN_AT_ACS,
        OrderMismatch.CANCELLED_AT_ACS_OPEN_IN_KHAOS,
        OrderMismatch.DESPATCHED_NO_EVENT,
        OrderMismatch.HELD_AT_ACS,
    ]
    t["mismatch"] = pd.Series(
        np.select(conditions, [str(k) for k in kinds], default=str(OrderMismatch.IN_STEP)),
        index=t.index,
    ).astype(object)
    t["message"] = [
        _order_message(o, m, s, ids)
        for o, m, s, ids in zip(
            t["order_number"], t["mismatch"], status, t["missing_shipment_ids"], strict=True
        )
    ]
    return t.sort_values("order_number", ignore_index=True)[list(ORDER_STATUS_COLUMNS)]


def _order_message(order: str, mismatch: str, status: str, missing: tuple[str, ...]) -> str:
    shown = status or "no status"
    return {
        "in_step": "",
        "unknown_at_acs": f"Order {order} was sent to ACS but ACS reports {shown}.",
        "unknown_in_khaos": f"ACS has order {order} ({shown}) but Khaos has no open order.",
        "cancelled_in_khaos_despatched_at_acs": (
            f"Order {order} is cancelled in Khaos but ACS has despatched it ({shown})."
        ),
        "cancelled_in_khaos_open_at_acs": (
            f"Order {order} is cancelled in Khaos but still open at ACS ({shown})."
        ),
        "cancelled_at_acs_open_in_khaos": (
            f"ACS cancelled order {order} but it is still open in Khaos."
        ),
        "despatched_no_event": (
            f"ACS despatched shipment(s) {', '.join(missing)} of order {order} but no "
            "despatch event reached the integration: Khaos cannot invoice them."
        ),
        "held_at_acs": f"Order {order} is on hold at ACS.",
    }[mismatch]
