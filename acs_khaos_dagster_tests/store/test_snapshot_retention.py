"""Snapshot retention (``retention.snapshot_days``): which kept snapshot files go, and which
stay because a step still needs them (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.domain.stock_guards import SnapshotTotals
from acs_khaos_dagster.flows.hire import FOLD_CURSOR
from acs_khaos_dagster.flows.snapshot_retention import prune_snapshots, unit_files
from acs_khaos_dagster.reports.month_end_inputs import pack_names
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.stock import StockSnapshots

T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def conf(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", retention={"snapshot_days": 3})


def keep(store: Store, conf: Settings, sid: str, at: datetime, day: str | None = None) -> None:
    """A snapshot as the stock flow leaves it: its row and every file it keeps."""
    counts = conf.data_dir / "stock" / "counts" / f"{sid}.parquet"
    units = conf.data_dir / "stock" / "units" / f"{sid}.parquet"
    snapshots = StockSnapshots(store.db)
    with store.transaction() as session:
        row = snapshots.record(
            snapshot_id=sid,
            file_id=int(sid[1:]),
            file_name=f"stock_units_{sid}.csv",
            snapshot_at=at,
            partition_day=day or at.date().isoformat(),
            totals=SnapshotTotals(total=10, sellable=8, unknown=0),
            counts_path=str(counts),
            units_path=str(units),
            session=session,
        )
        for path in [counts, *unit_files(conf, row)]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"parquet")


def files_of(store: Store, conf: Settings, sid: str) -> str:
    """``all``, ``counts`` (only the counts left) or ``none``."""
    row = StockSnapshots(store.db).get(sid)
    assert row is not None
    units = [p.exists() for p in unit_files(conf, row)]
    counts = Path(row.counts_path).exists()
    assert len(set(units)) == 1, "a snapshot's unit-level files go together"
    if units[0]:
        assert counts
        return "all"
    return "counts" if counts else "none"


def build_final_pack(conf: Settings, month: str) -> None:
    path = conf.data_dir / "month_end" / month / pack_names(month, False)["workbook"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"xlsx")


def test_a_snapshot_past_the_retention_loses_its_files_once_its_month_is_closed(
    store: Store, conf: Settings
) -> None:
    for n in range(6):  # S1 on 2 March … S6 on 7 March; the newest is S6
        keep(store, conf, f"S{n + 1}", T0 + n * DAY)
    build_final_pack(conf, "2026-03")

    pruned = prune_snapshots(store, conf)

    assert pruned.units_removed == pruned.counts_removed == ["S1", "S2"]
    assert [files_of(store, conf, f"S{n}") for n in range(1, 7)] == ["none"] * 2 + ["all"] * 4


def test_a_days_counts_stay_while_its_month_has_no_final_pack(store: Store, conf: Settings) -> None:
    keep(store, conf, "S1", T0 - DAY, day="2026-03-01")
    keep(store, conf, "S2", T0 - DAY + timedelta(hours=3), day="2026-03-01")  # the day's newest
    keep(store, conf, "S3", T0 + 9 * DAY)

    pruned = prune_snapshots(store, conf)

    assert pruned.counts_kept_for_month_end == ["S2"]
    assert [files_of(store, conf, s) for s in ("S1", "S2", "S3")] == ["none", "counts", "all"]


def test_the_kept_counts_go_once_the_months_final_pack_is_built(
    store: Store, conf: Settings
) -> None:
    keep(store, conf, "S1", T0 - 30 * DAY)  # 31 January
    keep(store, conf, "S2", T0)
    prune_snapshots(store, conf)
    build_final_pack(conf, "2026-01")

    pruned = prune_snapshots(store, conf)

    assert pruned.counts_removed == ["S1"] and pruned.units_removed == []
    assert files_of(store, conf, "S1") == "none"


def test_the_last_pushed_snapshot_keeps_every_file_however_old(
    store: Store, conf: Settings
) -> None:
    keep(store, conf, "S1", T0)
    keep(store, conf, "S2", T0 + DAY)
    keep(store, conf, "S3", T0 + 10 * DAY)
    with store.transaction() as session:
        StockSnapshots(store.db).mark("S1", "pushed", session=session, pushed_at=T0)
    build_final_pack(conf, "2026-03")

    prune_snapshots(store, conf)

    assert [files_of(store, conf, s) for s in ("S1", "S2", "S3")] == ["all", "none", "all"]


def test_a_snapshot_the_hire_lifecycle_has_not_folded_keeps_every_file(
    store: Store, conf: Settings
) -> None:
    for n in range(4):
        keep(store, conf, f"S{n + 1}", T0 + n * 5 * DAY)  # 2, 7, 12 and 17 March
    with store.transaction() as session:
        store.cursors.set(FOLD_CURSOR, {"latest": (T0 + 5 * DAY).isoformat()}, session)
    build_final_pack(conf, "2026-03")

    pruned = prune_snapshots(store, conf)

    assert pruned.kept_for_hire == ["S3"]
    assert [files_of(store, conf, f"S{n}") for n in range(1, 5)] == ["none", "none", "all", "all"]


def test_a_second_pass_removes_nothing_more_and_records_when_each_went(
    store: Store, conf: Settings
) -> None:
    keep(store, conf, "S1", T0)
    keep(store, conf, "S2", T0 + 10 * DAY)
    build_final_pack(conf, "2026-03")
    prune_snapshots(store, conf)

    again = prune_snapshots(store, conf)

    assert again.units_removed == again.counts_removed == []
    row = StockSnapshots(store.db).get("S1")
    assert row is not None and row.pruned_at is not None and row.counts_pruned_at is not None


def test_reconciling_again_a_day_whose_counts_retention_removed_says_so(
    store: Store, conf: Settings
) -> None:
    import pandas as pd

    from acs_khaos_dagster.flows.reconciliation.stock import SnapshotPruned, reconcile_stock

    keep(store, conf, "S1", T0 - 30 * DAY)  # 31 January
    keep(store, conf, "S2", T0)
    build_final_pack(conf, "2026-01")
    prune_snapshots(store, conf)
    sku_map = pd.DataFrame(columns=["sku", "stock_id", "stock_code", "is_hire", "cost_price"])

    with pytest.raises(SnapshotPruned, match="2026-01-31 ACS snapshot were removed"):
        reconcile_stock(store, None, conf, sku_map, "2026-01-31", T0)  # type: ignore[arg-type]
