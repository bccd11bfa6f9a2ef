"""Order release rules the examples in ``test_order_release.py`` leave open.

Which invoice and lines are released, when an order is never sent (cancelled, nothing at
the release stage, a back order), when one must be cancelled at ACS, how ACS's 422 list
becomes a hold, and what changes the release revision. Orders are built by hand here;
expected results are the facts of each built order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.domain.models import Invoice, InvoiceLine, OrderLine, SalesOrder
from acs_khaos_dagster.domain.order_release import (
    ReadySku,
    SkuReadiness,
    hold_from_acs_rejection,
    is_back_order_of_released_order,
    orders_to_cancel,
    readiness_from_classification,
    release_outbox_key,
    release_plan,
    release_revision,
    to_acs_order,
    validate_against_ready_skus,
)
from acs_khaos_dagster.domain.order_release.cancellations import needs_cancelling_at_acs
from acs_khaos_dagster.domain.order_release.mapping import release_invoice, release_lines

RELEASED, CANCELLED, ACKNOWLEDGED, ISSUE, AWAITING, ISSUED = 9, 1, 12, 16, 18, 70
SKUS = {101: "JKT-RED-M", 102: "DRS-BLK-10", 103: "SCARF-1"}
LINES = (
    OrderLine(order_item_id=1, stock_id=101, stock_code="JKT-RED-M", quantity=2, unit_net=10),
    OrderLine(order_item_id=2, stock_id=102, stock_code="DRS-BLK-10", quantity=1, unit_net=20),
    OrderLine(order_item_id=3, stock_id=103, stock_code="SCARF-1", quantity=4, unit_net=5),
)


def inv(invoice_id: int, stage: int, *lines: tuple[int, int], ref: str = "") -> Invoice:
    return Invoice(
        invoice_id=invoice_id,
        invoice_code=f"INV{invoice_id}",
        stage_id=stage,
        external_ref=ref,
        lines=tuple(
            InvoiceLine(order_item_id=item, stock_id=100 + item, quantity=qty)
            for item, qty in lines
        ),
    )


def order(
    *invoices: Invoice, code: str = "SO1", lines: tuple[OrderLine, ...] = LINES
) -> SalesOrder:
    return SalesOrder(
        order_id=1,
        order_code=code,
        order_date=datetime(2025, 3, 3, 9, tzinfo=UTC),
        courier_code="DPD",
        site_id=1,
        lines=lines,
        invoices=invoices,
    )


def all_ready() -> dict[int, ReadySku]:
    return {s: ReadySku(stock_id=s, sku=sku) for s, sku in SKUS.items()}


# --- which invoice, which lines ------------------------------------------------------------


def test_the_lowest_invoice_waiting_at_the_release_stage_is_the_one_released() -> None:
    o = order(inv(30, RELEASED, (3, 4)), inv(20, RELEASED, (1, 2)), inv(10, ACKNOWLEDGED, (2, 1)))
    assert release_invoice(o).invoice_id == 20
    assert [(line.order_item_id, q) for line, q in release_lines(o)] == [(1, 2)]


def test_an_invoice_that_lists_no_lines_stands_for_the_whole_order() -> None:
    o = order(inv(10, RELEASED))
    assert [(line.order_item_id, q) for line, q in release_lines(o)] == [(1, 2), (2, 1), (3, 4)]


def test_a_line_with_no_quantity_on_the_invoice_is_left_out() -> None:
    o = order(inv(10, RELEASED, (1, 2), (2, 0), (3, 1)))
    assert [(line.order_item_id, q) for line, q in release_lines(o)] == [(1, 2), (3, 1)]


def test_only_the_quantity_on_the_released_invoice_is_sent_to_acs() -> None:
    acs = to_acs_order(order(inv(10, RELEASED, (3, 1))), SKUS)
    assert [(line.line_item_id, line.sku, line.quantity) for line in acs.lines] == [
        ("3", "SCARF-1", 1)
    ]


# --- orders that are never sent ------------------------------------------------------------


def test_a_cancelled_order_is_never_released() -> None:
    plan = release_plan([order(inv(10, CANCELLED, (1, 2)))], already_released=set())
    assert plan.to_release == () and plan.back_orders == ()


def test_an_order_with_nothing_at_the_release_stage_is_left_alone() -> None:
    orders = [order(inv(10, ACKNOWLEDGED)), order(inv(11, AWAITING), code="SO2")]
    plan = release_plan(orders, already_released=set())
    assert plan.to_release == () and plan.back_orders == ()


def test_the_release_plan_keeps_the_order_the_orders_came_in() -> None:
    codes = ["SO9", "SO3", "SO5"]
    plan = release_plan([order(inv(1, RELEASED), code=c) for c in codes], already_released=set())
    assert [o.order_code for o in plan.to_release] == codes


def test_an_order_split_into_two_live_invoices_at_acs_already_is_a_back_order() -> None:
    # Nothing despatched yet, but two open invoices show Khaos split it for a shipment.
    split = order(inv(10, ACKNOWLEDGED, (1, 2)), inv(11, RELEASED, (2, 1)))
    assert is_back_order_of_released_order(split, {"SO1"})
    assert not is_back_order_of_released_order(split, set())


def test_a_cancelled_invoice_beside_the_released_one_does_not_make_a_back_order() -> None:
    o = order(inv(10, CANCELLED, (1, 2)), inv(11, RELEASED, (1, 2), (2, 1), (3, 4)))
    assert not is_back_order_of_released_order(o, {"SO1"})
    assert [x.order_code for x in release_plan([o], {"SO1"}).to_release] == ["SO1"]


def test_a_despatch_reference_on_another_invoice_marks_a_back_order() -> None:
    o = order(inv(10, ACKNOWLEDGED, (1, 2), ref="SHP-1"), inv(11, RELEASED, (2, 1)))
    plan = release_plan([o], {"SO1"})
    assert plan.to_release == () and [x.order_code for x in plan.back_orders] == ["SO1"]


# --- cancellations at ACS ------------------------------------------------------------------


def test_a_partly_shipped_order_whose_back_order_was_cancelled_is_cancelled_at_acs() -> None:
    o = order(inv(10, ISSUED, (1, 2)), inv(11, CANCELLED, (2, 1), (3, 4)))
    assert needs_cancelling_at_acs(o, {"SO1"})


def test_an_order_shipped_in_full_is_never_cancelled_at_acs() -> None:
    o = order(inv(10, ISSUED, (1, 2)), inv(11, ISSUE, (2, 1), (3, 4)))
    assert not needs_cancelling_at_acs(o, {"SO1"})


def test_an_order_whose_back_order_still_waits_is_not_cancelled_at_acs() -> None:
    o = order(inv(10, CANCELLED, (1, 2)), inv(11, AWAITING, (2, 1)))
    assert not needs_cancelling_at_acs(o, {"SO1"})


def test_only_the_orders_needing_it_are_cancelled_in_the_order_they_came() -> None:
    cancelled = [order(inv(1, CANCELLED), code=c) for c in ("SO7", "SO2", "SO4")]
    live = order(inv(1, RELEASED), code="SO3")
    chosen = orders_to_cancel([*cancelled, live], {"SO7", "SO2", "SO4", "SO3"}, {"SO2"})
    assert [o.order_code for o in chosen] == ["SO7", "SO4"]


# --- holds ---------------------------------------------------------------------------------


def test_a_sku_not_on_the_released_invoice_does_not_hold_the_order() -> None:
    ready = all_ready()
    del ready[103]  # the scarf is not ready, but only the jacket is being released
    decision = validate_against_ready_skus(order(inv(10, RELEASED, (1, 2))), ready)
    assert decision.action == "release" and decision.problems == ()


def test_each_stock_id_holding_an_order_is_named_once_in_line_order() -> None:
    lines = (
        *LINES,
        OrderLine(order_item_id=4, stock_id=101, stock_code="JKT-RED-M", quantity=1, unit_net=10),
    )
    ready = {
        102: ReadySku(stock_id=102, sku="DRS-BLK-10", state=SkuReadiness.INACTIVE, detail="off")
    }
    decision = validate_against_ready_skus(order(inv(10, RELEASED), lines=lines), ready)
    assert [(p.stock_id, p.reason) for p in decision.problems] == [
        (101, "unknown"),
        (102, "inactive"),
        (103, "unknown"),
    ]
    assert decision.message == (
        "order SO1 held until its SKUs are ready at ACS: "
        "JKT-RED-M: unknown; DRS-BLK-10: inactive (off); SCARF-1: unknown"
    )
    assert decision.exception_ref == "order:SO1" and decision.owner == "ecommerce"


def test_a_released_order_reads_as_released() -> None:
    decision = validate_against_ready_skus(order(inv(10, RELEASED)), all_ready())
    assert not decision.held and decision.message == "order SO1 released"


def test_sku_classes_are_read_whatever_their_case_or_spacing() -> None:
    assert readiness_from_classification("  Renamed ") is SkuReadiness.READY
    assert readiness_from_classification("PENDING_IN_ACS") is SkuReadiness.PENDING
    assert readiness_from_classification("discontinued") is SkuReadiness.NOT_READY


def test_an_acs_rejection_names_the_sku_of_the_line_index_in_its_field() -> None:
    sent = to_acs_order(order(inv(10, RELEASED)), SKUS)
    details = [
        {"field": "OrderItems[2].GarmentSku", "code": "unknown_sku", "message": "no such SKU"},
        {"field": "OrderItems[2].GarmentSku", "code": "UNKNOWN_SKU", "message": "no such SKU"},
        {"field": "OrderItems[0].GarmentSku", "code": "INACTIVE_SKU", "message": "inactive"},
    ]
    decision = hold_from_acs_rejection("SO1", details, sent)
    assert decision is not None
    assert [(p.sku, p.reason) for p in decision.problems] == [
        ("SCARF-1", "unknown"),
        ("JKT-RED-M", "inactive"),
    ]


def test_an_acs_rejection_with_an_index_past_the_sent_lines_falls_back_to_the_message() -> None:
    sent = to_acs_order(order(inv(10, RELEASED, (1, 2))), SKUS)
    details = [{"field": "OrderItems[5].Sku", "code": "UNKNOWN_SKU", "message": "SKU ZZ-9 gone"}]
    decision = hold_from_acs_rejection("SO1", details, sent)
    assert decision is not None and [p.sku for p in decision.problems] == ["ZZ-9"]


def test_an_acs_rejection_naming_no_sku_names_its_field() -> None:
    details = [{"field": "OrderItems[0].Sku", "code": "UNKNOWN_SKU", "message": "unknown"}]
    decision = hold_from_acs_rejection("SO1", details)
    assert decision is not None and [p.sku for p in decision.problems] == ["OrderItems[0].Sku"]
    assert decision.problems[0].detail == "ACS: unknown"


def test_sku_errors_among_other_errors_still_hold_the_order() -> None:
    details = [
        {"field": "Postcode", "code": "INVALID_VALUE", "message": "bad postcode"},
        {"field": "OrderItems[0].Sku", "code": "INACTIVE_SKU", "message": "SKU JKT-RED-M off"},
    ]
    decision = hold_from_acs_rejection("SO1", details)
    assert decision is not None and [p.reason for p in decision.problems] == ["inactive"]


# --- the release revision ------------------------------------------------------------------

prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999.99"), places=2)


@settings(max_examples=100, deadline=None)
@given(prices, st.integers(min_value=0, max_value=4))
def test_the_revision_does_not_depend_on_how_many_zeros_a_price_carries(
    price: Decimal, zeros: int
) -> None:
    def body(p: Decimal) -> object:
        line = LINES[0].model_copy(update={"unit_net": p})
        return to_acs_order(order(inv(10, RELEASED), lines=(line,)), SKUS)

    padded = price.quantize(Decimal(1).scaleb(-(2 + zeros)))
    assert release_revision(body(price)) == release_revision(body(padded))


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=50))
def test_the_revision_changes_exactly_when_a_quantity_changes(first: int, second: int) -> None:
    def body(q: int) -> object:
        line = LINES[2].model_copy(update={"quantity": q})
        return to_acs_order(order(inv(10, RELEASED), lines=(LINES[0], line)), SKUS)

    same = release_revision(body(first)) == release_revision(body(second))
    assert same == (first == second)


def test_the_revision_changes_with_the_delivery_address() -> None:
    sent = to_acs_order(order(inv(10, RELEASED)), SKUS)
    moved = sent.model_copy(
        update={"delivery_address": sent.delivery_address.model_copy(update={"postcode": "G2"})}
    )
    assert release_revision(sent) != release_revision(moved)
    assert len(release_revision(sent)) == 16


def test_the_same_body_after_the_same_version_always_gets_the_same_key() -> None:
    sent = to_acs_order(order(inv(10, RELEASED)), SKUS)
    assert release_outbox_key(sent, after="order:SO1:a") == release_outbox_key(
        sent, after="order:SO1:a"
    )
    assert release_outbox_key(sent, after="order:SO1:a") != release_outbox_key(
        sent, after="order:SO1:b"
    )
