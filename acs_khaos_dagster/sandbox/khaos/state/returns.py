"""Customer returns (``ImportCustomerReturns``, ``ExportCustomerReturns``): processed back
to stock, and credited by the install's credit mode (at once, after review, or never).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from acs_khaos_dagster.sandbox.khaos.install import RETURN_TO_STOCK
from acs_khaos_dagster.sandbox.khaos.state.books import Books
from acs_khaos_dagster.sandbox.khaos.state.records import (
    CREDIT_MODES,
    ReturnItemRecord,
    ReturnRecord,
    SimOrder,
    not_found,
    validation,
)
from acs_khaos_dagster.sandbox.khaos.wire import wall_clock


class CustomerReturns(Books):
    def _find_order_line(self, order_item_id: int) -> tuple[SimOrder, Decimal]:
        for order in self.orders.values():
            for line in order.header.lines:
                if line.order_item_id == order_item_id:
                    return order, line.unit_net
        raise not_found(f"source order item {order_item_id} does not exist")

    def import_customer_return(
        self,
        associated_ref: str,
        customer_urn: str,
        items: list[dict[str, Any]],
        process: bool,
        credit_mode: str,
        site_id: int | None = None,
    ) -> ReturnRecord:
        if not associated_ref.strip():
            raise validation("AssociatedRef is required")
        if not customer_urn.strip():
            raise validation("URN is required")
        if credit_mode not in CREDIT_MODES:
            raise validation(f"unknown CreditMode {credit_mode!r}")
        if not items:
            raise validation("a return needs at least one item")
        if site_id:
            self._require_site(site_id)
        records: list[ReturnItemRecord] = []
        source_site: int | None = None
        for n, raw in enumerate(items, 1):
            item = self.item_by_code(raw["sku"])
            if item is None:
                raise not_found(f"item {n}: SKU {raw['sku']!r} does not exist")
            if raw["quantity"] <= 0:
                raise validation(f"item {n}: quantity must be positive")
            processing = self.install.return_reasons.get(raw["return_reason"])
            if processing is None:
                raise validation(f"item {n}: unknown return reason {raw['return_reason']!r}")
            unit_net = item.sell_price
            if raw["source_order_item_id"] is not None:
                order, unit_net = self._find_order_line(raw["source_order_item_id"])
                source_site = source_site or order.header.site_id
            records.append(
                ReturnItemRecord(
                    sku=item.stock_code,
                    stock_id=item.stock_id,
                    quantity=raw["quantity"],
                    return_reason=raw["return_reason"],
                    processing=processing,
                    source_order_item_id=raw["source_order_item_id"],
                    unit_net=unit_net,
                )
            )
        site = site_id or source_site or min(self.sites)
        ret = ReturnRecord(
            return_id=self._next_return_id,
            associated_ref=associated_ref,
            customer_urn=customer_urn,
            site_id=site,
            created_at=self.clock.now(),
            processed=False,
            credit_mode=credit_mode,
            items=records,
        )
        self._next_return_id += 1
        value = sum((r.unit_net * r.quantity for r in records), Decimal("0"))
        if credit_mode == "auto":
            ret.credit_note_id = self._take_credit_id()
            ret.credit_value = value
            ret.credit_status = "raised"
        elif credit_mode == "review":
            ret.credit_value = value
            ret.credit_status = "review"
        if process:
            self.process_return(ret)
        self.returns.append(ret)
        return ret

    def _take_credit_id(self) -> int:
        value = self._next_credit_id
        self._next_credit_id += 1
        return value

    def process_return(self, ret: ReturnRecord) -> None:
        if ret.processed:
            return
        for item in ret.items:
            if item.processing == RETURN_TO_STOCK:
                key = (item.stock_id, ret.site_id)
                self.levels[key] = self.levels.get(key, 0) + item.quantity
        ret.processed = True

    def approve_credit(self, return_id: int) -> ReturnRecord:
        ret = next((r for r in self.returns if r.return_id == return_id), None)
        if ret is None:
            raise not_found(f"return {return_id} does not exist")
        if ret.credit_status == "review":
            ret.credit_note_id = self._take_credit_id()
            ret.credit_status = "raised"
        return ret

    def export_customer_returns(
        self, associated_ref: str | None, date_from: datetime | None
    ) -> list[ReturnRecord]:
        if not associated_ref and date_from is None:
            raise validation("give AssociatedRef or DateFrom")
        return [
            r
            for r in self.returns
            if (not associated_ref or r.associated_ref == associated_ref)
            and (date_from is None or wall_clock(r.created_at) >= date_from)
        ]
