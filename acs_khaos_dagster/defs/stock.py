"""Stock group: ACS unit snapshots to Khaos Level (issue 7; ARCHITECTURE "Stock arithmetic").

Dagster wiring only; the steps are ``flows.stock_snapshot``, ``flows.stock_placement`` and
``flows.stock_push``.

* ``acs_stock_file_sensor`` watches the ACS drop for ``stock_units_*.csv`` and starts one
  run per new file for its snapshot day; the store's file ledger decides whether data
  was taken.
* ``acs_stock_snapshot`` (partitioned by snapshot day, Europe/London) reads the file once,
  keeps the units in Parquet and returns units per SKU and status.
* ``sellable_stock`` / ``non_sellable_stock`` place those units on Khaos sites by the
  status policy.
* ``khaos_stock_update`` pushes the newest snapshot: plausibility guard first, then the
  "adjust to" plan with the two-moment corrections read at the push, recorded in the
  outbox in one transaction, then dispatched. Realtime: the sensor's run includes it;
  batch: ``stock_push_schedule`` runs it on ``settings.stock.batch_cron``.
"""

import json
from datetime import timedelta
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetSelection,
    Config,
    Definitions,
    Failure,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    schedule,
    sensor,
)

from acs_khaos_dagster.config import UK_TIME_ZONE, SettingsError, load_settings
from acs_khaos_dagster.connectors.acs.drop import open_drop
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS, SENSOR_STATUS
from acs_khaos_dagster.defs.checks import owned_by, partitioned_check
from acs_khaos_dagster.defs.common import (
    dispatch,
    dispatch_metadata,
    markdown_table,
)
from acs_khaos_dagster.defs.partitions import SNAPSHOT_DAYS
from acs_khaos_dagster.defs.resources import KhaosApiResource, SettingsResource, StoreResource
from acs_khaos_dagster.defs.stock_checks import snapshot_file_is_whole_and_known
from acs_khaos_dagster.defs.tables import (
    NonSellableStockType,
    SellableStockType,
    SnapshotStatusCountsType,
    StockUpdateType,
)
from acs_khaos_dagster.domain.snapshot import units_per_status
from acs_khaos_dagster.flows.stock_placement import (
    check_sellable,
    place_non_sellable,
    place_sellable,
)
from acs_khaos_dagster.flows.stock_push import (
    PUSH_KINDS,
    keep_push_table,
    push_newest_snapshot,
    snapshot_left_unpushed,
)
from acs_khaos_dagster.flows.stock_snapshot import (
    SnapshotError,
    partition_day,
    scan_stock_files,
    sku_map_frame,
    take_in_snapshot,
)

# Re-exported: tests name it here.
__all__ = ["SNAPSHOT_DAYS", "partition_day"]


def _failure(exc: SnapshotError) -> Failure:
    sample = {"sample": MetadataValue.md("\n".join(f"- {p}" for p in exc.details[:20]))}
    return Failure(str(exc), metadata=sample if exc.details else None)


# --- the snapshot -------------------------------------------------------------------------


class SnapshotConfig(Config):
    """``file``: a file name in the ACS drop; empty means the newest of the partition's day."""

    file: str = ""


@asset(
    group_name="stock",
    kinds={"acs", "csv", "parquet", "pandas"},
    dagster_type=SnapshotStatusCountsType,
    partitions_def=SNAPSHOT_DAYS,
    description="Units of one ACS stock snapshot per SKU and normalised status, with each "
    "status's bucket. Units kept in Parquet; bad rows quarantined in the store with reasons; "
    "the same content under another name is not taken in twice.",
)
def acs_stock_snapshot(
    context: AssetExecutionContext,
    config: SnapshotConfig,
    settings: SettingsResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    try:
        with open_drop(conf) as drop, store.connect() as db:
            took = take_in_snapshot(
                db, drop, conf, context.partition_key, config.file, context.run.run_id
            )
    except SnapshotError as exc:
        raise _failure(exc) from exc
    meta: dict[str, Any] = {"file": took.name}
    if took.read is None:
        meta |= {"taken_in_before": MetadataValue.bool(True)}
        meta |= {"same_content_as": took.same_content_as}
        meta |= {"snapshot_id": MetadataValue.text(took.snapshot_id), "units": took.units}
        context.add_output_metadata(meta)
        return took.counts
    read, totals = took.read, took.totals
    assert totals is not None and took.snapshot_at is not None
    reasons = pd.Series([row.reason for row in read.quarantined], dtype="object")
    context.add_output_metadata(
        {
            **meta,
            "snapshot_id": MetadataValue.text(took.snapshot_id),
            "snapshot_at": took.snapshot_at.isoformat(),
            "units": took.units,
            "sellable_or_allocated_units": totals.sellable,
            "unknown_status_units": totals.unknown,
            "rows_quarantined": len(read.quarantined),
            "duplicate_rows_removed": int(read.duplicates_removed),
            "conflicting_units": len(read.conflicts),
            "file_truncated": int(read.truncated),
            **took.pruned.counts(),
            "units_per_status": markdown_table(units_per_status(took.counts), 40),
            "quarantine_reasons": markdown_table(
                reasons.value_counts().rename_axis("reason").reset_index(name="rows")
            ),
        }
    )
    return took.counts


# --- sellable and non-sellable ------------------------------------------------------------


@asset(
    group_name="stock",
    kinds={"pandas"},
    dagster_type=SellableStockType,
    partitions_def=SNAPSHOT_DAYS,
    description="Per StockID: units ready for a customer and units allocated, picked or "
    "packed for an order at the snapshot (together the selling site's Level; no buffer). "
    "Also keeps every site's units for the push, which takes them from here.",
)
def sellable_stock(
    context: AssetExecutionContext,
    acs_stock_snapshot: pd.DataFrame,
    khaos_sku_master: pd.DataFrame,
    sku_mapping: pd.DataFrame,
    settings: SettingsResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    sku_map = sku_map_frame(khaos_sku_master, sku_mapping)
    run_id, day = context.run.run_id, context.partition_key
    try:
        with store.connect() as db:
            placed = place_sellable(db, conf, acs_stock_snapshot, sku_map, run_id, day)
    except SnapshotError as exc:
        raise _failure(exc) from exc
    context.add_output_metadata({**placed.counts(), "sample": markdown_table(placed.frame, 10)})
    return placed.frame


@asset(
    group_name="stock",
    kinds={"pandas"},
    dagster_type=NonSellableStockType,
    partitions_def=SNAPSHOT_DAYS,
    description="Per StockID × bucket × Khaos site: units in inspection, cleaning, "
    "refurbishment, quarantine or on hire at the snapshot.",
)
def non_sellable_stock(
    context: AssetExecutionContext,
    acs_stock_snapshot: pd.DataFrame,
    khaos_sku_master: pd.DataFrame,
    sku_mapping: pd.DataFrame,
    settings: SettingsResource,
) -> pd.DataFrame:
    conf = settings.load()
    sku_map = sku_map_frame(khaos_sku_master, sku_mapping)
    frame, site = place_non_sellable(acs_stock_snapshot, sku_map, conf, context.run.run_id)
    per_bucket = frame.groupby(["bucket", "site_id"], as_index=False)["units"].sum()
    context.add_output_metadata(
        {
            "rows": len(frame),
            **{
                f"units_{r.bucket}_site_{r.site_id}": int(r.units)
                for r in per_bucket.itertuples(index=False)
            },
            "off_site_units": int(site.off_site["units"].sum()),
            "sample": markdown_table(frame, 10),
        }
    )
    return frame


@partitioned_check(
    partitions_def=SNAPSHOT_DAYS,
    asset=sellable_stock,
    name="no_non_sellable_counted_as_sellable",
    blocking=True,
    # A mismatch is the integration's own arithmetic disagreeing with itself (as for
    # snapshot_refused): the integration team looks.
    metadata=owned_by("integration"),
    description="sellable_stock re-derived by another path: per StockID, the units the "
    "snapshot's raw per-status counts put in a sellable or allocated status must equal the "
    "units sellable_stock counts. A unit in refurbishment or quarantine on the selling site, "
    "or one counted twice, fails it; the push refuses such a snapshot too.",
)
def no_non_sellable_counted_as_sellable_check(
    context: AssetCheckExecutionContext, settings: SettingsResource, store: StoreResource
) -> AssetCheckResult:
    # What sellable_stock kept for the partition's snapshot: this run's, or (the check
    # re-run alone for a day) that day's newest.
    conf = settings.load()
    day = context.partition_key
    with store.connect() as db:
        checked = check_sellable(db, conf, context.run.run_id, day)
    if checked is None:
        return AssetCheckResult(passed=False, metadata={"missing": f"snapshot of {day}"})
    mismatches = checked.mismatches
    return AssetCheckResult(
        passed=not mismatches,
        metadata={
            "snapshot_id": MetadataValue.text(checked.snapshot_id),
            "mismatched_stock_ids": len(mismatches),
            "counted_units": checked.counted_units,
            "sample": MetadataValue.md("\n".join(f"- {m}" for m in mismatches[:20]) or "_none_"),
        },
    )


# --- the push ---------------------------------------------------------------------------------


@asset(
    group_name="stock",
    kinds={"khaos", "pandas"},
    dagster_type=StockUpdateType,
    pool="khaos_api",
    deps=["sellable_stock", "non_sellable_stock", "khaos_shipment_postings"],
    description="The newest snapshot pushed to Khaos through the outbox: the units "
    "sellable_stock placed, re-checked; the plausibility guard; earlier pushes settled "
    "first; each line the planned change, moves between sites landing together; "
    "variances above tolerance held for finance.",
)
def khaos_stock_update(
    context: AssetExecutionContext,
    khaos_sku_master: pd.DataFrame,
    sku_mapping: pd.DataFrame,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    sku_map = sku_map_frame(khaos_sku_master, sku_mapping)
    with store.connect() as db, khaos.client() as client:
        result = push_newest_snapshot(db, client, conf, sku_map)
        # Also sends what earlier runs left due: approved variances, retries.
        report = dispatch(db, conf, PUSH_KINDS, khaos=client)
    table = keep_push_table(conf, result)
    meta = {**result.figures(), **dispatch_metadata(report)}
    if result.plan is not None:
        meta["plan"] = markdown_table(table.loc[table["pushed_to"] != table["level"]], 20)
    context.add_output_metadata(meta)
    return table


# --- jobs, sensor, schedule ---------------------------------------------------------------------

_SNAPSHOT_ASSETS = AssetSelection.assets(acs_stock_snapshot, sellable_stock, non_sellable_stock)

stock_snapshot_job = define_asset_job(
    "stock_snapshot_job",
    selection=_SNAPSHOT_ASSETS,
    description="Take in one ACS stock file (batch mode: the push runs on its schedule).",
)
stock_snapshot_push_job = define_asset_job(
    "stock_snapshot_push_job",
    selection=_SNAPSHOT_ASSETS | AssetSelection.assets(khaos_stock_update),
    description="Take in one ACS stock file and push it at once (realtime mode).",
)
stock_push_job = define_asset_job(
    "stock_push_job",
    selection=AssetSelection.assets(khaos_stock_update),
    description="Push the newest snapshot taken in (batch mode, on stock_push_schedule).",
)


@sensor(
    name="acs_stock_file_sensor",
    jobs=[stock_snapshot_job, stock_snapshot_push_job],
    default_status=SENSOR_STATUS,
    minimum_interval_seconds=60,
    description="Starts one run per new stock_units_*.csv in the ACS drop, for its snapshot day.",
)
def acs_stock_file_sensor(
    context: SensorEvaluationContext, settings: SettingsResource, store: StoreResource
) -> SensorResult:
    conf = settings.load()
    job = stock_snapshot_push_job if conf.sync_mode == "realtime" else stock_snapshot_job
    seen: dict[str, list[Any]] = json.loads(context.cursor) if context.cursor else {}
    with open_drop(conf) as drop, store.connect() as db:
        scan = scan_stock_files(drop, db, seen)
    for level, message in scan.notes:
        getattr(context.log, level)(message)
    requests = [
        RunRequest(
            run_key=f"{new.name}:{new.sha256[:16]}",
            job_name=job.name,
            partition_key=new.day,
            run_config={"ops": {"acs_stock_snapshot": {"config": {"file": new.name}}}},
            tags={"acs_file": new.name},
        )
        for new in scan.new
    ]
    return SensorResult(run_requests=requests, cursor=json.dumps(scan.seen, sort_keys=True))


# Realtime mode: a snapshot taken in this long ago and still unpushed was left by its run.
REALTIME_PUSH_GRACE = timedelta(minutes=10)


def _batch_cron() -> str:
    try:
        return load_settings().stock.batch_cron
    except SettingsError:
        return "0 8-20 * * 1-6"


@schedule(
    name="stock_push_schedule",
    job=stock_push_job,
    cron_schedule=_batch_cron(),
    execution_timezone=UK_TIME_ZONE,
    default_status=SCHEDULE_STATUS,
    description="Batch mode: push the newest snapshot (settings.stock.batch_cron, UK time).",
)
def stock_push_schedule(
    context: ScheduleEvaluationContext, settings: SettingsResource, store: StoreResource
) -> RunRequest | SkipReason:
    if settings.load().sync_mode == "batch":
        return RunRequest(run_key=None)
    # Realtime: each snapshot is pushed by its own run; this only picks up one that run
    # left unpushed (an earlier push still landing, another run's push meanwhile).
    with store.connect() as db:
        left = snapshot_left_unpushed(db, REALTIME_PUSH_GRACE)
    if left is None:
        return SkipReason("sync_mode is realtime: each snapshot is pushed on arrival")
    return RunRequest(run_key=None, tags={"stock_snapshot": left})


defs = Definitions(
    assets=[acs_stock_snapshot, sellable_stock, non_sellable_stock, khaos_stock_update],
    asset_checks=[no_non_sellable_counted_as_sellable_check, snapshot_file_is_whole_and_known],
    jobs=[stock_snapshot_job, stock_snapshot_push_job, stock_push_job],
    sensors=[acs_stock_file_sensor],
    schedules=[stock_push_schedule],
)
