"""The catalogue: styles with colour x size children in Khaos, and ACS's registry of them
(with the few SKUs missing, pending, inactive or mismatched on purpose).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from acs_khaos_dagster.domain.models import AcsProduct, AcsProductStatus, Barcode, StockItem
from acs_khaos_dagster.sandbox.scenario.generator.draft import Draft, _Sku
from acs_khaos_dagster.sandbox.scenario.generator.helpers import ean13
from acs_khaos_dagster.sandbox.scenario.generator.tables import _ADJECTIVES, _CATEGORIES, _COLOURS


class Catalogue(Draft):
    def build_catalogue(self) -> None:
        rng = self.rng
        next_id = 10_001
        style_numbers: Counter[str] = Counter()
        barcode_counter = rng.randrange(10**9)
        styles = 0
        while len(self.children) < self.spec.skus:
            prefix, noun, sizes, (lo, hi) = rng.choice(_CATEGORIES)
            style_numbers[prefix] += 1
            style = f"{prefix}-{style_numbers[prefix]:04d}"
            adjective = rng.choice(_ADJECTIVES)
            is_hire = styles == 1 or (styles > 1 and rng.randrange(100) < 10)
            sell = Decimal(rng.randrange(lo, hi)) + (
                Decimal("0.99") if rng.random() < 0.3 else Decimal("0.00")
            )
            cost = (sell * rng.randint(25, 45) / 100).quantize(Decimal("0.01"))
            parent = StockItem(
                stock_id=next_id,
                stock_code=style,
                description=f"{adjective} {noun}" + (" (Hire)" if is_hire else ""),
                buy_price=cost,
                cost_price=cost,
                sell_price=sell,
                publish_on_web=True,
                stock_controlled=False,
                style=style,
                is_hire=is_hire,
            )
            next_id += 1
            self.stock_items.append(parent)
            styles += 1
            colours = rng.sample(_COLOURS, rng.randint(1, 3))
            for code, colour in sorted(colours):
                for size in sizes:
                    if len(self.children) >= self.spec.skus:
                        break
                    barcode_counter += 1
                    discontinued = rng.randrange(100) < 3
                    child = StockItem(
                        stock_id=next_id,
                        stock_code=f"{style}-{code}-{size}",
                        description=f"{parent.description} {colour} {size}",
                        buy_price=cost,
                        cost_price=cost,
                        sell_price=sell,
                        discontinued=discontinued,
                        publish_on_web=not discontinued and rng.randrange(100) < 95,
                        scs_parent_id=parent.stock_id,
                        style=style,
                        colour=colour,
                        size=size,
                        is_hire=is_hire,
                        barcodes=(Barcode(value=ean13(f"50{barcode_counter % 10**10:010d}")),),
                    )
                    next_id += 1
                    self.stock_items.append(child)
                    self.children.append(_Sku(child))
        self.counts["styles"] = styles
        self.counts["skus"] = len(self.children)
        self.counts["hire_skus"] = sum(1 for c in self.children if c.item.is_hire)
        self.counts["discontinued_skus"] = sum(1 for c in self.children if c.item.discontinued)
        self.counts["stock_items"] = len(self.stock_items)
        self.progress("catalogue", len(self.children), self.spec.skus)

    def build_registry(self) -> None:
        rng = self.rng
        candidates = [c.item for c in self.children if not c.item.is_hire]
        problems = rng.sample(candidates, min(6, len(candidates) - 1))
        missing, pending, inactive, mismatch = (
            problems[:2],
            problems[2:4],
            problems[4:5],
            problems[5:6],
        )
        skip = {i.stock_code for i in missing}
        status_of = {i.stock_code: AcsProductStatus.PENDING for i in pending}
        status_of |= {i.stock_code: AcsProductStatus.INACTIVE for i in inactive}
        mismatched = {i.stock_code for i in mismatch}
        self.problem_codes = {i.stock_code for i in problems}
        for sku in self.children:
            item = sku.item
            if item.stock_code in skip:
                continue
            barcode = item.barcodes[0].value
            if item.stock_code in mismatched:
                barcode = ean13(f"{int(barcode[:12]) + 7 * 10**9:012d}"[-12:])
            self.registry.append(
                AcsProduct(
                    sku=item.stock_code,
                    barcode=barcode,
                    style=item.style,
                    colour=item.colour,
                    size=item.size,
                    description=item.description,
                    is_hire=item.is_hire,
                    status=status_of.get(item.stock_code, AcsProductStatus.ACTIVE),
                )
            )
        self.unknown_sku = "TOP-9999-BLK-M"
        self.registry.append(
            AcsProduct(
                sku=self.unknown_sku,
                barcode=ean13("509999999999"),
                style="TOP-9999",
                colour="Black",
                size="M",
                description="Sample Top Black M",
                status=AcsProductStatus.ACTIVE,
            )
        )
        self.registry.sort(key=lambda p: p.sku)
        self.counts["acs_missing_skus"] = len(missing)
        self.counts["acs_pending_skus"] = len(pending)
        self.counts["acs_inactive_skus"] = len(inactive)
        self.counts["acs_barcode_mismatch_skus"] = len(mismatch)
        self.counts["acs_unknown_to_khaos_skus"] = 1
