"""Invoices through their stages: moved (``MoveInvoices``), cancelled with their order,
issued by the finance batch (which moves Level), and split by ``ImportDespatch``.
"""

from __future__ import annotations

import random

from acs_khaos_dagster.domain.models import Invoice, Package
from acs_khaos_dagster.sandbox.khaos.state.books import Books
from acs_khaos_dagster.sandbox.khaos.state.records import (
    ISSUED_STAGES,
    KNOWN_STAGES,
    STAGE_AWAITING_STOCK,
    STAGE_CANCELLED,
    STAGE_ISSUE,
    STAGE_ISSUED,
    DespatchCall,
    SimInvoice,
    not_found,
    validation,
)


class InvoiceStages(Books):
    def move_invoices(self, invoice_ids: list[int], stage: int) -> dict[int, bool | str]:
        if stage not in KNOWN_STAGES:
            raise validation(f"unknown invoice stage {stage}")
        if stage in ISSUED_STAGES:
            raise validation("invoices are issued by finance, not moved into an issued stage")
        result: dict[int, bool | str] = {}
        for invoice_id in invoice_ids:
            inv = self.invoices.get(invoice_id)
            if inv is None:
                result[invoice_id] = "invoice not found"
            elif inv.stage in ISSUED_STAGES:
                result[invoice_id] = "invoice already issued"
            elif inv.stage == STAGE_CANCELLED:
                result[invoice_id] = "invoice cancelled"
            else:
                self._set_stage(inv, stage)
                result[invoice_id] = True
        self.invoice_moves.append(
            {
                "invoice_ids": list(invoice_ids),
                "stage_id": stage,
                "moved": sorted(i for i, done in result.items() if done is True),
                "at": self.clock.now().isoformat(),
            }
        )
        return result

    def cancel_order(self, order_id: int) -> None:
        order = self._order(order_id)
        for invoice_id in order.invoice_ids:
            inv = self.invoices[invoice_id]
            if inv.is_open:
                self._set_stage(inv, STAGE_CANCELLED)

    def issue_invoice(self, invoice_id: int) -> None:
        inv = self.invoices.get(invoice_id)
        if inv is None:
            raise not_found(f"invoice {invoice_id} does not exist")
        if not inv.is_open:
            raise validation(f"invoice {invoice_id} is not open")
        order = self.orders[inv.order_id]
        for item_id, qty in inv.lines.items():
            stock_id, hire = self._line_stock(order, item_id)
            if not hire:
                key = (stock_id, inv.site_id)
                self.levels[key] = self.levels.get(key, 0) - qty
        inv.stage = STAGE_ISSUED
        inv.issue_date = self.clock.now()
        inv.at_issue_since = None
        self._touch(inv)

    def _left_unissued(self, invoice_id: int) -> bool:
        if invoice_id in self.policy.hold_invoice_ids:
            return True
        share = self.policy.unissued_share
        # Seeded per invoice so the choice does not depend on the order of batches.
        return share > 0 and random.Random(f"{self.seed}:{invoice_id}").random() < share

    def run_finance_batch(self) -> list[int]:
        if not self.policy.enabled:
            return []
        now = self.clock.now()
        issued = []
        for inv in sorted(self.invoices.values(), key=lambda i: i.invoice_id):
            if inv.stage != STAGE_ISSUE or inv.at_issue_since is None:
                continue
            if inv.at_issue_since + self.policy.delay > now or self._left_unissued(inv.invoice_id):
                continue
            self.issue_invoice(inv.invoice_id)
            issued.append(inv.invoice_id)
        return issued

    # --- despatch --------------------------------------------------------------

    def import_despatch(
        self,
        order_id: int,
        external_ref: str,
        lines: list[tuple[int, int]],
        packages: list[Package],
    ) -> Invoice:
        order = self._order(order_id)
        if not lines:
            raise validation("a despatch needs at least one item")
        wanted: dict[int, int] = {}
        for item_id, qty in lines:
            self._line_stock(order, item_id)
            if qty <= 0:
                raise validation(f"quantity for order item {item_id} must be positive")
            wanted[item_id] = wanted.get(item_id, 0) + qty
        shippable = [
            self.invoices[i]
            for i in sorted(order.invoice_ids)
            if self.invoices[i].is_open and not self.invoices[i].shipped
        ]
        open_qty: dict[int, int] = {}
        for inv in shippable:
            for item_id, qty in inv.lines.items():
                open_qty[item_id] = open_qty.get(item_id, 0) + qty
        if not any(open_qty.values()):
            raise validation(f"order {order_id} has nothing left to ship")
        for item_id, qty in wanted.items():
            if qty > open_qty.get(item_id, 0):
                raise validation(
                    f"order item {item_id}: {qty} shipped but only {open_qty.get(item_id, 0)} open"
                )
        # Take from the shippable invoices in order; the first becomes the shipment.
        taken: dict[int, dict[int, int]] = {inv.invoice_id: {} for inv in shippable}
        for item_id, qty in wanted.items():
            left = qty
            for inv in shippable:
                take = min(left, inv.lines.get(item_id, 0))
                if take:
                    taken[inv.invoice_id][item_id] = take
                    left -= take
        first = shippable[0]
        remainder = {
            item_id: qty - taken[first.invoice_id].get(item_id, 0)
            for item_id, qty in first.lines.items()
            if qty - taken[first.invoice_id].get(item_id, 0) > 0
        }
        for inv in shippable[1:]:
            for item_id, qty in taken[inv.invoice_id].items():
                inv.lines[item_id] -= qty
                if inv.lines[item_id] == 0:
                    del inv.lines[item_id]
            if not inv.lines:
                order.invoice_ids.remove(inv.invoice_id)
                del self.invoices[inv.invoice_id]
            else:
                self._touch(inv)
        now = self.clock.now()
        first.lines = dict(wanted)
        first.shipped = True
        first.external_ref = external_ref
        first.packages = list(packages)
        self._set_stage(first, STAGE_ISSUE)
        back_order_id = None
        if remainder:
            back = SimInvoice(
                invoice_id=self._take_invoice_id(),
                invoice_code="",
                order_id=order_id,
                site_id=first.site_id,
                stage=STAGE_AWAITING_STOCK,
                lines=remainder,
                created_at=now,
                updated_at=now,
            )
            back.invoice_code = f"INV{back.invoice_id}"
            self.invoices[back.invoice_id] = back
            order.invoice_ids.append(back.invoice_id)
            back_order_id = back.invoice_id
        self.despatch_calls.append(
            DespatchCall(
                call_no=len(self.despatch_calls) + 1,
                order_id=order_id,
                external_ref=external_ref,
                lines=list(lines),
                packages=list(packages),
                at=now,
                invoice_id=first.invoice_id,
                back_order_invoice_id=back_order_id,
            )
        )
        return self.invoice_view(first)
