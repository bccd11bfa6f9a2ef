"""What the integration sends Khaos (``connectors/khaos/wire/request_documents.py``): domain
records to the parameters and XML documents of each operation, with values Khaos would
refuse stopped before anything is sent (``WireValidationError``).

Oracles are the XML a person expects, written out by hand (UK wall-clock times, ``-1``
for true, money as plain decimals)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from acs_khaos_dagster.connectors.khaos.wire.limits import WireValidationError
from acs_khaos_dagster.connectors.khaos.wire.request_documents import (
    adjustment_params,
    despatch_params,
    id_list,
    return_params,
    stock_codes_doc,
)
from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    CreditMode,
    CustomerReturn,
    DespatchPosting,
    Package,
    ReturnItem,
    StockAdjustmentGroup,
)


def xml(element: object) -> str:
    assert isinstance(element, ET.Element)
    return ET.tostring(element, encoding="unicode")


# --- stock codes and id lists --------------------------------------------------------------------


def test_stock_codes_are_sent_trimmed_one_element_each() -> None:
    assert xml(stock_codes_doc([" A-1 ", "B-2"])) == (
        "<STOCK_CODES><StockCode>A-1</StockCode><StockCode>B-2</StockCode></STOCK_CODES>"
    )


def test_more_stock_codes_than_one_call_takes_are_refused() -> None:
    assert xml(stock_codes_doc([f"C{i}" for i in range(100)])).count("<StockCode>") == 100
    with pytest.raises(WireValidationError, match="at most 100 stock codes per call, got 101"):
        stock_codes_doc([f"C{i}" for i in range(101)])
    with pytest.raises(WireValidationError, match="at most 2 stock codes"):
        stock_codes_doc(["A", "B", "C"], limit=2)


def test_a_stock_code_khaos_would_refuse_stops_the_whole_request() -> None:
    with pytest.raises(WireValidationError, match="contains '#'"):
        stock_codes_doc(["A-1", "B#2"])


def test_ids_are_sent_as_a_comma_separated_list() -> None:
    assert id_list([9001, 9002, 12]) == "9001,9002,12"
    assert id_list([]) == ""


# --- despatch ------------------------------------------------------------------------------------


def posting(**changed: object) -> DespatchPosting:
    fields: dict[str, object] = {
        "order_id": 5001,
        "external_ref": "SH-1",
        "lines": ((700001, 2), (700002, 1)),
        "packages": (
            Package(
                consignment_ref="CN1",
                courier_code="DPD",
                shipment_date=datetime(2026, 6, 11, 7, 0, 5, tzinfo=UTC),
            ),
        ),
    }
    fields.update(changed)
    return DespatchPosting(**fields)


def test_a_despatch_names_the_order_and_the_shipment_reference() -> None:
    params = despatch_params(posting())
    assert (params["SOrderID"], params["ExternalRef"]) == (5001, "SH-1")


def test_a_despatch_sends_each_line_with_its_quantity() -> None:
    assert xml(despatch_params(posting())["Items"]) == (
        "<ITEMS><ITEM><OrderItemID>700001</OrderItemID><Quantity>2</Quantity></ITEM>"
        "<ITEM><OrderItemID>700002</OrderItemID><Quantity>1</Quantity></ITEM></ITEMS>"
    )


def test_a_despatch_sends_its_parcels_with_the_uk_shipment_time() -> None:
    assert xml(despatch_params(posting())["Packages"]) == (
        "<PACKAGES><PACKAGE><ConsignmentRef>CN1</ConsignmentRef><CourierCode>DPD</CourierCode>"
        "<ShipmentDate>2026-06-11T08:00:05</ShipmentDate></PACKAGE></PACKAGES>"
    )


def test_a_despatch_without_lines_is_refused() -> None:
    with pytest.raises(WireValidationError, match="at least one line"):
        despatch_params(posting(lines=()))


@pytest.mark.parametrize("quantity", [0, -1])
def test_a_despatch_line_of_no_units_is_refused(quantity: int) -> None:
    with pytest.raises(WireValidationError, match="must be positive"):
        despatch_params(posting(lines=((700001, quantity),)))


def test_a_despatch_needs_its_shipment_reference() -> None:
    with pytest.raises(WireValidationError, match="ExternalRef is required"):
        despatch_params(posting(external_ref=" "))


def test_a_despatch_reference_over_the_installs_limit_is_refused() -> None:
    with pytest.raises(WireValidationError, match="ExternalRef is longer than 4"):
        despatch_params(posting(external_ref="SH-12"), max_ref=4)


# --- stock adjustments ---------------------------------------------------------------------------


def group(*lines: AdjustmentLine, ref: str = "PUSH-20260611-S4") -> StockAdjustmentGroup:
    return StockAdjustmentGroup(site_id=4, group_ref=ref, lines=lines)


def test_an_adjustment_group_names_its_site_and_reference() -> None:
    params = adjustment_params(group(AdjustmentLine(stock_id=40, adjust_by=-2, reason_code="V")))
    assert (params["SiteID"], params["GroupRef"]) == (4, "PUSH-20260611-S4")


def test_an_adjustment_line_sends_by_or_to_never_both_and_its_value_as_money() -> None:
    params = adjustment_params(
        group(
            AdjustmentLine(stock_id=40, adjust_by=-2, reason_code="VAR", value=Decimal("-24.68")),
            AdjustmentLine(stock_id=41, adjust_to=5, reason_code="WO", value=Decimal("1E+1")),
        )
    )
    assert xml(params["Lines"]) == (
        "<ADJUSTMENTS><ADJUSTMENT><StockID>40</StockID><AdjustBy>-2</AdjustBy>"
        "<ReasonCode>VAR</ReasonCode><Value>-24.68</Value></ADJUSTMENT>"
        "<ADJUSTMENT><StockID>41</StockID><AdjustTo>5</AdjustTo>"
        "<ReasonCode>WO</ReasonCode><Value>10</Value></ADJUSTMENT></ADJUSTMENTS>"
    )


def test_the_planned_level_is_kept_for_the_audit_trail_and_never_sent() -> None:
    params = adjustment_params(
        group(AdjustmentLine(stock_id=40, adjust_by=-2, reason_code="V", planned_level=17))
    )
    assert "17" not in xml(params["Lines"])


@pytest.mark.parametrize(
    "line",
    [
        AdjustmentLine(stock_id=40, reason_code="V"),
        AdjustmentLine(stock_id=40, adjust_to=3, adjust_by=1, reason_code="V"),
    ],
)
def test_an_adjustment_line_with_neither_or_both_of_to_and_by_is_refused(
    line: AdjustmentLine,
) -> None:
    with pytest.raises(WireValidationError, match="exactly one of to / by"):
        adjustment_params(group(line))


def test_an_adjustment_group_without_lines_is_refused() -> None:
    with pytest.raises(WireValidationError, match="at least one line"):
        adjustment_params(group())


def test_an_adjustment_needs_a_reason_code_and_a_group_reference() -> None:
    with pytest.raises(WireValidationError, match="ReasonCode is required"):
        adjustment_params(group(AdjustmentLine(stock_id=40, adjust_by=1, reason_code="")))
    with pytest.raises(WireValidationError, match="GroupRef is required"):
        adjustment_params(group(AdjustmentLine(stock_id=40, adjust_by=1, reason_code="V"), ref=""))


# --- customer returns ----------------------------------------------------------------------------


def customer_return(**changed: object) -> CustomerReturn:
    fields: dict[str, object] = {
        "associated_ref": "R1-P1",
        "customer_urn": "C77",
        "items": (
            ReturnItem(sku="DRS-1", quantity=1, return_reason="RTS", source_order_item_id=700001),
            ReturnItem(sku=" HAT ", quantity=2, return_reason="WO"),
        ),
        "credit_mode": CreditMode.AUTO,
    }
    fields.update(changed)
    return CustomerReturn(**fields)


def test_a_customer_return_document_names_the_part_the_customer_and_each_item() -> None:
    assert xml(return_params(customer_return())["CustomerReturn"]) == (
        "<CUSTOMER_RETURN><AssociatedRef>R1-P1</AssociatedRef><URN>C77</URN><ITEMS>"
        "<ITEM><SKU>DRS-1</SKU><Quantity>1</Quantity><ReturnReason>RTS</ReturnReason>"
        "<SourceOrderItemID>700001</SourceOrderItemID></ITEM>"
        "<ITEM><SKU>HAT</SKU><Quantity>2</Quantity><ReturnReason>WO</ReturnReason></ITEM>"
        "</ITEMS></CUSTOMER_RETURN>"
    )


@pytest.mark.parametrize("mode", list(CreditMode))
def test_a_customer_return_says_whether_to_process_it_and_how_to_credit(mode: CreditMode) -> None:
    params = return_params(customer_return(credit_mode=mode, process_return=False))
    assert (params["ProcessReturn"], params["CreditMode"]) == (False, mode.value)


def test_a_customer_return_without_items_is_refused() -> None:
    with pytest.raises(WireValidationError, match="at least one item"):
        return_params(customer_return(items=()))


def test_a_customer_return_naming_a_site_is_refused_khaos_takes_the_orders() -> None:
    with pytest.raises(WireValidationError, match="takes no SiteID"):
        return_params(customer_return(site_id=4))


def test_a_customer_return_needs_its_reference_and_customer() -> None:
    with pytest.raises(WireValidationError, match="AssociatedRef is required"):
        return_params(customer_return(associated_ref=""))
    with pytest.raises(WireValidationError, match="URN is required"):
        return_params(customer_return(customer_urn=" "))


def test_a_returned_sku_khaos_would_refuse_stops_the_return() -> None:
    items = (ReturnItem(sku="DRS#1", quantity=1, return_reason="RTS"),)
    with pytest.raises(WireValidationError, match="contains '#'"):
        return_params(customer_return(items=items))
