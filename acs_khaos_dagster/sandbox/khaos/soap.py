"""The simulator's side of the wire: parse operation parameters, render result documents.

Operations, their parameters (children of the operation element, after
``<Credentials>``) and their ``return`` documents:

=========================  ==========================================  =========================
operation                  parameters                                  return document
=========================  ==========================================  =========================
GetSiteList                –                                           SITES/SITE
GetStockList               DateValue                                   STOCK_CODES/StockCode
ExportStock                StockCodes (doc STOCK_CODES, ≤ 100)         STOCK_ITEMS/STOCK_ITEM
ExportStockStatus          StockCodes (doc), SiteID (0/absent = all)   STOCK_STATUS/STOCK
ExportOrders               InvoiceStageIDs ("9,12"), SiteID            ORDERS/ORDER
MoveInvoices               InvoiceIDs ("1,2"), DestinationStageID      MOVE_RESULTS/INVOICE
ExportOrderStatusEx        IDs, IncludeTracking, DateFrom, DateTo      ORDERS/ORDER
ImportDespatch             SOrderID, ExternalRef, Items (doc ITEMS),   DESPATCH_RESULT
                           Packages (doc PACKAGES)
ImportStockAdjustments     SiteID, GroupRef, Lines (doc ADJUSTMENTS)   ADJUSTMENT_RESULT
ExportStockAdjustments     GroupRef | DateFrom                         ADJUSTMENT_GROUPS/GROUP
ImportCustomerReturns      CustomerReturn (doc), ProcessReturn,        RETURN_RESULT
                           CreditMode (auto | review | none)
ExportCustomerReturns      AssociatedRef | DateFrom                    CUSTOMER_RETURNS/...
=========================  ==========================================  =========================
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from acs_khaos_dagster.connectors.khaos.uk_time import format_uk, parse_uk
from acs_khaos_dagster.connectors.khaos.xml import (
    UnsafeXmlError,
    add_fields,
    bool_text,
    children,
    parse_bool,
    parse_xml,
    sub,
    text_of,
)
from acs_khaos_dagster.domain.models import (
    Invoice,
    Package,
    SalesOrder,
    Site,
    StockItem,
    StockLevel,
)
from acs_khaos_dagster.sandbox.khaos.state import (
    AdjustmentGroupRecord,
    KhaosBooks,
    ReturnRecord,
    SimFault,
    validation,
)

OPERATIONS = (
    "GetSiteList",
    "GetStockList",
    "ExportStock",
    "ExportStockStatus",
    "ExportOrders",
    "MoveInvoices",
    "ExportOrderStatusEx",
    "ImportDespatch",
    "ImportStockAdjustments",
    "ExportStockAdjustments",
    "ImportCustomerReturns",
    "ExportCustomerReturns",
)
WRITE_OPERATIONS = frozenset(
    {"MoveInvoices", "ImportDespatch", "ImportStockAdjustments", "ImportCustomerReturns"}
)


# --- parameter parsing ----------------------------------------------------------


def _param(op: ET.Element, name: str) -> str | None:
    child = op.find(name)
    return None if child is None else (child.text or "")


def _int(value: str | None, name: str, required: bool = False) -> int | None:
    if value is None or not value.strip():
        if required:
            raise validation(f"{name} is required")
        return None
    try:
        return int(value.strip())
    except ValueError:
        raise validation(f"{name} must be an integer") from None


def _int_list(value: str | None, name: str) -> list[int]:
    if not value or not value.strip():
        return []
    try:
        return [int(p) for p in value.replace(";", ",").split(",") if p.strip()]
    except ValueError:
        raise validation(f"{name} must be a comma-separated list of integers") from None


def _date(value: str | None, name: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_uk(value)
    except ValueError:
        raise validation(f"{name} is not a date") from None


def _decimal(value: str | None, name: str) -> Decimal:
    if value is None or not value.strip():
        return Decimal("0")
    try:
        return Decimal(value.strip())
    except InvalidOperation:
        raise validation(f"{name} must be a number") from None


def _document(op: ET.Element, name: str, root: str, required: bool = True) -> ET.Element | None:
    text = _param(op, name)
    if text is None or not text.strip():
        if required:
            raise validation(f"{name} is required")
        return None
    try:
        doc = parse_xml(text)
    except UnsafeXmlError as exc:
        raise validation(f"{name}: {exc}") from None
    if doc.tag != root:
        raise validation(f"{name} must be a {root} document")
    return doc


def _codes(op: ET.Element) -> list[str]:
    doc = _document(op, "StockCodes", "STOCK_CODES")
    return [(c.text or "").strip() for c in children(doc, "StockCode")]


# --- rendering ---------------------------------------------------------------------


def _money(value: Decimal) -> str:
    return format(value, "f")


def render_sites(sites: list[Site]) -> ET.Element:
    root = ET.Element("SITES")
    for site in sites:
        add_fields(ET.SubElement(root, "SITE"), {"SiteID": site.site_id, "SiteName": site.name})
    return root


def render_stock_codes(codes: list[str]) -> ET.Element:
    root = ET.Element("STOCK_CODES")
    for code in codes:
        sub(root, "StockCode", code)
    return root


def render_stock_items(items: list[StockItem]) -> ET.Element:
    root = ET.Element("STOCK_ITEMS")
    for item in items:
        el = add_fields(
            ET.SubElement(root, "STOCK_ITEM"),
            {
                "StockID": item.stock_id,
                "StockCode": item.stock_code,
                "ShortDescription": item.description,
                "BuyPrice": _money(item.buy_price),
                "CostPrice": _money(item.cost_price),
                "SellPrice": _money(item.sell_price),
                "Discontinued": item.discontinued,
                "PublishOnWeb": item.publish_on_web,
                "StockControlled": item.stock_controlled,
                "SCSParentID": "" if item.scs_parent_id is None else item.scs_parent_id,
                "Style": item.style,
                "Colour": item.colour,
                "Size": item.size,
                "IsHire": item.is_hire,
            },
        )
        barcodes = ET.SubElement(el, "Barcodes")
        for bc in item.barcodes:
            add_fields(ET.SubElement(barcodes, "BARCODE"), {"Barcode": bc.value, "Type": bc.kind})
    return root


def render_stock_status(levels: list[StockLevel]) -> ET.Element:
    root = ET.Element("STOCK_STATUS")
    for lvl in levels:
        add_fields(
            ET.SubElement(root, "STOCK"),
            {
                "StockID": lvl.stock_id,
                "StockCode": lvl.stock_code,
                "SiteID": lvl.site_id,
                "Level": lvl.level,
                "Available": lvl.available,
                "OnOrder": lvl.on_order,
            },
        )
    return root


def _render_package(parent: ET.Element, pkg: Package) -> None:
    add_fields(
        ET.SubElement(parent, "PACKAGE"),
        {
            "ConsignmentRef": pkg.consignment_ref,
            "CourierCode": pkg.courier_code,
            "ShipmentDate": format_uk(pkg.shipment_date),
            "TrackingURL": pkg.tracking_url,
        },
    )


def render_invoice(parent: ET.Element, inv: Invoice, include_packages: bool = True) -> None:
    el = add_fields(
        ET.SubElement(parent, "INVOICE"),
        {
            "InvoiceID": inv.invoice_id,
            "InvoiceCode": inv.invoice_code,
            "INVOICE_STAGE_ID": inv.stage_id,
            "IssueDate": format_uk(inv.issue_date) if inv.issue_date else "",
            "ExternalRef": inv.external_ref,
        },
    )
    items = ET.SubElement(el, "ITEMS")
    for line in inv.lines:
        add_fields(
            ET.SubElement(items, "ITEM"),
            {
                "OrderItemID": line.order_item_id,
                "StockID": line.stock_id,
                "Quantity": line.quantity,
            },
        )
    if include_packages:
        packages = ET.SubElement(el, "PACKAGES")
        for pkg in inv.packages:
            _render_package(packages, pkg)


def render_orders(orders: list[SalesOrder], include_packages: bool = True) -> ET.Element:
    root = ET.Element("ORDERS")
    for order in orders:
        el = ET.SubElement(root, "ORDER")
        addr, contact = order.delivery_address, order.contact
        add_fields(
            ET.SubElement(el, "HEADER"),
            {
                "SOrderID": order.order_id,
                "SOrderCode": order.order_code,
                "AssociatedRef": order.associated_ref,
                "OrderDate": format_uk(order.order_date),
                "CourierCode": order.courier_code,
                "SiteID": order.site_id,
                "CustomerURN": order.customer_urn,
                "DeliveryForename": contact.first_name,
                "DeliverySurname": contact.last_name,
                "DeliveryEmail": contact.email,
                "DeliveryTelephone": contact.phone,
                "DeliveryAddress1": addr.line1,
                "DeliveryAddress2": addr.line2,
                "DeliveryAddress3": addr.line3,
                "DeliveryAddress4": addr.line4,
                "DeliveryTown": addr.city,
                "DeliveryCounty": addr.county,
                "DeliveryPostcode": addr.postcode,
                "DeliveryCountry": addr.country,
            },
        )
        items = ET.SubElement(el, "ITEMS")
        for line in order.lines:
            add_fields(
                ET.SubElement(items, "ITEM"),
                {
                    "OrderItemID": line.order_item_id,
                    "StockID": line.stock_id,
                    "StockCode": line.stock_code,
                    "Quantity": line.quantity,
                    "UnitNet": _money(line.unit_net),
                    "IsHire": line.is_hire,
                },
            )
        invoices = ET.SubElement(el, "INVOICES")
        for inv in order.invoices:
            render_invoice(invoices, inv, include_packages)
    return root


def render_adjustment_group(parent: ET.Element, group: AdjustmentGroupRecord) -> ET.Element:
    el = add_fields(
        ET.SubElement(parent, "GROUP"),
        {
            "GroupID": group.group_id,
            "GroupRef": group.group_ref,
            "SiteID": group.site_id,
            "Created": format_uk(group.created_at),
        },
    )
    lines = ET.SubElement(el, "LINES")
    for line in group.lines:
        add_fields(
            ET.SubElement(lines, "LINE"),
            {
                "StockID": line.stock_id,
                "AdjustTo": line.adjust_to,
                "AdjustBy": line.adjust_by,
                "ReasonCode": line.reason_code,
                "Value": _money(line.value),
                "LevelBefore": line.level_before,
                "LevelAfter": line.level_after,
                "Result": "OK",
            },
        )
    return el


def render_return(parent: ET.Element, ret: ReturnRecord) -> ET.Element:
    el = add_fields(
        ET.SubElement(parent, "CUSTOMER_RETURN"),
        {
            "ReturnID": ret.return_id,
            "AssociatedRef": ret.associated_ref,
            "URN": ret.customer_urn,
            "SiteID": ret.site_id,
            "Created": format_uk(ret.created_at),
            "Processed": ret.processed,
            "CreditMode": ret.credit_mode,
            "CreditNoteID": "" if ret.credit_note_id is None else ret.credit_note_id,
            "CreditValue": _money(ret.credit_value),
            "CreditStatus": ret.credit_status,
        },
    )
    items = ET.SubElement(el, "ITEMS")
    for item in ret.items:
        add_fields(
            ET.SubElement(items, "ITEM"),
            {
                "SKU": item.sku,
                "StockID": item.stock_id,
                "Quantity": item.quantity,
                "ReturnReason": item.return_reason,
                "SourceOrderItemID": item.source_order_item_id,
                "UnitNet": _money(item.unit_net),
            },
        )
    return el


# --- dispatch ----------------------------------------------------------------------


def run_operation(books: KhaosBooks, name: str, op: ET.Element) -> ET.Element:
    """Run one parsed operation against the books; raises ``SimFault``."""
    handler = _HANDLERS.get(name)
    if handler is None:
        raise SimFault("Client.UnknownOperation", f"unknown operation {name}")
    return handler(books, op)


def _get_site_list(books: KhaosBooks, op: ET.Element) -> ET.Element:
    return render_sites(books.get_sites())


def _get_stock_list(books: KhaosBooks, op: ET.Element) -> ET.Element:
    since = _date(_param(op, "DateValue"), "DateValue")
    if since is None:
        raise validation("DateValue is required")
    return render_stock_codes(books.get_stock_list(since))


def _export_stock(books: KhaosBooks, op: ET.Element) -> ET.Element:
    return render_stock_items(books.export_stock(_codes(op)))


def _export_stock_status(books: KhaosBooks, op: ET.Element) -> ET.Element:
    site = _int(_param(op, "SiteID"), "SiteID")
    return render_stock_status(books.export_stock_status(_codes(op), site))


def _export_orders(books: KhaosBooks, op: ET.Element) -> ET.Element:
    stages = set(_int_list(_param(op, "InvoiceStageIDs"), "InvoiceStageIDs"))
    if not stages:
        raise validation("InvoiceStageIDs is required")
    site = _int(_param(op, "SiteID"), "SiteID")
    return render_orders(books.export_orders(stages, site))


def _move_invoices(books: KhaosBooks, op: ET.Element) -> ET.Element:
    ids = _int_list(_param(op, "InvoiceIDs"), "InvoiceIDs")
    if not ids:
        raise validation("InvoiceIDs is required")
    stage = _int(_param(op, "DestinationStageID"), "DestinationStageID", required=True)
    assert stage is not None
    result = books.move_invoices(ids, stage)
    root = ET.Element("MOVE_RESULTS")
    for invoice_id, outcome in result.items():
        add_fields(
            ET.SubElement(root, "INVOICE"),
            {
                "InvoiceID": invoice_id,
                "Moved": outcome is True,
                "Reason": "" if outcome is True else str(outcome),
            },
        )
    return root


def _export_order_status(books: KhaosBooks, op: ET.Element) -> ET.Element:
    ids = _int_list(_param(op, "IDs"), "IDs")
    tracking_text = _param(op, "IncludeTracking")
    tracking = True if tracking_text is None else parse_bool(tracking_text)
    date_from = _date(_param(op, "DateFrom"), "DateFrom")
    date_to = _date(_param(op, "DateTo"), "DateTo")
    if not ids and date_from is None:
        raise validation("give IDs or DateFrom")
    orders = books.export_order_status(ids, tracking, date_from, date_to)
    return render_orders(orders, tracking)


def _import_despatch(books: KhaosBooks, op: ET.Element) -> ET.Element:
    order_id = _int(_param(op, "SOrderID"), "SOrderID", required=True)
    assert order_id is not None
    external_ref = (_param(op, "ExternalRef") or "").strip()
    if not external_ref:
        raise validation("ExternalRef is required")
    items_doc = _document(op, "Items", "ITEMS")
    lines: list[tuple[int, int]] = []
    for item in children(items_doc, "ITEM"):
        item_id = _int(text_of(item, "OrderItemID"), "OrderItemID", required=True)
        qty = _int(text_of(item, "Quantity"), "Quantity", required=True)
        assert item_id is not None and qty is not None
        lines.append((item_id, qty))
    packages: list[Package] = []
    for pkg in children(_document(op, "Packages", "PACKAGES", required=False), "PACKAGE"):
        shipped = _date(text_of(pkg, "ShipmentDate"), "ShipmentDate") or books.clock.now()
        try:
            packages.append(
                Package(
                    consignment_ref=text_of(pkg, "ConsignmentRef"),
                    courier_code=text_of(pkg, "CourierCode"),
                    shipment_date=shipped,
                    tracking_url=text_of(pkg, "TrackingURL"),
                )
            )
        except ValueError as exc:
            raise validation(f"bad package: {exc}") from None
    invoice = books.import_despatch(order_id, external_ref, lines, packages)
    root = ET.Element("DESPATCH_RESULT")
    render_invoice(root, invoice)
    back = books.despatch_calls[-1].back_order_invoice_id
    sub(root, "BackOrderInvoiceID", "" if back is None else back)
    return root


def _import_stock_adjustments(books: KhaosBooks, op: ET.Element) -> ET.Element:
    site = _int(_param(op, "SiteID"), "SiteID", required=True)
    assert site is not None
    group_ref = (_param(op, "GroupRef") or "").strip()
    lines: list[dict[str, Any]] = []
    for line in children(_document(op, "Lines", "ADJUSTMENTS"), "ADJUSTMENT"):
        lines.append(
            {
                "stock_id": _int(text_of(line, "StockID"), "StockID", required=True),
                "adjust_to": _int(_param(line, "AdjustTo"), "AdjustTo"),
                "adjust_by": _int(_param(line, "AdjustBy"), "AdjustBy"),
                "reason_code": text_of(line, "ReasonCode").strip().upper(),
                "value": _decimal(_param(line, "Value"), "Value"),
            }
        )
    group = books.import_stock_adjustments(site, group_ref, lines)
    root = ET.Element("ADJUSTMENT_RESULT")
    add_fields(root, {"GroupID": group.group_id, "GroupRef": group.group_ref})
    results = ET.SubElement(root, "LINES")
    for line in group.lines:
        add_fields(
            ET.SubElement(results, "LINE"),
            {
                "StockID": line.stock_id,
                "Result": "OK",
                "LevelBefore": line.level_before,
                "LevelAfter": line.level_after,
            },
        )
    return root


def _export_stock_adjustments(books: KhaosBooks, op: ET.Element) -> ET.Element:
    group_ref = (_param(op, "GroupRef") or "").strip() or None
    date_from = _date(_param(op, "DateFrom"), "DateFrom")
    root = ET.Element("ADJUSTMENT_GROUPS")
    for group in books.export_stock_adjustments(group_ref, date_from):
        render_adjustment_group(root, group)
    return root


def _import_customer_returns(books: KhaosBooks, op: ET.Element) -> ET.Element:
    doc = _document(op, "CustomerReturn", "CUSTOMER_RETURN")
    assert doc is not None
    items = []
    for item in children(doc.find("ITEMS"), "ITEM"):
        items.append(
            {
                "sku": text_of(item, "SKU").strip(),
                "quantity": _int(text_of(item, "Quantity"), "Quantity", required=True),
                "return_reason": text_of(item, "ReturnReason").strip().upper(),
                "source_order_item_id": _int(
                    _param(item, "SourceOrderItemID"), "SourceOrderItemID"
                ),
            }
        )
    process_text = _param(op, "ProcessReturn")
    ret = books.import_customer_return(
        associated_ref=text_of(doc, "AssociatedRef").strip(),
        customer_urn=text_of(doc, "URN").strip(),
        items=items,
        process=True if process_text is None else parse_bool(process_text),
        credit_mode=(_param(op, "CreditMode") or "review").strip().lower(),
        site_id=_int(_param(doc, "SiteID"), "SiteID"),
    )
    root = ET.Element("RETURN_RESULT")
    add_fields(
        root,
        {
            "ReturnID": ret.return_id,
            "CreditNoteID": "" if ret.credit_note_id is None else ret.credit_note_id,
            "CreditStatus": ret.credit_status,
            "CreditValue": _money(ret.credit_value),
            "Processed": bool_text(ret.processed),
        },
    )
    return root


def _export_customer_returns(books: KhaosBooks, op: ET.Element) -> ET.Element:
    ref = (_param(op, "AssociatedRef") or "").strip() or None
    date_from = _date(_param(op, "DateFrom"), "DateFrom")
    root = ET.Element("CUSTOMER_RETURNS")
    for ret in books.export_customer_returns(ref, date_from):
        render_return(root, ret)
    return root


_HANDLERS = {
    "GetSiteList": _get_site_list,
    "GetStockList": _get_stock_list,
    "ExportStock": _export_stock,
    "ExportStockStatus": _export_stock_status,
    "ExportOrders": _export_orders,
    "MoveInvoices": _move_invoices,
    "ExportOrderStatusEx": _export_order_status,
    "ImportDespatch": _import_despatch,
    "ImportStockAdjustments": _import_stock_adjustments,
    "ExportStockAdjustments": _export_stock_adjustments,
    "ImportCustomerReturns": _import_customer_returns,
    "ExportCustomerReturns": _export_customer_returns,
}


def wsdl(soap_url: str) -> str:
    """A minimal WSDL naming the operations (document/literal, string parameters)."""
    ns_wsdl = "http://schemas.xmlsoap.org/wsdl/"
    ns_soap = "http://schemas.xmlsoap.org/wsdl/soap/"
    root = ET.Element(
        f"{{{ns_wsdl}}}definitions",
        {"name": "IKosWebservice", "targetNamespace": "urn:KosWebIntf-IKosWeb"},
    )
    port_type = ET.SubElement(root, f"{{{ns_wsdl}}}portType", {"name": "IKosWeb"})
    for name in OPERATIONS:
        ET.SubElement(port_type, f"{{{ns_wsdl}}}operation", {"name": name})
    service = ET.SubElement(root, f"{{{ns_wsdl}}}service", {"name": "IKosWebservice"})
    port = ET.SubElement(
        service, f"{{{ns_wsdl}}}port", {"name": "IKosWebPort", "binding": "IKosWebbinding"}
    )
    ET.SubElement(port, f"{{{ns_soap}}}address", {"location": soap_url})
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
