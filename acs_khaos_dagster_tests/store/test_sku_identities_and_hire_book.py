"""Two small repositories, on SQLite and PostgreSQL:

- ``SkuIdentities`` (``store/products.py``): the ACS SKU each Khaos StockID was first
  registered under — never changed afterwards, so a renamed stock code stays on its SKU —
  and the content hash last pushed for each;
- ``HireBook`` (``store/hire.py``): which released orders are hire orders, and how often
  ACS despatched each unit (a hire unit's rentals), one count per shipment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import event

from acs_khaos_dagster.domain.hire_valuation import HireValuation
from acs_khaos_dagster.domain.models import (
    AcsOrder,
    AcsOrderLine,
    Address,
    Contact,
    DespatchEvent,
    ShipmentLine,
)
from acs_khaos_dagster.flows.hire import hire_write_off_value
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.hire import HireBook
from acs_khaos_dagster.store.products import SkuIdentities
from acs_khaos_dagster.store.tables.orders import DespatchEventRow, OrderRelease
from acs_khaos_dagster.store.tables.products import SkuIdentity

from .conftest import FakeClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


# --- SKU identities ------------------------------------------------------------------------------


def test_a_first_registration_is_stored_with_its_stock_code_and_time(
    store: Store, clock: FakeClock
) -> None:
    skus = SkuIdentities(store.db)
    with store.transaction() as s:
        skus.record({101: "WIDGET-RED"}, {101: "WIDGET-RED-OLD"}, {}, session=s)
    assert skus.identity() == {101: "WIDGET-RED"}
    with store.transaction() as s:
        row = s.get(SkuIdentity, 101)
        assert (row.first_stock_code, row.registered_at) == ("WIDGET-RED-OLD", clock.now)


def test_without_a_stock_code_the_sku_is_taken_as_the_first_stock_code(store: Store) -> None:
    skus = SkuIdentities(store.db)
    with store.transaction() as s:
        skus.record({101: "WIDGET-RED"}, {}, {}, session=s)
    with store.transaction() as s:
        assert s.get(SkuIdentity, 101).first_stock_code == "WIDGET-RED"


def test_an_identity_once_registered_never_changes(store: Store) -> None:
    skus = SkuIdentities(store.db)
    with store.transaction() as s:
        skus.record({101: "WIDGET-RED"}, {101: "WIDGET-RED"}, {}, session=s)
    with store.transaction() as s:
        skus.record({101: "WIDGET-CRIMSON"}, {101: "WIDGET-CRIMSON"}, {}, session=s)
    assert skus.identity() == {101: "WIDGET-RED"}


def test_many_identities_are_registered_in_one_call(store: Store) -> None:
    skus = SkuIdentities(store.db)
    wanted = {n: f"SKU-{n:05d}" for n in range(1, 2001)}
    with store.transaction() as s:
        skus.record(wanted, {}, {}, session=s)
    assert skus.identity() == wanted


def test_nothing_is_pushed_before_a_hash_is_recorded(store: Store) -> None:
    skus = SkuIdentities(store.db)
    with store.transaction() as s:
        skus.record({101: "A", 102: "B"}, {}, {}, session=s)
    assert skus.last_pushed_hashes() == {}


def test_the_last_pushed_hash_replaces_the_one_before(store: Store, clock: FakeClock) -> None:
    skus = SkuIdentities(store.db)
    with store.transaction() as s:
        skus.record({101: "A", 102: "B"}, {}, {101: "h1"}, session=s)
    clock.advance(hours=1)
    with store.transaction() as s:
        skus.record({}, {}, {101: "h2", 102: "k1"}, session=s)
    assert skus.last_pushed_hashes() == {101: "h2", 102: "k1"}
    with store.transaction() as s:
        assert s.get(SkuIdentity, 101).last_pushed_at == clock.now


def test_a_hash_for_a_stock_id_never_registered_is_not_recorded(store: Store) -> None:
    skus = SkuIdentities(store.db)
    with store.transaction() as s:
        skus.record({101: "A"}, {}, {999: "h"}, session=s)
    assert skus.last_pushed_hashes() == {}
    assert skus.identity() == {101: "A"}


def test_identities_recorded_in_a_transaction_that_fails_are_not_kept(store: Store) -> None:
    skus = SkuIdentities(store.db)
    try:
        with store.transaction() as s:
            skus.record({101: "A"}, {}, {101: "h"}, session=s)
            raise RuntimeError("the outbox insert failed")
    except RuntimeError:
        pass
    assert skus.identity() == {}


# --- hire book -----------------------------------------------------------------------------------


def released(store: Store, order_number: str, hire: list[bool]) -> None:
    order = AcsOrder(
        order_number=order_number,
        order_date=T0,
        contact=Contact(),
        delivery_address=Address(),
        lines=tuple(
            AcsOrderLine(line_item_id=str(n), sku=f"S{n}", quantity=1, price=5, is_hire=h)
            for n, h in enumerate(hire, start=1)
        ),
    )
    with store.transaction() as s:
        s.add(
            OrderRelease(
                order_code=order_number,
                order_id=len(order_number),
                invoice_ids=[],
                revision="r1",
                outbox_key=f"put:{order_number}",
                payload=order.model_dump(mode="json"),
                released_at=T0,
                updated_at=T0,
            )
        )


def despatched(
    store: Store, event_id: str, shipment_id: str, at: datetime, units: dict[str, list[str]]
) -> None:
    event = DespatchEvent(
        event_id=event_id,
        order_number="SO1",
        shipment_id=shipment_id,
        despatched_at=at,
        lines=tuple(
            ShipmentLine(
                line_item_id=str(n), sku=sku, quantity=max(len(u), 1), unique_skus=tuple(u)
            )
            for n, (sku, u) in enumerate(units.items(), start=1)
        ),
    )
    payload: dict[str, Any] = event.model_dump(mode="json")
    with store.transaction() as s:
        s.add(
            DespatchEventRow(
                event_id=event_id,
                order_number="SO1",
                shipment_id=shipment_id,
                despatched_at=at,
                payload=payload,
                received_at=at,
            )
        )


def test_an_order_whose_lines_are_all_hire_lines_is_a_hire_order(store: Store) -> None:
    released(store, "SO-HIRE", [True, True])
    released(store, "SO-SALE", [False])
    released(store, "SO-MIXED", [True, False])
    assert HireBook(store.db).hire_orders() == {"SO-HIRE"}


def test_with_no_orders_released_there_are_no_hire_orders(store: Store) -> None:
    assert HireBook(store.db).hire_orders() == set()


def test_each_shipment_counts_one_despatch_of_each_of_its_units(store: Store) -> None:
    despatched(store, "e1", "sh1", T0, {"DRESS": ["U1", "U2"], "HAT": ["H1"]})
    despatched(store, "e2", "sh2", T0 + timedelta(days=9), {"DRESS": ["U1"]})
    assert HireBook(store.db).unit_despatches() == {
        ("DRESS", "U1"): 2,
        ("DRESS", "U2"): 1,
        ("HAT", "H1"): 1,
    }


def test_a_despatch_event_sent_again_for_the_same_shipment_counts_once(store: Store) -> None:
    despatched(store, "e1", "sh1", T0, {"DRESS": ["U1"]})
    despatched(store, "e1-resent", "sh1", T0 + timedelta(minutes=5), {"DRESS": ["U1"]})
    assert HireBook(store.db).unit_despatches() == {("DRESS", "U1"): 1}


def test_despatches_are_counted_up_to_and_including_the_moment_given(store: Store) -> None:
    despatched(store, "e1", "sh1", T0, {"DRESS": ["U1"]})
    despatched(store, "e2", "sh2", T0 + timedelta(days=9), {"DRESS": ["U1"]})
    despatched(store, "e3", "sh3", T0 + timedelta(days=20), {"DRESS": ["U1"]})
    book = HireBook(store.db)
    assert book.unit_despatches(until=T0 + timedelta(days=9)) == {("DRESS", "U1"): 2}
    assert book.unit_despatches(until=T0 - timedelta(seconds=1)) == {}


def test_units_without_unique_skus_are_not_counted(store: Store) -> None:
    despatched(store, "e1", "sh1", T0, {"SOCKS": []})
    assert HireBook(store.db).unit_despatches() == {}


def test_a_hire_write_off_value_reads_the_despatch_history_only_when_a_unit_is_valued(
    store: Store,
) -> None:
    # Every despatch ever kept is read to count rentals: a returns run that writes off no
    # hire unit (most of them) must not pay for it, or its cost grows with the history.
    despatched(store, "e1", "sh1", T0, {"DRESS": ["U1"]})
    despatched(store, "e2", "sh2", T0 + timedelta(days=9), {"DRESS": ["U1"]})
    conf = SimpleNamespace(hire=HireValuation(basis="depreciated"))
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM despatch_events" in statement:
            reads.append(statement)

    event.listen(store.db.engine, "before_cursor_execute", count)
    try:
        value = hire_write_off_value(conf, store)  # type: ignore[arg-type]
        assert reads == []
        assert value("U1", Decimal("50")) == Decimal("40.00")  # two rentals, 10% each
        assert value("U2", Decimal("50")) == Decimal("50.00")
    finally:
        event.remove(store.db.engine, "before_cursor_execute", count)
    assert len(reads) == 1
