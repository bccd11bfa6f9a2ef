"""``Books``: the data every part of the Khaos books shares, loaded from the scenario, and
the stock model's rules (Level, allocation, Available) with the views and stage moves
the operations have in common.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from acs_khaos_dagster.domain.models import (
    Invoice,
    InvoiceLine,
    SalesOrder,
    Site,
    StockItem,
    StockLevel,
)
from acs_khaos_dagster.sandbox.clock import SimClock
from acs_khaos_dagster.sandbox.khaos.install import MODELLED, KhaosInstall
from acs_khaos_dagster.sandbox.khaos.state.records import (
    STAGE_ISSUE,
    STAGE_RELEASED,
    AdjustmentGroupRecord,
    DespatchCall,
    IssuePolicy,
    ReturnRecord,
    SimInvoice,
    SimOrder,
    not_found,
)
from acs_khaos_dagster.sandbox.scenario.manifest import ScenarioManifest


class Books:
    """The shared data and rules of ``KhaosBooks``."""

    def __init__(
        self,
        manifest: ScenarioManifest,
        clock: SimClock,
        policy: IssuePolicy,
        seed: int,
        install: KhaosInstall = MODELLED,
    ) -> None:
        self.clock = clock
        self.policy = policy
        self.seed = seed
        self.install = install
        start = clock.now()
        self.sites: dict[int, Site] = {s.site_id: s for s in manifest.sites}
        self.items: dict[int, StockItem] = {i.stock_id: i for i in manifest.stock_items}
        self._ids_by_code: dict[str, int] = {}
        self.changed_at: dict[int, datetime] = {i.stock_id: start for i in manifest.stock_items}
        self.levels: dict[tuple[int, int], int] = {}
        for lvl in manifest.khaos_levels:
            self.levels[(lvl.stock_id, lvl.site_id)] = lvl.level
        self.on_order: dict[tuple[int, int], int] = {}
        self.orders: dict[int, SimOrder] = {}
        self.invoices: dict[int, SimInvoice] = {}
        self._next_invoice_id = 1 + max(
            (inv.invoice_id for o in manifest.orders for inv in o.invoices), default=100000
        )
        for order in manifest.orders:
            self._load_order(order, start)
        self.despatch_calls: list[DespatchCall] = []
        self.adjustment_groups: list[AdjustmentGroupRecord] = []
        # Each MoveInvoices call as asked (its invoices, the stage) and what it moved: a later
        # stage leaves no other trace of it.
        self.invoice_moves: list[dict[str, Any]] = []
        self.returns: list[ReturnRecord] = []
        self._next_group_id = 5001
        self._next_return_id = 7001
        self._next_credit_id = 9001

    # --- loading -------------------------------------------------------------

    def _load_order(self, order: SalesOrder, now: datetime) -> None:
        ids: list[int] = []
        invoices = order.invoices or (
            Invoice(
                invoice_id=self._take_invoice_id(),
                invoice_code="",
                stage_id=STAGE_RELEASED,
                lines=tuple(
                    InvoiceLine(
                        order_item_id=ln.order_item_id, stock_id=ln.stock_id, quantity=ln.quantity
                    )
                    for ln in order.lines
                ),
            ),
        )
        for inv in invoices:
            sim = SimInvoice(
                invoice_id=inv.invoice_id,
                invoice_code=inv.invoice_code or f"INV{inv.invoice_id}",
                order_id=order.order_id,
                site_id=order.site_id,
                stage=inv.stage_id,
                lines={ln.order_item_id: ln.quantity for ln in inv.lines},
                created_at=now,
                updated_at=now,
                issue_date=inv.issue_date,
                external_ref=inv.external_ref,
                packages=list(inv.packages),
                shipped=bool(inv.external_ref),
                at_issue_since=now if inv.stage_id == STAGE_ISSUE else None,
            )
            self.invoices[sim.invoice_id] = sim
            ids.append(sim.invoice_id)
        self.orders[order.order_id] = SimOrder(
            header=order.model_copy(update={"invoices": ()}), invoice_ids=ids, updated_at=now
        )

    def _take_invoice_id(self) -> int:
        value = self._next_invoice_id
        self._next_invoice_id += 1
        return value

    # --- stock ---------------------------------------------------------------

    def _line_stock(self, order: SimOrder, order_item_id: int) -> tuple[int, bool]:
        for line in order.header.lines:
            if line.order_item_id == order_item_id:
                return line.stock_id, line.is_hire
        raise not_found(f"order item {order_item_id} is not on order {order.header.order_id}")

    def allocations(self) -> Counter[tuple[int, int]]:
        """Units on open invoices per (StockID, site), sale lines only: one pass over them all
        (a brand's stock export asks for every item, so never a pass per item)."""
        totals: Counter[tuple[int, int]] = Counter()
        for inv in self.invoices.values():
            if not inv.is_open:
                continue
            order = self.orders[inv.order_id]
            for item_id, qty in inv.lines.items():
                sid, hire = self._line_stock(order, item_id)
                if not hire:
                    totals[(sid, inv.site_id)] += qty
        return totals

    def allocated(self, stock_id: int, site_id: int) -> int:
        return self.allocations()[(stock_id, site_id)]

    def level(self, stock_id: int, site_id: int) -> int:
        return self.levels.get((stock_id, site_id), 0)

    def stock_level(
        self, stock_id: int, site_id: int, allocations: Counter[tuple[int, int]] | None = None
    ) -> StockLevel:
        level = self.level(stock_id, site_id)
        allocated = (allocations if allocations is not None else self.allocations())[
            (stock_id, site_id)
        ]
        return StockLevel(
            stock_id=stock_id,
            stock_code=self.items[stock_id].stock_code,
            site_id=site_id,
            level=level,
            available=level - allocated,
            on_order=self.on_order.get((stock_id, site_id), 0),
        )

    def item_by_code(self, code: str) -> StockItem | None:
        # An index by code, checked on use: a brand's exports ask for 50k codes at once.
        stock_id = self._ids_by_code.get(code)
        item = self.items.get(stock_id) if stock_id is not None else None
        if item is not None and item.stock_code == code:
            return item
        if len(self._ids_by_code) != len(self.items) or item is not None:
            self._ids_by_code = {i.stock_code: i.stock_id for i in self.items.values()}
            stock_id = self._ids_by_code.get(code)
            return self.items[stock_id] if stock_id is not None else None
        return None

    def _require_site(self, site_id: int) -> None:
        if site_id not in self.sites:
            raise not_found(f"site {site_id} does not exist")

    def order_view(self, order: SimOrder, include_packages: bool = True) -> SalesOrder:
        invoices = tuple(
            self.invoice_view(self.invoices[i], include_packages) for i in order.invoice_ids
        )
        return order.header.model_copy(update={"invoices": invoices})

    def invoice_view(self, inv: SimInvoice, include_packages: bool = True) -> Invoice:
        order = self.orders[inv.order_id]
        return Invoice(
            invoice_id=inv.invoice_id,
            invoice_code=inv.invoice_code,
            stage_id=inv.stage,
            lines=tuple(
                InvoiceLine(
                    order_item_id=item_id,
                    stock_id=self._line_stock(order, item_id)[0],
                    quantity=qty,
                )
                for item_id, qty in inv.lines.items()
            ),
            issue_date=inv.issue_date,
            external_ref=inv.external_ref,
            packages=tuple(inv.packages) if include_packages else (),
        )

    # --- invoices and stages ---------------------------------------------------

    def _touch(self, inv: SimInvoice) -> None:
        now = self.clock.now()
        inv.updated_at = now
        self.orders[inv.order_id].updated_at = now

    def _set_stage(self, inv: SimInvoice, stage: int) -> None:
        inv.stage = stage
        inv.at_issue_since = self.clock.now() if stage == STAGE_ISSUE else None
        self._touch(inv)

    def _order(self, order_id: int) -> SimOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise not_found(f"order {order_id} does not exist")
        return order
