"""Reply documents: what Khaos answers, as domain records."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from acs_khaos_dagster.connectors.khaos.records import (
    KhaosAdjustmentGroup,
    KhaosCustomerReturn,
    StockFigures,
)
from acs_khaos_dagster.connectors.khaos.uk_time import parse_uk
from acs_khaos_dagster.connectors.khaos.wire.limits import (
    _decimal,
    _int,
    _optional_quantity,
    _quantity,
)
from acs_khaos_dagster.connectors.khaos.xml import (
    children,
    int_of,
    parse_bool,
    text_of,
)
from acs_khaos_dagster.domain.models import (
    Address,
    AdjustmentLine,
    Barcode,
    Contact,
    Invoice,
    InvoiceLine,
    OrderLine,
    Package,
    ReturnItem,
    SalesOrder,
    Site,
    StockItem,
)

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
