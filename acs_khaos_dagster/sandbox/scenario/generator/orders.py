"""Customers, their released orders, and ACS's fulfilment plans for them (split
shipments, lines closed short).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

from acs_khaos_dagster.config import KhaosSettings
from acs_khaos_dagster.domain.models import (
    Address,
    Contact,
    Invoice,
    InvoiceLine,
    OrderLine,
    SalesOrder,
)
from acs_khaos_dagster.sandbox.scenario.generator.draft import Draft
from acs_khaos_dagster.sandbox.scenario.generator.helpers import _ascii, _weighted
from acs_khaos_dagster.sandbox.scenario.generator.tables import (
    _CITIES,
    _FIRST_NAMES,
    _LAST_NAMES,
    _SECOND_LINES,
    _STREETS,
    ADDRESS_LINE_MAX,
    POSTCODE_MAX,
    SHORT_REASONS,
)
from acs_khaos_dagster.sandbox.scenario.manifest import (
    Customer,
    FulfilmentPlan,
    PlannedShipmentLine,
)


class Orders(Draft):
    def build_customers(self) -> None:
        rng = self.rng
        total = max(5, self.spec.orders * 3 // 4)
        for i in range(total):
            first = "Zoë" if i == 0 else rng.choice(_FIRST_NAMES)
            last = "O'Brien" if i == 0 else rng.choice(_LAST_NAMES)
            city, area, county = rng.choice(_CITIES)
            letters = "ABDEFGHJLNPQRSTUWXYZ"
            postcode = (
                f"{area}{rng.randint(1, 20)} {rng.randint(1, 9)}"
                f"{rng.choice(letters)}{rng.choice(letters)}"
            )
            line2 = "c/o Smith & Sons Ltd" if i == 0 else rng.choice(_SECOND_LINES)
            address = Address(
                line1=f"{rng.randint(1, 240)} {rng.choice(_STREETS)}"[:ADDRESS_LINE_MAX],
                line2=line2[:ADDRESS_LINE_MAX],
                city=city[:ADDRESS_LINE_MAX],
                county=county[:ADDRESS_LINE_MAX],
                postcode=postcode[:POSTCODE_MAX],
            )
            contact = Contact(
                first_name=first,
                last_name=last,
                email=f"{_ascii(first)}.{_ascii(last)}{i + 1}@example.co.uk",
                phone=f"07700 900{rng.randrange(1000):03d}",
            )
            self.customers.append(Customer(urn=f"C{100_001 + i}", contact=contact, address=address))
        self.counts["customers"] = total
        self.progress("customers", total, total)

    def build_orders(self) -> None:
        rng = self.rng
        orderable = [
            s
            for s in self.children
            if not s.item.discontinued and s.item.stock_code not in self.problem_codes
        ]
        order_item_id = 700_001
        for i in range(self.spec.orders):
            order_id = 50_001 + i
            customer = rng.choice(self.customers)
            n_lines = int(_weighted(rng, (("1", 40), ("2", 30), ("3", 20), ("4", 10))))
            picked = rng.sample(orderable, min(n_lines, len(orderable)))
            lines = []
            for sku in sorted(picked, key=lambda s: s.item.stock_id):
                item = sku.item
                quantity = 1 if item.is_hire or rng.randrange(100) >= 10 else 2
                unit_net = (
                    (item.sell_price * 15 / 100).quantize(Decimal("0.01"))
                    if item.is_hire
                    else item.sell_price
                )
                lines.append(
                    OrderLine(
                        order_item_id=order_item_id,
                        stock_id=item.stock_id,
                        stock_code=item.stock_code,
                        quantity=quantity,
                        unit_net=unit_net,
                        is_hire=item.is_hire,
                    )
                )
                sku.allocated += quantity
                order_item_id += 1
            invoice_id = 80_001 + i
            self.orders.append(
                SalesOrder(
                    order_id=order_id,
                    order_code=f"SO{order_id:07d}",
                    associated_ref=f"WEB-{100_001 + i}",
                    order_date=self.start_at - timedelta(seconds=rng.randint(3_600, 4 * 86_400)),
                    courier_code="DPD",
                    customer_urn=customer.urn,
                    site_id=self.sites.selling,
                    contact=customer.contact,
                    delivery_address=customer.address,
                    lines=tuple(lines),
                    invoices=(
                        Invoice(
                            invoice_id=invoice_id,
                            invoice_code=f"INV{invoice_id:07d}",
                            stage_id=KhaosSettings().stages.released,
                            lines=tuple(
                                InvoiceLine(
                                    order_item_id=line.order_item_id,
                                    stock_id=line.stock_id,
                                    quantity=line.quantity,
                                )
                                for line in lines
                            ),
                        ),
                    ),
                )
            )
        self.counts["orders"] = len(self.orders)
        self.counts["order_lines"] = sum(len(o.lines) for o in self.orders)
        self.counts["hire_order_lines"] = sum(
            1 for o in self.orders for ln in o.lines if ln.is_hire
        )
        self.counts["ordered_units"] = sum(ln.quantity for o in self.orders for ln in o.lines)
        self.progress("orders", len(self.orders), self.spec.orders)

    def build_plans(self) -> None:
        rng = self.rng
        for order in self.orders:
            short = [
                PlannedShipmentLine(order_item_id=ln.order_item_id, quantity=ln.quantity)
                for ln in order.lines
                if not ln.is_hire and rng.randrange(100) < 2
            ]
            shorted = {s.order_item_id for s in short}
            shipping = [
                PlannedShipmentLine(order_item_id=ln.order_item_id, quantity=ln.quantity)
                for ln in order.lines
                if ln.order_item_id not in shorted
            ]
            shipments: list[list[PlannedShipmentLine]] = []
            if len(order.lines) > 1 and len(shipping) > 1 and rng.randrange(100) < 15:
                parts = min(len(shipping), rng.choice((2, 3)))
                shuffled = shipping[:]
                rng.shuffle(shuffled)
                cuts = sorted(rng.sample(range(1, len(shuffled)), parts - 1))
                bounds = [0, *cuts, len(shuffled)]
                for a, b in itertools.pairwise(bounds):
                    shipments.append(sorted(shuffled[a:b], key=lambda s: s.order_item_id))
                self.counts["split_orders"] += 1
            elif shipping:
                shipments.append(shipping)
            self.plans.append(
                FulfilmentPlan(
                    order_code=order.order_code,
                    shipments=shipments,
                    closed_short=short,
                    short_reason=rng.choice(SHORT_REASONS),
                )
            )
            self.counts["closed_short_lines"] += len(short)
        self.counts.setdefault("split_orders", 0)
        self.counts.setdefault("closed_short_lines", 0)
