"""What the brand overview and the audit report read from the store, on SQLite and
PostgreSQL:

- ``Activity`` (``store/activity.py``): when an effect of a kind was last confirmed done,
  and when the newest ACS stock snapshot was taken;
- ``exception_frames`` (``flows/audit_report.py``): every exception with its type, owner
  and status, and the open ones with their age and their owner's target.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.flows.audit_report import exception_frames
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.activity import Activity
from acs_khaos_dagster.store.tables.stock import StockSnapshot

from .conftest import FakeClock
from .remote import ScriptedHandler


def sent(store: Store, kind: str, ref: str) -> None:
    store.outbox.enqueue(kind, "khaos", ref, f"{kind}:{ref}", {"ref": ref})
    store.dispatcher({kind: ScriptedHandler()}, OutboxSettings(backoff_initial_s=0)).drain()


def snapshot(store: Store, n: int, at: datetime, state: str) -> None:
    with store.transaction() as s:
        s.add(
            StockSnapshot(
                snapshot_id=f"S{n}",
                file_id=n,
                file_name=f"stock_units_{n}.csv",
                snapshot_at=at,
                partition_day=at.date().isoformat(),
                total_units=1,
                sellable_units=1,
                unknown_units=0,
                counts_path="",
                units_path="",
                state=state,
                created_at=at,
                updated_at=at,
            )
        )


# --- last activity -------------------------------------------------------------------------------


def test_nothing_done_yet_has_no_last_time(store: Store) -> None:
    assert Activity(store.db).last_done("khaos_move_invoices") is None


def test_the_last_time_is_when_the_newest_effect_of_that_kind_was_confirmed(
    store: Store, clock: FakeClock
) -> None:
    sent(store, "khaos_move_invoices", "A")
    clock.advance(hours=2)
    sent(store, "khaos_move_invoices", "B")
    assert Activity(store.db).last_done("khaos_move_invoices") == clock.now


def test_an_effect_still_waiting_to_be_sent_is_not_activity(store: Store, clock: FakeClock) -> None:
    sent(store, "khaos_move_invoices", "A")
    done_at = clock.now
    clock.advance(hours=2)
    store.outbox.enqueue("khaos_move_invoices", "khaos", "B", "khaos_move_invoices:B", {"ref": "B"})
    assert Activity(store.db).last_done("khaos_move_invoices") == done_at


def test_an_effect_of_another_kind_is_not_activity_of_this_one(
    store: Store, clock: FakeClock
) -> None:
    sent(store, "acs_order_put", "A")
    assert Activity(store.db).last_done("khaos_move_invoices") is None
    assert Activity(store.db).last_done("acs_order_put") == clock.now


def test_no_snapshot_taken_in_has_no_newest_time(store: Store) -> None:
    assert Activity(store.db).newest_snapshot_at() is None


def test_the_newest_snapshot_counts_whatever_became_of_it(store: Store) -> None:
    first = datetime(2026, 3, 1, 7, tzinfo=UTC)
    snapshot(store, 1, first, "pushed")
    snapshot(store, 2, first + timedelta(days=2), "refused")
    snapshot(store, 3, first + timedelta(days=1), "ingested")
    assert Activity(store.db).newest_snapshot_at() == first + timedelta(days=2)


# --- exceptions for the audit report -------------------------------------------------------------


def test_every_exception_is_listed_with_type_owner_status_and_when_acted_on(
    store: Store, clock: FakeClock
) -> None:
    opened_at = clock.now
    held = store.exceptions.raise_exception("order_held", "order:SO1", "held")
    clock.advance(hours=1)
    store.exceptions.raise_exception("refund_due", "refund:R1-P1", "due in 2 days")
    clock.advance(hours=2)
    store.exceptions.resolve(held.id, "ops.anna", "released")
    every, _ = exception_frames(store)
    assert list(every.columns) == ["type", "owner", "opened_at", "status", "acted_at"]
    rows = every.to_dict("records")
    assert [(r["type"], r["owner"], r["status"]) for r in rows] == [
        ("order_held", "ecommerce", "resolved"),
        ("refund_due", "finance", "open"),
    ]
    assert rows[0]["opened_at"] == opened_at
    assert rows[0]["acted_at"] == clock.now


def test_only_open_exceptions_are_aged_against_their_owners_target(
    store: Store, clock: FakeClock
) -> None:
    held = store.exceptions.raise_exception("order_held", "order:SO1", "held")
    store.exceptions.raise_exception("refund_due", "refund:R1-P1", "due")
    store.exceptions.raise_exception("return_unmatched", "return:return_unmatched:R9:U9", "?")
    store.exceptions.ignore(held.id, "ops.anna", "not ours")
    clock.advance(hours=6)
    _, open_ = exception_frames(store)
    assert list(open_.columns) == ["type", "owner", "age_hours", "target_hours"]
    assert open_.to_dict("records") == [
        {"type": "refund_due", "owner": "finance", "age_hours": 6.0, "target_hours": 24.0},
        {"type": "return_unmatched", "owner": "operations", "age_hours": 6.0, "target_hours": 4.0},
    ]


def test_no_exceptions_give_empty_frames_with_their_columns(store: Store) -> None:
    every, open_ = exception_frames(store)
    assert every.empty and open_.empty
    assert list(every.columns) == ["type", "owner", "opened_at", "status", "acted_at"]
    assert list(open_.columns) == ["type", "owner", "age_hours", "target_hours"]


@pytest.mark.parametrize("minutes", [30, 90])
def test_an_open_exceptions_age_is_in_hours_from_when_it_opened(
    store: Store, clock: FakeClock, minutes: int
) -> None:
    store.exceptions.raise_exception("order_held", "order:SO1", "held")
    clock.advance(minutes=minutes)
    _, open_ = exception_frames(store)
    assert open_["age_hours"].tolist() == [minutes / 60]
