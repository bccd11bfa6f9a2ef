"""The simulator's side of the wire: parse operation parameters, render result documents.

Exactly the modelled contract (``shared/contracts/khaos-control.md``), field for field:
a parameter or request element the contract does not name is refused
(``Client.Validation``), and a reply carries no field the contract does not name, so a
client that relies on one fails here before it fails against a customer's Khaos.

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

Dates in parameters are UK wall-clock times and are compared as such (``wire``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from acs_khaos_dagster.domain.models import Invoice, Package, SalesOrder, StockItem, StockLevel
from acs_khaos_dagster.sandbox.khaos import wire
from acs_khaos_dagster.sandbox.khaos.state import (
    AdjustmentGroupRecord,
    KhaosBooks,
    ReturnRecord,
    SimFault,
    validation,
)

# Each operation's parameters, after <Credentials>.
PARAMETERS: dict[str, frozenset[str]] = {
    "GetSiteList": frozenset(),
    "GetStockList": frozenset({"DateValue"}),
    "ExportStock": frozenset({"StockCodes"}),
    "ExportStockStatus": frozenset({"StockCodes", "SiteID"}),
    "ExportOrders": frozenset({"InvoiceStageIDs", "SiteID"}),
    "MoveInvoices": frozenset({"InvoiceIDs", "DestinationStageID"}),
    "ExportOrderStatusEx": frozenset(
        {"IDs", "IncludeTracking", "DateFrom", "DateTo", "InvoiceStageIDs"}
    ),
    "ImportDespatch": frozenset({"SOrderID", "ExternalRef", "Items", "Packages"}),
    "ImportStockAdjustments": frozenset({"SiteID", "GroupRef", "Lines"}),
    "ExportStockAdjustments": frozenset({"GroupRef", "DateFrom"}),
    "ImportCustomerReturns": frozenset({"CustomerReturn", "ProcessReturn", "CreditMode"}),
    "ExportCustomerReturns": frozenset({"AssociatedRef", "DateFrom"}),
}
OPERATIONS = tuple(PARAMETERS)
WRITE_OPERATIONS = frozenset(
    {"MoveInvoices", "ImportDespatch", "ImportStockAdjustments", "ImportCustomerReturns"}
)
# The elements of each request document's rows.
_DESPATCH_ITEM = frozenset({"OrderItemID", "Quantity"})
_PACKAGE = frozenset({"ConsignmentRef", "CourierCode", "ShipmentDate"})
_ADJUSTMENT = frozenset({"StockID", "AdjustTo", "AdjustBy", "ReasonCode", "Value"})
_RETURN = frozenset({"AssociatedRef", "URN", "ITEMS"})
_RETURN_ITEM = frozenset({"SKU", "Quantity", "ReturnReason", "SourceOrderItemID"})


# --- parameter parsing ----------------------------------------------------------


def check_parameters(name: str, op: ET.Element) -> None:
    given = [wire.tag_name(c.tag) for c in op if wire.tag_name(c.tag) != "Credentials"]
    unknown = sorted(set(given) - PARAMETERS[name])
    if unknown:
        raise validation(f"{name} has no parameter {', '.join(unknown)}")


def _only(element: ET.Element, allowed: frozenset[str], where: str) -> ET.Element:
    unknown = sorted(set(wire.names(element)) - allowed)
    if unknown:
        raise validation(f"{where} has no element {', '.join(unknown)}")
    return element


def _param(op: ET.Element, name: str) -> str | None:
    return wire.child_text(op, name)


def _int(value: str | None, name: str, required: bool = False) -> int | None:
    if value is None or not value.strip():
        if required:
            raise validation(f"{name} is required")
        return None
    try:
        return wire.whole_number(value)
    except ValueError:
        raise validation(f"{name} must be a whole number") from None


def _required_int(value: str | None, name: str) -> int:
    number = _int(value, name, required=True)
    assert number is not None
    return number


def _int_list(value: str | None, name: str) -> list[int]:
    if not value or not value.strip():
        return []
    try:
        return [int(p) for p in value.replace(";", ",").split(",") if p.strip()]
    except ValueError:
        raise validation(f"{name} must be a comma-separated list of integers") from None


def _wall(value: str | None, name: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        return wire.read_wall_clock(value)
    except ValueError:
        raise validation(f"{name} is not a UK local date and time") from None


def _boolean(value: str | None, name: str, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    try:
        return wire.khaos_boolean(value)
    except ValueError:
        raise validation(f"{name} must be -1 or 0") from None


def _decimal(value: str | None, name: str) -> Decimal:
    if value is None or not value.strip():
        return Decimal("0")
    try:
        return Decimal(value.strip())
    except InvalidOperation:
        raise validation(f"{name} must be a number") from None


def _ref(books: KhaosBooks, value: str | None, name: str) -> str:
    ref = (value or "").strip()
    limit = books.install.reference_max
    if len(ref) > limit:
        raise validation(f"{name} is longer than the {limit} characters Khaos stores")
    return ref


def _document(op: ET.Element, name: str, root: str, required: bool = True) -> ET.Element | None:
    text = _param(op, name)
    if text is None or not text.strip():
        if required:
            raise validation(f"{name} is required")
        return None
    try:
        doc = wire.read_xml(text)
    except wire.BadRequestXml as exc:
        raise validation(f"{name}: {exc}") from None
    if doc.tag != root:
        raise validation(f"{name} must be a {root} document")
    return doc


def _codes(op: ET.Element) -> list[str]:
    doc = _document(op, "StockCodes", "STOCK_CODES")
    _only(doc, frozenset({"StockCode"}), "STOCK_CODES")  # type: ignore[arg-type]
    return [(c.text or "").strip() for c in wire.each(doc, "StockCode")]


# --- rendering ---------------------------------------------------------------------


class Renderer:
    """Result documents as this install writes them."""

    def __init__(self, books: KhaosBooks) -> None:
        self.install = books.install

    def quantity(self, value: int) -> str:
        return wire.decimal_quantity(value) if self.install.decimal_quantities else str(value)

    def stock_items(self, items: list[StockItem]) -> ET.Element:
        root = ET.Element("STOCK_ITEMS")
        for item in items:
            el = wire.put_all(
                ET.SubElement(root, "STOCK_ITEM"),
                {
                    "StockID": item.stock_id,
                    "StockCode": item.stock_code,
                    "ShortDescription": item.description,
                    "BuyPrice": item.buy_price,
                    "CostPrice": item.cost_price,
                    "SellPrice": item.sell_price,
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
                wire.put_all(
                    ET.SubElement(barcodes, "BARCODE"), {"Barcode": bc.value, "Type": bc.kind}
                )
        return root

    def stock_status(self, levels: list[StockLevel]) -> ET.Element:
        root = ET.Element("STOCK_STATUS")
        for lvl in levels:
            wire.put_all(
                ET.SubElement(root, "STOCK"),
                {
                    "StockID": lvl.stock_id,
                    "SiteID": lvl.site_id,
                    "Level": self.quantity(lvl.level) if self.install.reports_level else None,
                    "Available": self.quantity(lvl.available),
                    "OnOrder": self.quantity(lvl.on_order),
                },
            )
        return root

    def _items(self, parent: ET.Element, rows: list[dict[str, wire.Value]]) -> None:
        items = ET.SubElement(parent, "ITEMS")
        for row in rows:
            wire.put_all(ET.SubElement(items, "ITEM"), row)

    def invoice(self, parent: ET.Element, inv: Invoice, status: bool, packages: bool) -> None:
        """``status``: the ``ExportOrderStatusEx`` shape (issue date, ExternalRef)."""
        fields: dict[str, wire.Value] = {
            "InvoiceID": inv.invoice_id,
            "InvoiceCode": inv.invoice_code,
            "INVOICE_STAGE_ID": inv.stage_id,
        }
        if status:
            fields["IssueDate"] = wire.wall_text(inv.issue_date) if inv.issue_date else ""
            fields["ExternalRef"] = inv.external_ref
        el = wire.put_all(ET.SubElement(parent, "INVOICE"), fields)
        self._items(
            el,
            [
                {
                    "OrderItemID": line.order_item_id,
                    "StockID": line.stock_id,
                    "Quantity": self.quantity(line.quantity),
                }
                for line in inv.lines
            ],
        )
        if status and packages:
            holder = ET.SubElement(el, "PACKAGES")
            for pkg in inv.packages:
                wire.put_all(
                    ET.SubElement(holder, "PACKAGE"),
                    {
                        "ConsignmentRef": pkg.consignment_ref,
                        "CourierCode": pkg.courier_code,
                        "ShipmentDate": wire.wall_text(pkg.shipment_date),
                    },
                )

    def orders(self, orders: list[SalesOrder], status: bool, packages: bool) -> ET.Element:
        root = ET.Element("ORDERS")
        for order in orders:
            el = ET.SubElement(root, "ORDER")
            addr, contact = order.delivery_address, order.contact
            wire.put_all(
                ET.SubElement(el, "HEADER"),
                {
                    "SOrderID": order.order_id,
                    "SOrderCode": order.order_code,
                    "AssociatedRef": order.associated_ref,
                    "OrderDate": wire.wall_text(order.order_date),
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
            self._items(
                el,
                [
                    {
                        "OrderItemID": line.order_item_id,
                        "StockID": line.stock_id,
                        "StockCode": line.stock_code,
                        "Quantity": self.quantity(line.quantity),
                        "UnitNet": line.unit_net,
                        "IsHire": line.is_hire,
                    }
                    for line in order.lines
                ],
            )
            invoices = ET.SubElement(el, "INVOICES")
            for inv in order.invoices:
                self.invoice(invoices, inv, status, packages)
        return root

    def adjustment_group(self, parent: ET.Element, group: AdjustmentGroupRecord) -> None:
        el = wire.put_all(
            ET.SubElement(parent, "GROUP"),
            {"GroupID": group.group_id, "GroupRef": group.group_ref, "SiteID": group.site_id},
        )
        lines = ET.SubElement(el, "LINES")
        for line in group.lines:
            wire.put_all(
                ET.SubElement(lines, "LINE"),
                {
                    "StockID": line.stock_id,
                    "AdjustTo": None if line.adjust_to is None else self.quantity(line.adjust_to),
                    "AdjustBy": None if line.adjust_by is None else self.quantity(line.adjust_by),
                    "ReasonCode": line.reason_code,
                    "Value": line.value,
                },
            )

    def customer_return(self, parent: ET.Element, ret: ReturnRecord) -> None:
        el = wire.put_all(
            ET.SubElement(parent, "CUSTOMER_RETURN"),
            {
                "ReturnID": ret.return_id,
                "AssociatedRef": ret.associated_ref,
                "CreditNoteID": "" if ret.credit_note_id is None else ret.credit_note_id,
                "CreditValue": ret.credit_value,
                "CreditStatus": ret.credit_status,
            },
        )
        self._items(
            el,
            [
                {
                    "SKU": item.sku,
                    "Quantity": self.quantity(item.quantity),
                    "ReturnReason": item.return_reason,
                    "SourceOrderItemID": item.source_order_item_id,
                }
                for item in ret.items
            ],
        )


# --- dispatch ----------------------------------------------------------------------


def run_operation(books: KhaosBooks, name: str, op: ET.Element) -> ET.Element:
    """Run one parsed operation against the books; raises ``SimFault``."""
    handler = _HANDLERS.get(name)
    if handler is None:
        raise SimFault("Client.UnknownOperation", f"unknown operation {name}")
    check_parameters(name, op)
    return handler(books, op)


def _get_site_list(books: KhaosBooks, op: ET.Element) -> ET.Element:
    root = ET.Element("SITES")
    for site in books.get_sites():
        wire.put_all(ET.SubElement(root, "SITE"), {"SiteID": site.site_id, "SiteName": site.name})
    return root


def _get_stock_list(books: KhaosBooks, op: ET.Element) -> ET.Element:
    since = _wall(_param(op, "DateValue"), "DateValue")
    if since is None:
        raise validation("DateValue is required")
    root = ET.Element("STOCK_CODES")
    for code in books.get_stock_list(since):
        wire.put(root, "StockCode", code)
    return root


def _export_stock(books: KhaosBooks, op: ET.Element) -> ET.Element:
    return Renderer(books).stock_items(books.export_stock(_codes(op)))


def _export_stock_status(books: KhaosBooks, op: ET.Element) -> ET.Element:
    site = _int(_param(op, "SiteID"), "SiteID")
    return Renderer(books).stock_status(books.export_stock_status(_codes(op), site))


def _export_orders(books: KhaosBooks, op: ET.Element) -> ET.Element:
    stages = set(_int_list(_param(op, "InvoiceStageIDs"), "InvoiceStageIDs"))
    if not stages:
        raise validation("InvoiceStageIDs is required")
    site = _int(_param(op, "SiteID"), "SiteID")
    return Renderer(books).orders(books.export_orders(stages, site), status=False, packages=False)


def _move_invoices(books: KhaosBooks, op: ET.Element) -> ET.Element:
    ids = _int_list(_param(op, "InvoiceIDs"), "InvoiceIDs")
    if not ids:
        raise validation("InvoiceIDs is required")
    stage = _required_int(_param(op, "DestinationStageID"), "DestinationStageID")
    root = ET.Element("MOVE_RESULTS")
    for invoice_id, outcome in books.move_invoices(ids, stage).items():
        wire.put_all(
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
    tracking = _boolean(tracking_text, "IncludeTracking", default=True)
    date_from = _wall(_param(op, "DateFrom"), "DateFrom")
    date_to = _wall(_param(op, "DateTo"), "DateTo")
    stages = set(_int_list(_param(op, "InvoiceStageIDs"), "InvoiceStageIDs"))
    if not ids and date_from is None:
        raise validation("give IDs or DateFrom")
    orders = books.export_order_status(ids, tracking, date_from, date_to)
    if stages:
        orders = [o for o in orders if any(i.stage_id in stages for i in o.invoices)]
    return Renderer(books).orders(orders, status=True, packages=tracking)


def _import_despatch(books: KhaosBooks, op: ET.Element) -> ET.Element:
    order_id = _required_int(_param(op, "SOrderID"), "SOrderID")
    external_ref = _ref(books, _param(op, "ExternalRef"), "ExternalRef")
    if not external_ref:
        raise validation("ExternalRef is required")
    items_doc = _document(op, "Items", "ITEMS")
    lines: list[tuple[int, int]] = []
    for item in wire.each(items_doc, "ITEM"):
        _only(item, _DESPATCH_ITEM, "ITEM")
        lines.append(
            (
                _required_int(wire.child_text(item, "OrderItemID"), "OrderItemID"),
                _required_int(wire.child_text(item, "Quantity"), "Quantity"),
            )
        )
    packages: list[Package] = []
    for pkg in wire.each(_document(op, "Packages", "PACKAGES", required=False), "PACKAGE"):
        _only(pkg, _PACKAGE, "PACKAGE")
        shipped = _wall(wire.child_text(pkg, "ShipmentDate"), "ShipmentDate")
        try:
            packages.append(
                Package(
                    consignment_ref=_ref(
                        books, wire.child_text(pkg, "ConsignmentRef"), "ConsignmentRef"
                    ),
                    courier_code=_ref(books, wire.child_text(pkg, "CourierCode"), "CourierCode"),
                    shipment_date=wire.instant_of(shipped) if shipped else books.clock.now(),
                )
            )
        except ValueError as exc:
            raise validation(f"bad package: {exc}") from None
    invoice = books.import_despatch(order_id, external_ref, lines, packages)
    back_order = books.despatch_calls[-1].back_order_invoice_id
    root = ET.Element("DESPATCH_RESULT")
    Renderer(books).invoice(root, invoice, status=True, packages=True)
    wire.put(root, "BackOrderInvoiceID", "" if back_order is None else back_order)
    return root


def _import_stock_adjustments(books: KhaosBooks, op: ET.Element) -> ET.Element:
    site = _required_int(_param(op, "SiteID"), "SiteID")
    group_ref = _ref(books, _param(op, "GroupRef"), "GroupRef")
    lines: list[dict[str, Any]] = []
    for line in wire.each(_document(op, "Lines", "ADJUSTMENTS"), "ADJUSTMENT"):
        _only(line, _ADJUSTMENT, "ADJUSTMENT")
        lines.append(
            {
                "stock_id": _int(wire.child_text(line, "StockID"), "StockID", required=True),
                "adjust_to": _int(wire.child_text(line, "AdjustTo"), "AdjustTo"),
                "adjust_by": _int(wire.child_text(line, "AdjustBy"), "AdjustBy"),
                "reason_code": _ref(
                    books, wire.child_text(line, "ReasonCode"), "ReasonCode"
                ).upper(),
                "value": _decimal(wire.child_text(line, "Value"), "Value"),
            }
        )
    group = books.import_stock_adjustments(site, group_ref, lines)
    root = ET.Element("ADJUSTMENT_RESULT")
    wire.put(root, "GroupID", group.group_id)
    results = ET.SubElement(root, "LINES")
    for line in group.lines:
        wire.put_all(ET.SubElement(results, "LINE"), {"StockID": line.stock_id, "Result": "OK"})
    return root


def _export_stock_adjustments(books: KhaosBooks, op: ET.Element) -> ET.Element:
    group_ref = _ref(books, _param(op, "GroupRef"), "GroupRef") or None
    date_from = _wall(_param(op, "DateFrom"), "DateFrom")
    root = ET.Element("ADJUSTMENT_GROUPS")
    render = Renderer(books)
    for group in books.export_stock_adjustments(group_ref, date_from):
        render.adjustment_group(root, group)
    return root


def _import_customer_returns(books: KhaosBooks, op: ET.Element) -> ET.Element:
    doc = _document(op, "CustomerReturn", "CUSTOMER_RETURN")
    assert doc is not None
    _only(doc, _RETURN, "CUSTOMER_RETURN")
    items = []
    for item in wire.each(doc.find("ITEMS"), "ITEM"):
        _only(item, _RETURN_ITEM, "ITEM")
        items.append(
            {
                "sku": (wire.child_text(item, "SKU") or "").strip(),
                "quantity": _int(wire.child_text(item, "Quantity"), "Quantity", required=True),
                "return_reason": _ref(
                    books, wire.child_text(item, "ReturnReason"), "ReturnReason"
                ).upper(),
                "source_order_item_id": _int(
                    wire.child_text(item, "SourceOrderItemID"), "SourceOrderItemID"
                ),
            }
        )
    process_text = _param(op, "ProcessReturn")
    ret = books.import_customer_return(
        associated_ref=_ref(books, wire.child_text(doc, "AssociatedRef"), "AssociatedRef"),
        customer_urn=_ref(books, wire.child_text(doc, "URN"), "URN"),
        items=items,
        process=_boolean(process_text, "ProcessReturn", default=True),
        credit_mode=(_param(op, "CreditMode") or "review").strip().lower(),
    )
    root = ET.Element("RETURN_RESULT")
    wire.put_all(
        root,
        {
            "ReturnID": ret.return_id,
            "CreditNoteID": "" if ret.credit_note_id is None else ret.credit_note_id,
        },
    )
    return root


def _export_customer_returns(books: KhaosBooks, op: ET.Element) -> ET.Element:
    ref = _ref(books, _param(op, "AssociatedRef"), "AssociatedRef") or None
    date_from = _wall(_param(op, "DateFrom"), "DateFrom")
    root = ET.Element("CUSTOMER_RETURNS")
    render = Renderer(books)
    for ret in books.export_customer_returns(ref, date_from):
        render.customer_return(root, ret)
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
        {"name": "IKosWebservice", "targetNamespace": wire.SERVICE_NS},
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
