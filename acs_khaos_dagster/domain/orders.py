"""Orders as tables and the rules over them: pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from acs_khaos_dagster.domain.models import SalesOrder

RELEASED_LINE_COLUMNS = [
    "order_id",
    "order_code",
    "associated_ref",
    "site_id",
    "invoice_id",
    "order_item_id",
    "stock_id",
    "stock_code",
    "quantity",
    "unit_net",
    "is_hire",
]


def released_order_lines_frame(orders: Iterable[SalesOrder], released_stage: int) -> pd.DataFrame:
    """One row per line of each order whose invoice waits at ``released_stage``.

    An order with several invoices (a back order beside a shipped part) contributes
    only through its invoice at the release stage.
    """
    rows = []
    for order in orders:
        released = [inv for inv in order.invoices if inv.stage_id == released_stage]
        if not released:
            continue
        invoice = released[0]
        on_invoice = {line.order_item_id: line.quantity for line in invoice.lines}
        for line in order.lines:
            quantity = on_invoice.get(line.order_item_id, line.quantity if not on_invoice else 0)
            if quantity <= 0:
                continue
            rows.append(
                {
                    "order_id": order.order_id,
                    "order_code": order.order_code,
                    "associated_ref": order.associated_ref,
                    "site_id": order.site_id,
                    "invoice_id": invoice.invoice_id,
                    "order_item_id": line.order_item_id,
                    "stock_id": line.stock_id,
                    "stock_code": line.stock_code,
                    "quantity": quantity,
                    "unit_net": float(line.unit_net),
                    "is_hire": line.is_hire,
                }
            )
    frame = pd.DataFrame(rows, columns=RELEASED_LINE_COLUMNS)
    return frame.sort_values(["order_id", "order_item_id"], kind="stable").reset_index(drop=True)
