"""Business records exchanged with ACS and Khaos Control, in the business's words.

Connectors convert their wire formats to and from these models; nothing here
knows a wire field name. Datetimes are timezone-aware UTC; money is ``Decimal``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _require_utc(value: datetime | None) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError("datetimes must be timezone-aware")
    return value


# --- Catalogue ------------------------------------------------------------


class Barcode(Record):
    value: str = Field(min_length=1, max_length=50)
    kind: str = "EAN13"


class StockItem(Record):
    """A Khaos stock item (SKU master row). ``stock_id`` is stable; ``stock_code`` can change."""

    stock_id: int
    stock_code: str
    description: str = ""
    buy_price: Decimal = Decimal("0")
    cost_price: Decimal = Decimal("0")
    sell_price: Decimal = Decimal("0")
    discontinued: bool = False
    publish_on_web: bool = False
    stock_controlled: bool = True
    scs_parent_id: int | None = None
    style: str = ""
    colour: str = ""
    size: str = ""
    is_hire: bool = False
    barcodes: tuple[Barcode, ...] = ()


class AcsProductStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    PENDING = "pending"


class AcsProduct(Record):
    """A garment SKU as registered at ACS."""

    sku: str
    barcode: str = ""
    style: str = ""
    colour: str = ""
    size: str = ""
    description: str = ""
    is_hire: bool = False
    status: AcsProductStatus = AcsProductStatus.PENDING


class Site(Record):
    site_id: int
    name: str


class StockLevel(Record):
    """Khaos stock of one StockID at one site. ``available = level - allocated``."""

    stock_id: int
    stock_code: str
    site_id: int
    level: int
    available: int
    on_order: int = 0


# --- Orders ---------------------------------------------------------------


class Address(Record):
    line1: str = ""
    line2: str = ""
    line3: str = ""
    line4: str = ""
    city: str = ""
    county: str = ""
    postcode: str = ""
    country: str = "GB"


class Contact(Record):
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""


class OrderLine(Record):
    order_item_id: int
    stock_id: int
    stock_code: str
    quantity: int = Field(gt=0)
    unit_net: Decimal
    is_hire: bool = False


class InvoiceLine(Record):
    order_item_id: int
    stock_id: int
    quantity: int


class Package(Record):
    consignment_ref: str
    courier_code: str
    shipment_date: datetime
    tracking_url: str = ""

    _utc = field_validator("shipment_date")(_require_utc)


class Invoice(Record):
    invoice_id: int
    invoice_code: str
    stage_id: int
    lines: tuple[InvoiceLine, ...] = ()
    issue_date: datetime | None = None
    external_ref: str = ""
    packages: tuple[Package, ...] = ()

    _utc = field_validator("issue_date")(_require_utc)


class SalesOrder(Record):
    """A Khaos sales order with its invoices (one per shipment)."""

    order_id: int
    order_code: str
    associated_ref: str = ""
    order_date: datetime
    courier_code: str = ""
    customer_urn: str = ""
    site_id: int
    contact: Contact = Contact()
    delivery_address: Address = Address()
    lines: tuple[OrderLine, ...]
    invoices: tuple[Invoice, ...] = ()

    _utc = field_validator("order_date")(_require_utc)


class AcsOrderLine(Record):
    line_item_id: str
    sku: str
    quantity: int = Field(gt=0)
    price: Decimal
    is_hire: bool = False


class AcsOrder(Record):
    """An order as ACS is told about it (one ``PUT orders``)."""

    order_number: str
    order_date: datetime
    contact: Contact
    delivery_address: Address
    delivery_service: str = "48"
    delivery_agent: str = "DPD"
    delivery_charge: Decimal = Decimal("0")
    comments: str = ""
    cancelled: bool = False
    lines: tuple[AcsOrderLine, ...]
    despatch_date: datetime | None = None
    event_date: datetime | None = None
    warehouse_return_date: datetime | None = None

    _utc = field_validator("order_date", "despatch_date", "event_date", "warehouse_return_date")(
        _require_utc
    )


class Parcel(Record):
    parcel_no: int
    tracking_number: str
    tracking_url: str = ""
    weight_kg: Decimal | None = None


class ShipmentLine(Record):
    line_item_id: str
    sku: str
    quantity: int = Field(gt=0)
    unique_skus: tuple[str, ...] = ()


class ShortClosure(Record):
    line_item_id: str
    quantity: int = Field(gt=0)
    reason: str


class DespatchEvent(Record):
    """One shipment leaving ACS (delivered at least once, not necessarily in order)."""

    event_id: str
    order_number: str
    shipment_id: str
    despatched_at: datetime
    carrier: str = ""
    service: str = ""
    parcels: tuple[Parcel, ...] = ()
    lines: tuple[ShipmentLine, ...] = ()
    closed_short: tuple[ShortClosure, ...] = ()

    _utc = field_validator("despatched_at")(_require_utc)


class AcsOrderState(StrEnum):
    RECEIVED = "RECEIVED"
    HOLDING = "HOLDING"
    AWAITING_PICK = "AWAITING_PICK"
    PICKING = "PICKING"
    PACKED = "PACKED"
    PARTIALLY_DESPATCHED = "PARTIALLY_DESPATCHED"
    DESPATCHED = "DESPATCHED"
    CANCELLED = "CANCELLED"
    ON_HIRE = "ON_HIRE"
    RETURN_DUE = "RETURN_DUE"
    RETURNED = "RETURNED"


class AcsOrderStatus(Record):
    order_number: str
    status: AcsOrderState
    shipments: tuple[DespatchEvent, ...] = ()


# --- Khaos writes ----------------------------------------------------------


class DespatchPosting(Record):
    """One ACS shipment posted to Khaos (``ImportDespatch``)."""

    order_id: int
    external_ref: str
    lines: tuple[tuple[int, int], ...]  # (order_item_id, quantity)
    packages: tuple[Package, ...] = ()


class AdjustmentLine(Record):
    stock_id: int
    adjust_to: int | None = None
    adjust_by: int | None = None
    reason_code: str
    value: Decimal = Decimal("0")
    # The Level the line was planned against (a snapshot push): kept for the audit trail,
    # never sent. A push line is the planned change (``adjust_by``), so a retry or an
    # approval long after the plan applies that change to whatever Level Khaos has then.
    planned_level: int | None = None


class StockAdjustmentGroup(Record):
    site_id: int
    group_ref: str
    lines: tuple[AdjustmentLine, ...]


class StockMove(Record):
    """Push lines that must land together: one StockID's changes on several sites (a
    status move, with any variance on top), for many StockIDs at once.

    Khaos takes one site per ``ImportStockAdjustments``, so each site is a ``leg`` — an
    adjustment group of its own, ``group_ref`` ``{ref}-S{site_id}``. The outbox sends the
    legs one by one, reading each back first; if Khaos refuses a leg after others landed,
    the landed ones are reversed (``undo_of``), so a StockID's total never changes by half
    a move.
    """

    ref: str
    legs: tuple[StockAdjustmentGroup, ...]

    @field_validator("legs")
    @classmethod
    def _one_leg_per_site(
        cls, legs: tuple[StockAdjustmentGroup, ...]
    ) -> tuple[StockAdjustmentGroup, ...]:
        sites = [leg.site_id for leg in legs]
        if len(set(sites)) != len(sites):
            raise ValueError("a stock move has one leg per site")
        return legs


def leg_ref(move_ref: str, site_id: int) -> str:
    """The GroupRef of a move's leg on ``site_id``."""
    return f"{move_ref}-S{site_id}"


def undo_of(leg: StockAdjustmentGroup) -> StockAdjustmentGroup:
    """The group that reverses a landed leg exactly (its own GroupRef, ``-U``)."""
    return StockAdjustmentGroup(
        site_id=leg.site_id,
        group_ref=f"{leg.group_ref}-U",
        lines=tuple(
            line.model_copy(
                update={
                    "adjust_by": -int(line.adjust_by or 0),
                    "adjust_to": None,
                    "planned_level": None,
                }
            )
            for line in leg.lines
        ),
    )


class CreditMode(StrEnum):
    AUTO = "auto"
    REVIEW = "review"
    NONE = "none"


class ReturnItem(Record):
    sku: str
    quantity: int = Field(gt=0)
    return_reason: str
    source_order_item_id: int | None = None


class CustomerReturn(Record):
    associated_ref: str
    customer_urn: str
    items: tuple[ReturnItem, ...]
    process_return: bool = True
    credit_mode: CreditMode = CreditMode.REVIEW
    site_id: int | None = None


class WriteResult(Record):
    """What a write to another system returned, as stored in the outbox."""

    reference: str
    details: dict[str, str] = {}
