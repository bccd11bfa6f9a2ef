"""Khaos wire documents <-> domain records (the only module that knows Khaos field names).

Limits are enforced here, before anything is sent (``WireValidationError``):
stock codes trimmed, 1–50 characters, no ``#``; at most 100 codes per
``ExportStock``; references at most ``khaos.reference_max_length`` (50) characters;
address lines at most 35. Nulls are never sent: an absent value is an omitted element.

Only fields the modelled contract names are sent or read (``docs/go-live-checklist.md``
lists them, with the setting each maps to). Quantities are whole numbers, read whether
an install writes them ``10`` or ``10.0000``; a fractional one is refused.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from decimal import Decimal

from acs_khaos_dagster.connectors.khaos.records import (
    KhaosAdjustmentGroup,
    KhaosCustomerReturn,
    StockFigures,
)
from acs_khaos_dagster.connectors.khaos.uk_time import format_uk, parse_uk
from acs_khaos_dagster.connectors.khaos.xml import (
    add_fields,
    children,
    int_of,
    parse_bool,
    sub,
    text_of,
)
from acs_khaos_dagster.domain.models import (
    Address,
    AdjustmentLine,
    Barcode,
    Contact,
    CustomerReturn,
    DespatchPosting,
    Invoice,
    InvoiceLine,
    OrderLine,
    Package,
    ReturnItem,
    SalesOrder,
    Site,
    StockAdjustmentGroup,
    StockItem,
)

MAX_STOCK_CODE = 50
MAX_EXPORT_STOCK_CODES = 100
MAX_REF = 50
MAX_ADDRESS_LINE = 35


class WireValidationError(ValueError):
    """A value Khaos would reject; found before sending."""


# --- limits ------------------------------------------------------------------------


def clean_stock_code(code: str) -> str:
    value = code.strip()
    if not value:
        raise WireValidationError("a stock code cannot be empty")
    if len(value) > MAX_STOCK_CODE:
        raise WireValidationError(f"stock code {value[:20]!r}… is longer than {MAX_STOCK_CODE}")
    if "#" in value:
        raise WireValidationError(f"stock code {value!r} contains '#'")
    return value


def clean_ref(value: str, field: str, required: bool = True, max_len: int = MAX_REF) -> str:
    text = value.strip()
    if required and not text:
        raise WireValidationError(f"{field} is required")
    if len(text) > max_len:
        raise WireValidationError(f"{field} is longer than {max_len} characters")
    return text


def check_address(address: Address) -> Address:
    """Refuse address lines Khaos would truncate or reject (over 35 characters)."""
    for name in ("line1", "line2", "line3", "line4", "city", "county"):
        if len(getattr(address, name)) > MAX_ADDRESS_LINE:
            raise WireValidationError(f"address {name} is longer than {MAX_ADDRESS_LINE}")
    return address


def _money(value: Decimal) -> str:
    return format(value, "f")


def _decimal(element: ET.Element, tag: str) -> Decimal:
    text = text_of(element, tag).strip()
    return Decimal(text) if text else Decimal("0")


def _int(element: ET.Element, tag: str) -> int:
    value = int_of(element, tag)
    if value is None:
        raise ValueError(f"{tag} missing in the reply")
    return value


def whole_number(text: str, tag: str) -> int:
    """A quantity as Khaos writes it: ``10`` or ``10.0000``; never a fraction."""
    try:
        number = Decimal(text.strip())
    except ArithmeticError:
        raise ValueError(f"{tag} {text!r} is not a number") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"{tag} {text!r} is not a whole number of units")
    return int(number)


def _quantity(element: ET.Element, tag: str, default: int | None = None) -> int:
    text = text_of(element, tag).strip()
    if not text:
        if default is None:
            raise ValueError(f"{tag} missing in the reply")
        return default
    return whole_number(text, tag)


def _optional_quantity(element: ET.Element, tag: str) -> int | None:
    return _quantity(element, tag) if text_of(element, tag).strip() else None


# --- request documents ---------------------------------------------------------------


def stock_codes_doc(codes: Iterable[str], limit: int = MAX_EXPORT_STOCK_CODES) -> ET.Element:
    cleaned = [clean_stock_code(c) for c in codes]
    if len(cleaned) > limit:
        raise WireValidationError(f"at most {limit} stock codes per call, got {len(cleaned)}")
    root = ET.Element("STOCK_CODES")
    for code in cleaned:
        sub(root, "StockCode", code)
    return root


def id_list(ids: Iterable[int]) -> str:
    return ",".join(str(int(i)) for i in ids)


def despatch_params(posting: DespatchPosting, max_ref: int = MAX_REF) -> dict[str, object]:
    if not posting.lines:
        raise WireValidationError("a despatch needs at least one line")
    items = ET.Element("ITEMS")
    for order_item_id, quantity in posting.lines:
        if quantity <= 0:
            raise WireValidationError("despatch quantities must be positive")
        add_fields(
            ET.SubElement(items, "ITEM"), {"OrderItemID": order_item_id, "Quantity": quantity}
        )
    packages = ET.Element("PACKAGES")
    for pkg in posting.packages:
        add_fields(
            ET.SubElement(packages, "PACKAGE"),
            {
                "ConsignmentRef": clean_ref(
                    pkg.consignment_ref, "ConsignmentRef", required=False, max_len=max_ref
                ),
                "CourierCode": clean_ref(
                    pkg.courier_code, "CourierCode", required=False, max_len=max_ref
                ),
                "ShipmentDate": format_uk(pkg.shipment_date),
            },
        )
    return {
        "SOrderID": posting.order_id,
        "ExternalRef": clean_ref(posting.external_ref, "ExternalRef", max_len=max_ref),
        "Items": items,
        "Packages": packages,
    }


def adjustment_params(group: StockAdjustmentGroup, max_ref: int = MAX_REF) -> dict[str, object]:
    if not group.lines:
        raise WireValidationError("an adjustment group needs at least one line")
    lines = ET.Element("ADJUSTMENTS")
    for line in group.lines:
        if (line.adjust_to is None) == (line.adjust_by is None):
            raise WireValidationError("each adjustment line needs exactly one of to / by")
        add_fields(
            ET.SubElement(lines, "ADJUSTMENT"),
            {
                "StockID": line.stock_id,
                "AdjustTo": line.adjust_to,
                "AdjustBy": line.adjust_by,
                "ReasonCode": clean_ref(line.reason_code, "ReasonCode", max_len=max_ref),
                "Value": _money(line.value),
            },
        )
    return {
        "SiteID": group.site_id,
        "GroupRef": clean_ref(group.group_ref, "GroupRef", max_len=max_ref),
        "Lines": lines,
    }


def return_params(ret: CustomerReturn, max_ref: int = MAX_REF) -> dict[str, object]:
    if not ret.items:
        raise WireValidationError("a customer return needs at least one item")
    if ret.site_id is not None:
        # The modelled ImportCustomerReturns has no site: Khaos takes the source order's.
        raise WireValidationError("ImportCustomerReturns takes no SiteID")
    doc = ET.Element("CUSTOMER_RETURN")
    add_fields(
        doc,
        {
            "AssociatedRef": clean_ref(ret.associated_ref, "AssociatedRef", max_len=max_ref),
            "URN": clean_ref(ret.customer_urn, "URN", max_len=max_ref),
        },
    )
    items = ET.SubElement(doc, "ITEMS")
    for item in ret.items:
        add_fields(
            ET.SubElement(items, "ITEM"),
            {
                "SKU": clean_stock_code(item.sku),
                "Quantity": item.quantity,
                "ReturnReason": clean_ref(item.return_reason, "ReturnReason", max_len=max_ref),
                "SourceOrderItemID": item.source_order_item_id,
            },
        )
    return {
        "CustomerReturn": doc,
        "ProcessReturn": ret.process_return,
        "CreditMode": ret.credit_mode.value,
    }


# --- reply documents -------------------------------------------------------------------


def parse_sites(doc: ET.Element | None) -> list[Site]:
    return [
        Site(site_id=_int(el, "SiteID"), name=text_of(el, "SiteName"))
        for el in children(doc, "SITE")
    ]


def parse_stock_codes(doc: ET.Element | None) -> list[str]:
    return [(el.text or "").strip() for el in children(doc, "StockCode")]


def parse_stock_items(doc: ET.Element | None) -> list[StockItem]:
    items = []
    for el in children(doc, "STOCK_ITEM"):
        barcodes = tuple(
            Barcode(value=text_of(bc, "Barcode"), kind=text_of(bc, "Type") or "EAN13")
            for bc in children(el.find("Barcodes"), "BARCODE")
            if text_of(bc, "Barcode")
        )
        items.append(
            StockItem(
                stock_id=_int(el, "StockID"),
                stock_code=text_of(el, "StockCode"),
                description=text_of(el, "ShortDescription"),
                buy_price=_decimal(el, "BuyPrice"),
                cost_price=_decimal(el, "CostPrice"),
                sell_price=_decimal(el, "SellPrice"),
                discontinued=parse_bool(text_of(el, "Discontinued")),
                publish_on_web=parse_bool(text_of(el, "PublishOnWeb")),
                stock_controlled=parse_bool(text_of(el, "StockControlled")),
                scs_parent_id=int_of(el, "SCSParentID"),
                style=text_of(el, "Style"),
                colour=text_of(el, "Colour"),
                size=text_of(el, "Size"),
                is_hire=parse_bool(text_of(el, "IsHire")),
                barcodes=barcodes,
            )
        )
    return items


def parse_stock_status(doc: ET.Element | None) -> list[StockFigures]:
    return [
        StockFigures(
            stock_id=_int(el, "StockID"),
            site_id=_int(el, "SiteID"),
            level=_optional_quantity(el, "Level"),
            available=_quantity(el, "Available"),
            on_order=_quantity(el, "OnOrder", 0),
        )
        for el in children(doc, "STOCK")
    ]


def _parse_package(el: ET.Element) -> Package:
    return Package(
        consignment_ref=text_of(el, "ConsignmentRef"),
        courier_code=text_of(el, "CourierCode"),
        shipment_date=parse_uk(text_of(el, "ShipmentDate")),
    )


def parse_invoice(el: ET.Element) -> Invoice:
    issue = text_of(el, "IssueDate").strip()
    return Invoice(
        invoice_id=_int(el, "InvoiceID"),
        invoice_code=text_of(el, "InvoiceCode"),
        stage_id=_int(el, "INVOICE_STAGE_ID"),
        lines=tuple(
            InvoiceLine(
                order_item_id=_int(it, "OrderItemID"),
                stock_id=_int(it, "StockID"),
                quantity=_quantity(it, "Quantity"),
            )
            for it in children(el.find("ITEMS"), "ITEM")
        ),
        issue_date=parse_uk(issue) if issue else None,
        external_ref=text_of(el, "ExternalRef"),
        packages=tuple(_parse_package(p) for p in children(el.find("PACKAGES"), "PACKAGE")),
    )


def parse_orders(doc: ET.Element | None) -> list[SalesOrder]:
    orders = []
    for el in children(doc, "ORDER"):
        head = el.find("HEADER")
        if head is None:
            raise ValueError("ORDER without HEADER in the reply")
        orders.append(
            SalesOrder(
                order_id=_int(head, "SOrderID"),
                order_code=text_of(head, "SOrderCode"),
                associated_ref=text_of(head, "AssociatedRef"),
                order_date=parse_uk(text_of(head, "OrderDate")),
                courier_code=text_of(head, "CourierCode"),
                customer_urn=text_of(head, "CustomerURN"),
                site_id=_int(head, "SiteID"),
                contact=Contact(
                    first_name=text_of(head, "DeliveryForename"),
                    last_name=text_of(head, "DeliverySurname"),
                    email=text_of(head, "DeliveryEmail"),
                    phone=text_of(head, "DeliveryTelephone"),
                ),
                delivery_address=Address(
                    line1=text_of(head, "DeliveryAddress1"),
                    line2=text_of(head, "DeliveryAddress2"),
                    line3=text_of(head, "DeliveryAddress3"),
                    line4=text_of(head, "DeliveryAddress4"),
                    city=text_of(head, "DeliveryTown"),
                    county=text_of(head, "DeliveryCounty"),
                    postcode=text_of(head, "DeliveryPostcode"),
                    country=text_of(head, "DeliveryCountry") or "GB",
                ),
                lines=tuple(
                    OrderLine(
                        order_item_id=_int(it, "OrderItemID"),
                        stock_id=_int(it, "StockID"),
                        stock_code=text_of(it, "StockCode"),
                        quantity=_quantity(it, "Quantity"),
                        unit_net=_decimal(it, "UnitNet"),
                        is_hire=parse_bool(text_of(it, "IsHire")),
                    )
                    for it in children(el.find("ITEMS"), "ITEM")
                ),
                invoices=tuple(parse_invoice(i) for i in children(el.find("INVOICES"), "INVOICE")),
            )
        )
    return orders


def parse_move_results(doc: ET.Element | None) -> dict[int, bool | str]:
    results: dict[int, bool | str] = {}
    for el in children(doc, "INVOICE"):
        moved = parse_bool(text_of(el, "Moved"))
        results[_int(el, "InvoiceID")] = True if moved else (text_of(el, "Reason") or "refused")
    return results


def parse_despatch_result(doc: ET.Element | None) -> Invoice:
    invoice = None if doc is None else doc.find("INVOICE")
    if invoice is None:
        raise ValueError("ImportDespatch reply without INVOICE")
    return parse_invoice(invoice)


def parse_adjustment_result(doc: ET.Element | None) -> tuple[int, dict[str, str]]:
    if doc is None:
        raise ValueError("ImportStockAdjustments reply is empty")
    group_id = _int(doc, "GroupID")
    details = {"group_id": str(group_id)}
    for line in children(doc.find("LINES"), "LINE"):
        details[f"result:{text_of(line, 'StockID')}"] = text_of(line, "Result")
    return group_id, details


def parse_adjustment_groups(doc: ET.Element | None) -> list[KhaosAdjustmentGroup]:
    groups = []
    for el in children(doc, "GROUP"):
        groups.append(
            KhaosAdjustmentGroup(
                group_id=_int(el, "GroupID"),
                site_id=_int(el, "SiteID"),
                group_ref=text_of(el, "GroupRef"),
                lines=tuple(
                    AdjustmentLine(
                        stock_id=_int(ln, "StockID"),
                        adjust_to=_optional_quantity(ln, "AdjustTo"),
                        adjust_by=_optional_quantity(ln, "AdjustBy"),
                        reason_code=text_of(ln, "ReasonCode"),
                        value=_decimal(ln, "Value"),
                    )
                    for ln in children(el.find("LINES"), "LINE")
                ),
            )
        )
    return groups


def parse_return_result(doc: ET.Element | None) -> tuple[int, dict[str, str]]:
    if doc is None:
        raise ValueError("ImportCustomerReturns reply is empty")
    return_id = _int(doc, "ReturnID")
    return return_id, {
        "return_id": str(return_id),
        "credit_note_id": text_of(doc, "CreditNoteID"),
    }


def parse_customer_returns(doc: ET.Element | None) -> list[KhaosCustomerReturn]:
    out = []
    for el in children(doc, "CUSTOMER_RETURN"):
        out.append(
            KhaosCustomerReturn(
                return_id=_int(el, "ReturnID"),
                associated_ref=text_of(el, "AssociatedRef"),
                items=tuple(
                    ReturnItem(
                        sku=text_of(it, "SKU"),
                        quantity=_quantity(it, "Quantity"),
                        return_reason=text_of(it, "ReturnReason"),
                        source_order_item_id=int_of(it, "SourceOrderItemID"),
                    )
                    for it in children(el.find("ITEMS"), "ITEM")
                ),
                credit_note_id=int_of(el, "CreditNoteID"),
                credit_value=_decimal(el, "CreditValue"),
                credit_status=text_of(el, "CreditStatus") or "none",
            )
        )
    return out
