"""Snapshot retention: each ACS stock snapshot's files are removed once no step can need
them (``retention.snapshot_days``; docs/store-archiving.md "Stock snapshots").

The stock flow keeps, per snapshot, every unit (``stock/units``, the largest: a brand's is
millions of rows), the per-status counts (``stock/counts``) and what placing and pushing it
kept (``stock/site_units``, ``stock/sellable``, ``stock/sku_map``, ``stock/pushes``).
``take_in_snapshot`` calls ``prune_snapshots`` after each new snapshot. A snapshot taken
more than ``snapshot_days`` before the newest loses them, except:

- the newest snapshot (what the push and the trace read) and the last pushed one (what
  Khaos's Level was last set from) keep everything;
- a snapshot the hire lifecycle has not folded yet keeps everything (once the lifecycle
  has run at all): it reads each snapshot once, after which its history is in the store;
- the per-status counts of each day's newest snapshot stay until the final month-end pack
  of that day's month is built: the day's stock reconciliation reads them, and finance
  re-runs a day of a month still open (the pack refuses to build while a day is missing).
  Once the pack is built its figures come from the stored reconciliation, not the counts.

The store's ``stock_snapshot`` row stays (one small row per snapshot) with ``pruned_at``
and ``counts_pruned_at`` saying when its files went.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.flows.hire import FOLD_CURSOR, folded_through
from acs_khaos_dagster.flows.stock_push import sellable_path, site_units_path
from acs_khaos_dagster.reports.month_end_inputs import pack_names
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.stock import StockSnapshots
from acs_khaos_dagster.store.tables.stock import StockSnapshot


def sku_map_path(conf: Settings, snapshot_id: str) -> Path:
    return conf.data_dir / "stock" / "sku_map" / f"{snapshot_id}.parquet"


def push_plan_path(conf: Settings, snapshot_id: str) -> Path:
    return conf.data_dir / "stock" / "pushes" / f"{snapshot_id}.parquet"


def unit_files(conf: Settings, row: StockSnapshot) -> list[Path]:
    """The snapshot's files other than its per-status counts."""
    sid = row.snapshot_id
    return [
        Path(row.units_path),
        site_units_path(conf, sid),
        sellable_path(conf, sid),
        sku_map_path(conf, sid),
        push_plan_path(conf, sid),
    ]


def final_pack_built(conf: Settings, month: str) -> bool:
    """Whether the final month-end pack of ``month`` (``YYYY-MM``) is written."""
    return (conf.data_dir / "month_end" / month / pack_names(month, False)["workbook"]).exists()


@dataclass(frozen=True)
class SnapshotPruning:
    """Snapshot ids whose files this pass removed, and those it kept past the retention
    and why."""

    units_removed: list[str] = field(default_factory=list)
    counts_removed: list[str] = field(default_factory=list)
    kept_newest: list[str] = field(default_factory=list)
    kept_for_hire: list[str] = field(default_factory=list)
    counts_kept_for_month_end: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "snapshots_pruned": len(self.units_removed),
            "snapshot_counts_pruned": len(self.counts_removed),
            "snapshots_kept_for_hire": len(self.kept_for_hire),
            "snapshot_counts_kept_for_month_end": len(self.counts_kept_for_month_end),
        }


def prune_snapshots(db: Store, conf: Settings) -> SnapshotPruning:
    """Remove the files of snapshots older than the retention that nothing needs."""
    snapshots = StockSnapshots(db.db)
    newest = snapshots.newest()
    if newest is None:
        return SnapshotPruning()
    cutoff = newest.snapshot_at - timedelta(days=conf.retention.snapshot_days)
    last_pushed = snapshots.last_pushed()
    keep = {newest.snapshot_id} | ({last_pushed.snapshot_id} if last_pushed else set())
    hire_started = db.cursors.get(FOLD_CURSOR) is not None
    folded = folded_through(db)
    result = SnapshotPruning()
    open_months: dict[str, bool] = {}
    for row in snapshots.prunable(cutoff):
        if row.snapshot_id in keep:
            result.kept_newest.append(row.snapshot_id)
            continue
        if hire_started and not _folded(row.snapshot_at, folded):
            result.kept_for_hire.append(row.snapshot_id)
            continue
        units = row.pruned_at is None
        counts = row.counts_pruned_at is None
        if counts and _needed_for_month_end(conf, snapshots, row, open_months):
            counts = False
            result.counts_kept_for_month_end.append(row.snapshot_id)
        if not (units or counts):
            continue
        for path in (unit_files(conf, row) if units else []) + (
            [Path(row.counts_path)] if counts else []
        ):
            path.unlink(missing_ok=True)
        with db.transaction() as session:
            snapshots.mark_pruned(row.snapshot_id, units=units, counts=counts, session=session)
        if units:
            result.units_removed.append(row.snapshot_id)
        if counts:
            result.counts_removed.append(row.snapshot_id)
    return result


def _folded(taken: datetime, folded: datetime | None) -> bool:
    return folded is not None and taken <= folded


def _needed_for_month_end(
    conf: Settings, snapshots: StockSnapshots, row: StockSnapshot, open_months: dict[str, bool]
) -> bool:
    """The day's reconciliation reads the counts of the day's newest snapshot; they are
    needed while the day's month has no final pack."""
    month = row.partition_day[:7]
    if month not in open_months:
        open_months[month] = not final_pack_built(conf, month)
    if not open_months[month]:
        return False
    newest_of_day = snapshots.newest_of_day(row.partition_day)
    return newest_of_day is not None and newest_of_day.snapshot_id == row.snapshot_id
