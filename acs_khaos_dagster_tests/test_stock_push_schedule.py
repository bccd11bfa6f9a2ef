"""``stock_push_schedule``: in batch mode it pushes the newest snapshot each tick; in
realtime mode each snapshot's own run pushes it, and the schedule picks up only a snapshot
that run left unpushed (an earlier push still landing, or another run's push meanwhile),
or it would wait for the next file, a day away."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from dagster import RunRequest, SkipReason, build_schedule_context
from sqlalchemy import update

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.defs.resources import SettingsResource, StoreResource
from acs_khaos_dagster.defs.stock import stock_push_schedule
from acs_khaos_dagster.domain.stock_guards import SnapshotTotals
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.stock import StockSnapshots
from acs_khaos_dagster.store.tables.stock import StockSnapshot


@pytest.fixture
def realtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACS_KHAOS_SYNC_MODE", "realtime")


def _tick() -> RunRequest | SkipReason:
    settings = SettingsResource()
    with build_schedule_context(
        resources={"settings": settings, "store": StoreResource(settings=settings)}
    ) as context:
        return stock_push_schedule(context)


def _taken_in(ago: timedelta) -> str:
    with Store.from_settings(load_settings()) as store:
        with store.transaction() as session:
            row = StockSnapshots(store.db).record(
                snapshot_id="20260302T050000-F1",
                file_id=1,
                file_name="stock_units_BRAND01_20260302050000.csv",
                snapshot_at=store.db.now() - ago,
                partition_day="2026-03-02",
                totals=SnapshotTotals(total=10, sellable=10, unknown=0),
                counts_path="unused",
                units_path="unused",
                session=session,
            )
            session.execute(
                update(StockSnapshot)
                .where(StockSnapshot.id == row.id)
                .values(created_at=store.db.now() - ago)
            )
        return row.snapshot_id


def test_realtime_with_every_snapshot_pushed_skips(realtime: None) -> None:
    assert isinstance(_tick(), SkipReason)


def test_realtime_picks_up_a_snapshot_its_run_left_unpushed(realtime: None) -> None:
    snapshot_id = _taken_in(timedelta(hours=1))
    request = _tick()
    assert isinstance(request, RunRequest)
    assert request.tags["stock_snapshot"] == snapshot_id


def test_realtime_leaves_a_snapshot_just_taken_in_to_its_own_run(realtime: None) -> None:
    _taken_in(timedelta(minutes=1))
    assert isinstance(_tick(), SkipReason)


def test_batch_mode_pushes_on_every_tick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACS_KHAOS_SYNC_MODE", "batch")
    assert isinstance(_tick(), RunRequest)
