"""Seeded scenario generator: a fashion brand's catalogue, customers, orders and ACS files.

``generate_scenario(size, seed, out_dir)`` writes ``manifest.json`` (a
``ScenarioManifest``) and two ACS files in the contract's layout:
``stock_units_{account}_{yyyymmddHHMMSS}.csv`` (the snapshot at ``start_at``)
and ``returns_{account}_{yyyymmddHHMMSS}.csv``. The same seed gives the same
bytes: everything comes from one ``random.Random(seed)``, integer arithmetic for
quantities and money, a fixed ``start_at`` (Monday 2026-03-02 07:00 UTC) and no
wall clock. The units file is streamed SKU by SKU, so ``brand`` (3M units) runs
in bounded memory.

Sizes (child SKUs / units / orders / returns):
``tiny`` 20 / ~300 / 10 / 5, ``small`` 500 / ~20,000 / 300 / 100,
``brand`` 50,000 / ~3,000,000 / 20,000 / 5,000. Unit totals are approximate:
every SKU holds at least the units its orders allocate.

Catalogue
    Styles of one category (``DRS`` dress, ``TOP``, ``JKT``, ``TRS``, ``SKT``,
    ``KNT``, ``COT``, ``JNS``) with colour × size children. The parent is a
    non-stock-controlled ``StockItem`` (code ``DRS-0001``) with no units; each child
    (``DRS-0001-NVY-10``) has ``scs_parent_id``, style/colour/size, an EAN-13, cost
    and sell prices (cost 25–45 % of sell). About 10 % of styles are hire styles
    (every child ``is_hire``; at least one hire style); about 3 % of children are
    discontinued; most publish on the web.

ACS registry (``acs_registry``)
    Every child SKU active with matching attributes, except (sale SKUs, never
    ordered): 2 missing (``counts["acs_missing_skus"]``), 2 ``pending``, 1
    ``inactive``, 1 registered with a different barcode; plus 1 active SKU
    Khaos does not know (``counts["acs_unknown_to_khaos_skus"]``) that holds
    3 units ready for customer in the units file. Missing and pending SKUs have
    no units.

Units file (one row per physical unit; ``counts["status:<ACS status>"]``)
    Hire SKUs hold ~30 % of the units. Each ordered unit of a released order is
    one unit ``Allocated`` (70 %), ``Picking`` (20 %) or ``Packed`` (10 %)
    carrying that order's ``order_code`` as ``order_number`` (2–8 % of units
    depending on size). Every other unit: sale units 10 % in processing, the
    rest ``In Warehouse - Ready For Customer``; hire units 1/3 ``With
    Customer`` (with a historic hire order number ``SO9xxxxxx`` and an
    ``expected_return_date``), 1/6 ``Ex-Hired``, 10 % in processing, the rest
    ready. Overall: ready ≈ 70 %, allocated/picking/packed ≈ 2–8 %, processing
    ≈ 10 %, with customer ≈ 10 %, ex-hired ≈ 5 %. Processing is split between
    Receipted - No Location, Awaiting Inspection, In Warehouse Processing,
    Cleaning, In Refurbishment, In Repair, Quarantine and (hire only)
    Post-Rental Inspection. 5 % of rows spell the status differently (case,
    en dash, no spaces round the dash). ``small`` has 2 and ``brand`` 25 units
    with the unknown status ``Lost In Transit`` (``counts["units_unknown_status"]``).

Khaos levels (``khaos_levels``)
    The count of units per StockID × site under the default status policy:
    ready + allocated sale units on the selling site, hire units on hire stock,
    with customer on the on-hire site, processing units on their
    inspection/refurbishment/quarantine site; ex-hired and unknown units nowhere.
    Only non-zero levels are listed.

Orders and fulfilment plans
    Each order: 1–4 lines (40/30/20/10 %) of distinct active SKUs, quantity 1
    (2 for 10 % of sale lines), hire lines for hire SKUs (unit_net = 15 % of the
    sell price; sale lines at the sell price), one invoice at stage 9 on the
    selling site, dated before ``start_at``. Plans: one shipment, except 15 % of
    multi-line orders split over 2–3; 2 % of sale lines closed short
    (``STOCK_NOT_FOUND`` or ``DAMAGED_AT_PICK``).

Returns file
    Units of shipped order lines returned after ``start_at``, plus ~3 %
    unexpected returns (empty ``order_number``/``line_item_id``, a unit not in the
    snapshot). Grades by exact quota: A 60 %, B 25 %, C 10 %, BER 5 %. Actions: A
    → RESTOCK; B → CLEAN (60 %) or REPAIR; C → REPAIR (50 %), QUARANTINE (25 %)
    or RESALE; BER → EX_HIRE for hire lines, else DISPOSE.
"""

from __future__ import annotations

import csv
import itertools
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random
from typing import Literal

from acs_khaos_dagster.config import KhaosSettings, KhaosSites
from acs_khaos_dagster.domain.models import (
    AcsProduct,
    AcsProductStatus,
    Address,
    Barcode,
    Contact,
    Invoice,
    InvoiceLine,
    OrderLine,
    SalesOrder,
    Site,
    StockItem,
)
from acs_khaos_dagster.domain.stock_status import DEFAULT_STATUS_POLICY, site_id_for
from acs_khaos_dagster.sandbox.acs.files import (
    RETURNS,
    RETURNS_COLUMNS,
    STOCK_UNITS,
    STOCK_UNITS_COLUMNS,
)
from acs_khaos_dagster.sandbox.scenario.manifest import (
    MANIFEST_NAME,
    Customer,
    FulfilmentPlan,
    PlannedShipmentLine,
    ScenarioFiles,
    ScenarioManifest,
    SiteLevel,
)

ScenarioSize = Literal["tiny", "small", "brand"]
Progress = Callable[[str, int, int], None]

START_AT = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
HIRE_UNIT_SHARE_PCT = 30
STATUS_VARIANT_PCT = 5
UNKNOWN_STATUS = "Lost In Transit"
READY = "In Warehouse - Ready For Customer"
WITH_CUSTOMER = "With Customer"
EX_HIRED = "Ex-Hired"
ALLOCATION_STATUSES = (("Allocated", 70), ("Picking", 20), ("Packed", 10))
PROCESSING_STATUSES = (
    ("Receipted - No Location", 10),
    ("Awaiting Inspection", 15),
    ("In Warehouse Processing", 20),
    ("Cleaning", 15),
    ("In Refurbishment", 10),
    ("In Repair", 10),
    ("Quarantine", 5),
)
HIRE_ONLY_PROCESSING = (("Post-Rental Inspection", 15),)
GRADE_SHARES = (("A", 60), ("B", 25), ("C", 10), ("BER", 5))
SHORT_REASONS = ("STOCK_NOT_FOUND", "DAMAGED_AT_PICK")
_LOCATIONS = {
    "Receipted - No Location": "GOODSIN",
    "Awaiting Inspection": "INSP",
    "Post-Rental Inspection": "INSP-H",
    "In Warehouse Processing": "PROC",
    "Cleaning": "CLEAN",
    "In Refurbishment": "REFURB",
    "In Repair": "REPAIR",
    "Quarantine": "QUAR",
    "Picking": "PICK",
    "Packed": "PACK",
    EX_HIRED: "EXHIRE",
    UNKNOWN_STATUS: "",
    WITH_CUSTOMER: "",
}


@dataclass(frozen=True)
class ScenarioSpec:
    """How big a scenario is. ``generate_scenario`` picks one per size; tests may pass their own."""

    skus: int
    units: int
    orders: int
    returns: int
    unknown_status_units: int


SIZES: dict[str, ScenarioSpec] = {
    "tiny": ScenarioSpec(skus=20, units=300, orders=10, returns=5, unknown_status_units=0),
    "small": ScenarioSpec(skus=500, units=20_000, orders=300, returns=100, unknown_status_units=2),
    "brand": ScenarioSpec(
        skus=50_000, units=3_000_000, orders=20_000, returns=5_000, unknown_status_units=25
    ),
}

_CATEGORIES = (
    ("DRS", "Dress", ("6", "8", "10", "12", "14", "16"), (60, 260)),
    ("TOP", "Top", ("XS", "S", "M", "L", "XL"), (25, 90)),
    ("JKT", "Jacket", ("XS", "S", "M", "L", "XL"), (90, 320)),
    ("TRS", "Trousers", ("6", "8", "10", "12", "14", "16"), (45, 150)),
    ("SKT", "Skirt", ("6", "8", "10", "12", "14"), (40, 140)),
    ("KNT", "Jumper", ("XS", "S", "M", "L", "XL"), (50, 180)),
    ("COT", "Coat", ("6", "8", "10", "12", "14", "16"), (150, 480)),
    ("JNS", "Jeans", ("24", "26", "28", "30", "32"), (60, 160)),
)
_COLOURS = (
    ("NVY", "Navy"),
    ("BLK", "Black"),
    ("IVR", "Ivory"),
    ("RED", "Red"),
    ("GRN", "Forest Green"),
    ("PNK", "Blush Pink"),
    ("BLU", "Cobalt Blue"),
    ("CML", "Camel"),
    ("GRY", "Grey Marl"),
    ("OLV", "Olive"),
    ("BRG", "Burgundy"),
    ("SND", "Sand"),
)
_ADJECTIVES = (
    "Wrap",
    "Midi",
    "Tailored",
    "Linen",
    "Pleated",
    "Silk",
    "Belted",
    "Cropped",
    "Relaxed",
    "Fitted",
    "Tiered",
    "Ruched",
    "Satin",
    "Wool",
    "Broderie",
    "Jersey",
)
_FIRST_NAMES = (
    "Zoë",
    "Renée",
    "Siân",
    "Chloé",
    "Niamh",
    "Seán",
    "Aoife",
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Freya",
    "Grace",
    "Ruby",
    "Oliver",
    "Harry",
    "José",
    "Björn",
    "Mary-Kate",
    "Anne-Marie",
)
_LAST_NAMES = (
    "O'Brien",
    "D'Arcy",
    "McAllister",
    "Smith",
    "Jones",
    "Ní Bhriain",
    "Brontë",
    "Müller",
    "Fitzgerald-Hughes",
    "Taylor",
    "Davies",
    "Evans",
    "Wilson",
    "MacDonald",
    "O'Neill",
    "Le Brun",
    "St. John",
    "Ó Súilleabháin",
)
_STREETS = (
    "St. Mary's Road",
    "King's Parade",
    "Queen Street",
    "Church Lane",
    "Victoria Road",
    "Station Road",
    "High Street",
    "Mill Lane",
    "Castle Wynd",
    "Market Place",
    "Bishop's Walk",
    "Rue de l'Église Court",
)
_SECOND_LINES = (
    "",
    "",
    "",
    "Flat 3",
    "Flat 2/1",
    "The Old Rectory",
    "c/o Smith & Sons Ltd",
    "Unit 4, Marks & Spencer House",
    "Apartment 12",
    "Rose Cottage",
    "Café Zoë & Co",
)
_CITIES = (
    ("Glasgow", "G", "Lanarkshire"),
    ("Edinburgh", "EH", "Midlothian"),
    ("London", "SW", "Greater London"),
    ("London", "N", "Greater London"),
    ("Manchester", "M", "Greater Manchester"),
    ("Bath", "BA", "Somerset"),
    ("Llanelli", "SA", "Carmarthenshire"),
    ("Belfast", "BT", "County Antrim"),
    ("York", "YO", "North Yorkshire"),
    ("Brighton & Hove", "BN", "East Sussex"),
)
_DEFECTS_B = ("STAIN", "CREASE", "LOOSE_THREAD", "ODOUR")
_DEFECTS_C = ("TEAR", "BROKEN_ZIP", "MISSING_BUTTON", "STAIN", "SEAM_SPLIT", "FADING")
_DEFECTS_BER = ("TEAR", "BURN", "PERMANENT_STAIN", "FABRIC_DAMAGE")
ADDRESS_LINE_MAX = 35
POSTCODE_MAX = 10


# --- small helpers ------------------------------------------------------------------


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def ean13(body12: str) -> str:
    """Append the EAN-13 check digit to a 12-digit body."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


def _weighted(rng: Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _quota(total: int, shares: tuple[tuple[str, int], ...]) -> list[str]:
    """Exactly ``total`` labels in the given integer shares (largest remainder)."""
    weight = sum(w for _, w in shares)
    counts = {label: total * w // weight for label, w in shares}
    order = sorted(shares, key=lambda s: (-(total * s[1] % weight), s[0]))
    for label, _ in order[: total - sum(counts.values())]:
        counts[label] += 1
    return [label for label, _ in shares for _ in range(counts[label])]


def _apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to integer ``weights`` (largest remainder, deterministic)."""
    if not weights:
        return []
    whole = sum(weights)
    counts = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _spelling(rng: Random, status: str) -> str:
    """ACS's spelling drifts between files: case and dash style vary on a few rows."""
    if rng.randrange(100) >= STATUS_VARIANT_PCT:
        return status
    variant = rng.randrange(4)
    if variant == 0:
        return status.upper()
    if variant == 1:
        return status.lower()
    if variant == 2:
        return status.replace(" - ", " – ").replace("-", "–")
    return status.replace(" - ", "-")


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


# --- the scenario -------------------------------------------------------------------


@dataclass
class _Sku:
    item: StockItem
    units: int = 0
    allocated: int = 0  # units promised to generated order lines


class _Builder:
    def __init__(
        self,
        spec: ScenarioSpec,
        size: str,
        seed: int,
        out_dir: Path,
        account_code: str,
        progress: Progress | None,
        start_at: datetime = START_AT,
    ) -> None:
        self.start_at = start_at
        self.spec = spec
        self.size = size
        self.seed = seed
        self.out_dir = out_dir
        self.account = account_code
        self.progress = progress or (lambda stage, done, total: None)
        self.rng = Random(seed)
        self.sites: KhaosSites = KhaosSettings().sites
        self.counts: Counter[str] = Counter()
        self.stock_items: list[StockItem] = []
        self.children: list[_Sku] = []
        self.registry: list[AcsProduct] = []
        self.customers: list[Customer] = []
        self.orders: list[SalesOrder] = []
        self.plans: list[FulfilmentPlan] = []
        self.levels: Counter[tuple[int, int]] = Counter()
        self.problem_codes: set[str] = set()
        self.unknown_sku = ""

    # catalogue ----------------------------------------------------------------------

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

    # customers and orders --------------------------------------------------------------

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

    # units --------------------------------------------------------------------------

    def apportion_units(self) -> None:
        rng = self.rng
        holders = [
            s
            for s in self.children
            if s.item.stock_code not in self.problem_codes
            or s.item.stock_code in self._units_despite_problem()
        ]
        hire = [s for s in holders if s.item.is_hire]
        sale = [s for s in holders if not s.item.is_hire]
        hire_total = self.spec.units * HIRE_UNIT_SHARE_PCT // 100 if hire else 0
        for group, total in ((hire, hire_total), (sale, self.spec.units - hire_total)):
            weights = [rng.randint(20, 180) for _ in group]
            for sku, count in zip(group, _apportion(total, weights), strict=True):
                sku.units = max(count, sku.allocated + 1)

    def _units_despite_problem(self) -> set[str]:
        """Inactive and barcode-mismatched SKUs still have stock at ACS; missing/pending don't."""
        active_or_inactive = {p.sku for p in self.registry if p.status != AcsProductStatus.PENDING}
        return {c for c in self.problem_codes if c in active_or_inactive}

    def write_units(self, path: Path, line_units: dict[int, list[str]]) -> None:
        """Stream the snapshot SKU by SKU; count levels and statuses as rows are written."""
        rng = self.rng
        snapshot = iso_z(self.start_at)
        company = rng.randrange(16**6)
        serial = 0
        written = 0
        total = sum(s.units for s in self.children) + self.spec.unknown_status_units + 3
        status_counts: Counter[str] = Counter()
        lines_by_stock: dict[int, list[tuple[SalesOrder, OrderLine]]] = {}
        for order in self.orders:
            for line in order.lines:
                lines_by_stock.setdefault(line.stock_id, []).append((order, line))
        unknown_at = Counter(
            rng.choice([s.item.stock_id for s in self.children if s.units])
            for _ in range(self.spec.unknown_status_units)
        )
        hist_orders = max(1, self.spec.units // 60)

        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(STOCK_UNITS_COLUMNS)

            def unit_row(
                sku: str,
                status: str,
                moment: datetime,
                order_number: str = "",
                expected: str = "",
                grade: str = "",
            ) -> list[str]:
                nonlocal serial
                serial += 1
                prefix = _LOCATIONS.get(status)
                if prefix is None:
                    location = (
                        f"{rng.choice('ABCDEFGH')}{rng.randint(1, 40):02d}-"
                        f"{rng.randint(1, 12):02d}-{rng.choice('ABCDEF')}"
                    )
                else:
                    location = f"{prefix}-{rng.randint(1, 4):02d}" if prefix else ""
                return [
                    self.account,
                    snapshot,
                    sku,
                    f"U{serial:09d}",
                    f"30{company:06X}{serial:016X}",
                    _spelling(rng, status),
                    location,
                    grade,
                    iso_z(moment),
                    order_number,
                    expected,
                ]

            def count(item: StockItem, status: str) -> None:
                status_counts[status] += 1
                site = site_id_for(DEFAULT_STATUS_POLICY.rule_for(status), item.is_hire, self.sites)
                if site is not None:
                    self.levels[(item.stock_id, site)] += 1

            for sku in self.children:
                item = sku.item
                rows: list[list[str]] = []
                for order, line in lines_by_stock.get(item.stock_id, []):
                    units = line_units.setdefault(line.order_item_id, [])
                    for _ in range(line.quantity):
                        status = _weighted(rng, ALLOCATION_STATUSES)
                        moment = (
                            order.order_date + (self.start_at - order.order_date) * rng.random()
                        )
                        rows.append(
                            unit_row(
                                item.stock_code,
                                status,
                                moment.replace(microsecond=0),
                                order.order_code,
                                grade="A",
                            )
                        )
                        units.append(rows[-1][3])
                        count(item, status)
                for _ in range(sku.units - sku.allocated):
                    status = self._free_status(item.is_hire)
                    moment = self.start_at - timedelta(seconds=rng.randint(600, 60 * 86_400))
                    order_number = expected = grade = ""
                    if status == WITH_CUSTOMER:
                        order_number = f"SO{9_000_000 + rng.randint(1, hist_orders)}"
                        due = self.start_at + timedelta(days=rng.randint(1, 14))
                        expected = due.date().isoformat()
                    elif status == READY:
                        grade = "A" if rng.randrange(100) < 85 else "B"
                    elif status == EX_HIRED:
                        grade = "C"
                    rows.append(
                        unit_row(item.stock_code, status, moment, order_number, expected, grade)
                    )
                    count(item, status)
                for _ in range(unknown_at.get(item.stock_id, 0)):
                    moment = self.start_at - timedelta(seconds=rng.randint(600, 30 * 86_400))
                    rows.append(unit_row(item.stock_code, UNKNOWN_STATUS, moment))
                    count(item, UNKNOWN_STATUS)
                writer.writerows(rows)
                before, written = written, written + len(rows)
                if written // 10_000 != before // 10_000:
                    self.progress("units", written, total)
            for _ in range(3):  # a SKU ACS holds that Khaos does not know: units on no level
                moment = self.start_at - timedelta(seconds=rng.randint(600, 30 * 86_400))
                writer.writerow(unit_row(self.unknown_sku, READY, moment, grade="A"))
                status_counts[READY] += 1
                written += 1
        self.progress("units", written, total)
        self.counts["units"] = written
        self.counts["units_unknown_to_khaos"] = 3
        self.counts["units_unknown_status"] = status_counts[UNKNOWN_STATUS]
        for status, n in status_counts.items():
            self.counts[f"status:{status}"] = n
        self.next_serial = serial

    def _free_status(self, is_hire: bool) -> str:
        roll = self.rng.randrange(600)
        if is_hire:
            if roll < 200:  # 1/3
                return WITH_CUSTOMER
            if roll < 300:  # 1/6
                return EX_HIRED
            if roll < 360:  # 10 %
                return _weighted(self.rng, PROCESSING_STATUSES + HIRE_ONLY_PROCESSING)
            return READY
        if roll < 60:
            return _weighted(self.rng, PROCESSING_STATUSES)
        return READY

    # returns ------------------------------------------------------------------------

    def write_returns(self, folder: Path, line_units: dict[int, list[str]]) -> str:
        rng = self.rng
        lines = {ln.order_item_id: (order, ln) for order in self.orders for ln in order.lines}
        shipped = sorted(
            (line.order_item_id, unit)
            for plan in self.plans
            for shipment in plan.shipments
            for line in shipment
            for unit in line_units.get(line.order_item_id, [])[: line.quantity]
        )
        unexpected = max(1, self.spec.returns * 3 // 100)
        expected_count = min(len(shipped), self.spec.returns - unexpected)
        chosen = rng.sample(shipped, expected_count)
        grades = _quota(expected_count + unexpected, GRADE_SHARES)
        rng.shuffle(grades)
        sale_skus = [
            s.item
            for s in self.children
            if not s.item.is_hire and s.item.stock_code not in self.problem_codes
        ]
        rows: list[list[str]] = []
        grade_counts: Counter[str] = Counter()
        for i, grade in enumerate(grades):
            received = self.start_at + timedelta(
                days=rng.randint(3, 10), seconds=rng.randint(8 * 3600, 17 * 3600)
            )
            if i < len(chosen):
                order_item_id, unit = chosen[i]
                order, line = lines[order_item_id]
                order_number, line_item_id, sku, is_hire = (
                    order.order_code,
                    str(order_item_id),
                    line.stock_code,
                    line.is_hire,
                )
            else:
                self.next_serial += 1
                unit = f"U{self.next_serial:09d}"
                order_number, line_item_id, sku, is_hire = (
                    "",
                    "",
                    rng.choice(sale_skus).stock_code,
                    False,
                )
            action, reason, defects, cost = self._grade_outcome(grade, is_hire)
            grade_counts[grade] += 1
            self.counts[f"return_action:{action}"] += 1
            rows.append(
                [
                    f"ACSR{100_001 + i}",
                    order_number,
                    line_item_id,
                    sku,
                    unit,
                    iso_z(received),
                    grade,
                    action,
                    reason,
                    "|".join(defects),
                    cost,
                ]
            )
        rows.sort(key=lambda r: (r[5], r[0]))
        latest = max((datetime.fromisoformat(r[5]) for r in rows), default=self.start_at)
        name = f"{RETURNS}_{self.account}_{file_stamp(latest + timedelta(hours=1))}.csv"
        with (folder / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(RETURNS_COLUMNS)
            writer.writerows(rows)
        self.counts["returns"] = len(rows)
        self.counts["unexpected_returns"] = len(rows) - len(chosen)
        for grade, n in grade_counts.items():
            self.counts[f"grade:{grade}"] = n
        self.progress("returns", len(rows), len(rows))
        return name

    def _grade_outcome(self, grade: str, is_hire: bool) -> tuple[str, str, list[str], str]:
        rng = self.rng
        if grade == "A":
            return "RESTOCK", "Passed inspection", [], ""
        if grade == "B":
            defects = [rng.choice(_DEFECTS_B)]
            if rng.randrange(100) < 60:
                return "CLEAN", "Needs cleaning", defects, "4.50"
            cost = f"{rng.randint(5, 15)}.{rng.randrange(100):02d}"
            return "REPAIR", "Minor repair", defects, cost
        if grade == "C":
            defects = sorted(rng.sample(_DEFECTS_C, rng.randint(1, 3)))
            action = _weighted(rng, (("REPAIR", 50), ("QUARANTINE", 25), ("RESALE", 25)))
            cost = f"{rng.randint(15, 45)}.{rng.randrange(100):02d}" if action == "REPAIR" else ""
            return action, "Significant wear", defects, cost
        defects = sorted(rng.sample(_DEFECTS_BER, rng.randint(2, 3)))
        return ("EX_HIRE" if is_hire else "DISPOSE"), "Beyond economic repair", defects, ""

    # all together --------------------------------------------------------------------

    def run(self) -> ScenarioManifest:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.build_catalogue()
        self.build_registry()
        self.build_customers()
        self.build_orders()
        self.build_plans()
        self.apportion_units()
        units_name = f"{STOCK_UNITS}_{self.account}_{file_stamp(self.start_at)}.csv"
        line_units: dict[int, list[str]] = {}
        self.write_units(self.out_dir / units_name, line_units)
        returns_name = self.write_returns(self.out_dir, line_units)
        site_names = {
            "selling": "ACS Sellable",
            "hire_stock": "ACS Hire Stock",
            "on_hire": "ACS On Hire",
            "inspection": "ACS Inspection",
            "refurbishment": "ACS Refurbishment",
            "quarantine": "ACS Quarantine",
        }
        manifest = ScenarioManifest(
            seed=self.seed,
            size=self.size,
            account_code=self.account,
            start_at=self.start_at,
            sites=sorted(
                (
                    Site(site_id=site_id, name=site_names[role])
                    for role, site_id in self.sites.model_dump().items()
                ),
                key=lambda s: s.site_id,
            ),
            stock_items=sorted(self.stock_items, key=lambda s: s.stock_id),
            acs_registry=self.registry,
            khaos_levels=[
                SiteLevel(stock_id=stock_id, site_id=site_id, level=level)
                for (stock_id, site_id), level in sorted(self.levels.items())
            ],
            customers=sorted(self.customers, key=lambda c: c.urn),
            orders=sorted(self.orders, key=lambda o: o.order_id),
            fulfilment_plans=sorted(self.plans, key=lambda p: p.order_code),
            files=ScenarioFiles(stock_units=units_name, returns=returns_name),
            counts=dict(sorted(self.counts.items())),
        )
        (self.out_dir / MANIFEST_NAME).write_text(
            manifest.model_dump_json(indent=1) + "\n", encoding="utf-8"
        )
        self.progress("manifest", 1, 1)
        return manifest


def generate_scenario(
    size: ScenarioSize,
    seed: int,
    out_dir: Path,
    account_code: str = "BRAND01",
    progress: Progress | None = None,
    *,
    spec: ScenarioSpec | None = None,
    start_at: datetime = START_AT,
) -> ScenarioManifest:
    """Write a scenario folder (manifest + ACS files) and return its manifest.

    ``spec`` overrides the size's figures (tests use it for a mid-sized streaming check);
    ``start_at`` moves the whole brand in time (a summer start puts UK time an hour
    ahead of UTC: what ACS's times without an offset need to be tested against).
    """
    if size not in SIZES:
        raise ValueError(f"unknown scenario size {size!r}; expected one of {', '.join(SIZES)}")
    builder = _Builder(
        spec or SIZES[size], size, seed, Path(out_dir), account_code, progress, start_at
    )
    return builder.run()
