"""The Khaos client against the simulator on loopback: typed records in and out, limits
enforced before sending, typed errors, reads retried, writes never retried, no secrets leaked.
"""

from __future__ import annotations

import logging
import socket
from datetime import timedelta
from decimal import Decimal

import pytest

from acs_khaos_dagster.connectors.errors import (
    AmbiguousError,
    AuthenticationError,
    PermanentError,
    TransientError,
)
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.connectors.khaos.wire import (
    WireValidationError,
    check_address,
    stock_codes_doc,
)
from acs_khaos_dagster.connectors.khaos.xml import UnsafeXmlError, parse_reply, parse_xml
from acs_khaos_dagster.domain.models import (
    Address,
    AdjustmentLine,
    CreditMode,
    CustomerReturn,
    DespatchPosting,
    Package,
    ReturnItem,
    StockAdjustmentGroup,
)
from acs_khaos_dagster_tests import khaos_fixtures
from acs_khaos_dagster_tests.khaos_fixtures import (
    A_DRESS_M,
    A_DRESS_S,
    AWKWARD_TEXT,
    DRESS_M,
    DRESS_S,
    H_DRESS_S,
    H_SUIT,
    HIRE,
    INV_A,
    INV_HIRE,
    ORDER_A,
    ORDER_HIRE,
    ORDER_NAMES,
    PASSWORD,
    SELLING,
    START,
    SUIT_HIRE,
    TOTE,
    KhaosHarness,
)

# The shared fixtures (one server per module, a fresh simulator per test).
khaos_server = khaos_fixtures.khaos_server
khaos = khaos_fixtures.khaos


def posting(ref: str, *lines: tuple[int, int], order_id: int = ORDER_A) -> DespatchPosting:
    return DespatchPosting(
        order_id=order_id,
        external_ref=ref,
        lines=tuple(lines),
        packages=(
            Package(
                consignment_ref=f"CN-{ref}",
                courier_code="DPD",
                shipment_date=START + timedelta(minutes=5),
                tracking_url="https://track.example/?a=1&b=2",
            ),
        ),
    )


def a_return(
    ref: str,
    reason: str,
    mode: CreditMode,
    sku: str = "DRESS-RED-S",
    source: int | None = A_DRESS_S,
) -> CustomerReturn:
    return CustomerReturn(
        associated_ref=ref,
        customer_urn="C500001",
        credit_mode=mode,
        items=(ReturnItem(sku=sku, quantity=1, return_reason=reason, source_order_item_id=source),),
    )


def calls(h: KhaosHarness, operation: str) -> int:
    return h.faults.stats()["calls"].get(operation, 0)


# --- reads ------------------------------------------------------------------------------


def test_reads_return_domain_records(khaos: KhaosHarness) -> None:
    client = khaos.client()
    assert [s.site_id for s in client.get_sites()] == [SELLING, HIRE]
    assert "DRESS-RED-S" in client.get_stock_list(START - timedelta(days=1))
    (dress,) = client.export_stock(["DRESS-RED-S"])
    assert dress.scs_parent_id == 1000 and dress.cost_price == Decimal("20.00")
    assert [b.kind for b in dress.barcodes] == ["EAN13", "OTHER"]
    (level,) = client.export_stock_status(["DRESS-RED-S"], SELLING)
    assert (level.level, level.available) == (10, 6)


def test_export_orders_gives_orders_with_lines_and_invoices(khaos: KhaosHarness) -> None:
    orders = {o.order_id: o for o in khaos.client().export_orders([9], SELLING)}
    hire = orders[ORDER_HIRE]
    assert [ln.is_hire for ln in hire.lines] == [True, False]
    assert hire.invoices[0].invoice_id == INV_HIRE and hire.invoices[0].stage_id == 9
    assert hire.order_date == START - timedelta(hours=3)


def test_names_with_ampersands_brackets_apostrophes_and_accents_round_trip(
    khaos: KhaosHarness,
) -> None:
    client = khaos.client()
    (order,) = [o for o in client.export_orders([9], SELLING) if o.order_id == ORDER_NAMES]
    assert order.contact.last_name == "O'Brien & Sons <VIP>"
    assert order.contact.first_name == "Zoë"
    assert order.delivery_address.line2 == "Rue d'Été & <Co>"
    (tote,) = client.export_stock(["TOTE-CREME"])
    assert tote.description == AWKWARD_TEXT
    ref = "R&D <1> l'été"
    client.import_stock_adjustments(
        StockAdjustmentGroup(
            site_id=SELLING,
            group_ref=ref,
            lines=(AdjustmentLine(stock_id=TOTE, adjust_by=1, reason_code="VARIANCE"),),
        )
    )
    assert [g.group_ref for g in client.export_stock_adjustments(group_ref=ref)] == [ref]


def test_export_stock_batches_more_than_100_codes(khaos: KhaosHarness) -> None:
    codes = ["DRESS-RED-S", *(f"MISSING-{i}" for i in range(149))]
    items = khaos.client().export_stock(codes)
    assert [i.stock_id for i in items] == [DRESS_S]
    assert calls(khaos, "ExportStock") == 2


def test_more_than_100_codes_in_one_call_are_refused_before_sending() -> None:
    with pytest.raises(WireValidationError):
        stock_codes_doc(f"C{i}" for i in range(101))


def test_a_stock_code_with_a_hash_is_refused_before_sending(khaos: KhaosHarness) -> None:
    with pytest.raises(PermanentError) as err:
        khaos.client().export_stock(["DRESS#RED"])
    assert err.value.code == "LOCAL_VALIDATION"
    assert calls(khaos, "ExportStock") == 0


def test_stock_codes_are_trimmed_and_limited_to_50_characters(khaos: KhaosHarness) -> None:
    client = khaos.client()
    assert [i.stock_id for i in client.export_stock(["  DRESS-RED-S "])] == [DRESS_S]
    with pytest.raises(PermanentError):
        client.export_stock(["X" * 51])


def test_address_lines_over_35_characters_are_refused() -> None:
    with pytest.raises(WireValidationError):
        check_address(Address(line1="x" * 36))
    assert check_address(Address(line1="x" * 35)).line1 == "x" * 35


# --- despatch and invoicing -------------------------------------------------------------


def test_partial_despatch_then_the_rest(khaos: KhaosHarness) -> None:
    client = khaos.client()
    first = client.import_despatch(posting("SHIP-1", (A_DRESS_S, 2)))
    assert (first.invoice_id, first.stage_id, first.external_ref) == (INV_A, 16, "SHIP-1")
    # Khaos packages carry ConsignmentRef, CourierCode and ShipmentDate: no tracking URL.
    assert first.packages[0].consignment_ref == "CN-SHIP-1"
    assert first.packages[0].tracking_url == ""
    (order,) = client.export_order_status([ORDER_A])
    back = [i for i in order.invoices if i.stage_id == 18]
    assert len(back) == 1
    assert sorted((ln.order_item_id, ln.quantity) for ln in back[0].lines) == [
        (A_DRESS_S, 1),
        (A_DRESS_M, 1),
    ]
    second = client.import_despatch(posting("SHIP-2", (A_DRESS_S, 1), (A_DRESS_M, 1)))
    assert second.invoice_id == back[0].invoice_id and second.stage_id == 16
    (order,) = client.export_order_status([ORDER_A])
    assert sorted(i.stage_id for i in order.invoices) == [16, 16]


def test_issuing_lowers_level_and_releases_allocation_keeping_available(
    khaos: KhaosHarness,
) -> None:
    client = khaos.client()
    client.import_despatch(posting("SHIP-1", (A_DRESS_S, 3), (A_DRESS_M, 1)))
    (before,) = client.export_stock_status(["DRESS-RED-S"], SELLING)
    khaos.advance(timedelta(hours=1))
    (after,) = client.export_stock_status(["DRESS-RED-S"], SELLING)
    assert (before.level, before.available) == (10, 6)
    assert (after.level, after.available) == (7, 6)
    (order,) = client.export_order_status([ORDER_A])
    assert order.invoices[0].stage_id == 70
    assert order.invoices[0].issue_date == START + timedelta(hours=1)


def test_a_hire_line_does_not_move_level_when_issued(khaos: KhaosHarness) -> None:
    client = khaos.client()
    client.import_despatch(posting("SHIP-H", (H_SUIT, 1), (H_DRESS_S, 1), order_id=ORDER_HIRE))
    khaos.advance(timedelta(hours=1))
    levels = {
        (lv.stock_id, lv.site_id): lv.level
        for lv in client.export_stock_status(["SUIT-HIRE-40", "DRESS-RED-S"], None)
    }
    assert levels[(SUIT_HIRE, HIRE)] == 4 and levels[(SUIT_HIRE, SELLING)] == 0
    assert levels[(DRESS_S, SELLING)] == 9


def test_the_erp_does_not_deduplicate_despatches(khaos: KhaosHarness) -> None:
    client = khaos.client()
    client.import_despatch(posting("SHIP-1", (A_DRESS_S, 1)))
    client.import_despatch(posting("SHIP-1", (A_DRESS_S, 1)))
    (order,) = client.export_order_status([ORDER_A])
    assert len([i for i in order.invoices if i.external_ref == "SHIP-1"]) == 2


def test_move_invoices_reports_refusals_per_invoice(khaos: KhaosHarness) -> None:
    khaos.sim.set_stage(INV_HIRE, 16)
    khaos.sim.issue_invoice(INV_HIRE)
    result = khaos.client().move_invoices([INV_A, INV_HIRE], 12)
    assert result[INV_A] is True
    assert isinstance(result[INV_HIRE], str) and "issued" in result[INV_HIRE]


# --- adjustments and returns ---------------------------------------------------------------


def test_adjust_to_and_adjust_by(khaos: KhaosHarness) -> None:
    client = khaos.client()
    result = client.import_stock_adjustments(
        StockAdjustmentGroup(
            site_id=SELLING,
            group_ref="SNAP-7",
            lines=(
                AdjustmentLine(stock_id=DRESS_S, adjust_to=8, reason_code="VARIANCE"),
                AdjustmentLine(
                    stock_id=DRESS_M, adjust_by=-1, reason_code="DAMAGED", value=Decimal("20.00")
                ),
            ),
        )
    )
    assert result.reference and result.details[f"result:{DRESS_S}"] == "OK"
    levels = {
        lv.stock_id: lv.level
        for lv in client.export_stock_status(["DRESS-RED-S", "DRESS-RED-M"], SELLING)
    }
    assert levels == {DRESS_S: 8, DRESS_M: 4}
    (group,) = client.export_stock_adjustments(group_ref="SNAP-7")
    assert group.lines[1].value == Decimal("20.00")
    assert str(group.group_id) == result.reference


def test_an_unknown_adjustment_reason_is_a_permanent_error(khaos: KhaosHarness) -> None:
    with pytest.raises(PermanentError) as err:
        khaos.client().import_stock_adjustments(
            StockAdjustmentGroup(
                site_id=SELLING,
                group_ref="G",
                lines=(AdjustmentLine(stock_id=DRESS_S, adjust_by=1, reason_code="NOPE"),),
            )
        )
    assert err.value.code == "Client.Validation"


def test_return_to_stock_raises_level_and_write_off_does_not(khaos: KhaosHarness) -> None:
    client = khaos.client()
    client.import_customer_return(a_return("RET-A", "RESTOCK", CreditMode.NONE))
    client.import_customer_return(a_return("RET-B", "BER", CreditMode.NONE))
    (level,) = client.export_stock_status(["DRESS-RED-S"], SELLING)
    assert level.level == 11


@pytest.mark.parametrize(
    ("mode", "status", "has_note", "value"),
    [
        (CreditMode.AUTO, "raised", True, Decimal("66.67")),
        (CreditMode.REVIEW, "review", False, Decimal("66.67")),
        (CreditMode.NONE, "none", False, Decimal("0")),
    ],
)
def test_credit_modes(
    khaos: KhaosHarness, mode: CreditMode, status: str, has_note: bool, value: Decimal
) -> None:
    client = khaos.client()
    result = client.import_customer_return(a_return("RET-C", "UNWANTED", mode))
    (ret,) = client.export_customer_returns(associated_ref="RET-C")
    assert str(ret.return_id) == result.reference
    assert (ret.credit_status, ret.credit_note_id is not None, ret.credit_value) == (
        status,
        has_note,
        value,
    )


# --- failures ------------------------------------------------------------------------------


def test_wrong_credentials_raise_authentication_error_without_the_password(
    khaos: KhaosHarness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = khaos.client(password="not-the-password-9f")
    with pytest.raises(AuthenticationError) as err:
        client.get_sites()
    text = f"{err.value} {err.value!r} {client!r} {caplog.text}"
    assert "not-the-password-9f" not in text and PASSWORD not in text
    assert calls(khaos, "GetSiteList") == 1  # not retried


def test_timeout_after_sending_a_write_is_ambiguous_and_was_applied(khaos: KhaosHarness) -> None:
    khaos.fault(operation="ImportDespatch", kind="timeout_after", count=1, latency_s=1.0)
    with pytest.raises(AmbiguousError):
        khaos.client(timeout=0.3).import_despatch(posting("SHIP-T", (A_DRESS_S, 1)))
    assert [c["external_ref"] for c in khaos.truth()["despatch_calls"]] == ["SHIP-T"]
    assert calls(khaos, "ImportDespatch") == 1  # never retried inside the client


def test_timeout_before_applying_is_also_ambiguous_but_nothing_was_applied(
    khaos: KhaosHarness,
) -> None:
    khaos.fault(operation="ImportDespatch", kind="timeout_before", count=1, latency_s=1.0)
    with pytest.raises(AmbiguousError):
        khaos.client(timeout=0.3).import_despatch(posting("SHIP-T", (A_DRESS_S, 1)))
    assert khaos.truth()["despatch_calls"] == []
    (order,) = khaos.client().export_order_status([ORDER_A])
    assert not [i for i in order.invoices if i.external_ref == "SHIP-T"]


def test_connection_reset_after_a_write_is_ambiguous(khaos: KhaosHarness) -> None:
    khaos.fault(operation="ImportStockAdjustments", kind="reset_after", count=1)
    with pytest.raises(AmbiguousError):
        khaos.client().import_stock_adjustments(
            StockAdjustmentGroup(
                site_id=SELLING,
                group_ref="G-R",
                lines=(AdjustmentLine(stock_id=DRESS_S, adjust_by=1, reason_code="VARIANCE"),),
            )
        )
    assert len(khaos.client().export_stock_adjustments(group_ref="G-R")) == 1


def test_server_busy_on_a_write_is_transient_and_not_retried(khaos: KhaosHarness) -> None:
    khaos.fault(operation="ImportCustomerReturns", kind="error_5xx", count=1)
    with pytest.raises(TransientError) as err:
        khaos.client().import_customer_return(a_return("RET-X", "RESTOCK", CreditMode.AUTO))
    assert err.value.code == "Server.Busy"
    assert calls(khaos, "ImportCustomerReturns") == 1
    assert khaos.truth()["customer_returns"] == []


def test_reads_are_retried_through_busy_faults_and_resets(khaos: KhaosHarness) -> None:
    khaos.fault(operation="GetSiteList", kind="error_5xx", count=2)
    khaos.fault(operation="GetSiteList", kind="reset_before", count=1)
    assert len(khaos.client().get_sites()) == 2
    assert calls(khaos, "GetSiteList") == 4


def test_reads_give_up_after_the_retry_budget(khaos: KhaosHarness) -> None:
    khaos.fault(operation="GetSiteList", kind="error_5xx", rate=1.0)
    with pytest.raises(TransientError):
        khaos.client(read_retries=2).get_sites()
    assert calls(khaos, "GetSiteList") == 3


def test_rate_limit_is_honoured_and_a_long_retry_after_is_handed_back(
    khaos: KhaosHarness,
) -> None:
    slept: list[float] = []
    khaos.fault(operation="GetSiteList", kind="rate_limit", count=1, retry_after=0)
    assert khaos.client(sleep=slept.append).get_sites()
    khaos.fault(operation="GetSiteList", kind="rate_limit", count=1, retry_after=120)
    with pytest.raises(TransientError) as err:
        khaos.client(sleep=slept.append).get_sites()
    assert err.value.retry_after == 120 and err.value.status_code == 429
    assert len(slept) == 1  # one retry for the first, none for the long wait


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = KhaosClient(
        f"http://127.0.0.1:{port}/K.exe/soap/IKosWeb", "u", "p", timeout=1.0, read_retries=0
    )
    with client, pytest.raises(TransientError):
        client.get_sites()
    with (
        KhaosClient(f"http://127.0.0.1:{port}/K.exe/soap/IKosWeb", "u", "p") as writer,
        pytest.raises(TransientError),
    ):
        writer.move_invoices([1], 12)


# --- the client's XML parser refuses unsafe replies ----------------------------------------

_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    "<SITES><SITE><SiteName>&lol2;</SiteName></SITE></SITES>"
)
_EXTERNAL = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'


@pytest.mark.parametrize("document", [_LAUGHS, _EXTERNAL])
def test_the_parser_refuses_entities(document: str) -> None:
    with pytest.raises(UnsafeXmlError):
        parse_xml(document)


def test_a_reply_whose_inner_document_carries_an_entity_is_refused() -> None:
    from acs_khaos_dagster.connectors.khaos.xml import build_response

    with pytest.raises(UnsafeXmlError):
        parse_reply(build_response("GetSiteList", _LAUGHS))
    with pytest.raises(UnsafeXmlError):
        parse_reply(_EXTERNAL.encode())
