"""The ACS simulator's state: SKU registry, orders, fulfilment over simulated time, units, feed.

No HTTP here: the app in ``simulator.py`` authenticates, injects faults and calls
these methods. Every public method takes the state lock, so uvicorn's threads and
the runner's ``on_clock`` never interleave inside a change.

Wire names (``OrderNumber``, ``GarmentSku``…) are used here on purpose: the
simulator speaks the modelled ACS contract, independently of the client's code, so
that a mismatch between the two shows up in the client's tests.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import heapq
import itertools
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from acs_khaos_dagster.sandbox.acs.files import RETURNS_COLUMNS
from acs_khaos_dagster.sandbox.scenario.manifest import FulfilmentPlan, ScenarioManifest

UK = ZoneInfo("Europe/London")

# Unit statuses the simulator writes (the scenario's file may spell them differently).
READY = "In Warehouse - Ready For Customer"
ALLOCATED = "Allocated"
PICKING = "Picking"
PACKED = "Packed"
WITH_CUSTOMER = "With Customer"
POST_RENTAL = "Post-Rental Inspection"
CLEANING = "Cleaning"

# The warehouse timetable, from the moment ACS receives an order.
ALLOCATE_AFTER = timedelta(minutes=30)
PICK_AFTER = timedelta(hours=1)
PACK_AFTER = timedelta(hours=2)
FIRST_DESPATCH_AFTER = timedelta(hours=3)
BETWEEN_SHIPMENTS = timedelta(hours=4)
DESPATCH_RESUMES_AT = time(9, 0)  # Monday, UK time, after a weekend hold
HIRE_DEFAULT_PERIOD = timedelta(days=4)
HIRE_RETURN_TRANSIT = timedelta(days=1)
HIRE_INSPECTION = timedelta(days=1)
HIRE_CLEANING = timedelta(days=1)
UNITS_PER_PARCEL = 10
KG_PER_UNIT = Decimal("0.6")

LOCKED_STATES = frozenset(
    {"PICKING", "PACKED", "PARTIALLY_DESPATCHED", "DESPATCHED", "ON_HIRE", "RETURN_DUE", "RETURNED"}
)
MAX_ADDRESS_LINE = 35
MAX_POSTCODE = 10
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


REQUIRED_ORDER_FIELDS = (
    "AccountCode",
    "OrderNumber",
    "OrderDate",
    "Delivery_Address1",
    "Delivery_Postcode",
    "DeliveryService",
    "DeliveryAgent",
    "OrderItems",
)
PRODUCT_FIELDS = ("sku", "barcode", "style", "colour", "size", "description", "is_hire")


class ApiError(Exception):
    """An HTTP error answer: status, ``errors`` list and extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str = "",
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or [{"field": field, "code": code, "message": message}]
        self.headers = headers or {}


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_dt(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _status_key(status: str) -> str:
    return re.sub(r"[^a-z]", "", status.casefold())


_READY_KEY = _status_key(READY)
# Where a graded customer return ends up at ACS, by the action taken (None: disposed).
RETURN_ACTION_STATUS: dict[str, str | None] = {
    "RESTOCK": READY,
    "RESALE": READY,
    "CLEAN": CLEANING,
    "REPAIR": "In Repair",
    "QUARANTINE": "Quarantine",
    "EX_HIRE": "Ex-Hired",
    "DISPOSE": None,
}


def _epc_for(unique_sku: str) -> str:
    """A stable 24-hex-digit RFID EPC for a unit the scenario did not tag."""
    return hashlib.sha256(unique_sku.encode()).hexdigest()[:24].upper()


_IN_PICK_KEYS = frozenset(_status_key(s) for s in (ALLOCATED, PICKING, PACKED))


def is_despatch_day(when: datetime) -> bool:
    return when.astimezone(UK).weekday() < 5


def hold_for_weekend(when: datetime) -> datetime:
    """ACS does not despatch at weekends: a weekend despatch waits for Monday 09:00 UK time."""
    local = when.astimezone(UK)
    if local.weekday() < 5:
        return when
    monday = local.date() + timedelta(days=7 - local.weekday())
    return datetime.combine(monday, DESPATCH_RESUMES_AT, tzinfo=UK).astimezone(UTC)


def encode_cursor(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise ApiError(422, "INVALID_CURSOR", "the cursor is not valid", "cursor") from None
    prefix, _, value = text.partition(":")
    if prefix != kind:
        raise ApiError(422, "INVALID_CURSOR", "the cursor is not valid", "cursor")
    return value


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(422, "INVALID_VALUE", f"limit must be 1..{MAX_LIMIT}", "limit")
    return limit


@dataclass(slots=True)
class Unit:
    sku: str
    unique_sku: str
    rfid_epc: str
    status: str
    location_code: str
    grade: str
    last_event_at: str
    order_number: str
    expected_return_date: str


@dataclass
class Product:
    sku: str
    attributes: dict[str, Any]
    status: str
    registered_at: datetime
    active_at: datetime | None
    puts: int = 0
    revisions: int = 0


@dataclass
class PlanLine:
    line_item_id: str
    sku: str
    quantity: int
    is_hire: bool
    unique_skus: list[str] = field(default_factory=list)


@dataclass
class Order:
    number: str
    body: dict[str, Any]
    status: str
    received_at: datetime
    revisions: int = 1
    puts: int = 1
    shipments_plan: list[list[PlanLine]] = field(default_factory=list)
    closed_short: list[dict[str, Any]] = field(default_factory=list)
    shipment_times: list[datetime] = field(default_factory=list)
    shipments: list[dict[str, Any]] = field(default_factory=list)
    units: list[str] = field(default_factory=list)  # unique_skus allocated to the order
    return_due_at: datetime | None = None
    history: list[tuple[str, str]] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self.status == "CANCELLED"

    @property
    def locked(self) -> bool:
        return self.status in LOCKED_STATES

    @property
    def is_hire(self) -> bool:
        return any(bool(item.get("IsHire")) for item in self.body.get("OrderItems", []))


class AcsState:
    def __init__(
        self,
        manifest: ScenarioManifest,
        scenario_dir: Path,
        account_code: str,
        activation_lag: timedelta | None,
        seed: int = 0,
    ) -> None:
        """``activation_lag``: how long ACS takes to set up a new SKU (None: never)."""
        self.lock = threading.RLock()
        self.received_returns: set[tuple[str, str]] = set()
        self.returned_per_line: dict[tuple[str, str], int] = {}
        self.account_code = account_code
        self.activation_lag = activation_lag
        self._random = random.Random(seed)
        self._seq = itertools.count()
        self._due: list[tuple[datetime, int, str, str]] = []  # (when, seq, order, action)
        self.products: dict[str, Product] = {}
        self.orders: dict[str, Order] = {}
        self.plans: dict[str, FulfilmentPlan] = {p.order_code: p for p in manifest.fulfilment_plans}
        self.feed: list[dict[str, Any]] = []  # served by ``feed.page``
        self.suppressed: set[str] = set()
        self.feed_faults: list[dict[str, Any]] = []
        self.delayed_events: list[dict[str, Any]] = []  # published on the next read
        self.units: dict[str, Unit] = {}
        self.units_by_sku: dict[str, list[Unit]] = {}
        self.despatched_units: dict[str, str] = {}  # unique_sku -> order number
        self.pending_returns: list[dict[str, str]] = []
        self.returns_written = 0
        self._event_seq = itertools.count(1)
        # Indexes kept beside the products: a brand registers 50k of them, and every request
        # would otherwise scan them all (activation, barcode uniqueness).
        self._activations: list[tuple[datetime, str]] = []  # (active_at, sku), a heap
        self._skus_by_barcode: dict[str, set[str]] = {}
        for product in manifest.acs_registry:
            status = str(product.status)
            self._add_product(
                Product(
                    sku=product.sku,
                    attributes=product.model_dump(mode="json", include=set(PRODUCT_FIELDS)),
                    status=status,
                    registered_at=manifest.start_at,
                    active_at=self._set_up_at(manifest.start_at) if status == "pending" else None,
                )
            )
        units_path = scenario_dir / manifest.files.stock_units
        if units_path.exists():
            self._load_units(units_path)

    # --- units -------------------------------------------------------------

    def _load_units(self, path: Path) -> None:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                clean = {(k or "").strip().casefold(): (v or "").strip() for k, v in row.items()}
                unit = Unit(
                    sku=clean.get("sku", ""),
                    unique_sku=clean.get("unique_sku", ""),
                    rfid_epc=clean.get("rfid_epc", ""),
                    status=clean.get("status", ""),
                    location_code=clean.get("location_code", ""),
                    grade=clean.get("grade", ""),
                    last_event_at=clean.get("last_event_at", ""),
                    order_number=clean.get("order_number", ""),
                    expected_return_date=clean.get("expected_return_date", ""),
                )
                if not unit.unique_sku:
                    continue
                self.units[unit.unique_sku] = unit
                self.units_by_sku.setdefault(unit.sku, []).append(unit)

    def _set_unit(
        self,
        unit: Unit,
        status: str,
        when: datetime,
        order_number: str | None = None,
        location: str | None = None,
        expected_return: str | None = None,
    ) -> None:
        unit.status = status
        unit.last_event_at = iso(when)
        if order_number is not None:
            unit.order_number = order_number
        if location is not None:
            unit.location_code = location
        if expected_return is not None:
            unit.expected_return_date = expected_return

    def unit_rows(self, snapshot_at: datetime) -> list[list[str]]:
        with self.lock:
            stamp = iso(snapshot_at)
            return [
                [
                    self.account_code,
                    stamp,
                    u.sku,
                    u.unique_sku,
                    u.rfid_epc,
                    u.status,
                    u.location_code,
                    u.grade,
                    u.last_event_at,
                    u.order_number,
                    u.expected_return_date,
                ]
                for u in self.units.values()
            ]

    def _returnable(self, row: dict[str, str]) -> bool:
        """Whether ACS could receive this unit back: an unexpected return (no order) can
        always arrive; a unit of an order can only come back once it was despatched, and hire
        units come back through the hire cycle, not as customer returns."""
        if not row["order_number"]:
            return True
        order = self.orders.get(row["order_number"])
        if order is None:
            return False
        despatched = 0
        for shipment in order.shipments:
            for line in shipment.get("lines", []):
                if str(line["line_item_id"]) == row["line_item_id"]:
                    despatched += int(line["quantity"])
        hire = any(
            str(item.get("LineItemId")) == row["line_item_id"] and item.get("IsHire")
            for item in order.body.get("OrderItems", [])
        )
        returned = self.returned_per_line.get((row["order_number"], row["line_item_id"]), 0)
        return not hire and returned < despatched

    def receive_customer_returns(self, rows: list[dict[str, str]]) -> int:
        """ACS receives and grades returned units: each comes back into stock per the action.

        ``rows`` are returns-file rows (contract columns). A unit already received is
        skipped, so the same return delivered twice changes nothing. The rows taken go
        into the next returns file; returns how many.
        """
        taken = 0
        with self.lock:
            for row in rows:
                key = (row["return_ref"], row["unique_sku"])
                if key in self.received_returns or not self._returnable(row):
                    continue
                self.received_returns.add(key)
                line_key = (row["order_number"], row["line_item_id"])
                self.returned_per_line[line_key] = self.returned_per_line.get(line_key, 0) + 1
                status = RETURN_ACTION_STATUS.get(row["action_taken"].strip().upper(), READY)
                when = parse_dt(row["received_at"]) or datetime.now(UTC)
                unit = self.units.get(row["unique_sku"])
                if status is None:  # disposed: the unit leaves the building
                    if unit is not None:
                        del self.units[row["unique_sku"]]
                elif unit is None:
                    unit = Unit(
                        sku=row["sku"],
                        unique_sku=row["unique_sku"],
                        rfid_epc=_epc_for(row["unique_sku"]),
                        status=status,
                        location_code="RETURNS",
                        grade=row["grade"],
                        last_event_at=iso(when),
                        order_number="",
                        expected_return_date="",
                    )
                    self.units[unit.unique_sku] = unit
                    self.units_by_sku.setdefault(unit.sku, []).append(unit)
                else:
                    unit.grade = row["grade"]
                    self._set_unit(unit, status, when, order_number="", location="RETURNS")
                self.pending_returns.append({c: row[c] for c in RETURNS_COLUMNS})
                taken += 1
        return taken

    def take_returns(self) -> list[list[str]]:
        with self.lock:
            rows = [[r[c] for c in RETURNS_COLUMNS] for r in self.pending_returns]
            self.returns_written += len(rows)
            self.pending_returns.clear()
            return rows

    # --- warehouse events (goods in, damage found, count corrections) ---------------

    def receive_goods(self, sku: str, count: int, when: datetime, ref: str) -> list[str]:
        """A supplier delivery: ``count`` new units of ``sku`` put away ready for customers.
        Their unique SKUs are ``<ref>-<n>``; returns them (a delivery received twice under
        the same ``ref`` adds nothing)."""
        added = []
        with self.lock:
            for n in range(1, count + 1):
                unique_sku = f"{ref}-{n}"
                if unique_sku in self.units:
                    continue
                unit = Unit(
                    sku=sku,
                    unique_sku=unique_sku,
                    rfid_epc=_epc_for(unique_sku),
                    status=READY,
                    location_code="GOODS-IN",
                    grade="A",
                    last_event_at=iso(when),
                    order_number="",
                    expected_return_date="",
                )
                self.units[unique_sku] = unit
                self.units_by_sku.setdefault(sku, []).append(unit)
                added.append(unique_sku)
        return added

    def free_units(self, sku: str) -> list[str]:
        """Units of ``sku`` ready for customers and not allocated to an order."""
        with self.lock:
            return [
                u.unique_sku
                for u in self.units_by_sku.get(sku, [])
                if _status_key(u.status) == _READY_KEY and not u.order_number
            ]

    def set_aside(self, unique_sku: str, status: str, when: datetime) -> None:
        """A unit found damaged (or otherwise unfit) on the shelf moves to ``status``."""
        with self.lock:
            self._set_unit(self.units[unique_sku], status, when, location="QUAR")

    def count_out(self, unique_sku: str) -> None:
        """A cycle count does not find the unit: it leaves ACS's stock."""
        with self.lock:
            unit = self.units.pop(unique_sku)
            self.units_by_sku[unit.sku].remove(unit)

    # --- time ----------------------------------------------------------------

    def advance(self, now: datetime) -> None:
        """Apply everything due up to ``now``, in time order (so the feed is chronological)."""
        with self.lock:
            while self._activations and self._activations[0][0] <= now:
                active_at, sku = heapq.heappop(self._activations)
                product = self.products[sku]
                if product.status == "pending" and product.active_at == active_at:
                    product.status = "active"
            while self._due and self._due[0][0] <= now:
                when, _, number, action = heapq.heappop(self._due)
                order = self.orders.get(number)
                if order is None or order.cancelled:
                    continue
                name, _, argument = action.partition(":")
                if name == "ship":
                    self._ship(order, int(argument), when)
                else:
                    getattr(self, f"_do_{name}")(order, when)

    def _set_up_at(self, registered_at: datetime) -> datetime | None:
        lag = self.activation_lag
        return None if lag is None else registered_at + lag

    def _schedule(self, when: datetime, order: Order, action: str) -> None:
        heapq.heappush(self._due, (when, next(self._seq), order.number, action))

    def _move(self, order: Order, status: str, when: datetime) -> None:
        order.status = status
        order.history.append((iso(when), status))

    # --- products --------------------------------------------------------------

    def put_product(self, sku: str, body: dict[str, Any], now: datetime) -> tuple[bool, dict]:
        errors: list[dict[str, str]] = []
        self._check_account(body, errors)
        if "sku" not in body or not isinstance(body.get("sku"), str) or not body["sku"]:
            errors.append(_err("sku", "MISSING_FIELD", "sku is required"))
        elif body["sku"] != sku:
            errors.append(
                _err(
                    "sku",
                    "SKU_MISMATCH",
                    "the body's sku differs from the path; a SKU cannot be renamed",
                )
            )
        for name in ("barcode", "style", "colour", "size", "description"):
            if name in body and body[name] is not None and not isinstance(body[name], str):
                errors.append(_err(name, "INVALID_VALUE", f"{name} must be a string"))
        if "is_hire" in body and not isinstance(body["is_hire"], bool):
            errors.append(_err("is_hire", "INVALID_VALUE", "is_hire must be a boolean"))
        if errors:
            raise ApiError(422, errors[0]["code"], errors[0]["message"], errors=errors)
        attributes = {
            "sku": sku,
            "barcode": body.get("barcode") or "",
            "style": body.get("style") or "",
            "colour": body.get("colour") or "",
            "size": body.get("size") or "",
            "description": body.get("description") or "",
            "is_hire": bool(body.get("is_hire", False)),
        }
        with self.lock:
            self.advance(now)
            # ACS identifies a garment by its barcode at goods-in: one barcode, one SKU.
            barcode = attributes["barcode"]
            if barcode and self._skus_by_barcode.get(barcode, set()) - {sku}:
                raise ApiError(
                    422,
                    "DUPLICATE_BARCODE",
                    f"barcode {barcode} is already registered to another SKU",
                    errors=[
                        _err(
                            "barcode",
                            "DUPLICATE_BARCODE",
                            f"barcode {barcode} belongs to another SKU",
                        )
                    ],
                )
            product = self.products.get(sku)
            if product is None:
                product = Product(
                    sku=sku,
                    attributes=attributes,
                    status="pending",
                    registered_at=now,
                    active_at=self._set_up_at(now),
                    puts=1,
                    revisions=1,
                )
                self._add_product(product)
                return True, self._product_json(product)
            product.puts += 1
            if product.attributes != attributes:
                self._forget_barcode(product)
                product.attributes = attributes
                product.revisions += 1
                self._remember_barcode(product)
            return False, self._product_json(product)

    def get_product(self, sku: str, now: datetime) -> dict:
        with self.lock:
            self.advance(now)
            product = self.products.get(sku)
            if product is None:
                raise ApiError(404, "NOT_FOUND", f"unknown product {sku}", "sku")
            return self._product_json(product)

    def list_products(self, cursor: str | None, limit: int, now: datetime) -> dict:
        after = decode_cursor("p", cursor) if cursor else None
        with self.lock:
            self.advance(now)
            skus = sorted(self.products)
            if after is not None:
                skus = [s for s in skus if s > after]
            page = skus[:limit]
            more = len(skus) > limit
            return {
                "products": [self._product_json(self.products[s]) for s in page],
                "next_cursor": encode_cursor("p", page[-1]) if more and page else None,
            }

    def _add_product(self, product: Product) -> None:
        self.products[product.sku] = product
        self._remember_barcode(product)
        if product.status == "pending" and product.active_at is not None:
            heapq.heappush(self._activations, (product.active_at, product.sku))

    def _remember_barcode(self, product: Product) -> None:
        barcode = product.attributes.get("barcode")
        if barcode:
            self._skus_by_barcode.setdefault(barcode, set()).add(product.sku)

    def _forget_barcode(self, product: Product) -> None:
        barcode = product.attributes.get("barcode")
        if barcode:
            self._skus_by_barcode.get(barcode, set()).discard(product.sku)

    def set_product_status(self, sku: str, status: str, active_at: datetime | None = None) -> dict:
        """``active_at``: when a ``pending`` product becomes active by itself (never if None)."""
        if status not in ("active", "inactive", "pending"):
            raise ApiError(422, "INVALID_VALUE", "status must be active, inactive or pending")
        with self.lock:
            product = self.products.get(sku)
            if product is None:
                raise ApiError(404, "NOT_FOUND", f"unknown product {sku}", "sku")
            product.status = status
            product.active_at = active_at if status == "pending" else None
            if product.active_at is not None:
                heapq.heappush(self._activations, (product.active_at, sku))
            return self._product_json(product)

    @staticmethod
    def _product_json(product: Product) -> dict:
        return {**product.attributes, "status": product.status}

    # --- orders ------------------------------------------------------------------

    def _check_account(self, body: dict[str, Any], errors: list[dict[str, str]]) -> None:
        if body.get("AccountCode") != self.account_code:
            errors.append(
                _err(
                    "AccountCode", "INVALID_ACCOUNT", "AccountCode does not match this subscription"
                )
            )

    def _validate_order(self, number: str, body: dict[str, Any]) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = []
        for name in REQUIRED_ORDER_FIELDS:
            value = body.get(name)
            if value is None or value == "" or value == []:
                errors.append(_err(name, "MISSING_FIELD", f"{name} is required"))
        if "AccountCode" in body:
            self._check_account(body, errors)
        if body.get("OrderNumber") not in (None, "", number):
            errors.append(
                _err(
                    "OrderNumber",
                    "ORDER_NUMBER_MISMATCH",
                    "the body's OrderNumber differs from the path",
                )
            )
        for name in (
            "OrderDate",
            "DispatchDate",
            "DeliveryDate",
            "EventDate",
            "WarehouseReturnDate",
        ):
            value = body.get(name)
            if value not in (None, "") and parse_dt(value) is None:
                errors.append(_err(name, "INVALID_VALUE", f"{name} must be an ISO-8601 datetime"))
        for name in (
            "Delivery_Address1",
            "Delivery_Address2",
            "Delivery_Address3",
            "Delivery_Address4",
        ):
            value = body.get(name)
            if isinstance(value, str) and len(value) > MAX_ADDRESS_LINE:
                errors.append(
                    _err(
                        name,
                        "FIELD_TOO_LONG",
                        f"{name} is longer than {MAX_ADDRESS_LINE} characters",
                    )
                )
        postcode = body.get("Delivery_Postcode")
        if isinstance(postcode, str) and len(postcode) > MAX_POSTCODE:
            errors.append(
                _err(
                    "Delivery_Postcode",
                    "FIELD_TOO_LONG",
                    f"Delivery_Postcode is longer than {MAX_POSTCODE} characters",
                )
            )
        if "OrderCancelled" in body and not isinstance(body["OrderCancelled"], bool):
            errors.append(_err("OrderCancelled", "INVALID_VALUE", "OrderCancelled is a boolean"))
        items = body.get("OrderItems")
        if items is not None and not isinstance(items, list):
            errors.append(_err("OrderItems", "INVALID_VALUE", "OrderItems must be a list"))
            items = []
        seen: set[str] = set()
        cancelling = body.get("OrderCancelled") is True
        for index, item in enumerate(items or []):
            where = f"OrderItems[{index}]"
            if not isinstance(item, dict):
                errors.append(_err(where, "INVALID_VALUE", "an order item is an object"))
                continue
            line_id = item.get("LineItemId")
            if not isinstance(line_id, str) or not line_id:
                errors.append(
                    _err(f"{where}.LineItemId", "MISSING_FIELD", "LineItemId is required")
                )
            elif line_id in seen:
                errors.append(
                    _err(
                        f"{where}.LineItemId",
                        "DUPLICATE_LINE",
                        f"LineItemId {line_id} appears twice",
                    )
                )
            else:
                seen.add(line_id)
            quantity = item.get("ItemQuantity")
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
                errors.append(
                    _err(
                        f"{where}.ItemQuantity",
                        "INVALID_VALUE",
                        "ItemQuantity must be a positive integer",
                    )
                )
            price = item.get("ItemPrice")
            if not isinstance(price, int | float | str) or isinstance(price, bool):
                errors.append(
                    _err(f"{where}.ItemPrice", "INVALID_VALUE", "ItemPrice must be a number")
                )
            sku = item.get("GarmentSku")
            if not isinstance(sku, str) or not sku:
                errors.append(
                    _err(f"{where}.GarmentSku", "MISSING_FIELD", "GarmentSku is required")
                )
            elif not cancelling:
                product = self.products.get(sku)
                if product is None:
                    errors.append(
                        _err(
                            f"{where}.GarmentSku", "UNKNOWN_SKU", f"SKU {sku} is not set up at ACS"
                        )
                    )
                elif product.status != "active":
                    errors.append(
                        _err(
                            f"{where}.GarmentSku",
                            "INACTIVE_SKU",
                            f"SKU {sku} is {product.status}, not active",
                        )
                    )
        return errors

    def put_order(self, number: str, body: dict[str, Any], now: datetime) -> tuple[bool, dict]:
        with self.lock:
            self.advance(now)
            errors = self._validate_order(number, body)
            if errors:
                raise ApiError(422, errors[0]["code"], errors[0]["message"], errors=errors)
            body = {**body, "OrderNumber": number}
            order = self.orders.get(number)
            cancelling = body.get("OrderCancelled") is True
            if order is None:
                order = Order(number=number, body=body, status="RECEIVED", received_at=now)
                order.history.append((iso(now), "RECEIVED"))
                self.orders[number] = order
                if cancelling:
                    self._move(order, "CANCELLED", now)
                else:
                    self._schedule(now + ALLOCATE_AFTER, order, "allocate")
                    self._schedule(now + PICK_AFTER, order, "pick")
                    self._schedule(now + PACK_AFTER, order, "pack")
                return True, self._order_json(order)
            order.puts += 1
            if order.body == body:
                return False, self._order_json(order)
            if order.locked:
                raise ApiError(
                    409,
                    "ORDER_LOCKED",
                    f"order {number} is {order.status}: picking has started",
                    "",
                )
            if order.cancelled:
                raise ApiError(409, "ORDER_CANCELLED", f"order {number} is cancelled", "")
            self._release_units(order, now)
            order.body = body
            order.revisions += 1
            if cancelling:
                self._move(order, "CANCELLED", now)
            elif order.status == "AWAITING_PICK":
                self._do_allocate(order, now)
            return False, self._order_json(order)

    def get_order(self, number: str, now: datetime) -> dict:
        with self.lock:
            self.advance(now)
            order = self.orders.get(number)
            if order is None:
                raise ApiError(404, "NOT_FOUND", f"unknown order {number}", "OrderNumber")
            return self._order_json(order)

    @staticmethod
    def _order_json(order: Order) -> dict:
        return {
            **order.body,
            "Status": order.status,
            "Shipments": [dict(event) for event in order.shipments],
        }

    # --- fulfilment -------------------------------------------------------------------

    def _release_units(self, order: Order, now: datetime) -> None:
        for unique_sku in order.units:
            unit = self.units.get(unique_sku)
            if unit is not None and unit.status in (ALLOCATED, PICKING, PACKED):
                self._set_unit(unit, READY, now, order_number="")
        order.units = []
        order.shipments_plan = []
        order.closed_short = []

    def _plan(self, order: Order) -> tuple[list[list[PlanLine]], list[dict[str, Any]]]:
        """Shipments and closures for the order's current body, from the scenario's plan."""
        items = {str(i["LineItemId"]): i for i in order.body.get("OrderItems", [])}
        remaining = {line_id: int(i["ItemQuantity"]) for line_id, i in items.items()}
        plan = self.plans.get(order.number)
        short: list[dict[str, Any]] = []
        shipments: list[list[PlanLine]] = []
        reason = plan.short_reason if plan else "STOCK_NOT_FOUND"
        if plan is not None:
            for planned in plan.closed_short:
                line_id = str(planned.order_item_id)
                quantity = min(planned.quantity, remaining.get(line_id, 0))
                if quantity > 0:
                    short.append({"line_item_id": line_id, "quantity": quantity, "reason": reason})
                    remaining[line_id] -= quantity
            for planned_shipment in plan.shipments:
                lines: list[PlanLine] = []
                for planned in planned_shipment:
                    line_id = str(planned.order_item_id)
                    quantity = min(planned.quantity, remaining.get(line_id, 0))
                    if quantity > 0:
                        item = items[line_id]
                        lines.append(
                            PlanLine(
                                line_id, item["GarmentSku"], quantity, bool(item.get("IsHire"))
                            )
                        )
                        remaining[line_id] -= quantity
                if lines:
                    shipments.append(lines)
        leftovers = [
            PlanLine(
                line_id, items[line_id]["GarmentSku"], quantity, bool(items[line_id].get("IsHire"))
            )
            for line_id, quantity in remaining.items()
            if quantity > 0
        ]
        if leftovers:
            if shipments:
                shipments[-1].extend(leftovers)
            else:
                shipments.append(leftovers)
        return shipments, short

    def _do_allocate(self, order: Order, when: datetime) -> None:
        shipments, short = self._plan(order)
        kept: list[list[PlanLine]] = []
        used: set[str] = set()
        for lines in shipments:
            kept_lines: list[PlanLine] = []
            for line in lines:
                candidates = self.units_by_sku.get(line.sku, [])
                # Units the scenario already shows as allocated to this order come first.
                ready = [
                    u
                    for u in candidates
                    if u.order_number == order.number and _status_key(u.status) in _IN_PICK_KEYS
                ] + [
                    u
                    for u in candidates
                    if _status_key(u.status) == _READY_KEY and not u.order_number
                ]
                taken = [u for u in ready if u.unique_sku not in used][: line.quantity]
                used.update(u.unique_sku for u in taken)
                for unit in taken:
                    self._set_unit(unit, ALLOCATED, when, order_number=order.number)
                    line.unique_skus.append(unit.unique_sku)
                    order.units.append(unit.unique_sku)
                missing = line.quantity - len(taken)
                if missing:
                    # Stock not found at pick: ACS closes the rest of the line short.
                    short.append(
                        {
                            "line_item_id": line.line_item_id,
                            "quantity": missing,
                            "reason": "STOCK_NOT_FOUND",
                        }
                    )
                    line.quantity = len(taken)
                if line.quantity > 0:
                    kept_lines.append(line)
            if kept_lines:
                kept.append(kept_lines)
        order.shipments_plan = kept
        order.closed_short = _merge_short(short)
        self._move(order, "AWAITING_PICK", when)

    def _do_pick(self, order: Order, when: datetime) -> None:
        for unique_sku in order.units:
            self._set_unit(self.units[unique_sku], PICKING, when)
        self._move(order, "PICKING", when)

    def _do_pack(self, order: Order, when: datetime) -> None:
        for unique_sku in order.units:
            self._set_unit(self.units[unique_sku], PACKED, when)
        self._move(order, "PACKED", when)
        count = max(1, len(order.shipments_plan))
        times: list[datetime] = []
        at = order.received_at + FIRST_DESPATCH_AFTER
        for index in range(count):
            at = hold_for_weekend(max(at, when))
            times.append(at)
            self._schedule(at, order, f"ship:{index}")
            at = at + BETWEEN_SHIPMENTS
        order.shipment_times = times

    def _ship(self, order: Order, index: int, when: datetime) -> None:
        last = index >= len(order.shipments_plan) - 1
        lines = order.shipments_plan[index] if index < len(order.shipments_plan) else []
        body = order.body
        carrier = str(body.get("DeliveryAgent") or "")
        unit_count = sum(line.quantity for line in lines)
        parcels = []
        for parcel_no in range(1, (unit_count + UNITS_PER_PARCEL - 1) // UNITS_PER_PARCEL + 1):
            in_parcel = min(UNITS_PER_PARCEL, unit_count - (parcel_no - 1) * UNITS_PER_PARCEL)
            tracking = f"{carrier or 'TRK'}{self._random.randrange(10**11, 10**12)}"
            parcels.append(
                {
                    "parcel_no": parcel_no,
                    "tracking_number": tracking,
                    "tracking_url": f"https://track.example.test/{carrier.lower()}/{tracking}",
                    "weight_kg": float(KG_PER_UNIT * in_parcel),
                }
            )
        expected_return = ""
        if order.is_hire:
            due = parse_dt(body.get("WarehouseReturnDate")) or (when + HIRE_DEFAULT_PERIOD)
            expected_return = iso(due)
        for line in lines:
            for unique_sku in line.unique_skus:
                unit = self.units[unique_sku]
                if line.is_hire:
                    self._set_unit(
                        unit, WITH_CUSTOMER, when, location="", expected_return=expected_return
                    )
                else:
                    # A sold unit leaves ACS's stock: it is no longer in the snapshot.
                    del self.units[unique_sku]
                    self.units_by_sku[unit.sku].remove(unit)
                    self.despatched_units[unique_sku] = order.number
        event: dict[str, Any] = {
            "event_id": f"DSP{next(self._event_seq):08d}",
            "order_number": order.number,
            "shipment_id": f"{order.number}-{index + 1}",
            "despatched_at": iso(when),
            "carrier": carrier,
            "service": str(body.get("DeliveryService") or ""),
            "parcels": parcels,
            "lines": [
                {
                    "line_item_id": line.line_item_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unique_skus": list(line.unique_skus),
                }
                for line in lines
            ],
        }
        if last and order.closed_short:
            event["closed_short"] = [dict(c) for c in order.closed_short]
        order.shipments.append(event)
        self.feed.append(event)
        if not last:
            self._move(order, "PARTIALLY_DESPATCHED", when)
        elif order.is_hire:
            self._move(order, "ON_HIRE", when)
            due = parse_dt(body.get("WarehouseReturnDate")) or (when + HIRE_DEFAULT_PERIOD)
            order.return_due_at = max(due, when)
            self._schedule(order.return_due_at, order, "return_due")
        else:
            self._move(order, "DESPATCHED", when)

    def _hire_units(self, order: Order) -> list[Unit]:
        hire_lines = {
            str(i["LineItemId"]) for i in order.body.get("OrderItems", []) if i.get("IsHire")
        }
        units = []
        for lines in order.shipments_plan:
            for line in lines:
                if line.line_item_id in hire_lines:
                    units.extend(self.units[u] for u in line.unique_skus if u in self.units)
        return units

    def _do_return_due(self, order: Order, when: datetime) -> None:
        self._move(order, "RETURN_DUE", when)
        self._schedule(when + HIRE_RETURN_TRANSIT, order, "returned")

    def _do_returned(self, order: Order, when: datetime) -> None:
        self._move(order, "RETURNED", when)
        line_of = {
            u: line.line_item_id
            for lines in order.shipments_plan
            for line in lines
            for u in line.unique_skus
        }
        for unit in self._hire_units(order):
            self._set_unit(unit, POST_RENTAL, when, location="INSP", expected_return="")
            self.pending_returns.append(
                {
                    "return_ref": f"RET-{order.number}-{unit.unique_sku}",
                    "order_number": order.number,
                    "line_item_id": line_of.get(unit.unique_sku, ""),
                    "sku": unit.sku,
                    "unique_sku": unit.unique_sku,
                    "received_at": iso(when),
                    "grade": "A",
                    "action_taken": "CLEAN",
                    "action_reason": "POST_RENTAL",
                    "defect_codes": "",
                    "repair_cost": "0.00",
                }
            )
        self._schedule(when + HIRE_INSPECTION, order, "cleaning")

    def _do_cleaning(self, order: Order, when: datetime) -> None:
        for unit in self._hire_units(order):
            self._set_unit(unit, CLEANING, when, location="CLEAN")
        self._schedule(when + HIRE_CLEANING, order, "restocked")

    def _do_restocked(self, order: Order, when: datetime) -> None:
        for unit in self._hire_units(order):
            self._set_unit(unit, READY, when, order_number="", location="HIRE-RACK")

    # --- truth --------------------------------------------------------------------------

    def truth(self, now: datetime) -> dict[str, Any]:
        with self.lock:
            self.advance(now)
            by_status = Counter(u.status for u in self.units.values())
            return {
                "now": iso(now),
                "account_code": self.account_code,
                "products": [
                    {
                        "sku": p.sku,
                        "status": p.status,
                        "attributes": dict(p.attributes),
                        "registered_at": iso(p.registered_at),
                        "active_at": iso(p.active_at) if p.active_at else None,
                        "puts": p.puts,
                        "revisions": p.revisions,
                    }
                    for p in sorted(self.products.values(), key=lambda p: p.sku)
                ],
                "orders": [
                    {
                        "order_number": o.number,
                        "body": dict(o.body),
                        "status": o.status,
                        "shipments": [dict(e) for e in o.shipments],
                        "cancelled": o.cancelled,
                        "locked": o.locked,
                        "revisions": o.revisions,
                        "puts": o.puts,
                        "received_at": iso(o.received_at),
                        "shipment_times": [iso(t) for t in o.shipment_times],
                        "closed_short": [dict(c) for c in o.closed_short],
                        "units": list(o.units),
                        "history": [list(h) for h in o.history],
                    }
                    for o in self.orders.values()
                ],
                "despatch_events": [dict(e) for e in self.feed],
                "feed": {
                    "suppressed": sorted(self.suppressed),
                    "faults": [dict(f) for f in self.feed_faults],
                    "delayed": [e["event_id"] for e in self.delayed_events],
                },
                "units": {
                    "total": len(self.units),
                    "by_status": dict(by_status),
                    "despatched": len(self.despatched_units),
                },
                "returns": {"pending": len(self.pending_returns), "written": self.returns_written},
            }


def _err(field_name: str, code: str, message: str) -> dict[str, str]:
    return {"field": field_name, "code": code, "message": message}


def _merge_short(short: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], int] = {}
    for entry in short:
        key = (entry["line_item_id"], entry["reason"])
        merged[key] = merged.get(key, 0) + int(entry["quantity"])
    return [{"line_item_id": k[0], "quantity": q, "reason": k[1]} for k, q in merged.items()]
