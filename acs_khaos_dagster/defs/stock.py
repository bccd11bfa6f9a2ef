"""Stock group: ACS unit snapshots to Khaos Level (issue 7; ARCHITECTURE "Stock arithmetic").

Dagster wiring only; the steps are ``flows.stock_snapshot``, ``flows.stock_placement`` and
``flows.stock_push``, what they show and the checks' rules ``flows.stock_figures``, what
starts the runs ``flows.stock_triggers``.

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

import dagster as dg
import pandas as pd

from acs_khaos_dagster.config import UK_TIME_ZONE
from acs_khaos_dagster.connectors.acs.drop import open_drop
from acs_khaos_dagster.dagster_kit.brand import brand_key
from acs_khaos_dagster.dagster_kit.checks import owned_by, partitioned_check
from acs_khaos_dagster.dagster_kit.results import check_result, metadata
from acs_khaos_dagster.dagster_kit.tables import table_type
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS, SENSOR_STATUS
from acs_khaos_dagster.defs.partitions import SNAPSHOT_DAYS
from acs_khaos_dagster.defs.resources import KhaosApiResource, SettingsResource, StoreResource
from acs_khaos_dagster.flows import stock_figures as figures
from acs_khaos_dagster.flows import stock_placement as placement
from acs_khaos_dagster.flows import stock_push as push
from acs_khaos_dagster.flows import stock_snapshot as snapshot
from acs_khaos_dagster.flows import stock_triggers as triggers
from acs_khaos_dagster.flows import tables
from acs_khaos_dagster.flows.common import dispatch
from acs_khaos_dagster.flows.figures import bullets
from acs_khaos_dagster.flows.stock_snapshot import SnapshotError, partition_day

# Re-exported: tests name it here.
__all__ = ["SNAPSHOT_DAYS", "partition_day"]


def _failure(exc: SnapshotError) -> dg.Failure:
    sample = metadata({"sample": bullets(exc.details)}) if exc.details else None
    return dg.Failure(str(exc), metadata=sample)


# --- the snapshot -------------------------------------------------------------------------


class SnapshotConfig(dg.Config):
    """``file``: a file name in the ACS drop; empty means the newest of the partition's day."""

    file: str = ""


@dg.asset(
    group_name="stock",
    kinds={"acs", "csv", "parquet", "pandas"},
    dagster_type=table_type(tables.SnapshotStatusCountsSchema),
    partitions_def=SNAPSHOT_DAYS,
    description="Units of one ACS stock snapshot per SKU and normalised status, with each "
    "status's bucket. Units kept in Parquet; bad rows quarantined in the store with reasons; "
    "the same content under another name is not taken in twice.",
)
def acs_stock_snapshot(
    context: dg.AssetExecutionContext,
    config: SnapshotConfig,
    settings: SettingsResource,
    store: StoreResource,
) -> dg.Output[pd.DataFrame]:
    conf, day, run_id = settings.load(), context.partition_key, context.run.run_id
    try:
        with open_drop(conf) as drop, store.connect() as db:
            took = snapshot.take_in_snapshot(db, drop, conf, day, config.file, run_id)
    except SnapshotError as exc:
        raise _failure(exc) from exc
    return dg.Output(took.counts, metadata=metadata(figures.snapshot_figures(took)))


# The snapshot's quality, as a check operations can see and rerun in the UI. Not blocking:
# the push's own guards refuse a cut or implausible file. It says, per snapshot day (re-run
# for a past day, it judges that day's newest snapshot), whether the file was whole, how
# much of it was quarantined and how many units were in statuses the policy does not know.
@partitioned_check(
    partitions_def=SNAPSHOT_DAYS,
    asset=acs_stock_snapshot,
    name="snapshot_file_is_whole_and_known",
    # ACS sent the file: operations ask for it again (as for stock_file_truncated).
    metadata=owned_by("operations"),
    description="The stock file was whole, at most stock.max_quarantine_share of its rows were "
    "quarantined and at most stock.max_unknown_share of its units were in unknown statuses.",
)
def snapshot_file_is_whole_and_known(
    context: dg.AssetCheckExecutionContext, settings: SettingsResource
) -> dg.AssetCheckResult:
    day = context.partition_key
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=brand_key("acs_stock_snapshot"), asset_partitions=[day]),
        limit=1,
    ).records
    if not records:
        return dg.AssetCheckResult(passed=False, metadata={"missing": f"no snapshot for {day}"})
    materialization = records[0].asset_materialization
    assert materialization is not None
    shown = materialization.metadata
    values = {k: float(v.value) for k, v in shown.items() if isinstance(v.value, int | float)}
    file = str(getattr(shown.get("file"), "value", ""))
    return check_result(figures.snapshot_quality(values, file, settings.load().stock))


# --- sellable and non-sellable ------------------------------------------------------------


@dg.asset(
    group_name="stock",
    kinds={"pandas"},
    dagster_type=table_type(tables.SellableStockSchema),
    partitions_def=SNAPSHOT_DAYS,
    description="Per StockID: units ready for a customer and units allocated, picked or "
    "packed for an order at the snapshot (together the selling site's Level; no buffer). "
    "Also keeps every site's units for the push, which takes them from here.",
)
def sellable_stock(
    context: dg.AssetExecutionContext,
    acs_stock_snapshot: pd.DataFrame,
    khaos_sku_master: pd.DataFrame,
    sku_mapping: pd.DataFrame,
    settings: SettingsResource,
    store: StoreResource,
) -> dg.Output[pd.DataFrame]:
    conf, day, run_id = settings.load(), context.partition_key, context.run.run_id
    sku_map = snapshot.sku_map_frame(khaos_sku_master, sku_mapping)
    try:
        with store.connect() as db:
            placed = placement.place_sellable(db, conf, acs_stock_snapshot, sku_map, run_id, day)
    except SnapshotError as exc:
        raise _failure(exc) from exc
    return dg.Output(placed.frame, metadata=metadata(placed.figures()))


@dg.asset(
    group_name="stock",
    kinds={"pandas"},
    dagster_type=table_type(tables.NonSellableStockSchema),
    partitions_def=SNAPSHOT_DAYS,
    description="Per StockID × bucket × Khaos site: units in inspection, cleaning, "
    "refurbishment, quarantine or on hire at the snapshot.",
)
def non_sellable_stock(
    context: dg.AssetExecutionContext,
    acs_stock_snapshot: pd.DataFrame,
    khaos_sku_master: pd.DataFrame,
    sku_mapping: pd.DataFrame,
    settings: SettingsResource,
) -> dg.Output[pd.DataFrame]:
    sku_map = snapshot.sku_map_frame(khaos_sku_master, sku_mapping)
    frame, site = placement.place_non_sellable(
        acs_stock_snapshot, sku_map, settings.load(), context.run.run_id
    )
    return dg.Output(frame, metadata=metadata(figures.non_sellable_figures(frame, site)))


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
    context: dg.AssetCheckExecutionContext, settings: SettingsResource, store: StoreResource
) -> dg.AssetCheckResult:
    # What sellable_stock kept for the partition's snapshot: this run's, or (the check
    # re-run alone for a day) that day's newest.
    day = context.partition_key
    with store.connect() as db:
        checked = placement.check_sellable(db, settings.load(), context.run.run_id, day)
    return check_result(figures.sellable_verdict(checked, day))


# --- the push ---------------------------------------------------------------------------------


@dg.asset(
    group_name="stock",
    kinds={"khaos", "pandas"},
    dagster_type=table_type(tables.StockUpdateSchema),
    pool="khaos_api",
    deps=["sellable_stock", "non_sellable_stock", "khaos_shipment_postings"],
    description="The newest snapshot pushed to Khaos through the outbox: the units "
    "sellable_stock placed, re-checked; the plausibility guard; earlier pushes settled "
    "first; each line the planned change, moves between sites landing together; "
    "variances above tolerance held for finance.",
)
def khaos_stock_update(
    khaos_sku_master: pd.DataFrame,
    sku_mapping: pd.DataFrame,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> dg.Output[pd.DataFrame]:
    conf = settings.load()
    sku_map = snapshot.sku_map_frame(khaos_sku_master, sku_mapping)
    with store.connect() as db, khaos.client() as client:
        result = push.push_newest_snapshot(db, client, conf, sku_map)
        # Also sends what earlier runs left due: approved variances, retries.
        report = dispatch(db, conf, push.PUSH_KINDS, khaos=client)
    table = push.keep_push_table(conf, result)
    return dg.Output(table, metadata=metadata(figures.push_figures(result, table, report)))


# --- jobs, sensor, schedule ---------------------------------------------------------------------

_SNAPSHOT_ASSETS = dg.AssetSelection.assets(acs_stock_snapshot, sellable_stock, non_sellable_stock)

stock_snapshot_job = dg.define_asset_job(
    "stock_snapshot_job",
    selection=_SNAPSHOT_ASSETS,
    description="Take in one ACS stock file (batch mode: the push runs on its schedule).",
)
stock_snapshot_push_job = dg.define_asset_job(
    "stock_snapshot_push_job",
    selection=_SNAPSHOT_ASSETS | dg.AssetSelection.assets(khaos_stock_update),
    description="Take in one ACS stock file and push it at once (realtime mode).",
)
stock_push_job = dg.define_asset_job(
    "stock_push_job",
    selection=dg.AssetSelection.assets(khaos_stock_update),
    description="Push the newest snapshot taken in (batch mode, on stock_push_schedule).",
)


@dg.sensor(
    name="acs_stock_file_sensor",
    jobs=[stock_snapshot_job, stock_snapshot_push_job],
    default_status=SENSOR_STATUS,
    minimum_interval_seconds=60,
    description="Starts one run per new stock_units_*.csv in the ACS drop, for its snapshot day.",
)
def acs_stock_file_sensor(
    context: dg.SensorEvaluationContext, settings: SettingsResource, store: StoreResource
) -> dg.SensorResult:
    conf = settings.load()
    job = stock_snapshot_push_job if conf.sync_mode == "realtime" else stock_snapshot_job
    with open_drop(conf) as drop, store.connect() as db:
        found = triggers.file_runs(drop, db, context.cursor)
    for level, message in found.notes:
        getattr(context.log, level)(message)
    requests = [dg.RunRequest(job_name=job.name, **run) for run in found.runs]
    return dg.SensorResult(run_requests=requests, cursor=found.cursor)


@dg.schedule(
    name="stock_push_schedule",
    job=stock_push_job,
    cron_schedule=triggers.batch_cron(),
    execution_timezone=UK_TIME_ZONE,
    default_status=SCHEDULE_STATUS,
    description="Batch mode: push the newest snapshot (settings.stock.batch_cron, UK time).",
)
def stock_push_schedule(
    context: dg.ScheduleEvaluationContext, settings: SettingsResource, store: StoreResource
) -> dg.RunRequest | dg.SkipReason:
    if settings.load().sync_mode == "batch":
        return dg.RunRequest(run_key=None)
    # Realtime: each snapshot is pushed by its own run; this only picks up one that run
    # left unpushed (an earlier push still landing, another run's push meanwhile).
    with store.connect() as db:
        left = push.snapshot_left_unpushed(db, triggers.REALTIME_PUSH_GRACE)
    if left is None:
        return dg.SkipReason("sync_mode is realtime: each snapshot is pushed on arrival")
    return dg.RunRequest(run_key=None, tags={"stock_snapshot": left})


defs = dg.Definitions(
    assets=[acs_stock_snapshot, sellable_stock, non_sellable_stock, khaos_stock_update],
    asset_checks=[no_non_sellable_counted_as_sellable_check, snapshot_file_is_whole_and_known],
    jobs=[stock_snapshot_job, stock_snapshot_push_job, stock_push_job],
    sensors=[acs_stock_file_sensor],
    schedules=[stock_push_schedule],
)
