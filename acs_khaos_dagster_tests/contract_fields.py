"""The modelled contracts' reply fields, written out from ``shared/contracts/`` for the tests.

Neither the simulators nor the clients are trusted for this: the conformance tests read
a simulator's reply and compare the fields it carries with these, so a field the
contract does not name (which a client could come to rely on, like the despatch feed's
``resume_cursor`` once was) fails a test. Where the contract's words are general
("delivery address and contact", "items"), the element names chosen are listed in
``docs/go-live-checklist.md`` to be confirmed against a customer's WSDL or ACS account.

A shape is ``{element: shape of its children}``; a leaf is ``{}``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

Shape = dict[str, "Shape"]

LEAF: Shape = {}


def leaves(*names: str) -> Shape:
    return {name: LEAF for name in names}


def xml_shape(element: ET.Element) -> Shape:
    """Every child element name under ``element``, merged over repeated elements."""
    shape: Shape = {}
    for child in element:
        below = xml_shape(child)
        merged = shape.setdefault(child.tag, {})
        _merge(merged, below)
    return shape


def json_shape(value: Any) -> Shape:
    """Every key under a JSON object, merged over the items of lists."""
    shape: Shape = {}
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            for key, child in item.items():
                merged = shape.setdefault(key, {})
                if isinstance(child, dict | list):
                    _merge(merged, json_shape(child))
    return shape


def _merge(into: Shape, more: Shape) -> None:
    for key, below in more.items():
        _merge(into.setdefault(key, {}), below)


# --- Khaos Control (SOAP ``return`` documents) -------------------------------------------

_INVOICE_ITEMS = {"ITEMS": {"ITEM": leaves("OrderItemID", "StockID", "Quantity")}}
_PACKAGES = {"PACKAGES": {"PACKAGE": leaves("ConsignmentRef", "CourierCode", "ShipmentDate")}}
_HEADER = leaves(
    "SOrderID",
    "SOrderCode",
    "AssociatedRef",
    "OrderDate",
    "CourierCode",
    # The order's site and customer (returns need the URN): "for a configured site".
    "SiteID",
    "CustomerURN",
    # "delivery address and contact".
    "DeliveryForename",
    "DeliverySurname",
    "DeliveryEmail",
    "DeliveryTelephone",
    "DeliveryAddress1",
    "DeliveryAddress2",
    "DeliveryAddress3",
    "DeliveryAddress4",
    "DeliveryTown",
    "DeliveryCounty",
    "DeliveryPostcode",
    "DeliveryCountry",
)
_ORDER_ITEMS = {
    "ITEMS": {
        "ITEM": leaves("OrderItemID", "StockID", "StockCode", "Quantity", "UnitNet", "IsHire")
    }
}


def _order(invoice: Shape) -> Shape:
    return {"ORDER": {"HEADER": _HEADER, **_ORDER_ITEMS, "INVOICES": {"INVOICE": invoice}}}


EXPORT_ORDERS_INVOICE: Shape = {**leaves("InvoiceID", "InvoiceCode", "INVOICE_STAGE_ID")}
EXPORT_ORDERS_INVOICE |= _INVOICE_ITEMS
STATUS_INVOICE: Shape = {
    **leaves("InvoiceID", "InvoiceCode", "INVOICE_STAGE_ID", "IssueDate", "ExternalRef"),
    **_INVOICE_ITEMS,
    **_PACKAGES,
}

KHAOS: dict[str, Shape] = {
    "GetSiteList": {"SITE": leaves("SiteID", "SiteName")},
    "GetStockList": leaves("StockCode"),
    "ExportStock": {
        "STOCK_ITEM": {
            **leaves(
                "StockID",
                "StockCode",
                "ShortDescription",
                "BuyPrice",
                "CostPrice",
                "SellPrice",
                "Discontinued",
                "PublishOnWeb",
                "StockControlled",
                "SCSParentID",
                "Style",
                "Colour",
                "Size",
                "IsHire",
            ),
            "Barcodes": {"BARCODE": leaves("Barcode", "Type")},
        }
    },
    "ExportStockStatus": {"STOCK": leaves("StockID", "SiteID", "Level", "Available", "OnOrder")},
    "ExportOrders": _order(EXPORT_ORDERS_INVOICE),
    "MoveInvoices": {"INVOICE": leaves("InvoiceID", "Moved", "Reason")},
    "ExportOrderStatusEx": _order(STATUS_INVOICE),
    "ImportDespatch": {"INVOICE": STATUS_INVOICE, **leaves("BackOrderInvoiceID")},
    "ImportStockAdjustments": {**leaves("GroupID"), "LINES": {"LINE": leaves("StockID", "Result")}},
    "ExportStockAdjustments": {
        "GROUP": {
            **leaves("GroupID", "GroupRef", "SiteID"),
            "LINES": {"LINE": leaves("StockID", "AdjustTo", "AdjustBy", "ReasonCode", "Value")},
        }
    },
    "ImportCustomerReturns": leaves("ReturnID", "CreditNoteID"),
    "ExportCustomerReturns": {
        "CUSTOMER_RETURN": {
            **leaves("ReturnID", "AssociatedRef", "CreditNoteID", "CreditValue", "CreditStatus"),
            "ITEMS": {"ITEM": leaves("SKU", "Quantity", "ReturnReason", "SourceOrderItemID")},
        }
    },
}

# --- ACS partner API (JSON bodies) ----------------------------------------------------------

ACS_PRODUCT: Shape = leaves(
    "sku", "barcode", "style", "colour", "size", "description", "is_hire", "status"
)
ACS_EVENT: Shape = {
    **leaves("event_id", "order_number", "shipment_id", "despatched_at", "carrier", "service"),
    "parcels": leaves("parcel_no", "tracking_number", "tracking_url", "weight_kg"),
    "lines": leaves("line_item_id", "sku", "quantity", "unique_skus"),
    "closed_short": leaves("line_item_id", "quantity", "reason"),
}
ACS_ORDER_ITEM: Shape = leaves("LineItemId", "GarmentSku", "IsHire", "ItemPrice", "ItemQuantity")
ACS_ORDER_BODY: Shape = {
    **leaves(
        "AccountCode",
        "OrderNumber",
        "OrderDate",
        "DispatchDate",
        "EventDate",
        "WarehouseReturnDate",
        "FirstName",
        "LastName",
        "Email",
        "MobilePhone",
        "Delivery_Address1",
        "Delivery_Address2",
        "Delivery_Address3",
        "Delivery_Address4",
        "Delivery_City",
        "Delivery_County",
        "Delivery_Postcode",
        "DeliveryService",
        "DeliveryAgent",
        "DeliveryCharge",
        "Comments",
        "OrderCancelled",
    ),
    "OrderItems": ACS_ORDER_ITEM,
}

ACS: dict[str, Shape] = {
    "list_products": {"products": ACS_PRODUCT, **leaves("next_cursor")},
    "get_product": ACS_PRODUCT,
    "get_order": {**ACS_ORDER_BODY, **leaves("Status"), "Shipments": ACS_EVENT},
    "list_despatches": {"events": ACS_EVENT, **leaves("next_cursor")},
    "errors": {"errors": leaves("field", "code", "message")},
}
STOCK_UNITS_COLUMNS = (
    "account_code",
    "snapshot_at",
    "sku",
    "unique_sku",
    "rfid_epc",
    "status",
    "location_code",
    "grade",
    "last_event_at",
    "order_number",
    "expected_return_date",
)
RETURNS_COLUMNS = (
    "return_ref",
    "order_number",
    "line_item_id",
    "sku",
    "unique_sku",
    "received_at",
    "grade",
    "action_taken",
    "action_reason",
    "defect_codes",
    "repair_cost",
)
