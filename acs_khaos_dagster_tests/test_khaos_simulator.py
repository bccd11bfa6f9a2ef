"""The Khaos simulator speaks the modelled SOAP contract: one conformance test per operation,
plus its stock and order rules, authentication, unsafe XML and injected faults.

These tests talk raw SOAP (built with the safe builder, read with the safe parser)
so they check the wire itself, not the client's reading of it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import httpx
import pytest

from acs_khaos_dagster.connectors.khaos.xml import (
    SOAP_ACTION_PREFIX,
    add_fields,
    build_request,
    parse_reply,
    sub,
)
from acs_khaos_dagster.sandbox.khaos import IssuePolicy
from acs_khaos_dagster_tests import contract_fields, khaos_fixtures
from acs_khaos_dagster_tests.khaos_fixtures import (
    A_DRESS_M,
    A_DRESS_S,
    DRESS_M,
    DRESS_S,
    EXE,
    H_DRESS_S,
    H_SUIT,
    HIRE,
    INV_A,
    INV_HIRE,
    ORDER_A,
    ORDER_HIRE,
    PASSWORD,
    SELLING,
    START,
    SUIT_HIRE,
    TOTE,
    USER,
    KhaosHarness,
    make_harness,
)

# The shared fixtures (one server per module, a fresh simulator per test).
khaos_server = khaos_fixtures.khaos_server
khaos = khaos_fixtures.khaos


def call(
    h: KhaosHarness, operation: str, password: str = PASSWORD, **params: Any
) -> tuple[httpx.Response, Any]:
    body = build_request(operation, USER, password, params)
    response = h.post_raw(body, action=f'"{SOAP_ACTION_PREFIX}{operation}"')
    return response, parse_reply(response.content)


def ok(h: KhaosHarness, operation: str, **params: Any) -> ET.Element:
    response, reply = call(h, operation, **params)
    assert reply.fault is None, reply.fault
    assert response.status_code == 200
    assert reply.document is not None
    return reply.document


def fault_of(h: KhaosHarness, operation: str, **params: Any) -> tuple[int, str]:
    response, reply = call(h, operation, **params)
    assert reply.fault is not None
    return response.status_code, reply.fault.code


def codes_doc(*codes: str) -> ET.Element:
    root = ET.Element("STOCK_CODES")
    for code in codes:
        sub(root, "StockCode", code)
    return root


def items_doc(*lines: tuple[int, int]) -> ET.Element:
    root = ET.Element("ITEMS")
    for item_id, qty in lines:
        add_fields(ET.SubElement(root, "ITEM"), {"OrderItemID": item_id, "Quantity": qty})
    return root


def despatch(
    h: KhaosHarness, ref: str, *lines: tuple[int, int], order_id: int = ORDER_A
) -> ET.Element:
    packages = ET.Element("PACKAGES")
    add_fields(
        ET.SubElement(packages, "PACKAGE"),
        {
            "ConsignmentRef": f"CONS-{ref}",
            "CourierCode": "DPD",
            "ShipmentDate": "2024-03-04T09:00:00",
        },
    )
    return ok(
        h,
        "ImportDespatch",
        SOrderID=order_id,
        ExternalRef=ref,
        Items=items_doc(*lines),
        Packages=packages,
    )


def adjust_doc(*lines: dict[str, Any]) -> ET.Element:
    root = ET.Element("ADJUSTMENTS")
    for line in lines:
        add_fields(ET.SubElement(root, "ADJUSTMENT"), line)
    return root


def return_doc(ref: str, *items: tuple[str, int, str, int | None]) -> ET.Element:
    root = ET.Element("CUSTOMER_RETURN")
    add_fields(root, {"AssociatedRef": ref, "URN": "C500001"})
    its = ET.SubElement(root, "ITEMS")
    for sku, qty, reason, source in items:
        add_fields(
            ET.SubElement(its, "ITEM"),
            {
                "SKU": sku,
                "Quantity": qty,
                "ReturnReason": reason,
                "SourceOrderItemID": source,
            },
        )
    return root


# --- one conformance test per operation: exactly the contract's fields ----------------


def fields(doc: ET.Element) -> contract_fields.Shape:
    return contract_fields.xml_shape(doc)


def test_get_site_list_names_every_site(khaos: KhaosHarness) -> None:
    doc = ok(khaos, "GetSiteList")
    assert fields(doc) == contract_fields.KHAOS["GetSiteList"]
    assert [(s.findtext("SiteID"), s.findtext("SiteName")) for s in doc.findall("SITE")] == [
        ("1", "Selling"),
        ("2", "Hire stock"),
    ]


def test_get_stock_list_returns_codes_changed_since_the_date(khaos: KhaosHarness) -> None:
    khaos.clock.advance(timedelta(hours=2))
    khaos.sim.rename_stock_code(DRESS_M, "DRESS-RED-MEDIUM")
    doc = ok(khaos, "GetStockList", DateValue="2024-03-04T10:00:00")
    assert fields(doc) == contract_fields.KHAOS["GetStockList"]
    assert [c.text for c in doc.findall("StockCode")] == ["DRESS-RED-MEDIUM"]


def test_export_stock_returns_stock_items_with_khaos_booleans(khaos: KhaosHarness) -> None:
    doc = ok(khaos, "ExportStock", StockCodes=codes_doc("DRESS-RED-S", "NO-SUCH"))
    assert fields(doc) == contract_fields.KHAOS["ExportStock"]
    (item,) = doc.findall("STOCK_ITEM")
    assert item.findtext("StockID") == str(DRESS_S)
    assert item.findtext("SCSParentID") == "1000"
    assert item.findtext("PublishOnWeb") == "-1"
    assert item.findtext("IsHire") == "0"
    assert [b.findtext("Barcode") for b in item.find("Barcodes")] == ["5012345678900", "DRS-S"]


def test_export_stock_refuses_more_than_100_codes(khaos: KhaosHarness) -> None:
    codes = codes_doc(*(f"X{i}" for i in range(101)))
    assert fault_of(khaos, "ExportStock", StockCodes=codes) == (500, "Client.Validation")


def test_export_stock_status_gives_level_available_and_on_order(khaos: KhaosHarness) -> None:
    doc = ok(khaos, "ExportStockStatus", StockCodes=codes_doc("DRESS-RED-S"), SiteID=SELLING)
    assert fields(doc) == contract_fields.KHAOS["ExportStockStatus"]
    (row,) = doc.findall("STOCK")
    # Level 10; open invoices allocate 3 (order A) + 1 (hire order's dress line).
    assert (row.findtext("Level"), row.findtext("Available"), row.findtext("OnOrder")) == (
        "10",
        "6",
        "0",
    )


def test_export_orders_returns_orders_with_an_invoice_in_the_stages(khaos: KhaosHarness) -> None:
    ok(khaos, "MoveInvoices", InvoiceIDs=str(INV_A), DestinationStageID=12)
    doc = ok(khaos, "ExportOrders", InvoiceStageIDs="9", SiteID=SELLING)
    assert fields(doc) == contract_fields.KHAOS["ExportOrders"]
    ids = [o.findtext("HEADER/SOrderID") for o in doc.findall("ORDER")]
    assert str(ORDER_A) not in ids and str(ORDER_HIRE) in ids
    hire = next(o for o in doc.findall("ORDER") if o.findtext("HEADER/SOrderID") == str(ORDER_HIRE))
    assert [i.findtext("IsHire") for i in hire.findall("ITEMS/ITEM")] == ["-1", "0"]
    assert hire.findtext("INVOICES/INVOICE/INVOICE_STAGE_ID") == "9"


def test_move_invoices_moves_open_invoices_and_refuses_issued_ones(khaos: KhaosHarness) -> None:
    khaos.sim.set_stage(INV_HIRE, 16)
    khaos.sim.issue_invoice(INV_HIRE)
    doc = ok(khaos, "MoveInvoices", InvoiceIDs=f"{INV_A},{INV_HIRE},999", DestinationStageID=12)
    assert fields(doc) == contract_fields.KHAOS["MoveInvoices"]
    results = {
        r.findtext("InvoiceID"): (r.findtext("Moved"), r.findtext("Reason"))
        for r in doc.findall("INVOICE")
    }
    assert results[str(INV_A)] == ("-1", "")
    assert results[str(INV_HIRE)][0] == "0" and "issued" in results[str(INV_HIRE)][1]
    assert results["999"][0] == "0"


def test_export_order_status_ex_lists_invoices_and_packages(khaos: KhaosHarness) -> None:
    despatch(khaos, "SHIP-1", (A_DRESS_S, 3), (A_DRESS_M, 1))
    doc = ok(khaos, "ExportOrderStatusEx", IDs=str(ORDER_A), IncludeTracking="-1")
    assert fields(doc) == contract_fields.KHAOS["ExportOrderStatusEx"]
    (inv,) = doc.findall("ORDER/INVOICES/INVOICE")
    assert inv.findtext("INVOICE_STAGE_ID") == "16"
    assert inv.findtext("ExternalRef") == "SHIP-1"
    assert inv.findtext("PACKAGES/PACKAGE/ConsignmentRef") == "CONS-SHIP-1"
    untracked = ok(khaos, "ExportOrderStatusEx", IDs=str(ORDER_A), IncludeTracking="0")
    assert untracked.find("ORDER/INVOICES/INVOICE/PACKAGES") is None


def test_import_despatch_splits_the_order_into_shipped_and_back_order(khaos: KhaosHarness) -> None:
    doc = despatch(khaos, "SHIP-1", (A_DRESS_S, 2))
    assert fields(doc) == contract_fields.KHAOS["ImportDespatch"]
    assert doc.findtext("INVOICE/InvoiceID") == str(INV_A)
    back_id = int(doc.findtext("BackOrderInvoiceID") or 0)
    stages = {i["invoice_id"]: (i["stage"], i["lines"]) for i in khaos.invoices(ORDER_A)}
    assert stages[INV_A] == (16, [{"order_item_id": A_DRESS_S, "quantity": 2}])
    assert stages[back_id][0] == 18
    assert sorted((ln["order_item_id"], ln["quantity"]) for ln in stages[back_id][1]) == [
        (A_DRESS_S, 1),
        (A_DRESS_M, 1),
    ]


def test_import_despatch_refuses_more_than_is_open(khaos: KhaosHarness) -> None:
    _, reply = call(
        khaos, "ImportDespatch", SOrderID=ORDER_A, ExternalRef="X", Items=items_doc((A_DRESS_S, 4))
    )
    assert reply.fault.code == "Client.Validation"
    assert khaos.truth()["despatch_calls"] == []


def test_import_stock_adjustments_applies_to_and_by_in_one_group(khaos: KhaosHarness) -> None:
    doc = ok(
        khaos,
        "ImportStockAdjustments",
        SiteID=SELLING,
        GroupRef="SNAP-1",
        Lines=adjust_doc(
            {"StockID": DRESS_S, "AdjustTo": 12, "ReasonCode": "VARIANCE", "Value": "40.00"},
            {"StockID": DRESS_M, "AdjustBy": -2, "ReasonCode": "DAMAGED", "Value": "40.00"},
        ),
    )
    assert fields(doc) == contract_fields.KHAOS["ImportStockAdjustments"]
    assert doc.findtext("GroupID")
    assert [ln.findtext("Result") for ln in doc.findall("LINES/LINE")] == ["OK", "OK"]
    assert khaos.stock(DRESS_S)["level"] == 12 and khaos.stock(DRESS_M)["level"] == 3


def test_import_stock_adjustments_refuses_an_unknown_reason_and_applies_nothing(
    khaos: KhaosHarness,
) -> None:
    lines = adjust_doc(
        {"StockID": DRESS_S, "AdjustBy": 1, "ReasonCode": "VARIANCE"},
        {"StockID": DRESS_M, "AdjustBy": 1, "ReasonCode": "LOST_IN_SPACE"},
    )
    _, code = fault_of(khaos, "ImportStockAdjustments", SiteID=SELLING, GroupRef="G", Lines=lines)
    assert code == "Client.Validation"
    assert khaos.stock(DRESS_S)["level"] == 10
    assert khaos.truth()["adjustment_groups"] == []


def test_export_stock_adjustments_reads_groups_back_by_ref(khaos: KhaosHarness) -> None:
    for line in (
        {"StockID": TOTE, "AdjustBy": -1, "ReasonCode": "WRITEOFF", "Value": "5.50"},
        {"StockID": TOTE, "AdjustTo": 1, "ReasonCode": "VARIANCE", "Value": "0"},
    ):  # no de-duplication: the same GroupRef twice is two groups
        ok(khaos, "ImportStockAdjustments", SiteID=SELLING, GroupRef="WO-1", Lines=adjust_doc(line))
    doc = ok(khaos, "ExportStockAdjustments", GroupRef="WO-1")
    assert fields(doc) == contract_fields.KHAOS["ExportStockAdjustments"]
    groups = doc.findall("GROUP")
    assert len(groups) == 2 and groups[0].findtext("GroupID") != groups[1].findtext("GroupID")
    assert groups[0].findtext("LINES/LINE/AdjustBy") == "-1"
    assert khaos.stock(TOTE)["level"] == 1


def test_import_customer_returns_restocks_and_credits(khaos: KhaosHarness) -> None:
    doc = ok(
        khaos,
        "ImportCustomerReturns",
        CustomerReturn=return_doc("RET-1", ("DRESS-RED-S", 1, "UNWANTED", A_DRESS_S)),
        ProcessReturn="-1",
        CreditMode="auto",
    )
    assert fields(doc) == contract_fields.KHAOS["ImportCustomerReturns"]
    assert doc.findtext("ReturnID") and doc.findtext("CreditNoteID")
    (credit,) = khaos.truth()["credit_notes"]
    assert credit["value"] == "66.67"
    assert khaos.stock(DRESS_S)["level"] == 11


def test_export_customer_returns_reads_returns_back_by_ref(khaos: KhaosHarness) -> None:
    ok(
        khaos,
        "ImportCustomerReturns",
        CustomerReturn=return_doc("RET-2", ("DRESS-RED-M", 1, "BER", A_DRESS_M)),
        ProcessReturn="-1",
        CreditMode="review",
    )
    doc = ok(khaos, "ExportCustomerReturns", AssociatedRef="RET-2")
    assert fields(doc) == contract_fields.KHAOS["ExportCustomerReturns"]
    (ret,) = doc.findall("CUSTOMER_RETURN")
    assert ret.findtext("CreditStatus") == "review"
    assert not ret.findtext("CreditNoteID")
    assert ret.findtext("ITEMS/ITEM/ReturnReason") == "BER"


def test_a_request_element_the_contract_does_not_name_is_refused(khaos: KhaosHarness) -> None:
    packages = ET.Element("PACKAGES")
    add_fields(
        ET.SubElement(packages, "PACKAGE"),
        {"ConsignmentRef": "C1", "CourierCode": "DPD", "TrackingURL": "https://t.example/1"},
    )
    _, reply = call(
        khaos,
        "ImportDespatch",
        SOrderID=ORDER_A,
        ExternalRef="S-1",
        Items=items_doc((A_DRESS_S, 1)),
        Packages=packages,
    )
    assert reply.fault.code == "Client.Validation" and "TrackingURL" in reply.fault.message
    assert khaos.truth()["despatch_calls"] == []


def test_a_parameter_the_contract_does_not_name_is_refused(khaos: KhaosHarness) -> None:
    _, code = fault_of(khaos, "GetSiteList", Sites="all")
    assert code == "Client.Validation"


def test_wsdl_lists_the_operations(khaos: KhaosHarness) -> None:
    response = httpx.get(f"{khaos.base_url}/{EXE}.exe/wsdl/IKosWeb")
    assert response.status_code == 200
    assert 'name="ImportDespatch"' in response.text and "IKosWeb" in response.text


# --- authentication and unsafe input -------------------------------------------------


def test_wrong_credentials_are_refused_with_an_authentication_fault(khaos: KhaosHarness) -> None:
    response, reply = call(khaos, "GetSiteList", password="wrong")
    assert response.status_code == 500
    assert reply.fault.code == "Client.Authentication"
    assert "wrong" not in reply.fault.message


def test_a_request_with_a_doctype_is_refused(khaos: KhaosHarness) -> None:
    body = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        "<GetSiteList><Credentials><UserName>&b;</UserName></Credentials></GetSiteList>"
        "</soap:Body></soap:Envelope>"
    )
    reply = parse_reply(khaos.post_raw(body).content)
    assert reply.fault is not None and reply.fault.code == "Client.Validation"


def test_an_external_entity_inside_a_parameter_document_is_refused(khaos: KhaosHarness) -> None:
    inner = (
        '<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<STOCK_CODES><StockCode>&x;</StockCode></STOCK_CODES>"
    )
    _, reply = call(khaos, "ExportStock", StockCodes=inner)
    assert reply.fault is not None and reply.fault.code == "Client.Validation"


# --- stock and order rules -------------------------------------------------------------


def test_finance_issues_after_the_delay_lowering_level_and_releasing_allocation(
    khaos: KhaosHarness,
) -> None:
    despatch(khaos, "SHIP-1", (A_DRESS_S, 3), (A_DRESS_M, 1))
    before = khaos.stock(DRESS_S)
    khaos.advance(timedelta(minutes=30))
    assert khaos.invoices(ORDER_A)[0]["stage"] == 16
    khaos.advance(timedelta(minutes=30))
    after = khaos.stock(DRESS_S)
    (inv,) = khaos.invoices(ORDER_A)
    assert inv["stage"] == 70 and inv["issue_date"] is not None
    assert (before["level"], before["allocated"]) == (10, 4)
    assert (after["level"], after["allocated"]) == (7, 1)
    assert before["available"] == after["available"] == 6


def test_a_hire_line_never_moves_level(khaos: KhaosHarness) -> None:
    despatch(khaos, "SHIP-H", (H_SUIT, 1), (H_DRESS_S, 1), order_id=ORDER_HIRE)
    khaos.advance(timedelta(hours=2))
    assert khaos.stock(SUIT_HIRE, HIRE)["level"] == 4
    assert khaos.stock(SUIT_HIRE, SELLING)["level"] == 0
    assert khaos.stock(DRESS_S)["level"] == 9


def test_finance_can_hold_chosen_invoices_unissued(khaos_server: Any) -> None:
    h = make_harness(khaos_server, IssuePolicy(hold_invoice_ids={INV_A}))
    despatch(h, "SHIP-1", (A_DRESS_S, 3), (A_DRESS_M, 1))
    h.advance(timedelta(hours=5))
    assert h.invoices(ORDER_A)[0]["stage"] == 16
    assert h.stock(DRESS_S)["level"] == 10


def test_a_cancelled_order_moves_open_invoices_to_stage_1_and_frees_stock(
    khaos: KhaosHarness,
) -> None:
    khaos.sim.cancel_order(ORDER_A)
    assert [i["stage"] for i in khaos.invoices(ORDER_A)] == [1]
    assert khaos.stock(DRESS_S)["allocated"] == 1  # the hire order's dress line only


def test_the_same_despatch_twice_ships_twice(khaos: KhaosHarness) -> None:
    despatch(khaos, "SHIP-1", (A_DRESS_S, 1))
    despatch(khaos, "SHIP-1", (A_DRESS_S, 1))
    shipped = [i for i in khaos.invoices(ORDER_A) if i["external_ref"] == "SHIP-1"]
    assert len(shipped) == 2 and len(khaos.truth()["despatch_calls"]) == 2


def test_a_despatch_with_nothing_left_to_ship_is_refused(khaos: KhaosHarness) -> None:
    despatch(khaos, "SHIP-1", (A_DRESS_S, 3), (A_DRESS_M, 1))
    _, reply = call(
        khaos,
        "ImportDespatch",
        SOrderID=ORDER_A,
        ExternalRef="SHIP-1",
        Items=items_doc((A_DRESS_S, 3)),
    )
    assert reply.fault.code == "Client.Validation"


def test_write_off_return_does_not_restock_and_none_mode_raises_no_credit(
    khaos: KhaosHarness,
) -> None:
    doc = ok(
        khaos,
        "ImportCustomerReturns",
        CustomerReturn=return_doc("RET-3", ("DRESS-RED-S", 1, "BER", A_DRESS_S)),
        ProcessReturn="-1",
        CreditMode="none",
    )
    (ret,) = khaos.truth()["customer_returns"]
    assert doc.findtext("CreditNoteID") == "" and ret["credit_status"] == "none"
    assert khaos.stock(DRESS_S)["level"] == 10
    assert khaos.truth()["credit_notes"] == []


# --- faults and control endpoints ---------------------------------------------------------


def test_error_5xx_is_a_server_busy_fault_and_nothing_is_applied(khaos: KhaosHarness) -> None:
    khaos.fault(operation="ImportStockAdjustments", kind="error_5xx", count=1)
    status, code = fault_of(
        khaos,
        "ImportStockAdjustments",
        SiteID=SELLING,
        GroupRef="G",
        Lines=adjust_doc({"StockID": DRESS_S, "AdjustBy": 1, "ReasonCode": "VARIANCE"}),
    )
    assert (status, code) == (500, "Server.Busy")
    assert khaos.truth()["adjustment_groups"] == []


def test_rate_limit_answers_429_with_retry_after(khaos: KhaosHarness) -> None:
    khaos.fault(operation="GetSiteList", kind="rate_limit", count=1, retry_after=7)
    response, _ = call(khaos, "GetSiteList")
    assert response.status_code == 429 and response.headers["retry-after"] == "7"


def test_reset_after_applies_then_drops_the_connection(khaos: KhaosHarness) -> None:
    khaos.fault(operation="ImportDespatch", kind="reset_after", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        call(
            khaos,
            "ImportDespatch",
            SOrderID=ORDER_A,
            ExternalRef="S",
            Items=items_doc((A_DRESS_S, 1)),
        )
    assert len(khaos.truth()["despatch_calls"]) == 1


def test_control_endpoints_manage_faults_and_show_truth(khaos: KhaosHarness) -> None:
    base = khaos.base_url
    assert (
        httpx.post(
            f"{base}/_sandbox/faults",
            json={"operation": "GetSiteList", "kind": "error_5xx", "count": 1},
        ).status_code
        == 200
    )
    assert fault_of(khaos, "GetSiteList")[1] == "Server.Busy"
    stats = httpx.get(f"{base}/_sandbox/faults/stats").json()
    assert stats["injected"] == {"GetSiteList:error_5xx": 1}
    httpx.post(f"{base}/_sandbox/faults", json={"kind": "error_5xx", "rate": 1.0})
    assert httpx.delete(f"{base}/_sandbox/faults").status_code == 200
    ok(khaos, "GetSiteList")
    truth = httpx.get(f"{base}/_sandbox/truth").json()
    assert {o["order_id"] for o in truth["orders"]} >= {ORDER_A, ORDER_HIRE}
    assert START.isoformat() == truth["now"]
