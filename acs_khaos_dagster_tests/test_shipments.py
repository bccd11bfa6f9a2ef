"""Despatch back: shipments table, one ImportDespatch per shipment, closures, completion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from acs_khaos_dagster.domain.models import (
    DespatchEvent,
    DespatchPosting,
    Invoice,
    InvoiceLine,
    OrderLine,
    Parcel,
    SalesOrder,
    ShipmentLine,
    ShortClosure,
)
from acs_khaos_dagster.domain.shipments import (
    CarrierMap,
    PostingProblem,
    closed_quantities,
    order_completion,
    posted_quantities,
    posted_quantities_from_invoices,
    shipment_rows,
    short_closures,
    to_despatch_posting,
)

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
CARRIERS = CarrierMap()


def sales_order() -> SalesOrder:
    return SalesOrder(
        order_id=77,
        order_code="SO0000077",
        order_date=T0 - timedelta(days=1),
        courier_code="DPD",
        site_id=1,
        lines=(
            OrderLine(
                order_item_id=1, stock_id=11, stock_code="TOP-S", quantity=2, unit_net=Decimal("20")
            ),
            OrderLine(
                order_item_id=2,
                stock_id=12,
                stock_code="SKIRT-M",
                quantity=1,
                unit_net=Decimal("30"),
            ),
            OrderLine(
                order_item_id=3,
                stock_id=13,
                stock_code="COAT-L",
                quantity=3,
                unit_net=Decimal("90"),
            ),
        ),
    )


def event(
    n: int,
    lines: dict[str, int],
    *,
    event_id: str | None = None,
    at: datetime | None = None,
    carrier: str = "DPD",
    service: str = "48",
    closed: tuple[ShortClosure, ...] = (),
    order_number: str = "SO0000077",
) -> DespatchEvent:
    return DespatchEvent(
        event_id=event_id or f"DSP{n:04d}",
        order_number=order_number,
        shipment_id=f"{order_number}-{n}",
        despatched_at=at or T0 + timedelta(hours=n),
        carrier=carrier,
        service=service,
        parcels=(
            Parcel(
                parcel_no=1, tracking_number=f"DPD{n}000", tracking_url=f"https://t.test/DPD{n}000"
            ),
        )
        if lines
        else (),
        lines=tuple(
            ShipmentLine(line_item_id=k, sku=f"SKU{k}", quantity=v) for k, v in lines.items()
        ),
        closed_short=closed,
    )


# --- shipments table -------------------------------------------------------------------


def test_one_row_per_shipment_with_its_lines_parcels_and_tracking() -> None:
    rows = shipment_rows([event(1, {"1": 2, "2": 1})])
    row = rows.iloc[0]
    assert (row.order_number, row.shipment_id, row.lines, row.units) == (
        "SO0000077",
        "SO0000077-1",
        "1 x 2, 2 x 1",
        3,
    )
    assert (row.parcels, row.tracking_numbers, row.carrier, row.service) == (
        1,
        "DPD1000",
        "DPD",
        "48",
    )
    assert row.tracking_urls == "https://t.test/DPD1000"
    assert row.despatched_at == T0 + timedelta(hours=1)


def test_the_same_event_twice_changes_nothing() -> None:
    once = shipment_rows([event(1, {"1": 2})])
    twice = shipment_rows([event(1, {"1": 2}), event(1, {"1": 2})])
    assert twice.equals(once)


def test_a_later_shipment_arriving_first_gives_the_same_table() -> None:
    in_order = shipment_rows([event(1, {"1": 2}), event(2, {"3": 1})])
    reordered = shipment_rows([event(2, {"3": 1}), event(1, {"1": 2})])
    assert reordered.equals(in_order)
    assert list(in_order.shipment_id) == ["SO0000077-1", "SO0000077-2"]


def test_a_closure_only_event_is_not_a_shipment() -> None:
    closure = event(
        3, {}, closed=(ShortClosure(line_item_id="3", quantity=1, reason="STOCK_NOT_FOUND"),)
    )
    assert shipment_rows([closure]).empty


# --- postings --------------------------------------------------------------------------


def test_a_shipment_becomes_one_posting_keyed_by_the_acs_shipment_id() -> None:
    posting = to_despatch_posting(event(1, {"1": 2}), sales_order(), CARRIERS)
    assert isinstance(posting, DespatchPosting)
    assert posting.order_id == 77
    assert posting.external_ref == "SO0000077-1"
    assert posting.lines == ((1, 2),)


def test_packages_carry_tracking_number_courier_and_despatch_time_in_utc() -> None:
    posting = to_despatch_posting(event(1, {"1": 2}), sales_order(), CARRIERS)
    assert isinstance(posting, DespatchPosting)
    (package,) = posting.packages
    assert (package.consignment_ref, package.courier_code) == ("DPD1000", "DPD")
    assert package.shipment_date == T0 + timedelta(hours=1)
    assert package.shipment_date.utcoffset() == timedelta(0)


def test_three_shipments_post_only_their_own_lines_and_complete_the_order() -> None:
    order = sales_order()
    events = [event(1, {"1": 2}), event(2, {"2": 1, "3": 1}), event(3, {"3": 2})]
    postings: list[DespatchPosting] = []
    states = []
    for e in events:
        posting = to_despatch_posting(e, order, CARRIERS, posted_quantities(postings))
        assert isinstance(posting, DespatchPosting)
        postings.append(posting)
        states.append(order_completion(order, posted_quantities(postings)))
    assert [p.lines for p in postings] == [((1, 2),), ((2, 1), (3, 1)), ((3, 2),)]
    assert len({p.external_ref for p in postings}) == 3
    assert states == ["partially_shipped", "partially_shipped", "shipped"]


def test_an_order_with_nothing_posted_is_open() -> None:
    assert order_completion(sales_order(), {}) == "open"


def test_more_units_than_ordered_are_refused() -> None:
    problem = to_despatch_posting(event(1, {"2": 2}), sales_order(), CARRIERS)
    assert isinstance(problem, PostingProblem)
    assert problem.kind == "over_shipment"
    assert problem.line_item_ids == ("2",)


def test_units_already_posted_by_earlier_shipments_count_against_the_line() -> None:
    problem = to_despatch_posting(event(2, {"3": 2}), sales_order(), CARRIERS, {3: 2})
    assert isinstance(problem, PostingProblem) and problem.kind == "over_shipment"


def test_already_posted_can_be_read_from_khaos_invoices_leaving_out_this_shipment() -> None:
    order = sales_order().model_copy(
        update={
            "invoices": (
                Invoice(
                    invoice_id=1,
                    invoice_code="A",
                    stage_id=16,
                    external_ref="SO0000077-1",
                    lines=(InvoiceLine(order_item_id=3, stock_id=13, quantity=2),),
                ),
                Invoice(
                    invoice_id=2,
                    invoice_code="B",
                    stage_id=16,
                    external_ref="SO0000077-2",
                    lines=(InvoiceLine(order_item_id=3, stock_id=13, quantity=1),),
                ),
                Invoice(
                    invoice_id=3,
                    invoice_code="C",
                    stage_id=18,
                    lines=(InvoiceLine(order_item_id=1, stock_id=11, quantity=2),),
                ),
            )
        }
    )
    assert posted_quantities_from_invoices(order, exclude_ref="SO0000077-2") == {3: 2}


def test_an_unknown_order_is_a_problem() -> None:
    problem = to_despatch_posting(event(1, {"1": 1}), None, CARRIERS)
    assert isinstance(problem, PostingProblem) and problem.kind == "unknown_order"


def test_an_unknown_line_is_a_problem_naming_it() -> None:
    problem = to_despatch_posting(event(1, {"1": 1, "99": 1}), sales_order(), CARRIERS)
    assert isinstance(problem, PostingProblem)
    assert (problem.kind, problem.line_item_ids) == ("unknown_line", ("99",))


def test_an_unmapped_courier_is_a_problem_not_a_guess() -> None:
    problem = to_despatch_posting(
        event(1, {"1": 1}, carrier="Yodel", service="48"), sales_order(), CARRIERS
    )
    assert isinstance(problem, PostingProblem)
    assert problem.kind == "courier_unmapped"
    assert problem.exception_type == "courier_unmapped"
    assert "Yodel" in problem.message


def test_a_known_carrier_with_an_unconfigured_service_is_unmapped() -> None:
    problem = to_despatch_posting(event(1, {"1": 1}, service="SAT"), sales_order(), CARRIERS)
    assert isinstance(problem, PostingProblem) and problem.kind == "courier_unmapped"


def test_a_carrier_wildcard_maps_every_service() -> None:
    carriers = CarrierMap(routes={"yodel/*": "YODEL"})
    posting = to_despatch_posting(
        event(1, {"1": 1}, carrier="YODEL", service="72"), sales_order(), carriers
    )
    assert isinstance(posting, DespatchPosting)
    assert posting.packages[0].courier_code == "YODEL"


def test_an_event_with_no_lines_and_no_closures_is_a_problem() -> None:
    problem = to_despatch_posting(event(1, {}), sales_order(), CARRIERS)
    assert isinstance(problem, PostingProblem) and problem.kind == "empty"


def test_a_closure_only_event_posts_nothing() -> None:
    closure = event(3, {}, closed=(ShortClosure(line_item_id="3", quantity=1, reason="X"),))
    assert to_despatch_posting(closure, sales_order(), CARRIERS) is None


def test_a_malformed_carrier_route_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="CARRIER/SERVICE"):
        CarrierMap(routes={"DPD": "DPD"})


# --- short closures --------------------------------------------------------------------


def _short_event() -> DespatchEvent:
    return event(
        2, {"3": 2}, closed=(ShortClosure(line_item_id="3", quantity=1, reason="DAMAGED_AT_PICK"),)
    )


def test_a_closed_short_line_is_a_problem_with_the_action_to_take_in_khaos() -> None:
    (short,) = short_closures(_short_event(), sales_order())
    assert (short.order_number, short.order_item_id, short.stock_code, short.quantity) == (
        "SO0000077",
        3,
        "COAT-L",
        1,
    )
    assert short.reason == "DAMAGED_AT_PICK"
    assert short.exception_type == "despatch_closed_short" and short.owner == "operations"
    assert "Sales Invoice Manager" in short.action and "stage 18" in short.action
    assert "1 unit" in short.action
    assert "SO0000077" in short.message and "DAMAGED_AT_PICK" in short.message


def test_the_same_closure_twice_keeps_the_same_exception_ref() -> None:
    first = short_closures(_short_event(), sales_order())
    again = short_closures(_short_event(), sales_order())
    assert [s.exception_ref for s in first] == [s.exception_ref for s in again]


def test_closed_short_units_count_as_closed_for_completion() -> None:
    order = sales_order()
    closed = closed_quantities(short_closures(_short_event(), order))
    assert order_completion(order, {1: 2, 2: 1, 3: 2}, closed) == "shipped"
    assert order_completion(order, {1: 2, 2: 1, 3: 2}) == "partially_shipped"
