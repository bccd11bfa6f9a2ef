"""The reconciliation and audit flows without Dagster (issue 21): the store on SQLite, the
simulators over real HTTP, the flows called as the CLI or a benchmark would.

Oracles are what the simulators hold (Khaos's Level, set here) and what the store and
the data folder hold afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.acs.drop import open_drop
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.reconciliation import Finding
from acs_khaos_dagster.flows.audit_report import build_audit_report
from acs_khaos_dagster.flows.common import write_parquet_atomically
from acs_khaos_dagster.flows.reconciliation import (
    day_window,
    drift_by_day_path,
    exception_queue,
    read_day,
    reconcile_order_status,
    reconcile_returns,
    reconcile_stock,
    table_path,
)
from acs_khaos_dagster.flows.reconciliation.storage import record_drift_day, sync_findings
from acs_khaos_dagster.flows.stock_snapshot import partition_day, take_in_snapshot
from acs_khaos_dagster.store import Store
from acs_khaos_dagster_tests.test_stock_snapshot_flows import _sku_map

SELLING = 1


@pytest.fixture
def conf(sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    return load_settings()


@pytest.fixture
def store(conf: Settings) -> Iterator[Store]:
    with Store.from_settings(conf) as db:
        yield db


@pytest.fixture
def khaos(conf: Settings) -> Iterator[KhaosClient]:
    with KhaosClient.from_settings(conf) as client:
        yield client


def _now(sandbox) -> datetime:
    return sandbox.clock.now()


def _snapshot_day(sandbox, store: Store, conf: Settings) -> str:
    path = next(p for p in sandbox.acs.write_daily_files() if "stock_units" in p.name)
    day = partition_day(path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC))
    with open_drop(conf) as drop:
        take_in_snapshot(store, drop, conf, day, path.name, "run-1")
    return day


def _drift(store: Store) -> dict[str, str]:
    return {x.row.entity_ref: x.row.status for x in store.exceptions.list(type="drift")}


# --- the day and its stored tables -----------------------------------------------------------


def test_a_summer_day_runs_from_23_00_utc_the_day_before_to_its_last_second() -> None:
    start, end = day_window("2026-07-01")
    assert start == datetime(2026, 6, 30, 23, tzinfo=UTC)
    assert end == datetime(2026, 7, 1, 22, 59, 59, tzinfo=UTC)


def test_a_day_reconciled_again_replaces_its_drift_row_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    conf = load_settings()
    row = {"classification": "unexplained", "unexplained": -3, "unexplained_value": -4.5}
    record_drift_day(conf, "2026-03-02", pd.DataFrame([row]))
    record_drift_day(conf, "2026-03-01", pd.DataFrame([row]))

    record_drift_day(conf, "2026-03-02", pd.DataFrame([{**row, "unexplained": 7}]))

    drift = pd.read_parquet(drift_by_day_path(conf))
    assert drift["day"].tolist() == [date(2026, 3, 1), date(2026, 3, 2)]
    assert drift["unexplained_units"].tolist() == [3, 7]


def test_findings_of_a_past_day_change_no_exception_once_a_newer_day_was_synced(
    sandbox, store: Store
) -> None:
    finding = Finding("drift", "recon:stock:1:1", "one unit short")
    assert sync_findings(store, "stock", ["recon:stock:"], [finding], "2026-03-02") == 1

    again = sync_findings(store, "stock", ["recon:stock:"], [], "2026-03-01")

    assert again is None
    assert _drift(store) == {"recon:stock:1:1": "open"}


def test_findings_gone_on_a_later_day_close_their_exception(sandbox, store: Store) -> None:
    finding = Finding("drift", "recon:stock:1:1", "one unit short")
    sync_findings(store, "stock", ["recon:stock:"], [finding], "2026-03-01")

    assert sync_findings(store, "stock", ["recon:stock:"], [], "2026-03-02") == 0

    assert _drift(store) == {}


def test_the_exception_queue_counts_open_exceptions_by_owner_and_type_and_keeps_the_day(
    sandbox, store: Store, conf: Settings
) -> None:
    for ref in ("recon:stock:1:1", "recon:stock:2:1"):
        store.exceptions.raise_exception("drift", ref, "short")

    frame = exception_queue(store, conf, "2026-03-01")

    [row] = frame.to_dict("records")
    assert (row["type"], row["owner"], row["count"]) == ("drift", "finance", 2)
    stored = read_day(conf, "exceptions", "2026-03-01")
    assert stored is not None and len(stored) == 1


# --- stock ----------------------------------------------------------------------------------


def test_a_day_without_a_snapshot_gives_an_empty_table_and_no_drift(
    sandbox, store: Store, conf: Settings, khaos: KhaosClient
) -> None:
    result = reconcile_stock(store, khaos, conf, _sku_map(sandbox), "2026-03-01", _now(sandbox))

    assert result.frame.empty and result.snapshot == "no ACS snapshot taken in for 2026-03-01"
    assert result.levels_read_at is None
    assert table_path(conf, "stock", "2026-03-01").exists()
    assert pd.read_parquet(drift_by_day_path(conf))["unexplained_units"].tolist() == [0]


def test_a_khaos_level_moved_by_hand_is_unexplained_drift_raised_once(
    sandbox, store: Store, conf: Settings, khaos: KhaosClient
) -> None:
    day = _snapshot_day(sandbox, store, conf)
    sku_map = _sku_map(sandbox)
    before = reconcile_stock(store, khaos, conf, sku_map, day, _now(sandbox)).frame
    in_step = before.loc[(before["site_id"] == SELLING) & (before["difference"] == 0)]
    stock_id = int(in_step["stock_id"].iloc[0])
    level = next(
        r["level"]
        for r in sandbox.khaos.truth()["stock"]
        if (r["stock_id"], r["site_id"]) == (stock_id, SELLING)
    )
    sandbox.khaos.set_level(stock_id, SELLING, level + 40)

    first = reconcile_stock(store, khaos, conf, sku_map, day, _now(sandbox))
    second = reconcile_stock(store, khaos, conf, sku_map, day, _now(sandbox))

    row = second.frame.set_index(["stock_id", "site_id"]).loc[(stock_id, SELLING)]
    assert row["classification"] == "unexplained" and row["unexplained"] == -40
    assert first.drift_open == second.drift_open
    assert [r for r, status in _drift(store).items() if f":{stock_id}:" in r] != []
    assert len(_drift(store)) == second.drift_open
    assert second.counts()["unexplained_units_gross"] >= 40


# --- orders and returns with nothing released ------------------------------------------------


def test_no_order_released_gives_an_empty_order_status_table_and_no_drift(
    sandbox, store: Store, conf: Settings, khaos: KhaosClient
) -> None:
    with AcsClient.from_settings(conf) as acs:
        result = reconcile_order_status(store, acs, khaos, conf, "2026-03-01")

    assert result.frame.empty and result.drift_open == 0
    assert result.counts()["open_orders"] == 0
    assert read_day(conf, "order_status", "2026-03-01") is not None


def test_no_return_graded_gives_an_empty_returns_table(
    sandbox, store: Store, conf: Settings, khaos: KhaosClient
) -> None:
    result = reconcile_returns(store, khaos, conf, "2026-03-01", _now(sandbox))

    assert result.frame.empty and result.drift_open == 0
    assert result.counts()["units"] == 0


# --- the audit report -----------------------------------------------------------------------


def test_the_audit_report_counts_the_orders_and_shipments_of_the_stored_workflow_events(
    sandbox, store: Store, conf: Settings
) -> None:
    released = datetime(2026, 3, 2, 9, tzinfo=UTC)
    events = pd.DataFrame(
        [
            ("A1", "", "released", released),
            ("A1", "S1", "despatched", released + timedelta(hours=5)),
            ("A2", "", "released", released),
        ],
        columns=["order_number", "shipment_id", "step", "at"],
    )
    write_parquet_atomically(events, table_path(conf, "workflow_events", "2026-03-02"))

    report = build_audit_report(store, conf, "2026-03", _now(sandbox))

    assert (report.orders, report.shipments) == (2, 1)
    assert report.files.html.exists()
