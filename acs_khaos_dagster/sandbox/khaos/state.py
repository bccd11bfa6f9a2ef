"""The Khaos Control simulator's books: stock, orders, invoices, adjustments, returns.

Plain Python, no HTTP: the SOAP layer (``soap.py``) parses a call, runs one of the
operations here under the simulator's lock, and renders the result. Every rule of
the contract's "Stock model" and "Order model" lives here:

- Level per StockID x site; open (unissued, not cancelled) invoices at a site
  allocate their non-hire quantities; ``Available = Level - allocated``.
- Issuing (the finance batch) lowers Level by the invoiced non-hire quantity;
  the allocation goes with it. Hire lines neither allocate nor move Level.
- ``ImportDespatch``, ``ImportStockAdjustments`` and ``ImportCustomerReturns``
  apply every call: no de-duplication, like the real system.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from acs_khaos_dagster.domain.models import (
    Invoice,
    InvoiceLine,
    Package,
    SalesOrder,
    Site,
    StockItem,
    StockLevel,
)
from acs_khaos_dagster.sandbox.clock import SimClock
from acs_khaos_dagster.sandbox.khaos.install import (
    MODELLED,
    RETURN_TO_STOCK,
    STANDARD_ADJUSTMENT_REASONS,
    STANDARD_RETURN_REASONS,
    KhaosInstall,
)
from acs_khaos_dagster.sandbox.khaos.wire import wall_clock
from acs_khaos_dagster.sandbox.scenario.manifest import ScenarioManifest

STAGE_CANCELLED = 1
STAGE_RELEASED = 9
STAGE_ISSUE = 16
STAGE_AWAITING_STOCK = 18
STAGE_ISSUED = 70
ISSUED_STAGES = frozenset({70, 71, 72, 73})
KNOWN_STAGES = frozenset({1, *range(9, 22), *ISSUED_STAGES})

# The modelled install's codes (``install.py``); a simulator may be set up with others.
ADJUSTMENT_REASONS = STANDARD_ADJUSTMENT_REASONS
RETURN_REASONS = STANDARD_RETURN_REASONS
CREDIT_MODES = frozenset({"auto", "review", "none"})
MAX_EXPORT_STOCK_CODES = 100


class SimFault(Exception):
    """A SOAP fault the simulator answers with (``code`` without the ``soap:`` prefix)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validation(message: str) -> SimFault:
    return SimFault("Client.Validation", message)


def not_found(message: str) -> SimFault:
    return SimFault("Client.NotFound", message)


class IssuePolicy(BaseModel):
    """How the simulated finance batch issues invoices waiting at stage 16."""

    delay: timedelta = timedelta(hours=1)
    unissued_share: float = Field(0.0, ge=0.0, le=1.0)
    hold_invoice_ids: set[int] = Field(default_factory=set)
    enabled: bool = True


@dataclass
class SimInvoice:
    invoice_id: int
    invoice_code: str
    order_id: int
    site_id: int
    stage: int
    lines: dict[int, int]  # order_item_id -> quantity
    created_at: datetime
    updated_at: datetime
    issue_date: datetime | None = None
    external_ref: str = ""
    packages: list[Package] = field(default_factory=list)
    shipped: bool = False  # created by a despatch (holds shipped quantity)
    at_issue_since: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.stage != STAGE_CANCELLED and self.stage not in ISSUED_STAGES


@dataclass
class SimOrder:
    header: SalesOrder  # header and lines; invoices live in ``invoice_ids``
    invoice_ids: list[int]
    updated_at: datetime


@dataclass
class AdjustmentRecord:
    stock_id: int
    reason_code: str
    value: Decimal
    adjust_to: int | None
    adjust_by: int | None
    level_before: int
    level_after: int


@dataclass
class AdjustmentGroupRecord:
    group_id: int
    group_ref: str
    site_id: int
    created_at: datetime
    lines: list[AdjustmentRecord]


@dataclass
class ReturnItemRecord:
    sku: str
    stock_id: int
    quantity: int
    return_reason: str
    processing: str
    source_order_item_id: int | None
    unit_net: Decimal


@dataclass
class ReturnRecord:
    return_id: int
    associated_ref: str
    customer_urn: str
    site_id: int
    created_at: datetime
    processed: bool
    credit_mode: str
    items: list[ReturnItemRecord]
    credit_note_id: int | None = None
    credit_value: Decimal = Decimal("0")
    credit_status: str = "none"  # none | review | raised


@dataclass
class DespatchCall:
    call_no: int
    order_id: int
    external_ref: str
    lines: list[tuple[int, int]]
    packages: list[Package]
    at: datetime
    invoice_id: int
    back_order_invoice_id: int | None


class KhaosBooks:
    """All state of one simulated Khaos Control system. Not thread-safe: callers lock."""

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

    # --- read operations -----------------------------------------------------

    def get_sites(self) -> list[Site]:
        return sorted(self.sites.values(), key=lambda s: s.site_id)

    def get_stock_list(self, since: datetime) -> list[str]:
        """Codes changed at or after the UK wall-clock time ``since`` (compared as Khaos
        stores them: wall-clock times, so October's repeated hour sorts by its clock)."""
        return sorted(
            self.items[sid].stock_code
            for sid, at in self.changed_at.items()
            if wall_clock(at) >= since
        )

    def export_stock(self, codes: list[str]) -> list[StockItem]:
        if len(codes) > MAX_EXPORT_STOCK_CODES:
            raise validation(f"ExportStock takes at most {MAX_EXPORT_STOCK_CODES} stock codes")
        found = (self.item_by_code(c) for c in codes)
        return [i for i in found if i is not None]

    def export_stock_status(self, codes: list[str], site_id: int | None) -> list[StockLevel]:
        if site_id:
            self._require_site(site_id)
        sites = [site_id] if site_id else sorted(self.sites)
        out: list[StockLevel] = []
        allocations = self.allocations()
        for code in codes:
            item = self.item_by_code(code)
            if item is None:
                continue
            out.extend(self.stock_level(item.stock_id, s, allocations) for s in sites)
        return out

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

    def export_orders(self, stage_ids: set[int], site_id: int | None) -> list[SalesOrder]:
        out = []
        for order in sorted(self.orders.values(), key=lambda o: o.header.order_id):
            if site_id and order.header.site_id != site_id:
                continue
            if any(self.invoices[i].stage in stage_ids for i in order.invoice_ids):
                out.append(self.order_view(order))
        return out

    def export_order_status(
        self,
        order_ids: list[int],
        include_tracking: bool,
        date_from: datetime | None,
        date_to: datetime | None,
    ) -> list[SalesOrder]:
        chosen = (
            [self.orders[i] for i in order_ids if i in self.orders]
            if order_ids
            else sorted(self.orders.values(), key=lambda o: o.header.order_id)
        )
        out = []
        for order in chosen:
            if date_from is not None and wall_clock(order.updated_at) < date_from:
                continue
            if date_to is not None and wall_clock(order.updated_at) > date_to:
                continue
            out.append(self.order_view(order, include_tracking))
        return out

    # --- invoices and stages ---------------------------------------------------

    def _touch(self, inv: SimInvoice) -> None:
        now = self.clock.now()
        inv.updated_at = now
        self.orders[inv.order_id].updated_at = now

    def _set_stage(self, inv: SimInvoice, stage: int) -> None:
        inv.stage = stage
        inv.at_issue_since = self.clock.now() if stage == STAGE_ISSUE else None
        self._touch(inv)

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
        return result

    def cancel_order(self, order_id: int) -> None:
        order = self._order(order_id)
        for invoice_id in order.invoice_ids:
            inv = self.invoices[invoice_id]
            if inv.is_open:
                self._set_stage(inv, STAGE_CANCELLED)

    def _order(self, order_id: int) -> SimOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise not_found(f"order {order_id} does not exist")
        return order

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

    # --- adjustments -----------------------------------------------------------

    def import_stock_adjustments(
        self, site_id: int, group_ref: str, lines: list[dict[str, Any]]
    ) -> AdjustmentGroupRecord:
        self._require_site(site_id)
        if not group_ref.strip():
            raise validation("GroupRef is required")
        if not lines:
            raise validation("an adjustment group needs at least one line")
        for n, line in enumerate(lines, 1):
            item = self.items.get(line["stock_id"])
            if item is None:
                raise not_found(f"line {n}: StockID {line['stock_id']} does not exist")
            if not item.stock_controlled:
                raise validation(f"line {n}: StockID {item.stock_id} is not stock controlled")
            if (line["adjust_to"] is None) == (line["adjust_by"] is None):
                raise validation(f"line {n}: give exactly one of AdjustTo and AdjustBy")
            if line["adjust_to"] is not None and line["adjust_to"] < 0:
                raise validation(f"line {n}: AdjustTo cannot be negative")
            if line["reason_code"] not in self.install.adjustment_reasons:
                raise validation(f"line {n}: unknown reason code {line['reason_code']!r}")
        records = []
        for line in lines:
            key = (line["stock_id"], site_id)
            before = self.levels.get(key, 0)
            after = (
                line["adjust_to"] if line["adjust_to"] is not None else before + line["adjust_by"]
            )
            self.levels[key] = after
            records.append(
                AdjustmentRecord(
                    stock_id=line["stock_id"],
                    reason_code=line["reason_code"],
                    value=line["value"],
                    adjust_to=line["adjust_to"],
                    adjust_by=line["adjust_by"],
                    level_before=before,
                    level_after=after,
                )
            )
        group = AdjustmentGroupRecord(
            group_id=self._next_group_id,
            group_ref=group_ref,
            site_id=site_id,
            created_at=self.clock.now(),
            lines=records,
        )
        self._next_group_id += 1
        self.adjustment_groups.append(group)
        return group

    def export_stock_adjustments(
        self, group_ref: str | None, date_from: datetime | None
    ) -> list[AdjustmentGroupRecord]:
        if not group_ref and date_from is None:
            raise validation("give GroupRef or DateFrom")
        return [
            g
            for g in self.adjustment_groups
            if (not group_ref or g.group_ref == group_ref)
            and (date_from is None or wall_clock(g.created_at) >= date_from)
        ]

    # --- customer returns --------------------------------------------------------

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
