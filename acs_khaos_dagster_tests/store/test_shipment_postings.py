"""Shipment postings: many written in one statement, a shipment's latest record kept."""

from __future__ import annotations

from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook, PostingRecord


def record(shipment_id: str, state: str = "queued", **kwargs: object) -> PostingRecord:
    return PostingRecord(
        shipment_id=shipment_id,
        order_number="SO1",
        order_id=1,
        event_id=f"E-{shipment_id}",
        state=state,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_day_of_postings_is_stored_in_one_go(store: Store) -> None:
    book = OrderBook(store.db)
    with store.transaction() as session:
        book.record_postings(
            [record(f"SH{i}", lines=((10, 1),), outbox_key=f"despatch:SH{i}") for i in range(700)],
            session,
        )

    stored = book.postings({"SO1"})

    assert len(stored) == 700
    assert {p.outbox_key for p in stored} == {f"despatch:SH{i}" for i in range(700)}
    assert all(p.lines == [[10, 1]] for p in stored)


def test_a_shipment_recorded_again_keeps_only_its_latest_record(store: Store) -> None:
    book = OrderBook(store.db)
    with store.transaction() as session:
        book.record_postings([record("SH1", "problem", problem="courier unmapped")], session)
    with store.transaction() as session:
        book.record_postings(
            [record("SH1", "nothing"), record("SH1", "queued", closed={10: 2})], session
        )

    [posting] = book.postings({"SO1"})

    assert (posting.state, posting.problem, posting.closed) == ("queued", None, [[10, 2]])
