"""The stock snapshots taken in from ACS and what became of them (``store/stock.py``), on
SQLite and PostgreSQL: recorded as ``ingested`` with their totals, found by file, id, day
or age, moved on to ``refused``/``pushed``/``skipped`` at most once per race, and the last
pushed one's totals as the plausibility guard's baseline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from acs_khaos_dagster.domain.stock_guards import SnapshotTotals
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.stock import StockSnapshots

from .conftest import FakeClock

T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def record(
    store: Store, n: int, at: datetime = T0, day: str | None = None, total: int = 100
) -> None:
    with store.transaction() as s:
        StockSnapshots(store.db).record(
            snapshot_id=f"S{n}",
            file_id=n,
            file_name=f"stock_units_BRAND01_{n}.csv",
            snapshot_at=at,
            partition_day=day or at.date().isoformat(),
            totals=SnapshotTotals(total=total, sellable=total - 10, unknown=1),
            counts_path=f"/data/stock/{n}/counts.parquet",
            units_path=f"/data/stock/{n}/units.parquet",
            session=s,
        )


def mark(store: Store, n: int, state: str, **kwargs: object) -> object:
    with store.transaction() as s:
        row = StockSnapshots(store.db).mark(f"S{n}", state, session=s, **kwargs)
        return None if row is None else row.state


def test_a_snapshot_is_recorded_ingested_with_its_totals_and_files(
    store: Store, clock: FakeClock
) -> None:
    record(store, 1, total=120)
    row = StockSnapshots(store.db).get("S1")
    assert row is not None
    assert (row.state, row.total_units, row.sellable_units, row.unknown_units) == (
        "ingested",
        120,
        110,
        1,
    )
    assert (row.snapshot_at, row.partition_day, row.created_at) == (T0, "2026-03-02", clock.now)
    assert row.counts_path == "/data/stock/1/counts.parquet"


def test_the_same_file_cannot_be_recorded_as_two_snapshots(store: Store) -> None:
    record(store, 1)
    with pytest.raises(IntegrityError), store.transaction() as s:
        StockSnapshots(store.db).record(
            snapshot_id="S-other",
            file_id=1,
            file_name="again.csv",
            snapshot_at=T0,
            partition_day="2026-03-02",
            totals=SnapshotTotals(total=1, sellable=1, unknown=0),
            counts_path="",
            units_path="",
            session=s,
        )


def test_a_snapshot_is_found_by_its_file_and_nothing_for_an_unknown_one(store: Store) -> None:
    record(store, 7)
    snapshots = StockSnapshots(store.db)
    found = snapshots.by_file(7)
    assert found is not None and found.snapshot_id == "S7"
    assert snapshots.by_file(8) is None
    assert snapshots.get("S8") is None


def test_the_newest_of_a_day_is_the_latest_snapshot_time_in_that_partition(
    store: Store,
) -> None:
    record(store, 1, T0)
    record(store, 2, T0 + timedelta(hours=5))
    record(store, 3, T0 - timedelta(hours=1))
    record(store, 4, T0 + timedelta(days=1))
    newest = StockSnapshots(store.db).newest_of_day("2026-03-02")
    assert newest is not None and newest.snapshot_id == "S2"
    assert StockSnapshots(store.db).newest_of_day("2026-03-09") is None


def test_snapshots_with_the_same_time_are_ordered_by_the_one_taken_in_last(
    store: Store,
) -> None:
    record(store, 1, T0)
    record(store, 2, T0)
    newest = StockSnapshots(store.db).newest()
    assert newest is not None and newest.snapshot_id == "S2"


def test_the_newest_snapshot_is_by_acs_time_not_by_arrival(store: Store) -> None:
    record(store, 1, T0 + timedelta(days=1))
    record(store, 2, T0)  # a late delivery of an older snapshot
    newest = StockSnapshots(store.db).newest()
    assert newest is not None and newest.snapshot_id == "S1"


def test_nothing_pushed_yet_has_no_baseline(store: Store) -> None:
    record(store, 1)
    assert StockSnapshots(store.db).last_pushed() is None
    assert StockSnapshots(store.db).last_accepted_totals() is None


def test_the_baseline_is_the_newest_pushed_snapshots_totals(store: Store) -> None:
    record(store, 1, T0, total=100)
    record(store, 2, T0 + timedelta(days=1), total=200)
    record(store, 3, T0 + timedelta(days=2), total=300)
    mark(store, 1, "pushed")
    mark(store, 2, "pushed")
    mark(store, 3, "refused", reasons=["total units fell by 60%"])
    pushed = StockSnapshots(store.db).last_pushed()
    assert pushed is not None and pushed.snapshot_id == "S2"
    assert StockSnapshots(store.db).last_accepted_totals() == SnapshotTotals(
        total=200, sellable=190, unknown=1
    )


def test_marking_records_the_state_reasons_summary_and_when(store: Store, clock: FakeClock) -> None:
    record(store, 1)
    clock.advance(minutes=3)
    pushed_at = clock.now
    mark(store, 1, "pushed", summary={"groups": 2}, pushed_at=pushed_at)
    row = StockSnapshots(store.db).get("S1")
    assert row is not None
    assert (row.state, row.summary, row.pushed_at, row.updated_at) == (
        "pushed",
        {"groups": 2},
        pushed_at,
        clock.now,
    )


def test_a_refused_snapshot_keeps_its_reasons(store: Store) -> None:
    record(store, 1)
    mark(store, 1, "refused", reasons=["sellable units fell by 40%", "unknown status doubled"])
    row = StockSnapshots(store.db).get("S1")
    assert row is not None and row.reasons == [
        "sellable units fell by 40%",
        "unknown status doubled",
    ]


def test_a_snapshot_another_run_already_moved_on_is_left_alone(store: Store) -> None:
    record(store, 1)
    assert mark(store, 1, "pushed", only_from="ingested") == "pushed"
    assert mark(store, 1, "skipped", only_from="ingested") is None
    row = StockSnapshots(store.db).get("S1")
    assert row is not None and row.state == "pushed"


def test_all_snapshots_are_listed_in_the_order_taken_in(store: Store) -> None:
    record(store, 2, T0 + timedelta(days=1))
    record(store, 1, T0)
    assert [s.snapshot_id for s in StockSnapshots(store.db).all()] == ["S2", "S1"]
