"""The three Khaos imports that do not de-duplicate, as outbox payloads, and how to count
them in the simulator's ground truth (shared by the exactly-once tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    CreditMode,
    CustomerReturn,
    DespatchPosting,
    Package,
    ReturnItem,
    StockAdjustmentGroup,
)
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.sandbox.runner import Sandbox

ORDER_ID, SALE_LINE, HIRE_LINE = 50001, 700001, 700002


def adjustment(group_ref: str, stock_id: int = 10005) -> dict[str, Any]:
    group = StockAdjustmentGroup(
        site_id=1,
        group_ref=group_ref,
        lines=(AdjustmentLine(stock_id=stock_id, adjust_by=1, reason_code="VARIANCE"),),
    )
    return group.model_dump(mode="json")


def despatch(shipment_id: str) -> dict[str, Any]:
    posting = DespatchPosting(
        order_id=ORDER_ID,
        external_ref=shipment_id,
        lines=((SALE_LINE, 1),),
        packages=(
            Package(
                consignment_ref="JD0002211",
                courier_code="DPD",
                shipment_date=datetime(2026, 3, 2, 15, 0, tzinfo=UTC),
            ),
        ),
    )
    return posting.model_dump(mode="json")


def customer_return(ref: str) -> dict[str, Any]:
    ret = CustomerReturn(
        associated_ref=ref,
        customer_urn="CUST0001",
        items=(ReturnItem(sku="JKT-0001-PNK-L", quantity=1, return_reason="RESTOCK"),),
        credit_mode=CreditMode.AUTO,
    )
    return ret.model_dump(mode="json")


def applied(sandbox: Sandbox, kind: EffectKind, key: str) -> int:
    truth = sandbox.khaos.truth()
    if kind is EffectKind.KHAOS_STOCK_ADJUSTMENT:
        return sum(1 for g in truth["adjustment_groups"] if g["group_ref"] == key)
    if kind is EffectKind.KHAOS_DESPATCH:
        return sum(1 for i in truth["invoices"] if i["external_ref"] == key)
    return sum(1 for r in truth["customer_returns"] if r["associated_ref"] == key)


CASES = [
    (EffectKind.KHAOS_STOCK_ADJUSTMENT, "ImportStockAdjustments", adjustment),
    (EffectKind.KHAOS_DESPATCH, "ImportDespatch", despatch),
    (EffectKind.KHAOS_CUSTOMER_RETURN, "ImportCustomerReturns", customer_return),
]
