"""The soak's sandbox process: a generated brand trading over simulated days.

Runs both simulators (``Sandbox``) in a process of its own, so SIGKILLs of the
integration never touch them, and adds what a brand's day brings, all seeded:

- ``POST /_sandbox/soak/trade`` (Khaos side): new web orders land in Khaos released for
  fulfilment (sale lines, hire lines on hire styles), a share with a fulfilment plan at
  ACS that splits them over two shipments or closes a line short; a few recent orders are
  cancelled by customer services in Khaos, and a few not yet at ACS have their delivery
  address corrected by customer services (an edit: ACS must end with the newest body);
- ``POST /_sandbox/soak/returns`` (ACS side): customers send back a share of the sale
  units ACS has despatched; ACS receives and grades them (A/B/C/BER by quota) and they go
  into the next returns file;
- ``POST /_sandbox/soak/stock`` (both sides): stock changes no order explains — a
  supplier delivery put away at ACS (goods in), a unit ACS finds damaged on the shelf
  (quarantine), a unit a cycle count does not find, and now and then someone in Khaos
  setting a selling Level 20+ over (a count keyed in by hand), which the next push must
  hold for finance (``scripts/soak/finance.py`` works that queue);
- ``GET /_sandbox/soak/units``: ACS's physical units per SKU and status, the units ACS
  has received back with their grade, the stock events above with their simulated time,
  and whether ACS still has work scheduled.

Everything else (picking, packing, split and short-closed shipments, hire units going out
and coming back through inspection and cleaning, the daily stock and returns files, the
finance batch issuing invoices) is the simulators' own behaviour as simulated time passes.
The integration is never told about any of it except through ACS and Khaos.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.domain.models import OrderLine, SalesOrder
from acs_khaos_dagster.sandbox.runner import Sandbox
from acs_khaos_dagster.sandbox.scenario.manifest import FulfilmentPlan, PlannedShipmentLine
from acs_khaos_dagster.sandbox.variants import VARIANTS

FIRST_ORDER_ID = 600_000
GRADES = (("A", 60), ("B", 25), ("C", 10), ("BER", 5))
SELLING_SITE = 1  # the documented default policy's selling site
ACTIONS = {"A": "RESTOCK", "B": "CLEAN", "C": "QUARANTINE", "BER": "DISPOSE"}


class Brand:
    """The brand's customers and customer services, acting on the simulators directly."""

    def __init__(self, box: Sandbox, seed: int) -> None:
        self.box = box
        self.rng = random.Random(f"brand:{seed}")
        registry = {p.sku: str(p.status) for p in box.manifest.acs_registry}
        units = Counter(u.sku for u in box.acs.state.units.values())
        items = [
            i
            for i in box.manifest.stock_items
            if i.stock_controlled and registry.get(i.stock_code) == "active" and units[i.stock_code]
        ]
        self.sale = [i for i in items if not i.is_hire]
        self.hire = [i for i in items if i.is_hire]
        self.next_order = FIRST_ORDER_ID
        self.recent: list[int] = []
        self.cancelled: list[int] = []
        self.edited: dict[str, str] = {}  # order code -> the newest postcode keyed in Khaos
        self.return_seq = 500_000
        self.considered: set[str] = set()
        self.graded: list[dict[str, str]] = []
        self.ordered: list[Any] = []  # sale items of recent orders: what sells today
        self.stock_events: list[dict[str, Any]] = []
        self.delivery_seq = 0
        self.miscount_day: Any = None

    def trade(self, orders: int, cancel_share: float, edit_share: float) -> dict[str, int]:
        box, rng = self.box, self.rng
        made = cancelled = edited = 0
        now = box.clock.now()
        with box.khaos._lock, box.acs.state.lock:
            for _ in range(orders):
                order = self._order(now)
                box.khaos.books._load_order(order, now)
                plan = self._plan(order)
                if plan is not None:
                    box.acs.state.plans[order.order_code] = plan
                self.recent.append(order.order_id)
                by_code = {i.stock_code: i for i in self.sale}
                self.ordered += [by_code[ln.stock_code] for ln in order.lines if not ln.is_hire]
                made += 1
            # Customer services cancel a few of the day's orders (some will already be at
            # ACS: a cancellation there, or too late once picked — an owned exception).
            for order_id in list(self.recent[-orders * 2 :]):
                if rng.random() < cancel_share and order_id not in self.cancelled:
                    box.khaos.books.cancel_order(order_id)
                    self.cancelled.append(order_id)
                    cancelled += 1
            # Customer services correct a delivery address on orders ACS has not taken yet
            # (some are new this hour, some have a release still being retried): the next
            # release must send the newest body, superseding any older one still queued.
            for order_id in self.recent:
                if rng.random() < edit_share and order_id not in self.cancelled:
                    edited += self._edit_address(order_id, now)
            self.recent = self.recent[-orders * 2 :]
            self.ordered = self.ordered[-orders * 12 :]
        return {"orders": made, "cancelled": cancelled, "edited": edited}

    def _edit_address(self, order_id: int, now: Any) -> int:
        sim = self.box.khaos.books.orders[order_id]
        code = sim.header.order_code
        if code in self.box.acs.state.orders:
            return 0  # ACS has it: changed there by a person, not by this integration
        seq = len(self.edited) + 1
        address = sim.header.delivery_address.model_copy(
            update={"line1": f"{seq} Corrected Lane", "postcode": f"EC{seq % 9 + 1}A {seq % 10}BB"}
        )
        sim.header = sim.header.model_copy(update={"delivery_address": address})
        sim.updated_at = now
        self.edited[code] = address.postcode
        return 1

    def _order(self, now: Any) -> SalesOrder:
        rng, manifest = self.rng, self.box.manifest
        order_id = self.next_order
        self.next_order += 1
        hire = bool(self.hire) and rng.random() < 0.1
        pool = self.hire if hire else self.sale
        count = min(len(pool), rng.choices([1, 2, 3, 4], weights=[40, 30, 20, 10])[0])
        lines = []
        for n, item in enumerate(rng.sample(pool, count), start=1):
            quantity = 2 if not hire and rng.random() < 0.1 else 1
            net = item.sell_price * 15 / 100 if hire else item.sell_price
            lines.append(
                OrderLine(
                    order_item_id=order_id * 10 + n,
                    stock_id=item.stock_id,
                    stock_code=item.stock_code,
                    quantity=quantity,
                    unit_net=round(net, 2),
                    is_hire=hire,
                )
            )
        customer = rng.choice(manifest.customers)
        return SalesOrder(
            order_id=order_id,
            order_code=f"SO{order_id:07d}",
            associated_ref=f"WEB-{order_id}",
            order_date=now,
            courier_code=rng.choice(["DPD", "RM", "DHL"]),
            customer_urn=customer.urn,
            site_id=manifest.sites[0].site_id,
            contact=customer.contact,
            delivery_address=customer.address,
            lines=tuple(lines),
        )

    def _plan(self, order: SalesOrder) -> FulfilmentPlan | None:
        """15% of multi-line orders split over two shipments; 3% close a line short."""
        rng = self.rng
        lines = [
            PlannedShipmentLine(order_item_id=ln.order_item_id, quantity=ln.quantity)
            for ln in order.lines
        ]
        short: list[PlannedShipmentLine] = []
        if rng.random() < 0.03:
            short = [PlannedShipmentLine(order_item_id=lines[-1].order_item_id, quantity=1)]
        if len(lines) > 1 and rng.random() < 0.15:
            cut = rng.randint(1, len(lines) - 1)
            return FulfilmentPlan(
                order_code=order.order_code,
                shipments=[lines[:cut], lines[cut:]],
                closed_short=short,
                short_reason=rng.choice(["STOCK_NOT_FOUND", "DAMAGED_AT_PICK"]),
            )
        if short:
            return FulfilmentPlan(
                order_code=order.order_code, shipments=[lines], closed_short=short
            )
        return None

    def returns(self, share: float) -> dict[str, int]:
        """Customers send back ``share`` of the sale units despatched since the last call."""
        state, rng = self.box.acs.state, self.rng
        now = self.box.clock.now()
        rows = []
        with state.lock:
            for unique_sku, number in list(state.despatched_units.items()):
                if unique_sku in self.considered:
                    continue
                self.considered.add(unique_sku)
                if rng.random() >= share:
                    continue
                order = state.orders.get(number)
                if order is None:
                    continue
                found = [
                    (str(line["line_item_id"]), line["sku"])
                    for event in order.shipments
                    for line in event["lines"]
                    if unique_sku in line.get("unique_skus", [])
                ]
                if not found:
                    continue
                line_item_id, sku = found[0]
                grade = rng.choices([g for g, _ in GRADES], weights=[w for _, w in GRADES])[0]
                self.return_seq += 1
                received = now - timedelta(minutes=rng.randint(1, 60))
                rows.append(
                    {
                        "return_ref": f"ACSR{self.return_seq}",
                        "order_number": number,
                        "line_item_id": line_item_id,
                        "sku": sku,
                        "unique_sku": unique_sku,
                        "received_at": received.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "grade": grade,
                        "action_taken": ACTIONS[grade],
                        "action_reason": "customer return",
                        "defect_codes": "",
                        "repair_cost": "",
                    }
                )
            taken = state.receive_customer_returns(rows)
        self.graded.extend(rows)
        return {"received": taken}

    def stock(self, share: float = 1.0) -> dict[str, int]:
        """One step's stock changes no order explains, on items that sell (so invoices are
        issued on them while their pushes are still retried or held for finance)."""
        box, rng, state = self.box, self.rng, self.box.acs.state
        now = box.clock.now()
        made: Counter[str] = Counter()
        pool = self.ordered or self.sale
        with box.khaos._lock, state.lock:
            if rng.random() < 0.25 * share:
                item = rng.choice(pool)
                self.delivery_seq += 1
                count = rng.randint(1, 8)
                ref = f"GRN{self.delivery_seq:05d}"
                added = state.receive_goods(item.stock_code, count, now, ref)
                self._event(now, item, "goods_in", len(added))
                made["goods_in"] += len(added)
            for kind, chance in (("damaged", 0.12), ("counted_out", 0.12)):
                if rng.random() >= chance * share:
                    continue
                item = rng.choice(pool)
                free = state.free_units(item.stock_code)
                if len(free) < 2:
                    continue  # keep a unit for today's orders
                unit = rng.choice(free)
                if kind == "damaged":
                    state.set_aside(unit, "Quarantine", now)
                    self._event(now, item, kind, 0)  # a status move: no unit gained or lost
                else:
                    state.count_out(unit)
                    self._event(now, item, kind, -1)
                made[kind] += 1
            day = now.date()
            if self.miscount_day != day and rng.random() < 0.15 * share:
                # Someone in Khaos keys a count 20+ over on the selling site: ACS's units say
                # otherwise, so the next push must bring Level back down (held: 20+ units).
                self.miscount_day = day
                item = rng.choice(pool)
                over = rng.randint(20, 25)
                books = box.khaos.books
                books.levels[(item.stock_id, SELLING_SITE)] = (
                    books.level(item.stock_id, SELLING_SITE) + over
                )
                self._event(now, item, "khaos_miscount", -over)
                made["khaos_miscount"] += 1
        return dict(made)

    def _event(self, now: Any, item: Any, kind: str, correction: int) -> None:
        """``correction``: what this does to the StockID's Level change the pushes owe."""
        self.stock_events.append(
            {
                "at": now.isoformat(),
                "sku": item.stock_code,
                "stock_id": item.stock_id,
                "kind": kind,
                "correction": correction,
            }
        )

    def units(self) -> dict[str, Any]:
        state = self.box.acs.state
        with state.lock:
            by = Counter((u.sku, u.status) for u in state.units.values())
            # Work still scheduled (orders to pick, hire units to come back and be cleaned).
            # Returns waiting for the next returns file are not: the drop writes them, and
            # counting them kept quiescence jumping its full fortnight.
            busy = bool(state._due)
            next_due = state._due[0][0].isoformat() if state._due else None
        return {
            "units": [{"sku": s, "status": st, "count": n} for (s, st), n in sorted(by.items())],
            "graded": list(self.graded),
            "busy": busy,
            "next_due": next_due,
            "cancelled_orders": list(self.cancelled),
            "edited_orders": dict(self.edited),
            "stock_events": list(self.stock_events),
        }


def serve(scenario: Path, drop: Path, seed: int, variant: str = "modelled") -> int:
    """The sandbox in its own process; prints its settings as one JSON line."""
    box = Sandbox(scenario, drop, load_settings(), seed=seed, variant=VARIANTS[variant])
    brand = Brand(box, seed)

    def trade(orders: int, cancel_share: float = 0.03, edit_share: float = 0.03) -> dict[str, int]:
        return brand.trade(orders, cancel_share, edit_share)

    def send_back(share: float) -> dict[str, int]:
        return brand.returns(share)

    box.khaos.app.add_api_route("/_sandbox/soak/trade", trade, methods=["POST"])
    box.acs.app.add_api_route("/_sandbox/soak/returns", send_back, methods=["POST"])
    box.acs.app.add_api_route("/_sandbox/soak/units", brand.units, methods=["GET"])
    box.acs.app.add_api_route("/_sandbox/soak/stock", brand.stock, methods=["POST"])
    with box:
        print(json.dumps(box.settings_env()), flush=True)
        sys.stdin.read()
    return 0
