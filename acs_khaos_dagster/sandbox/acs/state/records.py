"""What the parts of the ACS state share: unit statuses, the warehouse timetable, the
API's limits and error answer, wire helpers (times, cursors, limits) and the records
held (``Unit``, ``Product``, ``PlanLine``, ``Order``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

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


def _err(field_name: str, code: str, message: str) -> dict[str, str]:
    return {"field": field_name, "code": code, "message": message}
