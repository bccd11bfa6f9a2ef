"""Khaos's reply documents as domain records, and the limits checked before sending
(``connectors/khaos/wire/reply_documents.py`` and ``limits.py``).

Each reply is written here as Khaos writes it (UK wall-clock times, ``-1`` for true,
quantities as ``10.0000``); the oracle is the record a person reads off that XML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from acs_khaos_dagster.connectors.khaos.wire.limits import (
    MAX_REF,
    MAX_STOCK_CODE,
    WireValidationError,
    check_address,
    clean_ref,
    clean_stock_code,
    whole_number,
)
from acs_khaos_dagster.connectors.khaos.wire.reply_documents import (
    parse_adjustment_groups,
    parse_adjustment_result,
    parse_customer_returns,
    parse_despatch_result,
    parse_move_results,
    parse_orders,
    parse_return_result,
    parse_sites,
    parse_stock_codes,
    parse_stock_items,
    parse_stock_status,
)
from acs_khaos_dagster.domain.models import Address


def doc(text: str) -> ET.Element:
    return ET.fromstring(text)


# --- limits --------------------------------------------------------------------------------------


def test_a_stock_code_is_sent_trimmed() -> None:
    assert clean_stock_code("  DRS-1 ") == "DRS-1"


@pytest.mark.parametrize(
    ("code", "says"),
    [("   ", "empty"), ("A" * 51, "longer than 50"), ("DRS#1", "contains '#'")],
)
def test_a_stock_code_khaos_would_refuse_is_stopped_before_sending(code: str, says: str) -> None:
    with pytest.raises(WireValidationError, match=says):
        clean_stock_code(code)


def test_a_stock_code_of_exactly_the_limit_is_sent() -> None:
    assert MAX_STOCK_CODE == 50
    assert clean_stock_code("A" * 50) == "A" * 50


def test_a_required_reference_cannot_be_blank() -> None:
    with pytest.raises(WireValidationError, match="AssociatedRef is required"):
        clean_ref("  ", "AssociatedRef")


def test_an_optional_reference_may_be_blank() -> None:
    assert clean_ref("  ", "ExternalRef", required=False) == ""


def test_a_reference_longer_than_its_limit_is_stopped_naming_the_field() -> None:
    assert MAX_REF == 50
    assert clean_ref(" " + "R" * 50 + " ", "GroupRef") == "R" * 50
    with pytest.raises(WireValidationError, match="GroupRef is longer than 50"):
        clean_ref("R" * 51, "GroupRef")
    with pytest.raises(WireValidationError, match="Note is longer than 10"):
        clean_ref("R" * 11, "Note", max_len=10)


@pytest.mark.parametrize("line", ["line1", "line2", "line3", "line4", "city", "county"])
def test_an_address_line_over_35_characters_is_stopped_naming_the_line(line: str) -> None:
    assert check_address(Address(**{line: "x" * 35})) == Address(**{line: "x" * 35})
    with pytest.raises(WireValidationError, match=f"address {line} is longer than 35"):
        check_address(Address(**{line: "x" * 36}))


@pytest.mark.parametrize(("text", "units"), [("10", 10), ("10.0000", 10), (" -3.00 ", -3)])
def test_a_quantity_is_a_whole_number_however_khaos_writes_it(text: str, units: int) -> None:
    assert whole_number(text, "Quantity") == units


@pytest.mark.parametrize(
    ("text", "says"),
    [("2.5", "not a whole number"), ("NaN", "not a whole number"), ("ten", "not a number")],
)
def test_a_quantity_that_is_not_a_whole_number_is_an_error(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        whole_number(text, "Quantity")


# --- catalogue -----------------------------------------------------------------------------------


def test_sites_are_read_with_their_ids_and_names() -> None:
    sites = parse_sites(
        doc(
            "<SITES><SITE><SiteID>1</SiteID><SiteName>Main</SiteName></SITE>"
            "<SITE><SiteID>4</SiteID><SiteName>ACS Sellable</SiteName></SITE></SITES>"
        )
    )
    assert [(s.site_id, s.name) for s in sites] == [(1, "Main"), (4, "ACS Sellable")]


def test_no_reply_document_is_no_records() -> None:
    assert parse_sites(None) == []
    assert parse_orders(None) == []
    assert parse_stock_status(None) == []


def test_stock_codes_are_read_trimmed() -> None:
    codes = doc("<CODES><StockCode> A-1 </StockCode><StockCode>B-2</StockCode></CODES>")
    assert parse_stock_codes(codes) == ["A-1", "B-2"]


def test_a_stock_item_is_read_with_prices_flags_and_barcodes() -> None:
    [item] = parse_stock_items(
        doc(
            "<ITEMS><STOCK_ITEM><StockID>40</StockID><StockCode>DRS-1-NVY-10</StockCode>"
            "<ShortDescription>Dress navy 10</ShortDescription><BuyPrice>10.5</BuyPrice>"
            "<CostPrice>12.3456</CostPrice><SellPrice>49.99</SellPrice>"
            "<Discontinued>0</Discontinued><PublishOnWeb>-1</PublishOnWeb>"
            "<StockControlled>true</StockControlled><SCSParentID>7</SCSParentID>"
            "<Style>DRS-1</Style><Colour>Navy</Colour><Size>10</Size><IsHire>1</IsHire>"
            "<Barcodes><BARCODE><Barcode>5012345678900</Barcode></BARCODE>"
            "<BARCODE><Barcode>ABC</Barcode><Type>CODE128</Type></BARCODE>"
            "<BARCODE><Barcode></Barcode></BARCODE></Barcodes>"
            "</STOCK_ITEM></ITEMS>"
        )
    )
    assert (item.stock_id, item.stock_code, item.description) == (
        40,
        "DRS-1-NVY-10",
        "Dress navy 10",
    )
    assert (item.buy_price, item.cost_price, item.sell_price) == (
        Decimal("10.5"),
        Decimal("12.3456"),
        Decimal("49.99"),
    )
    assert (item.discontinued, item.publish_on_web, item.stock_controlled, item.is_hire) == (
        False,
        True,
        True,
        True,
    )
    assert (item.scs_parent_id, item.style, item.colour, item.size) == (7, "DRS-1", "Navy", "10")
    assert [(b.value, b.kind) for b in item.barcodes] == [
        ("5012345678900", "EAN13"),
        ("ABC", "CODE128"),
    ]


def test_a_stock_item_without_prices_costs_nothing_and_has_no_parent() -> None:
    [item] = parse_stock_items(
        doc("<ITEMS><STOCK_ITEM><StockID>41</StockID><StockCode>X</StockCode></STOCK_ITEM></ITEMS>")
    )
    assert (item.cost_price, item.scs_parent_id, item.barcodes) == (Decimal("0"), None, ())


# --- stock ---------------------------------------------------------------------------------------


def test_stock_status_reads_level_available_and_on_order() -> None:
    [row] = parse_stock_status(
        doc(
            "<S><STOCK><StockID>40</StockID><SiteID>1</SiteID><Level>12.0000</Level>"
            "<Available>9.0000</Available><OnOrder>3</OnOrder></STOCK></S>"
        )
    )
    assert (row.stock_id, row.site_id, row.level, row.available, row.on_order) == (40, 1, 12, 9, 3)


def test_stock_status_without_level_or_on_order_reads_as_unreported_and_zero() -> None:
    [row] = parse_stock_status(
        doc("<S><STOCK><StockID>40</StockID><SiteID>1</SiteID><Available>9</Available></STOCK></S>")
    )
    assert (row.level, row.on_order) == (None, 0)


def test_stock_status_without_available_is_an_error() -> None:
    with pytest.raises(ValueError, match="Available missing"):
        parse_stock_status(doc("<S><STOCK><StockID>40</StockID><SiteID>1</SiteID></STOCK></S>"))


def test_a_row_without_its_stock_id_is_an_error() -> None:
    with pytest.raises(ValueError, match="StockID missing"):
        parse_stock_status(doc("<S><STOCK><SiteID>1</SiteID><Available>1</Available></STOCK></S>"))


# --- orders --------------------------------------------------------------------------------------

ORDER = (
    "<ORDERS><ORDER><HEADER><SOrderID>5001</SOrderID><SOrderCode>SO5001</SOrderCode>"
    "<AssociatedRef>WEB-1</AssociatedRef><OrderDate>2026-06-10T09:30:00</OrderDate>"
    "<CourierCode>DPD</CourierCode><CustomerURN>C77</CustomerURN><SiteID>1</SiteID>"
    "<DeliveryForename>Jane</DeliveryForename><DeliverySurname>Smith</DeliverySurname>"
    "<DeliveryAddress1>12 Acacia Avenue</DeliveryAddress1><DeliveryTown>Leeds</DeliveryTown>"
    "<DeliveryPostcode>LS1 4AB</DeliveryPostcode></HEADER>"
    "<ITEMS><ITEM><OrderItemID>700001</OrderItemID><StockID>40</StockID>"
    "<StockCode>DRS-1</StockCode><Quantity>2.0000</Quantity><UnitNet>24.99</UnitNet></ITEM>"
    "<ITEM><OrderItemID>700002</OrderItemID><StockID>41</StockID><StockCode>HAT</StockCode>"
    "<Quantity>1</Quantity><UnitNet>5</UnitNet><IsHire>-1</IsHire></ITEM></ITEMS>"
    "<INVOICES><INVOICE><InvoiceID>9001</InvoiceID><InvoiceCode>INV9001</InvoiceCode>"
    "<INVOICE_STAGE_ID>12</INVOICE_STAGE_ID><IssueDate>2026-01-15 14:00:00</IssueDate>"
    "<ExternalRef>SH-1</ExternalRef><ITEMS><ITEM><OrderItemID>700001</OrderItemID>"
    "<StockID>40</StockID><Quantity>2</Quantity></ITEM></ITEMS>"
    "<PACKAGES><PACKAGE><ConsignmentRef>CN1</ConsignmentRef><CourierCode>DPD</CourierCode>"
    "<ShipmentDate>2026-06-11T08:00:00</ShipmentDate></PACKAGE></PACKAGES>"
    "</INVOICE></INVOICES></ORDER></ORDERS>"
)


def test_an_orders_header_is_read_with_its_uk_order_time_in_utc() -> None:
    [order] = parse_orders(doc(ORDER))
    assert (order.order_id, order.order_code, order.associated_ref) == (5001, "SO5001", "WEB-1")
    assert order.order_date == datetime(2026, 6, 10, 8, 30, tzinfo=UTC)  # BST
    assert (order.courier_code, order.customer_urn, order.site_id) == ("DPD", "C77", 1)


def test_an_orders_delivery_contact_and_address_are_read_country_gb_by_default() -> None:
    [order] = parse_orders(doc(ORDER))
    assert (order.contact.first_name, order.contact.last_name) == ("Jane", "Smith")
    address = order.delivery_address
    assert (address.line1, address.city, address.postcode, address.country) == (
        "12 Acacia Avenue",
        "Leeds",
        "LS1 4AB",
        "GB",
    )


def test_an_orders_lines_are_read_with_quantities_prices_and_hire_flags() -> None:
    [order] = parse_orders(doc(ORDER))
    assert [
        (ln.order_item_id, ln.stock_id, ln.quantity, ln.unit_net, ln.is_hire) for ln in order.lines
    ] == [
        (700001, 40, 2, Decimal("24.99"), False),
        (700002, 41, 1, Decimal("5"), True),
    ]


def test_an_orders_invoice_is_read_with_its_stage_lines_and_packages() -> None:
    [order] = parse_orders(doc(ORDER))
    [invoice] = order.invoices
    assert (invoice.invoice_id, invoice.invoice_code, invoice.stage_id) == (9001, "INV9001", 12)
    assert invoice.issue_date == datetime(2026, 1, 15, 14, tzinfo=UTC)  # GMT
    assert invoice.external_ref == "SH-1"
    assert [(ln.order_item_id, ln.stock_id, ln.quantity) for ln in invoice.lines] == [
        (700001, 40, 2)
    ]
    [package] = invoice.packages
    assert (package.consignment_ref, package.shipment_date) == (
        "CN1",
        datetime(2026, 6, 11, 7, tzinfo=UTC),
    )


def test_an_order_without_a_header_is_an_error() -> None:
    with pytest.raises(ValueError, match="ORDER without HEADER"):
        parse_orders(doc("<ORDERS><ORDER><ITEMS/></ORDER></ORDERS>"))


def test_a_fractional_order_quantity_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a whole number"):
        parse_orders(doc(ORDER.replace("<Quantity>2.0000</Quantity>", "<Quantity>1.5</Quantity>")))


# --- results of writes ---------------------------------------------------------------------------


def test_move_results_say_moved_or_why_not() -> None:
    results = parse_move_results(
        doc(
            "<R><INVOICE><InvoiceID>1</InvoiceID><Moved>-1</Moved></INVOICE>"
            "<INVOICE><InvoiceID>2</InvoiceID><Moved>0</Moved><Reason>on hold</Reason></INVOICE>"
            "<INVOICE><InvoiceID>3</InvoiceID><Moved>0</Moved></INVOICE></R>"
        )
    )
    assert results == {1: True, 2: "on hold", 3: "refused"}


def test_a_despatch_result_is_the_invoice_it_names() -> None:
    invoice = parse_despatch_result(
        doc(
            "<R><INVOICE><InvoiceID>9</InvoiceID><InvoiceCode>I9</InvoiceCode>"
            "<INVOICE_STAGE_ID>22</INVOICE_STAGE_ID></INVOICE></R>"
        )
    )
    assert (invoice.invoice_id, invoice.stage_id, invoice.issue_date) == (9, 22, None)


@pytest.mark.parametrize("reply", [None, doc("<R/>")])
def test_a_despatch_result_without_an_invoice_is_an_error(reply: ET.Element | None) -> None:
    with pytest.raises(ValueError, match="without INVOICE"):
        parse_despatch_result(reply)


def test_an_adjustment_result_gives_the_group_and_each_lines_result() -> None:
    group_id, details = parse_adjustment_result(
        doc(
            "<R><GroupID>77</GroupID><LINES><LINE><StockID>40</StockID><Result>OK</Result></LINE>"
            "<LINE><StockID>41</StockID><Result>NEGATIVE</Result></LINE></LINES></R>"
        )
    )
    assert group_id == 77
    assert details == {"group_id": "77", "result:40": "OK", "result:41": "NEGATIVE"}


def test_an_empty_adjustment_result_is_an_error() -> None:
    with pytest.raises(ValueError, match="ImportStockAdjustments reply is empty"):
        parse_adjustment_result(None)


def test_saved_adjustment_groups_are_read_with_their_lines() -> None:
    [group] = parse_adjustment_groups(
        doc(
            "<R><GROUP><GroupID>77</GroupID><SiteID>4</SiteID><GroupRef>PUSH-1</GroupRef><LINES>"
            "<LINE><StockID>40</StockID><AdjustBy>-2.0000</AdjustBy><ReasonCode>VAR</ReasonCode>"
            "<Value>-24.68</Value></LINE>"
            "<LINE><StockID>41</StockID><AdjustTo>5</AdjustTo><ReasonCode>VAR</ReasonCode></LINE>"
            "</LINES></GROUP></R>"
        )
    )
    assert (group.group_id, group.site_id, group.group_ref) == (77, 4, "PUSH-1")
    assert [(ln.stock_id, ln.adjust_to, ln.adjust_by, ln.value) for ln in group.lines] == [
        (40, None, -2, Decimal("-24.68")),
        (41, 5, None, Decimal("0")),
    ]


def test_a_return_result_gives_the_return_and_its_credit_note() -> None:
    reply = doc("<R><ReturnID>31</ReturnID><CreditNoteID>88</CreditNoteID></R>")
    assert parse_return_result(reply) == (31, {"return_id": "31", "credit_note_id": "88"})
    assert parse_return_result(doc("<R><ReturnID>32</ReturnID></R>")) == (
        32,
        {"return_id": "32", "credit_note_id": ""},
    )


def test_customer_returns_are_read_with_items_and_credit() -> None:
    returns = parse_customer_returns(
        doc(
            "<R><CUSTOMER_RETURN><ReturnID>31</ReturnID><AssociatedRef>R1-P1</AssociatedRef>"
            "<ITEMS><ITEM><SKU>DRS-1</SKU><Quantity>1</Quantity><ReturnReason>RTS</ReturnReason>"
            "<SourceOrderItemID>700001</SourceOrderItemID></ITEM></ITEMS>"
            "<CreditNoteID>88</CreditNoteID><CreditValue>24.99</CreditValue>"
            "<CreditStatus>raised</CreditStatus></CUSTOMER_RETURN>"
            "<CUSTOMER_RETURN><ReturnID>32</ReturnID><AssociatedRef>R2-P1</AssociatedRef>"
            "</CUSTOMER_RETURN></R>"
        )
    )
    first, second = returns
    assert (first.return_id, first.associated_ref, first.credit_note_id) == (31, "R1-P1", 88)
    assert (first.credit_value, first.credit_status) == (Decimal("24.99"), "raised")
    [item] = first.items
    assert (item.sku, item.quantity, item.return_reason, item.source_order_item_id) == (
        "DRS-1",
        1,
        "RTS",
        700001,
    )
    assert (second.credit_note_id, second.credit_value, second.credit_status, second.items) == (
        None,
        Decimal("0"),
        "none",
        (),
    )
