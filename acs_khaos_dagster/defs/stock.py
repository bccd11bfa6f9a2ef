"""Stock group: ACS unit snapshots to Khaos Level (issue 7; ARCHITECTURE "Stock arithmetic").

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
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetSelection,
    BetaWarning,
    Config,
    DailyPartitionsDefinition,
    Definitions,
    Failure,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    asset_check,
    define_asset_job,
    schedule,
    sensor,
)
from dagster_pandera import pandera_schema_to_dagster_type
from pandera.typing import Series

from acs_khaos_dagster.config import UK_TIME_ZONE, Settings, SettingsError, load_settings
from acs_khaos_dagster.connectors.acs.drop import DropEntry, open_drop
from acs_khaos_dagster.connectors.acs.files import FileLayoutError, read_stock_units
from acs_khaos_dagster.connectors.acs.times import AcsTimeRules
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS, SENSOR_STATUS
from acs_khaos_dagster.defs.common import (
    dispatch,
    dispatch_metadata,
    markdown_table,
    sync_exceptions,
    write_parquet_atomically,
)
from acs_khaos_dagster.defs.resources import KhaosApiResource, SettingsResource, StoreResource
from acs_khaos_dagster.defs.schemas import SnapshotStatusCountsType
from acs_khaos_dagster.defs.stock_checks import snapshot_file_is_whole_and_known
from acs_khaos_dagster.domain.snapshot import status_counts, units_per_status
from acs_khaos_dagster.domain.stock_guards import (
    SnapshotTotals,
    UnknownStatusReport,
    no_non_sellable_counted_as_sellable,
    sellable_mismatches,
)
from acs_khaos_dagster.domain.stock_push import acs_site_units
from acs_khaos_dagster.domain.stock_status import StockBucket
from acs_khaos_dagster.flows.stock_push import (
    PUSH_KINDS,
    push_newest_snapshot,
    sellable_path,
    selling_sites,
    site_units_path,
)
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.exceptions import ExceptionType
from acs_khaos_dagster.store.ledger import FileLedger, file_sha256
from acs_khaos_dagster.store.stock import StockSnapshots
from acs_khaos_dagster.store.tables.stock import StockSnapshot

STOCK_FILE_GLOB = "stock_units_*.csv"
FILE_KIND = "stock_units"
# The returns flow's files and ledger kind (``defs/returns.py``): the push reads returns ACS
# reported that the returns flow has not taken in yet.
RETURNS_FILE_GLOB = "returns_*.csv"
RETURNS_FILE_KIND = "returns"
# The first snapshot day the UI offers; older days cannot be re-run.
PARTITIONS_START = "2026-01-01"
# end_offset=1: today's snapshot is a partition while today is still running.
SNAPSHOT_DAYS = DailyPartitionsDefinition(
    start_date=PARTITIONS_START, timezone=UK_TIME_ZONE, end_offset=1
)
_STAMP_RE = re.compile(r"_(\d{14})\.csv$")
_SELLING_BUCKETS = (str(StockBucket.SELLABLE), str(StockBucket.ALLOCATED))
_UNKNOWN_TYPE = "unknown_stock_status"


# --- pandera models of the group's tables ---------------------------------------------------


class SellableStockSchema(pa.DataFrameModel):
    """Per StockID: units free for sale and units allocated to orders at the snapshot."""

    stock_id: Series[int] = pa.Field(unique=True)
    stock_code: Series[str]
    site_id: Series[int]
    sellable_units: Series[int] = pa.Field(ge=0)
    allocated_units: Series[int] = pa.Field(ge=0)
    statuses: Series[str] = pa.Field(description="the normalised statuses counted, '|'-joined")

    class Config:
        strict = "filter"
        coerce = True


class NonSellableStockSchema(pa.DataFrameModel):
    """Per StockID × bucket × Khaos site: units that are not for sale."""

    stock_id: Series[int]
    stock_code: Series[str]
    bucket: Series[str] = pa.Field(isin=["non_sellable", "on_hire"])
    site_id: Series[int]
    units: Series[int] = pa.Field(ge=1)

    class Config:
        strict = "filter"
        coerce = True


class StockUpdateSchema(pa.DataFrameModel):
    """Every StockID × site the push considered, with its target and what was pushed."""

    stock_id: Series[int]
    site_id: Series[int]
    acs_units: Series[int] = pa.Field(ge=0)
    correction: Series[int]
    target: Series[int] = pa.Field(ge=0)
    level: Series[int]
    pushed_to: Series[int] = pa.Field(ge=0)
    held_units: Series[int]
    reason: Series[str]

    class Config:
        strict = "filter"
        coerce = True


warnings.filterwarnings("ignore", category=BetaWarning, module=__name__)
SellableStockType = pandera_schema_to_dagster_type(SellableStockSchema)
NonSellableStockType = pandera_schema_to_dagster_type(NonSellableStockSchema)
StockUpdateType = pandera_schema_to_dagster_type(StockUpdateSchema)


# --- helpers ------------------------------------------------------------------------------


def partition_day(name: str, mtime: datetime, tz: str = UK_TIME_ZONE) -> str:
    """The snapshot day of a file: the ``yyyymmddHHMMSS`` (UTC) stamp in its name, in UK time;
    the file's mtime if the name carries none."""
    found = _STAMP_RE.search(name)
    moment = mtime
    if found:
        moment = datetime.strptime(found.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(tz)).date().isoformat()


def snapshot_id_for(snapshot_at: datetime, file_id: int) -> str:
    """Unique per file even when two files carry the same snapshot time."""
    return f"{snapshot_at.astimezone(UTC):%Y%m%dT%H%M%S}-F{file_id}"


def _file_moment(entry: DropEntry) -> datetime:
    """When ACS wrote a drop file: the UTC stamp in its name, else its mtime."""
    found = _STAMP_RE.search(entry.name)
    if found:
        return datetime.strptime(found.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return entry.mtime


def _newest_for_day(entries: Iterable[DropEntry], day: str) -> str:
    files = [e.name for e in entries if partition_day(e.name, e.mtime) == day]
    if not files:
        raise Failure(f"no {STOCK_FILE_GLOB} for snapshot day {day} in the ACS drop")
    # Names carry yyyymmddHHMMSS, so the last by name is the newest snapshot of the day.
    return sorted(files)[-1]


def sku_map_frame(khaos_sku_master: pd.DataFrame, sku_mapping: pd.DataFrame) -> pd.DataFrame:
    """ACS SKU → StockID with the hire flag, cost price and current Khaos code.

    Every SKU ACS holds under a Khaos StockID counts (matched, pending, inactive,
    mismatched, renamed, discontinued): physical units are physical whatever the SKU's
    sales state. Codes Khaos cannot use and SKUs Khaos does not know have no StockID.
    """
    known = sku_mapping.loc[
        sku_mapping["stock_id"].notna()
        & (sku_mapping["acs_sku"].astype(str) != "")
        & (sku_mapping["acs_status"] != "missing")
        & (sku_mapping["classification"] != "invalid_code"),
        ["stock_id", "acs_sku"],
    ].astype({"stock_id": "int64"})
    master = khaos_sku_master.loc[
        khaos_sku_master["stock_controlled"], ["stock_id", "stock_code", "is_hire", "cost_price"]
    ]
    out = known.merge(master, on="stock_id", how="inner").rename(columns={"acs_sku": "sku"})
    out = out.drop_duplicates("sku", keep="first").drop_duplicates("stock_id", keep="first")
    return out[["sku", "stock_id", "stock_code", "is_hire", "cost_price"]].reset_index(drop=True)


@dataclass(frozen=True)
class _Problem:
    type: str
    entity_ref: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


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
    policy = conf.status_policy
    day = context.partition_key
    with open_drop(conf) as drop:
        name = config.file or _newest_for_day(drop.list(STOCK_FILE_GLOB), day)
        path = drop.fetch(name)
    with store.connect() as db:
        snapshots = StockSnapshots(db.db)
        file_row, fresh = db.ledger.record_file(path, kind=FILE_KIND)
        original = snapshots.by_file(file_row.duplicate_of or file_row.id)
        if not fresh:
            if original is None:
                raise Failure(f"{name} was taken in before and failed: {file_row.error}")
            # A re-run of the day, or the same content delivered under another name.
            counts = pd.read_parquet(original.counts_path)
            _point_run_at(conf, context.run.run_id, original.snapshot_id)
            context.add_output_metadata(
                {
                    "file": name,
                    "taken_in_before": 1,
                    "same_content_as": original.file_name,
                    "snapshot_id": original.snapshot_id,
                    "units": original.total_units,
                }
            )
            return counts
        db.ledger.mark_processing(file_row.id)
        try:
            read = read_stock_units(path, policy, AcsTimeRules.from_settings(conf))
        except FileLayoutError as exc:
            db.ledger.mark_failed(file_row.id, str(exc))
            raise Failure(str(exc)) from exc
        counts = status_counts(read.units, policy)
        totals = SnapshotTotals.from_counts(counts, policy)
        snapshot_at = read.snapshot_at or file_row.mtime
        snapshot_id = snapshot_id_for(snapshot_at, file_row.id)
        folder = conf.data_dir / "stock"
        units_path = folder / "units" / f"{snapshot_id}.parquet"
        counts_path = folder / "counts" / f"{snapshot_id}.parquet"
        # Only this step touches every unit; everything after reads the counts.
        write_parquet_atomically(read.units, units_path)
        write_parquet_atomically(counts, counts_path)
        with db.transaction() as session:
            db.ledger.add_quarantined_rows(file_row.id, read.quarantined, session=session)
            snapshots.record(
                snapshot_id=snapshot_id,
                file_id=file_row.id,
                file_name=name,
                snapshot_at=snapshot_at,
                partition_day=day,
                totals=totals,
                counts_path=str(counts_path),
                units_path=str(units_path),
                session=session,
            )
            db.ledger.mark_processed(
                file_row.id,
                rows_accepted=read.units.num_rows,
                rows_quarantined=len(read.quarantined),
                session=session,
            )
            if read.truncated:
                _refuse_truncated(db, snapshots, snapshot_id, name, read.rows_read, session)
        unknown = UnknownStatusReport.from_units(read.units, policy)
        newest, last = snapshots.newest(), snapshots.last_pushed()
        goes_forward = (
            not read.truncated
            and newest is not None
            and newest.snapshot_id == snapshot_id
            and (last is None or snapshot_at > last.snapshot_at)
        )
        if goes_forward:
            # Only a snapshot that can still be pushed says which statuses are unknown now;
            # an older or cut file must not rewrite what the queue says.
            sync_exceptions(db, _unknown_problems(unknown, snapshot_id), [_UNKNOWN_TYPE])

    _point_run_at(conf, context.run.run_id, snapshot_id)
    reasons = pd.Series([row.reason for row in read.quarantined], dtype="object")
    context.add_output_metadata(
        {
            "file": name,
            "snapshot_id": snapshot_id,
            "snapshot_at": snapshot_at.isoformat(),
            "units": int(read.units.num_rows),
            "sellable_or_allocated_units": totals.sellable,
            "unknown_status_units": totals.unknown,
            "rows_quarantined": len(read.quarantined),
            "duplicate_rows_removed": int(read.duplicates_removed),
            "conflicting_units": len(read.conflicts),
            "file_truncated": int(read.truncated),
            "units_per_status": markdown_table(units_per_status(counts), 40),
            "quarantine_reasons": markdown_table(
                reasons.value_counts().rename_axis("reason").reset_index(name="rows")
            ),
        }
    )
    return counts


def _refuse_truncated(
    db: Store,
    snapshots: StockSnapshots,
    snapshot_id: str,
    name: str,
    rows_read: int,
    session: Any,
) -> None:
    """A file ACS cut short is never pushed: a SKU missing from it is not a SKU sold out."""
    reason = f"{name} ends in the middle of a line: the file was cut short"
    snapshots.mark(snapshot_id, "refused", session=session, reasons=[reason])
    db.exceptions.raise_exception(
        ExceptionType.STOCK_FILE_TRUNCATED,
        f"file:{name}",
        f"{reason} after {rows_read} row(s). Nothing from it is pushed to Khaos; ask ACS to "
        "send the file again (a complete file is taken in as a new snapshot).",
        {"file": name, "rows_read": rows_read, "snapshot_id": snapshot_id},
        session=session,
    )


def _unknown_problems(report: UnknownStatusReport, snapshot_id: str) -> list[_Problem]:
    return [
        _Problem(
            type=_UNKNOWN_TYPE,
            entity_ref=f"status:{raw}",
            message=(
                f"{units} unit(s) carry the ACS status {raw!r}, which the stock policy does "
                "not know: they are on no Khaos site and never sellable"
            ),
            details={"status": raw, "units": units, "snapshot_id": snapshot_id},
        )
        for raw, units in report.units_by_value.items()
    ]


# --- sellable and non-sellable ------------------------------------------------------------


def _site_detail(
    counts: pd.DataFrame, sku_map: pd.DataFrame, conf: Settings
) -> tuple[pd.DataFrame, Any]:
    site = acs_site_units(counts, sku_map, conf.status_policy, conf.khaos.sites)
    codes = sku_map.set_index("stock_id")["stock_code"]
    detail = site.detail.assign(stock_code=site.detail["stock_id"].map(codes).fillna(""))
    return detail, site


def _point_run_at(conf: Settings, run_id: str, snapshot_id: str) -> None:
    """Which snapshot this run took in, for the assets after it in the same run."""
    path = conf.data_dir / "stock" / "runs" / f"{run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"snapshot_id": snapshot_id}), encoding="utf-8")


def _run_snapshot(conf: Settings, db: Store, run_id: str, day: str) -> StockSnapshot | None:
    """The snapshot this run took in; for a re-run of one asset, the day's newest."""
    snapshots = StockSnapshots(db.db)
    path = conf.data_dir / "stock" / "runs" / f"{run_id}.json"
    if path.exists():
        return snapshots.get(json.loads(path.read_text(encoding="utf-8"))["snapshot_id"])
    return snapshots.newest_of_day(day)


def _unmatched_selling_problems(site: Any, snapshot_id: str) -> list[_Problem]:
    """Sellable or allocated units under ACS SKUs Khaos does not know (or cannot use, such
    as a code with ``#``): they are in no Khaos Level, so the website cannot sell them."""
    problems = []
    for row in site.unmatched_selling.itertuples(index=False):
        problems.append(
            _Problem(
                type=str(ExceptionType.SKU_UNKNOWN_TO_KHAOS),
                entity_ref=f"stock:{row.sku}",
                message=(
                    f"ACS holds {row.units} sellable or allocated unit(s) of SKU {row.sku!r}, "
                    "which matches no usable Khaos stock item: they are in no Khaos Level "
                    "and cannot be sold. Create or fix the item in Khaos (codes: at most "
                    "50 characters, no '#'), or ask ACS to correct the SKU."
                ),
                details={"sku": row.sku, "units": int(row.units), "snapshot_id": snapshot_id},
            )
        )
    return problems


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
    detail, site = _site_detail(acs_stock_snapshot, sku_map, conf)
    # The counts' own buckets must agree with the policy before anything is placed.
    problems = no_non_sellable_counted_as_sellable(acs_stock_snapshot, conf.status_policy)
    if problems:
        raise Failure(
            f"{len(problems)} group(s) of non-sellable units counted as sellable",
            metadata={"sample": MetadataValue.md("\n".join(f"- {p}" for p in problems[:20]))},
        )
    selling = detail.loc[detail["bucket"].isin(_SELLING_BUCKETS)]
    frame = (
        selling.assign(
            sellable_units=selling["units"].where(selling["bucket"] == "sellable", 0),
            allocated_units=selling["units"].where(selling["bucket"] == "allocated", 0),
        )
        .groupby(["stock_id", "stock_code", "site_id"], as_index=False)
        .agg(
            sellable_units=("sellable_units", "sum"),
            allocated_units=("allocated_units", "sum"),
            statuses=("status", lambda s: "|".join(sorted(set(s)))),
        )
        .sort_values("stock_id", ignore_index=True)
    )
    with store.connect() as db:
        snapshot = _run_snapshot(conf, db, context.run.run_id, context.partition_key)
        if snapshot is None:
            raise Failure(f"no snapshot taken in for {context.partition_key}")
        sid = snapshot.snapshot_id
        # What the push takes: every site's units, and the sellable table its check guards.
        write_parquet_atomically(site.units, site_units_path(conf, sid))
        write_parquet_atomically(frame, sellable_path(conf, sid))
        write_parquet_atomically(sku_map, _sku_map_path(conf, sid))
        unmatched = _unmatched_selling_problems(site, sid)
        newest = StockSnapshots(db.db).newest()
        if newest is not None and newest.snapshot_id == sid:
            # The newest snapshot says which SKUs nobody can sell now.
            sync_exceptions(
                db,
                unmatched,
                [ExceptionType.SKU_UNKNOWN_TO_KHAOS],
                owns=lambda ref: ref.startswith("stock:"),
            )
    context.add_output_metadata(
        {
            "snapshot_id": sid,
            "stock_ids": len(frame),
            "sellable_units": int(frame["sellable_units"].sum()),
            "allocated_units": int(frame["allocated_units"].sum()),
            "unknown_status_units": site.unknown_units,
            "unmatched_sku_units": site.unmatched_units,
            "unmatched_sellable_units": int(site.unmatched_selling["units"].sum()),
            "sample": markdown_table(frame, 10),
        }
    )
    return frame


def _sku_map_path(conf: Settings, snapshot_id: str) -> Path:
    return conf.data_dir / "stock" / "sku_map" / f"{snapshot_id}.parquet"


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
    detail, site = _site_detail(
        acs_stock_snapshot, sku_map_frame(khaos_sku_master, sku_mapping), conf
    )
    others = detail.loc[~detail["bucket"].isin(_SELLING_BUCKETS)]
    frame = (
        others.groupby(["stock_id", "stock_code", "bucket", "site_id"], as_index=False)["units"]
        .sum()
        .sort_values(["stock_id", "site_id"], ignore_index=True)
    )
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


@asset_check(
    asset=sellable_stock,
    name="no_non_sellable_counted_as_sellable",
    blocking=True,
    description="sellable_stock re-derived by another path: per StockID, the units the "
    "snapshot's raw per-status counts put in a sellable or allocated status must equal the "
    "units sellable_stock counts. A unit in refurbishment or quarantine on the selling site, "
    "or one counted twice, fails it; the push refuses such a snapshot too.",
)
def no_non_sellable_counted_as_sellable_check(
    context: AssetCheckExecutionContext, settings: SettingsResource, store: StoreResource
) -> AssetCheckResult:
    # A check on a partitioned asset would load every partition as its input (Dagster
    # 1.13): read what sellable_stock kept for this run's snapshot instead.
    conf = settings.load()
    day = context.run.tags.get("dagster/partition", "")
    with store.connect() as db:
        snapshot = _run_snapshot(conf, db, context.run.run_id, day)
    if snapshot is None or not sellable_path(conf, snapshot.snapshot_id).exists():
        return AssetCheckResult(passed=False, metadata={"missing": f"snapshot of {day}"})
    sid = snapshot.snapshot_id
    sellable = pd.read_parquet(sellable_path(conf, sid))
    mismatches = sellable_mismatches(
        pd.read_parquet(snapshot.counts_path),
        pd.read_parquet(_sku_map_path(conf, sid)),
        sellable,
        conf.status_policy,
        site_units=pd.read_parquet(site_units_path(conf, sid)),
        selling_sites=selling_sites(conf),
    )
    return AssetCheckResult(
        passed=not mismatches,
        metadata={
            "snapshot_id": sid,
            "mismatched_stock_ids": len(mismatches),
            "counted_units": int(
                sellable["sellable_units"].sum() + sellable["allocated_units"].sum()
            ),
            "sample": MetadataValue.md("\n".join(f"- {m}" for m in mismatches[:20]) or "_none_"),
        },
    )


# --- the push ---------------------------------------------------------------------------------


def _empty_update() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="int64") for c in StockUpdateSchema.to_schema().columns}
    ).astype({"reason": "object"})


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
    meta: dict[str, Any] = {
        "pushed": int(result.outcome == "pushed"),
        "refused": int(result.outcome == "refused"),
        "outcome": result.outcome,
        "detail": result.detail,
        "snapshot": result.snapshot_id or "",
        "earlier_effects_superseded": result.superseded,
        **{f"guard_{k}": round(v, 4) for k, v in result.guard_metrics.items()},
    }
    table = _empty_update()
    if result.plan is not None:
        plan, corrections = result.plan, result.corrections
        table = plan.targets
        write_parquet_atomically(
            table, conf.data_dir / "stock" / "pushes" / f"{plan.snapshot_id}.parquet"
        )
        meta.update({k: v for k, v in plan.summary().items() if k != "snapshot_id"})
        meta["corrections"] = 0 if corrections is None else len(corrections)
        meta["correction_units"] = (
            0 if corrections is None or corrections.empty else int(corrections["units"].sum())
        )
        meta["plan"] = markdown_table(table.loc[table["pushed_to"] != table["level"]], 20)
    context.add_output_metadata({**meta, **dispatch_metadata(report)})
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


def _already_taken(db: Store, sha256: str) -> bool:
    return _taken_in(db, sha256, FILE_KIND)


def _taken_in(db: Store, sha256: str, kind: str) -> bool:
    return FileLedger(db.db).taken_in(sha256, kind)


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
    # What was seen: name -> [size, mtime, sha256]. Never the wall clock.
    seen: dict[str, list[Any]] = json.loads(context.cursor) if context.cursor else {}
    first_day = date.fromisoformat(PARTITIONS_START)
    requests: list[RunRequest] = []
    current: dict[str, list[Any]] = {}
    with open_drop(conf) as drop, store.connect() as db:
        for entry in drop.list(STOCK_FILE_GLOB):
            signature = [entry.size, entry.mtime.isoformat()]
            previous = seen.get(entry.name)
            if previous is not None and previous[:2] == signature:
                current[entry.name] = previous
                continue
            sha = file_sha256(drop.fetch(entry.name))
            current[entry.name] = [*signature, sha]
            if previous is not None and previous[2:] == [sha]:
                continue  # touched, not changed
            day = partition_day(entry.name, entry.mtime)
            if date.fromisoformat(day) < first_day:
                context.log.warning("%s is before the first snapshot day; ignored", entry.name)
                continue
            if _already_taken(db, sha):
                context.log.info("%s: the same content was taken in before", entry.name)
                continue
            requests.append(
                RunRequest(
                    run_key=f"{entry.name}:{sha[:16]}",
                    job_name=job.name,
                    partition_key=day,
                    run_config={"ops": {"acs_stock_snapshot": {"config": {"file": entry.name}}}},
                    tags={"acs_file": entry.name},
                )
            )
    return SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))


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
    context: ScheduleEvaluationContext, settings: SettingsResource
) -> RunRequest | SkipReason:
    if settings.load().sync_mode != "batch":
        return SkipReason("sync_mode is realtime: each snapshot is pushed on arrival")
    return RunRequest(run_key=None)


defs = Definitions(
    assets=[acs_stock_snapshot, sellable_stock, non_sellable_stock, khaos_stock_update],
    asset_checks=[no_non_sellable_counted_as_sellable_check, snapshot_file_is_whole_and_known],
    jobs=[stock_snapshot_job, stock_snapshot_push_job, stock_push_job],
    sensors=[acs_stock_file_sensor],
    schedules=[stock_push_schedule],
)
