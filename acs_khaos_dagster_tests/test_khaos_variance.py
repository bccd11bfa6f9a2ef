"""Khaos installs as they really differ, simulated, and the client working against each
(issue 18, points 3, 4, 5 and 7): Level absent, UK wall-clock time across both clock
changes, the install's own codes, reference limits, writes applied late or behind a
gateway error.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from acs_khaos_dagster.connectors.errors import AmbiguousError, PermanentError
from acs_khaos_dagster.connectors.khaos.xml import SOAP_ACTION_PREFIX, build_request, parse_reply
from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    CreditMode,
    CustomerReturn,
    DespatchPosting,
    ReturnItem,
    StockAdjustmentGroup,
)
from acs_khaos_dagster.sandbox.khaos import IssuePolicy, KhaosInstall
from acs_khaos_dagster_tests import contract_fields, khaos_fixtures
from acs_khaos_dagster_tests.khaos_fixtures import (
    A_DRESS_M,
    A_DRESS_S,
    DRESS_M,
    DRESS_S,
    HIRE,
    INV_A,
    ORDER_A,
    PASSWORD,
    SELLING,
    SUIT_HIRE,
    TOTE,
    USER,
    KhaosHarness,
    make_harness,
)

khaos_server = khaos_fixtures.khaos_server
khaos = khaos_fixtures.khaos

# October 2026: BST ends at 02:00 BST on Sunday 25th (01:00 UTC); 01:00-02:00 happens twice.
OCTOBER_EVE = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
# March 2026: BST starts at 01:00 GMT on Sunday 29th; 01:00-02:00 never happens.
MARCH_EVE = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)


def soap(h: KhaosHarness, operation: str, **params: Any) -> tuple[httpx.Response, Any]:
    body = build_request(operation, USER, PASSWORD, params)
    response = h.post_raw(body, action=f'"{SOAP_ACTION_PREFIX}{operation}"')
    return response, parse_reply(response.content)


def adjustment(ref: str, *lines: AdjustmentLine, site: int = SELLING) -> StockAdjustmentGroup:
    return StockAdjustmentGroup(site_id=site, group_ref=ref, lines=lines)


# --- Level present or absent (point 3) ------------------------------------------------------


@pytest.fixture
def without_level(khaos_server: Any) -> KhaosHarness:
    return make_harness(khaos_server, IssuePolicy(), install=KhaosInstall(reports_level=False))


def test_an_install_without_level_gives_available_and_on_order_only(
    without_level: KhaosHarness,
) -> None:
    codes = ET.Element("STOCK_CODES")
    ET.SubElement(codes, "StockCode").text = "DRESS-RED-S"
    _, reply = soap(without_level, "ExportStockStatus", StockCodes=codes, SiteID=SELLING)
    shape = contract_fields.xml_shape(reply.document)
    assert shape == {"STOCK": contract_fields.leaves("StockID", "SiteID", "Available", "OnOrder")}


def test_level_is_available_plus_what_open_invoices_allocate_where_khaos_does_not_report_it(
    without_level: KhaosHarness,
) -> None:
    client = without_level.client(stock_level_source="available_plus_allocated")
    # A partial despatch: shipped part at Issue, the rest a back order in Awaiting Stock.
    client.import_despatch(DespatchPosting(order_id=ORDER_A, external_ref="S-1", lines=((11, 1),)))

    levels = client.export_stock_status(["DRESS-RED-S", "DRESS-RED-M", "SUIT-HIRE-40"], None)

    truth = {(r["stock_id"], r["site_id"]): r for r in without_level.truth()["stock"]}
    for level in levels:
        assert level.level == truth[(level.stock_id, level.site_id)]["level"], level
    by_key = {(lv.stock_id, lv.site_id): lv for lv in levels}
    # DRESS-RED-S: Level 10 with 3 + 1 allocated; a hire line (the suit) allocates nothing.
    assert (by_key[(DRESS_S, SELLING)].level, by_key[(DRESS_S, SELLING)].available) == (10, 6)
    assert by_key[(SUIT_HIRE, HIRE)].level == 4


def test_reading_available_as_level_would_understate_it_by_the_allocation(
    without_level: KhaosHarness,
) -> None:
    # What "mapping Available to Level" would push against: 6 where Khaos holds 10.
    client = without_level.client(stock_level_source="available_plus_allocated")
    (level,) = client.export_stock_status(["DRESS-RED-S"], SELLING)
    assert level.level - level.available == 4 == without_level.stock(DRESS_S)["allocated"]


def test_expecting_level_from_an_install_without_it_is_a_clear_permanent_error(
    without_level: KhaosHarness,
) -> None:
    with pytest.raises(PermanentError, match="stock_level_source") as caught:
        without_level.client().export_stock_status(["DRESS-RED-S"], SELLING)
    assert caught.value.code == "LEVEL_NOT_REPORTED"


def test_derived_level_follows_issuing_and_cancelling(without_level: KhaosHarness) -> None:
    client = without_level.client(stock_level_source="available_plus_allocated")
    client.import_despatch(
        DespatchPosting(
            order_id=ORDER_A, external_ref="S-1", lines=((A_DRESS_S, 3), (A_DRESS_M, 1))
        )
    )
    without_level.advance(timedelta(hours=2))  # issued: Level 10 -> 7
    without_level.sim.cancel_order(khaos_fixtures.ORDER_HIRE)  # frees the hire order's dress

    (level,) = client.export_stock_status(["DRESS-RED-S"], SELLING)

    assert (level.level, level.available) == (7, 7) == (without_level.stock(DRESS_S)["level"],) * 2


# --- UK wall-clock time at both clock changes (point 4) ---------------------------------------


def _changed_at(h: KhaosHarness, when: datetime, stock_id: int, code: str) -> None:
    h.clock.set(when)
    h.sim.rename_stock_code(stock_id, code)


def test_khaos_compares_changed_since_in_wall_clock_time_in_the_repeated_hour(
    khaos_server: Any,
) -> None:
    h = make_harness(khaos_server, start=OCTOBER_EVE)
    # 01:10 GMT (the second 01:10) is after 01:45 BST, but sorts before it on the clock.
    _changed_at(h, datetime(2026, 10, 25, 1, 10, tzinfo=UTC), DRESS_M, "DRESS-RED-MEDIUM")

    _, reply = soap(h, "GetStockList", DateValue="2026-10-25T01:40:00")

    assert [c.text for c in reply.document.findall("StockCode")] == []


def test_a_change_in_the_repeated_hour_after_the_watermark_is_not_missed(
    khaos_server: Any,
) -> None:
    h = make_harness(khaos_server, start=OCTOBER_EVE)
    watermark = datetime(2026, 10, 25, 0, 45, tzinfo=UTC)  # 01:45 BST, the first 01:45
    _changed_at(h, datetime(2026, 10, 25, 1, 10, tzinfo=UTC), DRESS_M, "DRESS-RED-MEDIUM")

    codes = h.client().get_stock_list(watermark - timedelta(minutes=5))

    assert "DRESS-RED-MEDIUM" in codes


def test_a_change_after_the_spring_forward_is_found_from_before_it(khaos_server: Any) -> None:
    h = make_harness(khaos_server, start=MARCH_EVE)
    _changed_at(h, datetime(2026, 3, 29, 1, 10, tzinfo=UTC), TOTE, "TOTE-CREAM")  # 02:10 BST

    found = h.client().get_stock_list(datetime(2026, 3, 29, 0, 55, tzinfo=UTC))  # 00:55 GMT

    assert found == ["TOTE-CREAM"]


@pytest.mark.parametrize(
    ("issued", "wall", "read_as"),
    [
        # The first 01:30 of the repeated hour: BST.
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "2026-10-25T01:30:00", None),
        # The second 01:30 (GMT) reads as the first: the contract's stated rule.
        (
            datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
            "2026-10-25T01:30:00",
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        ),
        # Just after the spring-forward gap.
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "2026-03-29T02:30:00", None),
        (datetime(2026, 7, 1, 12, 0, tzinfo=UTC), "2026-07-01T13:00:00", None),
    ],
)
def test_times_in_replies_are_uk_wall_clock_read_back_by_the_stated_rule(
    khaos_server: Any, issued: datetime, wall: str, read_as: datetime | None
) -> None:
    h = make_harness(khaos_server, start=issued - timedelta(hours=1))
    client = h.client()
    client.import_despatch(DespatchPosting(order_id=ORDER_A, external_ref="S-T", lines=((11, 1),)))
    h.advance(timedelta(hours=1))  # the finance batch issues it now

    _, reply = soap(h, "ExportOrderStatusEx", IDs=str(ORDER_A), IncludeTracking="0")
    (order,) = client.export_order_status([ORDER_A], include_tracking=False)

    assert reply.document.findtext("ORDER/INVOICES/INVOICE/IssueDate") == wall
    invoice = next(i for i in order.invoices if i.invoice_id == INV_A)
    assert invoice.issue_date == (read_as or issued)


# --- the install's own codes (point 5) ----------------------------------------------------------

OWN = KhaosInstall(
    adjustment_reasons=frozenset({"WO", "COUNT", "MOVE"}),
    return_reasons={"RTS": "return_to_stock", "SCRAP": "write_off"},
)


def test_an_install_refuses_the_codes_it_does_not_name(khaos_server: Any) -> None:
    client = make_harness(khaos_server, install=OWN).client()
    with pytest.raises(PermanentError, match="unknown reason code 'VARIANCE'"):
        client.import_stock_adjustments(
            adjustment("G-1", AdjustmentLine(stock_id=DRESS_S, adjust_by=1, reason_code="VARIANCE"))
        )


def test_an_install_moves_level_by_its_own_codes_and_return_reasons(khaos_server: Any) -> None:
    h = make_harness(khaos_server, install=OWN)
    client = h.client()
    client.import_stock_adjustments(
        adjustment("G-1", AdjustmentLine(stock_id=DRESS_S, adjust_by=-1, reason_code="WO"))
    )

    def ret(ref: str, reason: str) -> CustomerReturn:
        item = ReturnItem(sku="DRESS-RED-M", quantity=1, return_reason=reason)
        return CustomerReturn(
            associated_ref=ref, customer_urn="C1", items=(item,), credit_mode=CreditMode.NONE
        )

    client.import_customer_return(ret("R-1", "RTS"))
    client.import_customer_return(ret("R-2", "SCRAP"))

    assert h.stock(DRESS_S)["level"] == 9
    assert h.stock(DRESS_M)["level"] == 6  # RTS returned to stock; SCRAP wrote off


# --- reference limits (point 7) ---------------------------------------------------------------


def test_khaos_refuses_a_group_ref_longer_than_it_stores(khaos: KhaosHarness) -> None:
    lines = ET.Element("ADJUSTMENTS")
    line = ET.SubElement(lines, "ADJUSTMENT")
    for tag, value in (("StockID", DRESS_S), ("AdjustBy", 1), ("ReasonCode", "VARIANCE")):
        ET.SubElement(line, tag).text = str(value)

    _, reply = soap(
        khaos, "ImportStockAdjustments", SiteID=SELLING, GroupRef="G" * 300, Lines=lines
    )

    assert reply.fault.code == "Client.Validation" and "GroupRef" in reply.fault.message
    assert khaos.truth()["adjustment_groups"] == []


def test_the_client_refuses_a_reference_over_the_installs_limit_before_sending(
    khaos: KhaosHarness,
) -> None:
    client = khaos.client(reference_max_length=20)
    line = AdjustmentLine(stock_id=DRESS_S, adjust_by=1, reason_code="VARIANCE")
    group = adjustment("SNAP-" + "9" * 20, line)
    with pytest.raises(PermanentError, match="GroupRef is longer than 20") as caught:
        client.import_stock_adjustments(group)
    assert caught.value.code == "LOCAL_VALIDATION"
    assert khaos.faults.stats()["calls"].get("ImportStockAdjustments", 0) == 0


# --- writes applied late or behind a gateway error (point 7) ------------------------------------


def test_a_late_apply_lands_only_when_its_time_has_come(khaos: KhaosHarness) -> None:
    khaos.fault(operation="ImportStockAdjustments", kind="late_apply", count=1, apply_after_s=120)
    line = AdjustmentLine(stock_id=DRESS_S, adjust_by=2, reason_code="VARIANCE")
    group = adjustment("LATE-1", line)

    with pytest.raises(AmbiguousError):
        khaos.client().import_stock_adjustments(group)
    assert khaos.client().export_stock_adjustments(group_ref="LATE-1") == []
    khaos.advance(timedelta(seconds=60))
    assert khaos.stock(DRESS_S)["level"] == 10
    khaos.advance(timedelta(seconds=60))

    assert khaos.stock(DRESS_S)["level"] == 12
    [late] = khaos.truth()["late_writes"]
    assert late["operation"] == "ImportStockAdjustments" and late["applied_at"]


def test_a_gateway_error_after_applying_answers_502_with_an_html_body(khaos: KhaosHarness) -> None:
    khaos.fault(operation="ImportDespatch", kind="applied_then_5xx", count=1)
    items = ET.Element("ITEMS")
    item = ET.SubElement(items, "ITEM")
    ET.SubElement(item, "OrderItemID").text = str(A_DRESS_S)
    ET.SubElement(item, "Quantity").text = "1"
    body = build_request(
        "ImportDespatch",
        USER,
        PASSWORD,
        {"SOrderID": ORDER_A, "ExternalRef": "S-G", "Items": items},
    )

    response = khaos.post_raw(body)

    assert response.status_code == 502 and response.headers["content-type"].startswith("text/html")
    assert [c["external_ref"] for c in khaos.truth()["despatch_calls"]] == ["S-G"]
