"""``KhaosBooks``: the parts put together, the stock-item helpers tests use, and the truth
the tests and the demo compare with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from acs_khaos_dagster.domain.models import Package, StockItem
from acs_khaos_dagster.sandbox.khaos.state.adjustments import StockAdjustments
from acs_khaos_dagster.sandbox.khaos.state.invoices import InvoiceStages
from acs_khaos_dagster.sandbox.khaos.state.reads import ReadOperations
from acs_khaos_dagster.sandbox.khaos.state.returns import CustomerReturns


class KhaosBooks(ReadOperations, InvoiceStages, StockAdjustments, CustomerReturns):
    """All state of one simulated Khaos Control system. Not thread-safe: callers lock."""

    # --- stock item maintenance (test helpers) -----------------------------------

    def rename_stock_code(self, stock_id: int, new_code: str) -> None:
        self.update_stock_item(stock_id, stock_code=new_code)

    def add_stock_item(self, item: StockItem, levels: dict[int, int] | None = None) -> None:
        if item.stock_id in self.items:
            raise ValueError(f"StockID {item.stock_id} already exists")
        self._check_code_free(item.stock_code, item.stock_id)
        self.items[item.stock_id] = item
        self.changed_at[item.stock_id] = self.clock.now()
        for site_id, level in (levels or {}).items():
            self.levels[(item.stock_id, site_id)] = level

    def update_stock_item(self, stock_id: int, **changes: Any) -> StockItem:
        item = self.items[stock_id]
        if "stock_code" in changes:
            self._check_code_free(changes["stock_code"], stock_id)
        updated = StockItem.model_validate({**item.model_dump(), **changes})
        self.items[stock_id] = updated
        self._ids_by_code.pop(item.stock_code, None)
        self._ids_by_code[updated.stock_code] = stock_id
        self.changed_at[stock_id] = self.clock.now()
        return updated

    def _check_code_free(self, code: str, stock_id: int) -> None:
        other = self.item_by_code(code)
        if other is not None and other.stock_id != stock_id:
            raise ValueError(f"stock code {code!r} is already used by StockID {other.stock_id}")

    # --- ground truth --------------------------------------------------------------

    def truth(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        def pkg(p: Package) -> dict[str, Any]:
            return {
                "consignment_ref": p.consignment_ref,
                "courier_code": p.courier_code,
                "shipment_date": iso(p.shipment_date),
                "tracking_url": p.tracking_url,
            }

        stock_keys = sorted(
            {*self.levels, *((sid, site) for sid in self.items for site in self.sites)}
        )
        allocations = self.allocations()
        return {
            "now": iso(self.clock.now()),
            "sites": [s.model_dump(mode="json") for s in self.get_sites()],
            "stock_items": [
                {**i.model_dump(mode="json"), "changed_at": iso(self.changed_at[i.stock_id])}
                for i in sorted(self.items.values(), key=lambda i: i.stock_id)
            ],
            "stock": [
                {
                    "stock_id": sid,
                    "site_id": site,
                    "level": self.level(sid, site),
                    "allocated": allocations[(sid, site)],
                    "available": self.level(sid, site) - allocations[(sid, site)],
                }
                for sid, site in stock_keys
                if sid in self.items
            ],
            "orders": [
                {
                    "order_id": o.header.order_id,
                    "order_code": o.header.order_code,
                    "associated_ref": o.header.associated_ref,
                    "site_id": o.header.site_id,
                    "lines": [ln.model_dump(mode="json") for ln in o.header.lines],
                    "invoice_ids": list(o.invoice_ids),
                }
                for o in sorted(self.orders.values(), key=lambda o: o.header.order_id)
            ],
            "invoices": [
                {
                    "invoice_id": i.invoice_id,
                    "invoice_code": i.invoice_code,
                    "order_id": i.order_id,
                    "site_id": i.site_id,
                    "stage": i.stage,
                    "lines": [{"order_item_id": k, "quantity": v} for k, v in i.lines.items()],
                    "issue_date": iso(i.issue_date),
                    "external_ref": i.external_ref,
                    "packages": [pkg(p) for p in i.packages],
                    "shipped": i.shipped,
                    "at_issue_since": iso(i.at_issue_since),
                }
                for i in sorted(self.invoices.values(), key=lambda i: i.invoice_id)
            ],
            "despatch_calls": [
                {
                    "call_no": c.call_no,
                    "order_id": c.order_id,
                    "external_ref": c.external_ref,
                    "lines": [list(x) for x in c.lines],
                    "packages": [pkg(p) for p in c.packages],
                    "at": iso(c.at),
                    "invoice_id": c.invoice_id,
                    "back_order_invoice_id": c.back_order_invoice_id,
                }
                for c in self.despatch_calls
            ],
            "invoice_moves": [dict(m) for m in self.invoice_moves],
            "adjustment_groups": [
                {
                    "group_id": g.group_id,
                    "group_ref": g.group_ref,
                    "site_id": g.site_id,
                    "created_at": iso(g.created_at),
                    "lines": [
                        {
                            "stock_id": ln.stock_id,
                            "reason_code": ln.reason_code,
                            "value": str(ln.value),
                            "adjust_to": ln.adjust_to,
                            "adjust_by": ln.adjust_by,
                            "level_before": ln.level_before,
                            "level_after": ln.level_after,
                        }
                        for ln in g.lines
                    ],
                }
                for g in self.adjustment_groups
            ],
            "customer_returns": [
                {
                    "return_id": r.return_id,
                    "associated_ref": r.associated_ref,
                    "customer_urn": r.customer_urn,
                    "site_id": r.site_id,
                    "created_at": iso(r.created_at),
                    "processed": r.processed,
                    "credit_mode": r.credit_mode,
                    "credit_note_id": r.credit_note_id,
                    "credit_value": str(r.credit_value),
                    "credit_status": r.credit_status,
                    "items": [
                        {
                            "sku": it.sku,
                            "stock_id": it.stock_id,
                            "quantity": it.quantity,
                            "return_reason": it.return_reason,
                            "processing": it.processing,
                            "source_order_item_id": it.source_order_item_id,
                            "unit_net": str(it.unit_net),
                        }
                        for it in r.items
                    ],
                }
                for r in self.returns
            ],
            "credit_notes": [
                {
                    "credit_note_id": r.credit_note_id,
                    "return_id": r.return_id,
                    "associated_ref": r.associated_ref,
                    "value": str(r.credit_value),
                }
                for r in self.returns
                if r.credit_note_id is not None
            ],
        }
