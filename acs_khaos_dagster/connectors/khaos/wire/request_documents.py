"""Request documents: domain records to the parameters and XML Khaos takes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

from acs_khaos_dagster.connectors.khaos.uk_time import format_uk
from acs_khaos_dagster.connectors.khaos.wire.limits import (
    MAX_EXPORT_STOCK_CODES,
    MAX_REF,
    WireValidationError,
    _money,
    clean_ref,
    clean_stock_code,
)
from acs_khaos_dagster.connectors.khaos.xml import (
    add_fields,
    sub,
)
from acs_khaos_dagster.domain.models import (
    CustomerReturn,
    DespatchPosting,
    StockAdjustmentGroup,
)

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
