"""Order release: mapping Khaos orders to ACS, revisions, holds, back orders, cancellations."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from acs_khaos_dagster.domain.models import (
    Address,
    Contact,
    Invoice,
    InvoiceLine,
    OrderLine,
    SalesOrder,
)
from acs_khaos_dagster.domain.order_release import (
    CourierMap,
    DeliveryRoute,
    HireDates,
    ReadySku,
    SkuReadiness,
    UnmappedCourierError,
    cancellation_body,
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

ORDER_DATE = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
SKUS = {101: "JKT-RED-M", 102: "DRS-BLK-10", 103: "GOWN-HIRE-12"}


def order(
    *,
    invoices: tuple[Invoice, ...] | None = None,
    lines: tuple[OrderLine, ...] | None = None,
    courier: str = "DPD",
    code: str = "SO0000001",
    address: Address | None = None,
    contact: Contact | None = None,
) -> SalesOrder:
    lines = lines or (
        OrderLine(
            order_item_id=5001,
            stock_id=101,
            stock_code="JKT-RED-M",
            quantity=2,
            unit_net=Decimal("49.50"),
        ),
        OrderLine(
            order_item_id=5002,
            stock_id=102,
            stock_code="DRS-BLK-10",
            quantity=1,
            unit_net=Decimal("80.00"),
        ),
    )
    if invoices is None:
        invoices = (
            Invoice(
                invoice_id=9001,
                invoice_code="INV9001",
                stage_id=9,
                lines=tuple(
                    InvoiceLine(
                        order_item_id=li.order_item_id, stock_id=li.stock_id, quantity=li.quantity
                    )
                    for li in lines
                ),
            ),
        )
    return SalesOrder(
        order_id=1,
        order_code=code,
        order_date=ORDER_DATE,
        courier_code=courier,
        site_id=1,
        contact=contact or Contact(first_name="Ann", last_name="Lee", email="ann@example.test"),
        delivery_address=address or Address(line1="1 High St", city="Glasgow", postcode="G1 1AA"),
        lines=lines,
        invoices=invoices,
    )


def ready(*stock_ids: int, state: SkuReadiness = SkuReadiness.READY) -> dict[int, ReadySku]:
    return {s: ReadySku(stock_id=s, sku=SKUS[s], state=state) for s in stock_ids}


# --- mapping ---------------------------------------------------------------------------


def test_order_number_is_the_khaos_order_code_and_lines_keep_their_order_item_id() -> None:
    acs = to_acs_order(order(), SKUS)
    assert acs.order_number == "SO0000001"
    assert [(li.line_item_id, li.sku, li.quantity, li.price) for li in acs.lines] == [
        ("5001", "JKT-RED-M", 2, Decimal("49.50")),
        ("5002", "DRS-BLK-10", 1, Decimal("80.00")),
    ]


def test_hire_lines_are_flagged() -> None:
    lines = (
        OrderLine(
            order_item_id=1,
            stock_id=101,
            stock_code="JKT-RED-M",
            quantity=1,
            unit_net=Decimal("10"),
        ),
        OrderLine(
            order_item_id=2,
            stock_id=103,
            stock_code="GOWN-HIRE-12",
            quantity=1,
            unit_net=Decimal("35"),
            is_hire=True,
        ),
    )
    acs = to_acs_order(order(lines=lines), SKUS)
    assert [li.is_hire for li in acs.lines] == [False, True]


def test_a_renamed_stock_code_still_orders_the_acs_sku_of_its_stock_id() -> None:
    renamed = (
        OrderLine(
            order_item_id=1,
            stock_id=101,
            stock_code="JACKET-RED-MEDIUM",
            quantity=1,
            unit_net=Decimal("10"),
        ),
    )
    acs = to_acs_order(order(lines=renamed), SKUS)
    assert acs.lines[0].sku == "JKT-RED-M"


def test_awkward_characters_in_address_and_contact_are_preserved() -> None:
    address = Address(
        line1="Flat 2/1, 'Tigh-na-Mara' & Co",
        line2="Rue de l’Église — côté",
        city="Dùn Èideann",
        postcode="EH1 1AA",
    )
    contact = Contact(first_name="Siobhán", last_name="O'Néill <test>", email="s+o@example.test")
    acs = to_acs_order(order(address=address, contact=contact), SKUS)
    assert acs.delivery_address == address
    assert acs.contact == contact


def test_long_address_lines_are_not_split_here() -> None:
    long_line = "Unit 14, The Very Long Industrial Estate Name, Eurocentral Way"
    acs = to_acs_order(order(address=Address(line1=long_line, postcode="ML1 4XX")), SKUS)
    assert acs.delivery_address.line1 == long_line


def test_courier_code_chooses_acs_agent_and_service() -> None:
    acs = to_acs_order(order(courier="rm24"), SKUS)
    assert (acs.delivery_agent, acs.delivery_service) == ("RM", "24")


def test_unknown_courier_ships_by_the_default_route() -> None:
    acs = to_acs_order(order(courier="PIGEON"), SKUS)
    assert (acs.delivery_agent, acs.delivery_service) == ("DPD", "48")


def test_unknown_courier_is_refused_when_the_map_has_no_default() -> None:
    strict = CourierMap(routes={"DPD": DeliveryRoute(agent="DPD", service="24")}, default=None)
    with pytest.raises(UnmappedCourierError, match="PIGEON"):
        to_acs_order(order(courier="PIGEON"), SKUS, couriers=strict)


def test_hire_dates_fill_the_hire_fields() -> None:
    event = datetime(2025, 3, 8, 12, tzinfo=UTC)
    back = datetime(2025, 3, 12, 12, tzinfo=UTC)
    acs = to_acs_order(
        order(), SKUS, hire_dates=HireDates(event_date=event, warehouse_return_date=back)
    )
    assert (acs.event_date, acs.warehouse_return_date) == (event, back)


def test_only_the_lines_on_the_released_invoice_are_sent() -> None:
    invoices = (
        Invoice(
            invoice_id=9001,
            invoice_code="A",
            stage_id=70,
            lines=(InvoiceLine(order_item_id=5001, stock_id=101, quantity=2),),
        ),
        Invoice(
            invoice_id=9002,
            invoice_code="B",
            stage_id=9,
            lines=(InvoiceLine(order_item_id=5002, stock_id=102, quantity=1),),
        ),
    )
    acs = to_acs_order(order(invoices=invoices), SKUS)
    assert [li.line_item_id for li in acs.lines] == ["5002"]


def test_a_line_without_acs_sku_cannot_be_mapped() -> None:
    with pytest.raises(KeyError, match="StockID 102"):
        to_acs_order(order(), {101: "JKT-RED-M"})


# --- revision --------------------------------------------------------------------------


def test_revision_is_stable_for_the_same_order() -> None:
    assert release_revision(to_acs_order(order(), SKUS)) == release_revision(
        to_acs_order(order(), SKUS)
    )


def test_revision_ignores_how_a_price_is_written() -> None:
    def with_price(price: str) -> SalesOrder:
        return order(
            lines=(
                OrderLine(
                    order_item_id=1,
                    stock_id=101,
                    stock_code="X",
                    quantity=1,
                    unit_net=Decimal(price),
                ),
            )
        )

    assert release_revision(to_acs_order(with_price("12.5"), SKUS)) == release_revision(
        to_acs_order(with_price("12.50"), SKUS)
    )


def test_revision_changes_when_a_line_changes() -> None:
    before = to_acs_order(order(), SKUS)
    changed = before.model_copy(
        update={"lines": (before.lines[0].model_copy(update={"quantity": 3}), before.lines[1])}
    )
    assert release_revision(before) != release_revision(changed)


def test_outbox_key_names_the_order_and_its_revision() -> None:
    acs = to_acs_order(order(), SKUS)
    assert release_outbox_key(acs) == f"order:SO0000001:{release_revision(acs)}"


# --- hold or release -------------------------------------------------------------------


def test_an_order_with_every_sku_ready_is_released() -> None:
    decision = validate_against_ready_skus(order(), ready(101, 102))
    assert decision.action == "release"
    assert decision.problems == ()


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (SkuReadiness.INACTIVE, "inactive"),
        (SkuReadiness.PENDING, "pending"),
        (SkuReadiness.MISMATCH, "mismatch"),
        (SkuReadiness.UNKNOWN, "unknown"),
        (SkuReadiness.NOT_READY, "not_ready"),
    ],
)
def test_an_order_with_a_sku_not_ready_is_held_with_the_reason(
    state: SkuReadiness, reason: str
) -> None:
    readiness = {**ready(101), **ready(102, state=state)}
    decision = validate_against_ready_skus(order(), readiness)
    assert decision.action == "hold"
    assert [(p.sku, p.reason) for p in decision.problems] == [("DRS-BLK-10", reason)]


def test_a_stock_id_acs_has_never_heard_of_holds_the_order_as_unknown() -> None:
    decision = validate_against_ready_skus(order(), ready(101))
    assert [(p.stock_code, p.reason) for p in decision.problems] == [("DRS-BLK-10", "unknown")]


def test_a_pushed_sku_not_yet_in_the_ready_table_holds_the_order_as_not_ready() -> None:
    decision = validate_against_ready_skus(order(), ready(101), sku_for_stock_id=SKUS)
    assert [(p.sku, p.reason) for p in decision.problems] == [("DRS-BLK-10", "not_ready")]


def test_identity_map_and_ready_table_disagreeing_is_a_mismatch() -> None:
    decision = validate_against_ready_skus(
        order(), ready(101, 102), sku_for_stock_id={**SKUS, 102: "DRS-BLK-10-OLD"}
    )
    assert [p.reason for p in decision.problems] == ["mismatch"]


def test_held_order_exception_names_the_order_and_skus_for_ecommerce() -> None:
    decision = validate_against_ready_skus(order(), ready(101, 102, state=SkuReadiness.PENDING))
    assert decision.exception_type == "order_held"
    assert decision.owner == "ecommerce"
    assert decision.exception_ref == "order:SO0000001"
    assert "SO0000001" in decision.message
    assert "JKT-RED-M" in decision.message and "DRS-BLK-10" in decision.message


def test_a_held_order_is_released_once_its_skus_are_ready() -> None:
    held = validate_against_ready_skus(order(), ready(101, 102, state=SkuReadiness.PENDING))
    later = validate_against_ready_skus(order(), ready(101, 102))
    assert (held.action, later.action) == ("hold", "release")


def test_sku_mapping_classes_give_readiness() -> None:
    assert readiness_from_classification("matched") is SkuReadiness.READY
    assert readiness_from_classification("pending_in_acs") is SkuReadiness.PENDING
    assert readiness_from_classification("invalid_code") is SkuReadiness.NOT_READY


def test_acs_unknown_sku_rejection_holds_the_order() -> None:
    acs = to_acs_order(order(), SKUS)
    details = [
        {
            "field": "OrderItems[1].GarmentSku",
            "code": "UNKNOWN_SKU",
            "message": "SKU DRS-BLK-10 is not set up at ACS",
        }
    ]
    decision = hold_from_acs_rejection("SO0000001", details, acs)
    assert decision is not None and decision.action == "hold"
    assert [(p.sku, p.reason) for p in decision.problems] == [("DRS-BLK-10", "unknown")]


def test_acs_inactive_sku_rejection_names_the_sku_from_the_message() -> None:
    details = [
        {
            "field": "OrderItems[0].GarmentSku",
            "code": "INACTIVE_SKU",
            "message": "SKU JKT-RED-M is inactive, not active",
        }
    ]
    decision = hold_from_acs_rejection("SO0000001", details)
    assert decision is not None
    assert [(p.sku, p.reason) for p in decision.problems] == [("JKT-RED-M", "inactive")]


def test_an_acs_rejection_that_is_not_about_skus_is_not_a_hold() -> None:
    details = [{"field": "ItemQuantity", "code": "INVALID_VALUE", "message": "bad"}]
    assert hold_from_acs_rejection("SO0000001", details) is None


# --- back orders -----------------------------------------------------------------------


def _split_order() -> SalesOrder:
    return order(
        invoices=(
            Invoice(
                invoice_id=9001,
                invoice_code="A",
                stage_id=16,
                external_ref="SO0000001-1",
                lines=(InvoiceLine(order_item_id=5001, stock_id=101, quantity=2),),
            ),
            Invoice(
                invoice_id=9002,
                invoice_code="B",
                stage_id=9,
                lines=(InvoiceLine(order_item_id=5002, stock_id=102, quantity=1),),
            ),
        )
    )


def test_a_back_order_of_an_order_already_at_acs_is_not_released_again() -> None:
    plan = release_plan([_split_order()], already_released={"SO0000001"})
    assert plan.to_release == ()
    assert [o.order_code for o in plan.back_orders] == ["SO0000001"]


def test_a_back_order_waiting_in_awaiting_stock_is_recognised() -> None:
    split = _split_order()
    waiting = split.model_copy(
        update={
            "invoices": (split.invoices[0], split.invoices[1].model_copy(update={"stage_id": 18}))
        }
    )
    assert is_back_order_of_released_order(waiting, {"SO0000001"})


def test_a_new_order_is_released() -> None:
    plan = release_plan([order()], already_released=set())
    assert [o.order_code for o in plan.to_release] == ["SO0000001"]


def test_a_released_order_moved_back_whole_is_not_a_back_order() -> None:
    assert not is_back_order_of_released_order(order(), {"SO0000001"})


# --- cancellations ---------------------------------------------------------------------


def _cancelled() -> SalesOrder:
    return order(invoices=(Invoice(invoice_id=9001, invoice_code="A", stage_id=1),))


def test_an_order_cancelled_in_khaos_after_release_is_cancelled_at_acs() -> None:
    assert [o.order_code for o in orders_to_cancel([_cancelled()], {"SO0000001"})] == ["SO0000001"]


def test_an_order_never_sent_to_acs_needs_no_cancellation() -> None:
    assert orders_to_cancel([_cancelled()], set()) == []


def test_an_order_finished_at_acs_needs_no_cancellation() -> None:
    assert orders_to_cancel([_cancelled()], {"SO0000001"}, {"SO0000001"}) == []


def test_an_order_with_an_open_invoice_is_not_cancelled() -> None:
    mixed = order(
        invoices=(
            Invoice(invoice_id=9001, invoice_code="A", stage_id=1),
            Invoice(invoice_id=9002, invoice_code="B", stage_id=12),
        )
    )
    assert orders_to_cancel([mixed], {"SO0000001"}) == []


def test_cancellation_is_the_same_order_flagged_cancelled_with_its_own_revision() -> None:
    acs = to_acs_order(order(), SKUS)
    cancel = cancellation_body(acs)
    assert cancel.cancelled and cancel.lines == acs.lines
    assert release_outbox_key(cancel) != release_outbox_key(acs)


def test_an_order_edited_back_to_an_earlier_body_gets_a_new_release_key() -> None:
    body = to_acs_order(order(), SKUS)
    first = release_outbox_key(body)
    after_b = release_outbox_key(body, after="order:SO1:bbbbbbbbbbbbbbbb")
    assert after_b != first and after_b.startswith(first)
    # The same transition on a rerun gives the same key: nothing is sent twice.
    assert after_b == release_outbox_key(body, after="order:SO1:bbbbbbbbbbbbbbbb")
