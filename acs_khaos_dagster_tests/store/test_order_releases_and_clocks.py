"""Orders released to ACS and the stuck-order clocks (``store/orders.py`` ``OrderBook``), on
SQLite and PostgreSQL: a release keeps the body last sent (a new revision replaces it and
opens the order again), acknowledgements and cancellations are recorded once, and each
wait's clock starts at its first sighting and stops when the wait is no longer seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from acs_khaos_dagster.domain.models import AcsOrder, AcsOrderLine, Address, Contact
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook

from .conftest import FakeClock

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def order(code: str = "SO1", quantity: int = 1) -> AcsOrder:
    return AcsOrder(
        order_number=code,
        order_date=T0,
        contact=Contact(),
        delivery_address=Address(),
        lines=(AcsOrderLine(line_item_id="1", sku="DRS-1", quantity=quantity, price=10),),
    )


class AcsAccepts:
    idempotent = True

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return {"ok": True}


def release(
    store: Store, revision: str, *, quantity: int = 1, at: datetime = T0, confirm: bool = True
) -> None:
    """Record a release and queue its body; ACS confirms it unless ``confirm`` is False."""
    key = f"put:SO1:{revision}"
    body = order(quantity=quantity)
    with store.transaction() as s:
        store.outbox.enqueue(
            EffectKind.ACS_ORDER, "acs", "SO1", key, body.model_dump(mode="json"), session=s
        )
        OrderBook(store.db).record_release(body, 5001, [9001], revision, key, at, s)
    if confirm:
        store.dispatcher({EffectKind.ACS_ORDER: AcsAccepts()}).drain()


# --- releases ------------------------------------------------------------------------------------


def test_a_release_keeps_the_body_sent_and_its_outbox_key(store: Store) -> None:
    release(store, "r1", quantity=2)
    row = OrderBook(store.db).releases()["SO1"]
    assert (row.order_id, row.invoice_ids, row.revision, row.outbox_key) == (
        5001,
        [9001],
        "r1",
        "put:SO1:r1",
    )
    assert row.payload["lines"][0]["quantity"] == 2
    assert (row.released_at, row.acknowledged_at, row.finished_at) == (T0, None, None)


def test_the_same_release_recorded_again_changes_nothing(store: Store) -> None:
    release(store, "r1")
    OrderBook(store.db).mark_acknowledged("SO1", T0)
    release(store, "r1", at=T0 + timedelta(hours=1))
    row = OrderBook(store.db).releases()["SO1"]
    assert (row.released_at, row.acknowledged_at) == (T0, T0)


def test_a_new_revision_replaces_the_body_and_waits_for_a_new_acknowledgement(
    store: Store,
) -> None:
    release(store, "r1")
    OrderBook(store.db).mark_acknowledged("SO1", T0)
    later = T0 + timedelta(hours=2)
    release(store, "r2", quantity=3, at=later)
    row = OrderBook(store.db).releases()["SO1"]
    assert (row.revision, row.outbox_key, row.released_at, row.acknowledged_at) == (
        "r2",
        "put:SO1:r2",
        later,
        None,
    )
    assert row.payload["lines"][0]["quantity"] == 3
    assert set(OrderBook(store.db).unacknowledged_releases()) == {"SO1"}


def test_a_finished_order_released_again_is_open_again(store: Store) -> None:
    release(store, "r1")
    book = OrderBook(store.db)
    book.set_cancel("SO1", "cancelled", None)
    assert book.open_releases() == {}
    release(store, "r2")
    assert set(book.open_releases()) == {"SO1"}


def test_the_first_acknowledgement_is_the_one_kept(store: Store) -> None:
    release(store, "r1")
    book = OrderBook(store.db)
    book.mark_acknowledged("SO1", T0)
    book.mark_acknowledged("SO1", T0 + timedelta(days=1))
    book.mark_acknowledged("NOT-RELEASED", T0)
    assert book.releases()["SO1"].acknowledged_at == T0
    assert set(book.releases()) == {"SO1"}


def test_a_cancellation_requested_keeps_the_order_open_with_its_outbox_key(store: Store) -> None:
    release(store, "r1")
    book = OrderBook(store.db)
    book.set_cancel("SO1", "requested", "cancel:SO1")
    book.set_cancel("SO1", "requested", None)
    row = book.releases()["SO1"]
    assert (row.cancel_state, row.cancel_outbox_key, row.finished_at) == (
        "requested",
        "cancel:SO1",
        None,
    )


def test_a_cancellation_locked_at_acs_finishes_the_order(store: Store) -> None:
    release(store, "r1")
    book = OrderBook(store.db)
    book.set_cancel("SO1", "locked", None)
    assert book.releases()["SO1"].finished_at is not None


def test_a_cancelled_order_whose_release_acs_has_not_confirmed_stays_open(store: Store) -> None:
    release(store, "r1", confirm=False)
    book = OrderBook(store.db)
    book.set_cancel("SO1", "cancelled", None)
    assert set(book.open_releases()) == {"SO1"}


def test_cancelling_an_order_never_released_does_nothing(store: Store) -> None:
    OrderBook(store.db).set_cancel("SO9", "cancelled", "cancel:SO9")
    assert OrderBook(store.db).releases() == {}


# --- the stuck-order clocks ----------------------------------------------------------------------


def observe(store: Store, seen: dict, at: datetime, complete: bool = True) -> None:
    OrderBook(store.db).observe(seen, at, release_stage_complete=complete)


def test_a_wait_starts_its_clock_when_first_seen_and_keeps_it(store: Store) -> None:
    observe(store, {"SO1": (1, True, False)}, T0)
    observe(store, {"SO1": (1, True, False)}, T0 + timedelta(hours=5))
    row = OrderBook(store.db).observations()["SO1"]
    assert (row.order_id, row.at_release_since, row.back_order_since) == (1, T0, None)


def test_an_order_no_longer_at_the_release_stage_stops_its_clock(store: Store) -> None:
    observe(store, {"SO1": (1, True, False)}, T0)
    observe(store, {"SO1": (1, False, False)}, T0 + timedelta(hours=1))
    assert OrderBook(store.db).observations()["SO1"].at_release_since is None
    assert OrderBook(store.db).open_observations() == {}


def test_an_order_missing_from_a_complete_listing_has_left_the_release_stage(
    store: Store,
) -> None:
    observe(store, {"SO1": (1, True, False), "SO2": (2, True, False)}, T0)
    observe(store, {"SO2": (2, True, False)}, T0 + timedelta(hours=1))
    assert set(OrderBook(store.db).open_observations()) == {"SO2"}


def test_an_order_missing_from_a_partial_listing_keeps_its_clock(store: Store) -> None:
    observe(store, {"SO1": (1, True, False)}, T0)
    observe(store, {"SO2": (2, True, False)}, T0 + timedelta(hours=1), complete=False)
    assert OrderBook(store.db).observations()["SO1"].at_release_since == T0


def test_a_back_order_clock_runs_until_the_order_is_seen_without_it(store: Store) -> None:
    observe(store, {"SO1": (1, False, True)}, T0)
    observe(store, {}, T0 + timedelta(hours=1))  # not sighted: the clock runs on
    assert OrderBook(store.db).observations()["SO1"].back_order_since == T0
    observe(store, {"SO1": (1, False, False)}, T0 + timedelta(hours=2))
    assert OrderBook(store.db).observations()["SO1"].back_order_since is None


def test_a_wait_seen_again_after_it_ended_starts_a_new_clock(store: Store) -> None:
    observe(store, {"SO1": (1, True, False)}, T0)
    observe(store, {"SO1": (1, False, False)}, T0 + timedelta(hours=1))
    again = T0 + timedelta(hours=3)
    observe(store, {"SO1": (1, True, False)}, again)
    assert OrderBook(store.db).observations()["SO1"].at_release_since == again


def test_an_observation_is_timed_by_the_stores_clock(store: Store, clock: FakeClock) -> None:
    clock.advance(minutes=11)
    observe(store, {"SO1": (1, True, False)}, T0)
    assert OrderBook(store.db).observations()["SO1"].updated_at == clock.now


def test_two_cycles_seeing_a_new_order_at_once_both_succeed_and_keep_the_first_clock(
    pg_url: str, clock: FakeClock
) -> None:
    # Found by CI: two Dagster runs released at once on PostgreSQL, both inserted the new
    # order's observation and the later one failed the whole release step on the key.
    with Store.open(pg_url, clock=clock) as first, Store.open(pg_url, clock=clock) as other:
        raced = []

        def other_cycle_sees_it_first(session: Any, *_: Any) -> None:
            if not raced:  # once: between this cycle's read and its insert
                raced.append(True)
                observe(other, {"SO1": (1, True, False)}, T0)

        event.listen(first.db.session_factory, "before_flush", other_cycle_sees_it_first)
        observe(first, {"SO1": (1, True, False)}, T0 + timedelta(minutes=5))

        row = OrderBook(first.db).observations()["SO1"]
        assert raced and row.at_release_since == T0
