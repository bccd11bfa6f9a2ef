"""ACS's despatch feed as shipments, whatever order and however often events arrive.

ACS delivers each despatch event at least once and not necessarily in order; the shipments
table, the quantities and the completion of an order must not depend on that. Properties
are checked over generated feeds (Hypothesis shuffles and repeats them); the oracle is the
feed as built by the test, before any shuffling.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.domain.models import (
    DespatchEvent,
    DespatchPosting,
    OrderLine,
    Package,
    Parcel,
    SalesOrder,
    ShipmentLine,
    ShortClosure,
)
from acs_khaos_dagster.domain.shipments import (
    CarrierMap,
    order_completion,
    posted_quantities,
    shipment_rows,
    short_closures,
)
from acs_khaos_dagster.domain.shipments.events import unique_events
from acs_khaos_dagster.domain.shipments.postings import line_item_to_order_item

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)


def event(
    n: int, order: str = "SO1", lines: dict[str, int] | None = None, **kw: object
) -> DespatchEvent:
    lines = {"1": 1} if lines is None else lines
    fields: dict[str, object] = {
        "event_id": f"E{n}",
        "order_number": order,
        "shipment_id": f"{order}-{n}",
        "despatched_at": T0 + timedelta(minutes=n),
        "carrier": "DPD",
        "service": "48",
        "parcels": (Parcel(parcel_no=1, tracking_number=f"T{n}"),),
        "lines": tuple(
            ShipmentLine(line_item_id=k, sku=f"SKU{k}", quantity=q) for k, q in lines.items()
        ),
    }
    fields.update(kw)
    return DespatchEvent(**fields)


def order(*quantities: int) -> SalesOrder:
    return SalesOrder(
        order_id=1,
        order_code="SO1",
        order_date=T0 - timedelta(days=1),
        site_id=1,
        lines=tuple(
            OrderLine(
                order_item_id=i,
                stock_id=100 + i,
                stock_code=f"S{i}",
                quantity=q,
                unit_net=Decimal("10"),
            )
            for i, q in enumerate(quantities, start=1)
        ),
    )


# --- at-least-once, any order --------------------------------------------------------------------

feeds = st.lists(
    st.tuples(
        st.sampled_from(["SO1", "SO2", "SO3"]),
        st.integers(min_value=1, max_value=4),  # shipment number within the order
        st.integers(min_value=0, max_value=30),  # minute despatched
    ),
    min_size=1,
    max_size=10,
    unique=True,
)


def build(feed: list[tuple[str, int, int]]) -> list[DespatchEvent]:
    return [
        event(i, order, shipment_id=f"{order}-{n}", despatched_at=T0 + timedelta(minutes=minute))
        for i, (order, n, minute) in enumerate(feed)
    ]


@settings(max_examples=100, deadline=None)
@given(feeds, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=3))
def test_the_shipments_table_is_the_same_whatever_order_and_repeats_the_feed_has(
    feed, rnd, copies
) -> None:
    events = build(feed)
    delivered = [e for e in events for _ in range(copies)]
    rnd.shuffle(delivered)
    expected = shipment_rows(events)
    pd.testing.assert_frame_equal(shipment_rows(delivered), expected)


@settings(max_examples=100, deadline=None)
@given(feeds)
def test_each_shipment_is_kept_once_from_its_earliest_event(feed) -> None:
    events = build(feed)
    kept = unique_events(events)
    shipments = {(e.order_number, e.shipment_id) for e in events}
    assert len(kept) == len(shipments)
    for e in kept:
        same = [
            x for x in events if (x.order_number, x.shipment_id) == (e.order_number, e.shipment_id)
        ]
        first = min(same, key=lambda x: (x.despatched_at, x.event_id))
        assert e.event_id == first.event_id
    assert [(e.order_number, e.despatched_at) for e in kept] == sorted(
        (e.order_number, e.despatched_at) for e in kept
    )


def test_the_same_event_id_twice_keeps_the_copy_that_came_first() -> None:
    first = event(1, lines={"1": 2})
    resent = event(1, lines={"1": 5})  # a corrupt resend under the same id
    assert unique_events([first, resent]) == [first]


# --- the shipments table --------------------------------------------------------------------------


def test_a_shipment_row_sums_each_lines_units_and_lists_parcels_in_parcel_order() -> None:
    e = DespatchEvent(
        event_id="E1",
        order_number="SO1",
        shipment_id="SO1-1",
        despatched_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        carrier="RM",
        service="24",
        parcels=(
            Parcel(parcel_no=2, tracking_number="RM2", tracking_url="https://t/RM2"),
            Parcel(parcel_no=1, tracking_number="RM1"),
        ),
        lines=(
            ShipmentLine(line_item_id="7", sku="A", quantity=2),
            ShipmentLine(line_item_id="8", sku="B", quantity=1),
            ShipmentLine(line_item_id="7", sku="A", quantity=1),
        ),
        closed_short=(ShortClosure(line_item_id="8", quantity=2, reason="damaged"),),
    )
    [row] = shipment_rows([e]).to_dict("records")
    assert row["lines"] == "7 x 3, 8 x 1"
    assert (row["line_count"], row["units"], row["parcels"]) == (2, 4, 2)
    assert row["tracking_numbers"] == "RM1 RM2"
    assert row["tracking_urls"] == "https://t/RM2"
    assert row["closed_short_units"] == 2
    assert row["despatched_at"] == pd.Timestamp("2026-03-02 09:30", tz="UTC")


def test_an_empty_feed_is_an_empty_table_with_every_column() -> None:
    table = shipment_rows([])
    assert table.empty and "closed_short_units" in table.columns
    assert str(table["units"].dtype) == "int64"


# --- line ids and quantities ----------------------------------------------------------------------


def test_an_acs_line_id_maps_back_to_the_order_item_it_was_sent_as() -> None:
    o = order(2, 1)
    assert line_item_to_order_item(" 2 ", o) == 2
    assert line_item_to_order_item("1", o) == 1


@pytest.mark.parametrize("line_id", ["3", "2a", "-1", "", "SKU1"])
def test_an_acs_line_id_the_order_does_not_have_maps_to_nothing(line_id: str) -> None:
    assert line_item_to_order_item(line_id, order(2, 1)) is None


def test_posted_quantities_add_up_per_order_item_leaving_out_the_shipment_being_posted() -> None:
    def posting(ref: str, *lines: tuple[int, int]) -> DespatchPosting:
        package = Package(consignment_ref=ref, courier_code="DPD", shipment_date=T0)
        return DespatchPosting(order_id=1, external_ref=ref, lines=lines, packages=(package,))

    postings = [posting("S1", (1, 1), (2, 1)), posting("S2", (1, 1)), posting("S3", (2, 4))]
    assert posted_quantities(postings) == {1: 2, 2: 5}
    assert posted_quantities(postings, exclude_ref="S3") == {1: 2, 2: 1}


# --- completion ---------------------------------------------------------------------------------

quantities = st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(quantities, st.data())
def test_an_order_is_shipped_exactly_when_every_unit_is_posted_or_closed_short(qty, data) -> None:
    o = order(*qty)
    posted = {i: data.draw(st.integers(0, q)) for i, q in enumerate(qty, start=1)}
    closed = {i: data.draw(st.integers(0, q - posted[i])) for i, q in enumerate(qty, start=1)}
    state = order_completion(o, posted, closed)
    every_unit = all(posted[i] + closed[i] == q for i, q in enumerate(qty, start=1))
    if every_unit:
        assert state == "shipped"
    elif sum(posted.values()) > 0:
        assert state == "partially_shipped"
    else:
        assert state == "open"


def test_units_posted_for_another_orders_lines_do_not_complete_this_one() -> None:
    assert order_completion(order(2), {99: 5}) == "open"


def test_closures_of_one_line_merge_their_units_and_distinct_reasons() -> None:
    e = event(
        1,
        closed_short=(
            ShortClosure(line_item_id="2", quantity=1, reason="damaged"),
            ShortClosure(line_item_id="2", quantity=2, reason="lost"),
            ShortClosure(line_item_id="2", quantity=1, reason="damaged"),
            ShortClosure(line_item_id="9", quantity=1, reason=""),
        ),
    )
    shorts = short_closures(e, order(1, 4))
    assert [
        (s.line_item_id, s.order_item_id, s.stock_code, s.quantity, s.reason) for s in shorts
    ] == [
        ("2", 2, "S2", 4, "damaged, lost"),
        ("9", None, "", 1, "not given"),
    ]
    assert shorts[1].exception_ref == "short:SO1:SO1-1:9"
    assert "cancel the back-order line 9 for 1 unit(s) of order SO1" in shorts[1].action


# --- couriers -----------------------------------------------------------------------------------


def test_a_carrier_route_is_found_whatever_its_case_and_spacing() -> None:
    routes = CarrierMap(routes={" dpd / 48 ": "DPD-STD", "EVRI/*": "HERMES"})
    assert routes.courier_for("DPD", "48") == "DPD-STD"
    assert routes.courier_for(" dpd", "48 ") == "DPD-STD"
    assert routes.courier_for("Evri", "NEXTDAY") == "HERMES"


def test_an_exact_route_wins_over_the_carriers_wildcard() -> None:
    routes = CarrierMap(routes={"DPD/*": "DPD-ANY", "DPD/ND": "DPD-NEXT"})
    assert routes.courier_for("DPD", "ND") == "DPD-NEXT"
    assert routes.courier_for("DPD", "48") == "DPD-ANY"


def test_no_carrier_is_never_routed_even_with_a_wildcard() -> None:
    assert CarrierMap(routes={"*/*": "ANY"}).courier_for("  ", "48") is None


def test_a_route_to_an_empty_courier_code_is_refused() -> None:
    with pytest.raises(ValueError, match="maps to an empty courier code"):
        CarrierMap(routes={"DPD/48": " "})
