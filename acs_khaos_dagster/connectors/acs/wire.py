"""ACS partner API wire format: JSON bodies to and from ``domain.models`` records.

This module and ``client.py`` are the only places that know ACS's JSON field names.
Conversions are pure functions so they can be tested without a server.

Rules applied before anything is sent:

* **Address lines** (``Delivery_Address1..4``, at most 35 characters each). Empty
  lines are dropped and runs of spaces collapsed. A line longer than 35 characters
  is split at word boundaries; the overflow goes onto the next line, pushing the
  following lines down so the address still reads in order (so a long first line
  with empty lines 2-4 simply continues on the next free line). A single word longer
  than 35 characters is cut into 35-character pieces. If more than four lines
  result, the surplus is joined onto the fourth line (``", "``) and the fourth line
  is shortened to 35 characters, at a word boundary when there is one: the end of
  the address is the part a courier needs least, city and postcode travel in their
  own fields.
* **Postcode** (``Delivery_Postcode``, at most 10): upper-cased, spaces removed, and
  for GB addresses one space put before the inward code (the last three characters),
  so ``" sw1a1aa "`` becomes ``"SW1A 1AA"``. A postcode still longer than 10 raises
  ``PermanentError`` (code ``FIELD_TOO_LONG``) before any request is made.
* **Datetimes**: sent as UTC, ISO-8601 with a ``Z`` (``2024-01-08T09:00:00Z``); read by
  ``times.AcsTimeRules`` (an offset as written; none: UK wall-clock time by default).
* **Money**: JSON numbers (two decimal places at most in practice).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from acs_khaos_dagster.connectors.acs.times import DEFAULT_TIME_RULES, AcsTimeRules
from acs_khaos_dagster.connectors.errors import PermanentError
from acs_khaos_dagster.domain.models import (
    AcsOrder,
    AcsOrderState,
    AcsOrderStatus,
    AcsProduct,
    AcsProductStatus,
    DespatchEvent,
    Parcel,
    ShipmentLine,
    ShortClosure,
)

SYSTEM = "acs"
ADDRESS_LINE_MAX = 35
ADDRESS_LINES = 4
POSTCODE_MAX = 10
_SPACES = re.compile(r"\s+")


# --- scalars ----------------------------------------------------------------


def format_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes sent to ACS must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: str, times: AcsTimeRules = DEFAULT_TIME_RULES) -> datetime:
    return times.parse(value)


def _money(value: Decimal) -> float | int:
    # JSON has no decimal type; a 2-dp price survives float's shortest repr exactly.
    return int(value) if value == value.to_integral_value() else float(value)


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# --- address and postcode -------------------------------------------------------


def _wrap(line: str, width: int) -> list[str]:
    """Split one line into pieces of at most ``width`` characters at word boundaries."""
    pieces: list[str] = []
    current = ""
    for word in line.split(" "):
        while len(word) > width:  # a word that can never fit is cut
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:width])
            word = word[width:]
        if not word:
            continue
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= width:
            current = candidate
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces


def _shorten(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    cut = text[: width + 1].rsplit(" ", 1)[0] if " " in text[: width + 1] else ""
    cut = cut.rstrip(" ,")
    return cut if cut else text[:width].rstrip()


def split_address_lines(
    lines: Sequence[str], width: int = ADDRESS_LINE_MAX, slots: int = ADDRESS_LINES
) -> list[str]:
    """Fit address lines into ``slots`` lines of ``width`` characters (rule in the module doc).

    Always returns exactly ``slots`` strings (unused ones empty).
    """
    pieces: list[str] = []
    for raw in lines:
        line = _SPACES.sub(" ", raw or "").strip()
        if line:
            pieces.extend(_wrap(line, width))
    if len(pieces) > slots:
        tail = ", ".join(pieces[slots - 1 :])
        pieces = [*pieces[: slots - 1], _shorten(tail, width)]
    return pieces + [""] * (slots - len(pieces))


def normalise_postcode(postcode: str, country: str = "GB") -> str:
    """Upper-case, no inner spaces but one before a GB inward code; ``ValueError`` if > 10."""
    compact = _SPACES.sub("", postcode or "").upper()
    if country.upper() in ("GB", "UK") and len(compact) >= 5:
        normalised = f"{compact[:-3]} {compact[-3:]}"
    else:
        normalised = _SPACES.sub(" ", (postcode or "").strip()).upper()
    if len(normalised) > POSTCODE_MAX:
        raise ValueError(f"postcode is longer than {POSTCODE_MAX} characters")
    return normalised


# --- products ------------------------------------------------------------------------


def product_to_wire(product: AcsProduct, account_code: str) -> dict[str, Any]:
    return {
        "AccountCode": account_code,
        "sku": product.sku,
        "barcode": product.barcode,
        "style": product.style,
        "colour": product.colour,
        "size": product.size,
        "description": product.description,
        "is_hire": product.is_hire,
    }


def product_from_wire(data: dict[str, Any]) -> AcsProduct:
    status = str(data.get("status") or "").lower()
    try:
        parsed_status = AcsProductStatus(status)
    except ValueError:
        # An unknown status never makes a SKU sellable.
        parsed_status = AcsProductStatus.INACTIVE
    return AcsProduct(
        sku=str(data["sku"]),
        barcode=str(data.get("barcode") or ""),
        style=str(data.get("style") or ""),
        colour=str(data.get("colour") or ""),
        size=str(data.get("size") or ""),
        description=str(data.get("description") or ""),
        is_hire=bool(data.get("is_hire", False)),
        status=parsed_status,
    )


# --- orders -------------------------------------------------------------------------------


def order_to_wire(order: AcsOrder, account_code: str) -> dict[str, Any]:
    """The ``PUT orders/{OrderNumber}.json`` body. Raises ``PermanentError`` if it cannot fit."""
    address = order.delivery_address
    line1, line2, line3, line4 = split_address_lines(
        [address.line1, address.line2, address.line3, address.line4]
    )
    try:
        postcode = normalise_postcode(address.postcode, address.country)
    except ValueError as exc:
        raise PermanentError(
            str(exc),
            system=SYSTEM,
            operation="put_order",
            code="FIELD_TOO_LONG",
            details=[{"field": "Delivery_Postcode", "code": "FIELD_TOO_LONG", "message": str(exc)}],
        ) from None
    return {
        "AccountCode": account_code,
        "OrderNumber": order.order_number,
        "OrderDate": format_datetime(order.order_date),
        "DispatchDate": format_datetime(order.despatch_date),
        "EventDate": format_datetime(order.event_date),
        "WarehouseReturnDate": format_datetime(order.warehouse_return_date),
        "FirstName": order.contact.first_name,
        "LastName": order.contact.last_name,
        "Email": order.contact.email,
        "MobilePhone": order.contact.phone,
        "Delivery_Address1": line1,
        "Delivery_Address2": line2,
        "Delivery_Address3": line3,
        "Delivery_Address4": line4,
        "Delivery_City": address.city,
        "Delivery_County": address.county,
        "Delivery_Postcode": postcode,
        "DeliveryService": order.delivery_service,
        "DeliveryAgent": order.delivery_agent,
        "DeliveryCharge": _money(order.delivery_charge),
        "Comments": order.comments,
        "OrderCancelled": order.cancelled,
        "OrderItems": [
            {
                "LineItemId": line.line_item_id,
                "GarmentSku": line.sku,
                "IsHire": line.is_hire,
                "ItemPrice": _money(line.price),
                "ItemQuantity": line.quantity,
            }
            for line in order.lines
        ],
    }


def despatch_from_wire(
    data: dict[str, Any], times: AcsTimeRules = DEFAULT_TIME_RULES
) -> DespatchEvent:
    return DespatchEvent(
        event_id=str(data["event_id"]),
        order_number=str(data["order_number"]),
        shipment_id=str(data["shipment_id"]),
        despatched_at=parse_datetime(str(data["despatched_at"]), times),
        carrier=str(data.get("carrier") or ""),
        service=str(data.get("service") or ""),
        parcels=tuple(
            Parcel(
                parcel_no=int(p["parcel_no"]),
                tracking_number=str(p["tracking_number"]),
                tracking_url=str(p.get("tracking_url") or ""),
                weight_kg=_decimal(p.get("weight_kg")),
            )
            for p in data.get("parcels") or []
        ),
        lines=tuple(
            ShipmentLine(
                line_item_id=str(line["line_item_id"]),
                sku=str(line["sku"]),
                quantity=int(line["quantity"]),
                unique_skus=tuple(str(u) for u in line.get("unique_skus") or []),
            )
            for line in data.get("lines") or []
        ),
        closed_short=tuple(
            ShortClosure(
                line_item_id=str(c["line_item_id"]),
                quantity=int(c["quantity"]),
                reason=str(c.get("reason") or ""),
            )
            for c in data.get("closed_short") or []
        ),
    )


def order_status_from_wire(
    data: dict[str, Any], times: AcsTimeRules = DEFAULT_TIME_RULES
) -> AcsOrderStatus:
    return AcsOrderStatus(
        order_number=str(data["OrderNumber"]),
        status=AcsOrderState(str(data["Status"])),
        shipments=tuple(despatch_from_wire(s, times) for s in data.get("Shipments") or []),
    )


def unexpected_response(operation: str, exc: Exception) -> PermanentError:
    """A 2xx answer this module cannot read (a contract change): never retried blindly."""
    kind = "missing field" if isinstance(exc, KeyError) else type(exc).__name__
    if isinstance(exc, ValidationError):
        kind = f"{exc.error_count()} invalid field(s)"
    return PermanentError(
        f"unexpected response shape ({kind})",
        system=SYSTEM,
        operation=operation,
        code="UNEXPECTED_RESPONSE",
    )
