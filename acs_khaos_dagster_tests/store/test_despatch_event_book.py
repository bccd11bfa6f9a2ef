"""ACS's despatch events in the store (``store/orders.py`` ``OrderBook``), on SQLite and
PostgreSQL: each event kept once, which shipments still wait for a decision, events a
crashed run left undecided, which ids are new, and the invoices seen issued — the facts the
despatch flow and the stock push read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from acs_khaos_dagster.domain.models import DespatchEvent, ShipmentLine
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook, PostingRecord

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)


def event(event_id: str, shipment: str, at: datetime = T0, order: str = "SO1") -> DespatchEvent:
    return DespatchEvent(
        event_id=event_id,
        order_number=order,
        shipment_id=shipment,
        despatched_at=at,
        lines=(ShipmentLine(line_item_id="1", sku="DRS-1", quantity=1, unique_skus=("U1",)),),
    )


def record(store: Store, *events: DespatchEvent) -> int:
    with store.transaction() as s:
        return OrderBook(store.db).record_events(events, s)


def decide(store: Store, shipment: str, state: str, order_id: int | None = 5001) -> None:
    with store.transaction() as s:
        OrderBook(store.db).record_postings(
            [PostingRecord(shipment, "SO1", order_id, f"E-{shipment}", state)], s
        )


# --- events --------------------------------------------------------------------------------------


def test_an_event_is_kept_once_however_often_it_is_delivered(store: Store) -> None:
    assert record(store, event("E1", "SH1"), event("E2", "SH2")) == 2
    assert record(store, event("E1", "SH1"), event("E3", "SH3")) == 1
    assert OrderBook(store.db).event_count() == 3


def test_events_waiting_for_a_decision_are_given_oldest_first(store: Store) -> None:
    record(store, event("E2", "SH2", T0 + timedelta(hours=1)), event("E1", "SH1", T0))
    assert [e.event_id for e in OrderBook(store.db).unposted_events()] == ["E1", "E2"]


def test_a_shipment_queued_or_needing_nothing_is_decided_a_problem_is_not(store: Store) -> None:
    record(store, event("E1", "SH1"), event("E2", "SH2"), event("E3", "SH3"))
    decide(store, "SH1", "queued")
    decide(store, "SH2", "nothing")
    decide(store, "SH3", "problem", order_id=None)
    assert [e.shipment_id for e in OrderBook(store.db).unposted_events()] == ["SH3"]


def test_an_event_sent_again_under_a_new_id_for_a_decided_shipment_waits_for_nothing(
    store: Store,
) -> None:
    record(store, event("E1", "SH1"))
    decide(store, "SH1", "queued")
    record(store, event("E1-again", "SH1"))
    assert OrderBook(store.db).unposted_events() == []


def test_a_shipment_whose_posting_became_a_problem_waits_again(store: Store) -> None:
    record(store, event("E1", "SH1"))
    decide(store, "SH1", "queued")
    decide(store, "SH1", "problem", order_id=None)
    assert [e.event_id for e in OrderBook(store.db).unposted_events()] == ["E1"]


def test_events_since_a_moment_include_older_ones_of_the_shipments_asked_for(
    store: Store,
) -> None:
    record(
        store,
        event("E1", "SH1", T0 - timedelta(days=9)),
        event("E2", "SH2", T0 - timedelta(days=8)),
        event("E3", "SH3", T0),
    )
    book = OrderBook(store.db)
    assert [e.event_id for e in book.despatch_events(since=T0)] == ["E3"]
    assert [e.event_id for e in book.despatch_events(T0, also_shipments=["SH1"])] == ["E1", "E3"]
    assert [e.event_id for e in book.despatch_events()] == ["E1", "E2", "E3"]


def test_despatch_times_give_order_shipment_and_moment(store: Store) -> None:
    record(store, event("E1", "SH1", T0, order="SO7"))
    assert OrderBook(store.db).despatch_times() == [("SO7", "SH1", T0)]


def test_events_a_crashed_run_never_decided_are_found(store: Store) -> None:
    record(store, event("E2", "SH2"), event("E1", "SH1"), event("E3", "SH3"))
    decide(store, "SH2", "queued")
    decide(store, "SH3", "problem", order_id=None)
    assert OrderBook(store.db).stranded_event_ids() == ["E1"]


def test_the_ids_not_seen_yet_are_given_once_each_in_the_order_asked(store: Store) -> None:
    record(store, event("E2", "SH2"))
    book = OrderBook(store.db)
    assert book.unseen_event_ids(["E3", "E2", "E1", "E3"]) == ["E3", "E1"]
    assert book.unseen_event_ids([]) == []


# --- invoices seen issued ------------------------------------------------------------------------


def test_an_invoice_seen_issued_is_remembered_with_its_first_issue_time(store: Store) -> None:
    book = OrderBook(store.db)
    book.record_issued({"SH1": T0})
    book.record_issued({"SH1": T0 + timedelta(days=1), "SH2": T0 + timedelta(hours=2)})
    assert book.issued_invoices(["SH1", "SH2", "SH9"]) == {
        "SH1": T0,
        "SH2": T0 + timedelta(hours=2),
    }
    book.record_issued({})


def test_shipments_to_correct_are_those_not_seen_invoiced_or_recent(store: Store) -> None:
    record(
        store,
        event("E1", "SH1", T0 - timedelta(days=30)),  # old, never seen invoiced
        event("E2", "SH2", T0 - timedelta(days=30)),  # old, invoiced: done with
        event("E3", "SH3", T0 + timedelta(hours=1)),  # recent, invoiced: still read
    )
    decide(store, "SH1", "problem", order_id=None)
    decide(store, "SH3", "queued", order_id=5003)
    book = OrderBook(store.db)
    book.record_issued({"SH2": T0 - timedelta(days=29), "SH3": T0 + timedelta(hours=2)})
    found = book.shipments_to_correct(despatched_after=T0)
    assert [(e.shipment_id, order_id) for e, order_id in found] == [("SH1", None), ("SH3", 5003)]


def test_a_shipment_to_correct_is_given_once_however_many_events_it_has(store: Store) -> None:
    record(store, event("E1", "SH1", T0), event("E1-again", "SH1", T0 + timedelta(minutes=5)))
    [(only, _)] = OrderBook(store.db).shipments_to_correct(despatched_after=T0)
    assert only.event_id == "E1"
