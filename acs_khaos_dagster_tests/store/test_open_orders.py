"""The cycle's order reads take only open orders: cost that stays flat as the order book
grows (issue 23, target 4). An order leaves the open set once it is over at ACS (every unit
posted or closed short, or cancelled there); "read" is counted as rows the ORM loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.domain.models import AcsOrder
from acs_khaos_dagster.domain.order_release import release_outbox_key, release_revision
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook, PostingRecord
from acs_khaos_dagster.store.tables.orders import DespatchEventRow, OrderObservation, OrderRelease

from ..acs_fixtures import make_order
from .conftest import FakeClock


class AcsAccepts:
    idempotent = True

    def send(self, payload: dict) -> dict:
        return {"ok": True}

    def read_back(self, payload: dict) -> dict | None:
        return {"ok": True}


def _release(store: Store, number: str, units: int = 2) -> AcsOrder:
    order = make_order(number, [("11", "DRS-1", units)])
    key = release_outbox_key(order)
    with store.transaction() as session:
        store.outbox.enqueue(
            EffectKind.ACS_ORDER, "acs", number, key, order.model_dump(mode="json"), session=session
        )
        OrderBook(store.db).record_release(
            order, 1, [1], release_revision(order), key, store.now(), session
        )
    store.dispatcher({EffectKind.ACS_ORDER: AcsAccepts()}).drain()
    return order


def _ship(store: Store, number: str, units: int, shipment: str = "1") -> None:
    with store.transaction() as session:
        OrderBook(store.db).record_postings(
            [
                PostingRecord(
                    f"SH-{number}-{shipment}",
                    number,
                    1,
                    f"E-{number}-{shipment}",
                    "queued",
                    ((11, units),),
                )
            ],
            session,
        )


@contextmanager
def loaded(kind: type) -> Iterator[list[object]]:
    """The rows of ``kind`` the ORM loads from the database meanwhile."""
    rows: list[object] = []

    def count(session: Session, instance: object) -> None:
        if isinstance(instance, kind):
            rows.append(instance)

    event.listen(Session, "loaded_as_persistent", count)
    try:
        yield rows
    finally:
        event.remove(Session, "loaded_as_persistent", count)


def test_an_order_leaves_the_open_releases_once_every_unit_is_posted(store: Store) -> None:
    book = OrderBook(store.db)
    _release(store, "SO1", units=2)
    _ship(store, "SO1", 1, "1")
    assert set(book.open_releases()) == {"SO1"}

    _ship(store, "SO1", 1, "2")

    assert book.open_releases() == {}
    assert book.releases()["SO1"].finished_at is not None  # still there for month end


def test_an_order_cancelled_at_acs_leaves_the_open_releases(store: Store) -> None:
    book = OrderBook(store.db)
    _release(store, "SO1")

    book.set_cancel("SO1", "cancelled", None)

    assert book.open_releases() == {}


def test_an_order_posted_before_acs_confirmed_its_release_stays_open(store: Store) -> None:
    book = OrderBook(store.db)
    order = make_order("SO1", [("11", "DRS-1", 1)])
    with store.transaction() as session:
        store.outbox.enqueue(
            EffectKind.ACS_ORDER,
            "acs",
            "SO1",
            release_outbox_key(order),
            order.model_dump(mode="json"),
            session=session,
        )
        book.record_release(
            order,
            1,
            [1],
            release_revision(order),
            release_outbox_key(order),
            store.now(),
            session,
        )

    _ship(store, "SO1", 1)

    assert set(book.open_releases()) == {"SO1"}


def test_the_open_reads_load_no_finished_order_however_many_there_are(store: Store) -> None:
    book = OrderBook(store.db)
    for n in range(60):
        _release(store, f"OLD{n}", units=1)
        _ship(store, f"OLD{n}", 1)
    for n in range(3):
        _release(store, f"NEW{n}", units=2)
        _ship(store, f"NEW{n}", 1)

    with loaded(OrderRelease) as releases:
        open_releases = book.open_releases()
    postings = book.open_postings()

    assert set(open_releases) == {"NEW0", "NEW1", "NEW2"}
    assert len(releases) == 3
    assert {p.order_number for p in postings} == {"NEW0", "NEW1", "NEW2"}


def test_observing_reads_only_the_orders_seen_and_the_clocks_still_running(
    store: Store, clock: FakeClock
) -> None:
    book = OrderBook(store.db)
    book.observe(
        {f"OLD{n}": (n, True, False) for n in range(50)}, clock.now, release_stage_complete=True
    )
    clock.advance(hours=1)
    book.observe({}, clock.now, release_stage_complete=True)  # every old wait is over
    clock.advance(hours=1)

    with loaded(OrderObservation) as rows:
        book.observe({"NEW": (99, True, False)}, clock.now, release_stage_complete=True)

    assert rows == []  # nothing old was read; the new order's row was created
    assert set(book.open_observations()) == {"NEW"}
    assert book.open_observations()["NEW"].at_release_since == clock.now


def test_unposted_events_leave_the_decided_shipments_in_the_database(store: Store) -> None:
    from acs_khaos_dagster.domain.models import DespatchEvent

    book = OrderBook(store.db)
    events = [
        DespatchEvent.model_validate(
            {
                "event_id": f"E{n}",
                "order_number": f"SO{n}",
                "shipment_id": f"SH{n}",
                "despatched_at": store.now() - timedelta(days=n),
                "lines": [],
            }
        )
        for n in range(40)
    ]
    with store.transaction() as session:
        book.record_events(events, session)
        book.record_postings(
            [PostingRecord(f"SH{n}", f"SO{n}", n, f"E{n}", "queued") for n in range(1, 40)],
            session,
        )

    with loaded(DespatchEventRow) as rows:
        unposted = book.unposted_events()

    assert [e.shipment_id for e in unposted] == ["SH0"]
    assert len(rows) == 1
    assert book.event_count() == 40


def test_the_retention_pass_closes_orders_finished_before_the_store_kept_it(
    store: Store, clock: FakeClock
) -> None:
    book = OrderBook(store.db)
    _release(store, "SO1", units=1)
    _ship(store, "SO1", 1)
    with store.transaction() as session:  # as a store upgraded from before finished_at
        session.execute(update(OrderRelease).values(finished_at=None))
    assert set(book.open_releases()) == {"SO1"}
    clock.advance(days=91)

    store.purge_personal_data(90)

    assert book.open_releases() == {}


def test_a_back_order_clock_of_a_finished_order_is_no_longer_an_open_observation(
    store: Store, clock: FakeClock
) -> None:
    book = OrderBook(store.db)
    _release(store, "SO1", units=2)
    book.observe({"SO1": (1, False, True)}, clock.now, release_stage_complete=True)
    assert set(book.open_observations()) == {"SO1"}

    _ship(store, "SO1", 2)  # shipped whole: never sighted in back order again

    assert book.open_observations() == {}


def test_an_order_finishing_stops_its_clocks_so_the_running_ones_stay_the_open_orders(
    store: Store, clock: FakeClock
) -> None:
    book = OrderBook(store.db)
    _release(store, "SO1", units=2)
    book.observe({"SO1": (1, True, True)}, clock.now, release_stage_complete=False)

    _ship(store, "SO1", 2)

    (row,) = book.observations().values()
    assert (row.at_release_since, row.back_order_since) == (None, None)


def test_the_releases_of_named_orders_are_read_by_key_finished_or_not(store: Store) -> None:
    book = OrderBook(store.db)
    for n in range(30):
        _release(store, f"SO{n}", units=1)
    _ship(store, "SO1", 1)

    with loaded(OrderRelease) as rows:
        found = book.releases_of(["SO1", "SO2", "NOT-RELEASED"])

    assert set(found) == {"SO1", "SO2"}
    assert found["SO1"].finished_at is not None
    assert len(rows) == 2


def test_unacknowledged_releases_are_only_those_not_yet_acknowledged(
    store: Store, clock: FakeClock
) -> None:
    book = OrderBook(store.db)
    for n in range(5):
        _release(store, f"SO{n}", units=1)
    for n in range(4):
        book.mark_acknowledged(f"SO{n}", clock.now)

    with loaded(OrderRelease) as rows:
        waiting = book.unacknowledged_releases()

    assert set(waiting) == {"SO4"}
    assert len(rows) == 1


def test_an_event_sent_again_for_a_decided_shipment_is_not_unposted(store: Store) -> None:
    from acs_khaos_dagster.domain.models import DespatchEvent

    book = OrderBook(store.db)

    def event(event_id: str) -> DespatchEvent:
        return DespatchEvent(
            event_id=event_id, order_number="SO1", shipment_id="SH1", despatched_at=store.now()
        )

    with store.transaction() as session:
        book.record_events([event("E1")], session)
        book.record_postings([PostingRecord("SH1", "SO1", 1, "E1", "queued")], session)
    with store.transaction() as session:
        book.record_events([event("E1-again")], session)

    assert book.unposted_events() == []


def test_a_shipment_with_a_problem_stays_unposted_until_it_is_decided(store: Store) -> None:
    from acs_khaos_dagster.domain.models import DespatchEvent

    book = OrderBook(store.db)
    with store.transaction() as session:
        book.record_events(
            [
                DespatchEvent(
                    event_id="E1", order_number="SO1", shipment_id="SH1", despatched_at=store.now()
                )
            ],
            session,
        )
        book.record_postings([PostingRecord("SH1", "SO1", 1, "E1", "problem")], session)
    assert [e.shipment_id for e in book.unposted_events()] == ["SH1"]

    with store.transaction() as session:
        book.record_postings([PostingRecord("SH1", "SO1", 1, "E1", "nothing")], session)

    assert book.unposted_events() == []


def test_a_finished_order_released_again_with_a_new_body_is_open_again(store: Store) -> None:
    book = OrderBook(store.db)
    _release(store, "SO1", units=1)
    _ship(store, "SO1", 1)
    assert book.open_releases() == {}

    _release(store, "SO1", units=3)  # edited in Khaos and sent to ACS again

    assert set(book.open_releases()) == {"SO1"}


@contextmanager
def statements(store: Store) -> Iterator[list[tuple[str, object]]]:
    """The SELECTs the store sends meanwhile, with their parameters."""
    sent: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(store.db.engine, "before_cursor_execute", keep)
    try:
        yield sent
    finally:
        event.remove(store.db.engine, "before_cursor_execute", keep)


def test_the_running_clock_reads_never_scan_every_observation_ever_made(store: Store) -> None:
    # Rows loaded stay flat either way; what grew with the order book (BENCHMARKS.md §6)
    # was SQLite scanning the whole table for ``IS NOT NULL``. The plan says which.
    if store.db.engine.dialect.name != "sqlite":
        return  # PostgreSQL's planner chooses by statistics: no fixed plan to hold it to
    book = OrderBook(store.db)
    with statements(store) as sent:
        book.open_observations()
        book.observe({}, store.now(), release_stage_complete=True)
    plans = []
    with store.db.engine.connect() as conn:
        for statement, parameters in sent:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans += [row[-1] for row in rows if "order_observations" in row[-1]]
    assert plans
    assert all("INDEX" in plan for plan in plans), plans
