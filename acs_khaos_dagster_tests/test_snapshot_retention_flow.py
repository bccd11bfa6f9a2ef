"""Snapshot retention in the stock flow: each new snapshot taken in prunes the files of
those past ``retention.snapshot_days``, and the steps after it still work (the simulator's
ACS drop, Khaos's stock items, a SQLite store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.acs.drop import open_drop
from acs_khaos_dagster.flows.hire import hire_lifecycle
from acs_khaos_dagster.flows.stock_placement import check_sellable, place_sellable
from acs_khaos_dagster.flows.stock_snapshot import (
    SnapshotTakeIn,
    partition_day,
    take_in_snapshot,
)
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.stock import StockSnapshots


@pytest.fixture
def conf(sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACS_KHAOS_RETENTION__SNAPSHOT_DAYS", "2")
    return load_settings()


@pytest.fixture
def store(conf: Settings) -> Iterator[Store]:
    with Store.from_settings(conf) as db:
        yield db


def _sku_map(sandbox) -> pd.DataFrame:
    items = [i for i in sandbox.khaos.truth()["stock_items"] if i["stock_controlled"]]
    return pd.DataFrame(
        [
            (i["stock_code"], i["stock_id"], i["stock_code"], i["is_hire"], float(i["cost_price"]))
            for i in items
        ],
        columns=["sku", "stock_id", "stock_code", "is_hire", "cost_price"],
    )


def _day_of_snapshots(sandbox, store: Store, conf: Settings, n: int) -> SnapshotTakeIn:
    """The simulator's snapshot of the day taken in and placed, as the stock job does."""
    path = next(p for p in sandbox.acs.write_daily_files() if "stock_units" in p.name)
    day = partition_day(path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC))
    with open_drop(conf) as drop:
        took = take_in_snapshot(store, drop, conf, day, path.name, f"run-{n}")
    place_sellable(store, conf, took.counts, _sku_map(sandbox), f"run-{n}", day)
    return took


def test_taking_in_a_snapshot_prunes_the_unit_files_of_those_past_the_retention(
    sandbox, store: Store, conf: Settings
) -> None:
    taken = []
    for n in range(5):
        taken.append(_day_of_snapshots(sandbox, store, conf, n))
        sandbox.advance(timedelta(days=1))

    rows = {r.snapshot_id: r for r in StockSnapshots(store.db).all()}
    old, kept = taken[:2], taken[2:]  # the newest is 4 days after the first
    assert all(not Path(rows[t.snapshot_id].units_path).exists() for t in old)
    assert all(Path(rows[t.snapshot_id].units_path).exists() for t in kept)
    # Their month has no final pack: each day's counts stay for its reconciliation.
    assert all(Path(rows[t.snapshot_id].counts_path).exists() for t in taken)
    assert sum(t.pruned.counts()["snapshots_pruned"] for t in taken) == 2


def test_the_newest_snapshot_is_placed_and_checked_after_older_ones_are_pruned(
    sandbox, store: Store, conf: Settings
) -> None:
    for n in range(4):
        took = _day_of_snapshots(sandbox, store, conf, n)
        sandbox.advance(timedelta(days=1))
    day = StockSnapshots(store.db).get(took.snapshot_id).partition_day  # type: ignore[union-attr]

    checked = check_sellable(store, conf, "run-3", day)

    assert took.pruned.units_removed  # something was pruned on the way
    assert checked is not None and checked.mismatches == []


def test_the_hire_lifecycle_folds_each_snapshot_before_the_retention_may_remove_it(
    sandbox, store: Store, conf: Settings
) -> None:
    with AcsClient.from_settings(conf) as acs:
        for n in range(4):
            _day_of_snapshots(sandbox, store, conf, n)
            result = hire_lifecycle(store, acs, conf)
            assert result.snapshots_read == 1  # each run reads only the new snapshot
            sandbox.advance(timedelta(days=1))

    rows = StockSnapshots(store.db).all()
    assert any(r.pruned_at is not None for r in rows)
    assert len(result.lifecycle) > 0
    assert result.lifecycle["last_seen_at"].max() == max(r.snapshot_at for r in rows)
