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
from datetime import UTC, date, datetime, timedelta
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
    DefaultScheduleStatus,
    DefaultSensorStatus,
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
from sqlalchemy import select

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import UK_TIME_ZONE, Settings, SettingsError, load_settings
from acs_khaos_dagster.connectors.acs.drop import DropEntry, open_drop
from acs_khaos_dagster.connectors.acs.files import FileLayoutError, read_returns, read_stock_units
from acs_khaos_dagster.connectors.acs.times import AcsTimeRules
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.defs.common import (
    dispatch,
    dispatch_metadata,
    markdown_table,
    sync_exceptions,
    write_parquet_atomically,
)
from acs_khaos_dagster.defs.resources import KhaosApiResource, SettingsResource, StoreResource
from acs_khaos_dagster.defs.schemas import SnapshotStatusCountsType
from acs_khaos_dagster.domain.layout import KhaosReasons
from acs_khaos_dagster.domain.models import (
    CustomerReturn,
    DespatchPosting,
    StockAdjustmentGroup,
)
from acs_khaos_dagster.domain.snapshot import status_counts, units_per_status
from acs_khaos_dagster.domain.stock_guards import (
    PlausibilityThresholds,
    SnapshotTotals,
    UnknownStatusReport,
    no_non_sellable_counted_as_sellable,
    plausibility,
)
from acs_khaos_dagster.domain.stock_push import (
    ADJUSTMENT_COLUMNS,
    DESPATCH_COLUMNS,
    RETURN_COLUMNS,
    HeldVariance,
    PushPlan,
    VarianceTolerance,
    acs_site_units,
    approved_variance_groups,
    cost_prices_from,
    plan_push,
    should_push,
    timing_corrections,
)
from acs_khaos_dagster.domain.stock_status import StockBucket
from acs_khaos_dagster.effects import TARGET_OF, EffectKind
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.ledger import file_sha256
from acs_khaos_dagster.store.schema import Effect, IngestedFile
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
# Despatches, returns and write-offs older than this before the snapshot are taken as
# settled on both sides (their invoices issued, their returns processed) and not read at
# the push.
TIMING_LOOKBACK = timedelta(days=30)
# ExportOrderStatusEx in batches of this many orders.
ORDER_BATCH = 100
_STAMP_RE = re.compile(r"_(\d{14})\.csv$")
_SELLING_BUCKETS = (str(StockBucket.SELLABLE), str(StockBucket.ALLOCATED))
_UNKNOWN_TYPE = "unknown_stock_status"
_REFUSED_TYPE = "snapshot_refused"
_HELD_TYPE = "stock_variance_held"
ADJUSTMENT = EffectKind.KHAOS_STOCK_ADJUSTMENT


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
        unknown = UnknownStatusReport.from_units(read.units, policy)
        newest = snapshots.newest()
        if newest is not None and newest.snapshot_id == snapshot_id:
            # Only the newest snapshot says which statuses are unknown now.
            sync_exceptions(db, _unknown_problems(unknown, snapshot_id), [_UNKNOWN_TYPE])

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


def _sellable_path(conf: Settings, day: str) -> Path:
    return conf.data_dir / "stock" / "sellable" / f"{day}.parquet"


@asset(
    group_name="stock",
    kinds={"pandas"},
    dagster_type=SellableStockType,
    partitions_def=SNAPSHOT_DAYS,
    description="Per StockID: units ready for a customer and units allocated, picked or "
    "packed for an order at the snapshot (together the selling site's Level; no buffer).",
)
def sellable_stock(
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
    # Checked on the data before anything is stored: the counts' buckets and every unit
    # placed on the selling or hire stock site must be sellable/allocated under the policy.
    problems = no_non_sellable_counted_as_sellable(
        acs_stock_snapshot, conf.status_policy, site_detail=site.detail, sites=conf.khaos.sites
    )
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
    write_parquet_atomically(frame, _sellable_path(conf, context.partition_key))
    context.add_output_metadata(
        {
            "stock_ids": len(frame),
            "sellable_units": int(frame["sellable_units"].sum()),
            "allocated_units": int(frame["allocated_units"].sum()),
            "unknown_status_units": site.unknown_units,
            "unmatched_sku_units": site.unmatched_units,
            "sample": markdown_table(frame, 10),
        }
    )
    return frame


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
    description="No unit in a non-sellable or unknown status is counted as sellable: every "
    "status behind the table's units is sellable or allocated under the status policy.",
)
def no_non_sellable_counted_as_sellable_check(
    context: AssetCheckExecutionContext, settings: SettingsResource
) -> AssetCheckResult:
    # A check on a partitioned asset would load every partition as its input (Dagster
    # 1.13): read this run's partition from the copy sellable_stock keeps in Parquet.
    conf = settings.load()
    policy = conf.status_policy
    day = context.run.tags.get("dagster/partition", "")
    path = _sellable_path(conf, day)
    if not path.exists():
        return AssetCheckResult(passed=False, metadata={"missing": str(path)})
    sellable_stock = pd.read_parquet(path)
    problems = []
    for row in sellable_stock.itertuples(index=False):
        for status in str(row.statuses).split("|"):
            bucket = str(policy.bucket_for(status)) if status else "unknown"
            if bucket not in _SELLING_BUCKETS:
                problems.append(
                    f"StockID {row.stock_id} counts units in status {status!r} ({bucket})"
                )
    return AssetCheckResult(
        passed=not problems,
        metadata={
            "problems": len(problems),
            "counted_units": int(
                sellable_stock["sellable_units"].sum() + sellable_stock["allocated_units"].sum()
            ),
            "sample": MetadataValue.md("\n".join(f"- {p}" for p in problems[:20]) or "_none_"),
        },
    )


# --- timing facts at the push -----------------------------------------------------------------


def _since(effects: list[Effect], since: datetime) -> list[Effect]:
    return [e for e in effects if e.created_at >= since]


def despatch_facts(db: Store, client: KhaosClient, conf: Settings, since: datetime) -> pd.DataFrame:
    """Sale units ACS despatched (the outbox's ImportDespatch effects) and whether each
    invoice is issued in Khaos now: ``DESPATCH_COLUMNS`` + ``is_hire``, ``ref``."""
    effects = _since(db.outbox.find(kind=EffectKind.KHAOS_DESPATCH), since)
    postings = [(e, DespatchPosting.model_validate(e.payload)) for e in effects]
    order_ids = sorted({p.order_id for _, p in postings})
    orders = {}
    for start in range(0, len(order_ids), ORDER_BATCH):
        batch = order_ids[start : start + ORDER_BATCH]
        for order in client.export_order_status(batch, include_tracking=False):
            orders[order.order_id] = order
    issued_stages = set(conf.khaos.stages.issued)
    rows = []
    for effect, posting in postings:
        order = orders.get(posting.order_id)
        if order is None:
            continue
        lines = {line.order_item_id: line for line in order.lines}
        invoice = next((i for i in order.invoices if i.external_ref == posting.external_ref), None)
        issued_at = (
            invoice.issue_date
            if invoice is not None and invoice.stage_id in issued_stages
            else None
        )
        shipped = [p.shipment_date for p in posting.packages]
        despatched_at = min(shipped) if shipped else effect.created_at
        for order_item_id, quantity in posting.lines:
            line = lines.get(order_item_id)
            if line is None:
                continue
            rows.append(
                {
                    "stock_id": line.stock_id,
                    "site_id": order.site_id,
                    "units": quantity,
                    "despatched_at": despatched_at,
                    "issued_at": issued_at,
                    "is_hire": line.is_hire,
                    "ref": posting.external_ref,
                }
            )
    return pd.DataFrame(rows, columns=[*DESPATCH_COLUMNS, "is_hire", "ref"])


def _returns_moments(db: Store) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """When ACS restocked each return part and handled each written-off unit, from the
    returns flow's tables when they exist (it is written in parallel)."""
    try:
        from acs_khaos_dagster.store.tables.returns import ReturnPostingRow, ReturnStockMove
    except ImportError:  # pragma: no cover - the returns flow is not installed
        return {}, {}
    try:
        with db.transaction() as s:
            received = dict(
                s.execute(select(ReturnPostingRow.associated_ref, ReturnPostingRow.received_at))
            )
            happened = dict(
                s.execute(select(ReturnStockMove.group_ref, ReturnStockMove.happened_at))
            )
    except Exception:  # their tables may not be migrated yet
        return {}, {}
    return (
        {k: v for k, v in received.items() if v is not None},
        {k: v for k, v in happened.items() if v is not None},
    )


def return_facts(
    db: Store,
    conf: Settings,
    stock_ids: dict[str, int],
    since: datetime,
    acs_skus: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Sale returns posted "return to stock" (``RETURN_COLUMNS`` + ``ref``). The ACS moment is
    the return's receipt at ACS (returns flow) or, failing that, when it was recorded; the
    Khaos moment is when the import was confirmed (``process_return`` processes at once).

    With ``acs_skus`` (``sku, stock_id, is_hire`` by ACS SKU), also the restocked sale units
    ACS reported whose return is not posted yet (``_returns_not_posted_yet``)."""
    received, _ = _returns_moments(db)
    rows = []
    for effect in _since(db.outbox.find(kind=EffectKind.KHAOS_CUSTOMER_RETURN), since):
        ret = CustomerReturn.model_validate(effect.payload)
        if not ret.process_return:
            continue
        processed_at = effect.updated_at if effect.state == "done" else None
        for item in ret.items:
            stock_id = stock_ids.get(item.sku)
            if stock_id is None or item.return_reason not in conf.khaos.reasons.returned_to_stock:
                continue
            rows.append(
                {
                    "stock_id": stock_id,
                    "site_id": ret.site_id or conf.khaos.sites.selling,
                    "units": item.quantity,
                    "restocked_at": received.get(ret.associated_ref, effect.created_at),
                    "processed_at": processed_at,
                    "ref": ret.associated_ref,
                }
            )
    if acs_skus is not None:
        rows.extend(_returns_not_posted_yet(db, conf, acs_skus, since))
    return pd.DataFrame(rows, columns=[*RETURN_COLUMNS, "ref"])


def _returns_not_posted_yet(
    db: Store, conf: Settings, acs_skus: pd.DataFrame, since: datetime
) -> list[dict[str, Any]]:
    """Sale units ACS reported back in stock whose customer return is not in the outbox yet:
    no Khaos moment, so ``timing_corrections`` keeps them out of the target until the
    returns path raises Level ("restocked, not processed"). Without this, a snapshot pushed
    before the returns flow posts the return adds the unit as VARIANCE (or holds it for
    finance), and the return then adds it a second time.

    Read from the returns flow's ``returned_units`` (taken in, not covered by a posting)
    and from ``returns_*.csv`` still waiting in the ACS drop (the stock and returns files
    arrive together and their runs race). Hire SKUs are left out (hire units move through
    the snapshot, never a customer return), and so are units whose grade the policy writes
    off; a unit with an unknown grade is kept out of Level until someone decides.
    """
    by_sku = acs_skus.drop_duplicates("sku").set_index("sku")
    policy = conf.grade_policy
    seen: set[tuple[str, str]] = set()
    rows: list[dict[str, Any]] = []

    def add(ref: str, unit: str, sku: str, grade: str, action: str, received: Any) -> None:
        if (ref, unit) in seen:
            return
        seen.add((ref, unit))
        if sku not in by_sku.index or bool(by_sku.at[sku, "is_hire"]):
            return
        rule = policy.rule_for(grade or "", action or "")
        if rule is not None and not policy.restocks(rule):
            return
        received_at = pd.Timestamp(received)
        if pd.isna(received_at):
            return
        received_at = received_at.tz_localize(UTC) if received_at.tzinfo is None else received_at
        if received_at < pd.Timestamp(since):
            return
        rows.append(
            {
                "stock_id": int(by_sku.at[sku, "stock_id"]),
                "site_id": conf.khaos.sites.selling,
                "units": 1,
                "restocked_at": received_at,
                "processed_at": None,
                "ref": ref,
            }
        )

    try:
        from acs_khaos_dagster.store.returns import ReturnsRepository

        units = ReturnsRepository(db.db).units()
    except Exception:  # the returns flow's tables may not be migrated yet
        units = pd.DataFrame(columns=["return_ref", "unique_sku", "associated_ref"])
    posted = units["associated_ref"].notna()
    # Posted units are the outbox's (above); a unit is counted from one source only.
    seen.update(zip(units.loc[posted, "return_ref"], units.loc[posted, "unique_sku"], strict=True))
    for row in units.loc[~posted].itertuples(index=False):
        add(
            str(row.return_ref),
            str(row.unique_sku),
            str(row.sku),
            str(row.grade),
            str(row.action_taken),
            row.received_at,
        )
    with open_drop(conf) as drop:
        for entry in drop.list(RETURNS_FILE_GLOB):
            if _file_moment(entry) < since:
                continue  # settled long ago; never fetched again
            path = drop.fetch(entry.name)
            if _taken_in(db, file_sha256(path), RETURNS_FILE_KIND):
                continue  # its units are in returned_units
            try:
                read = read_returns(path, AcsTimeRules.from_settings(conf))
            except FileLayoutError:
                continue  # the returns flow raises it; nothing to correct from here
            for r in read.returns.to_pylist():
                add(
                    r["return_ref"],
                    r["unique_sku"],
                    r["sku"],
                    r["grade"] or "",
                    r["action_taken"] or "",
                    r["received_at"],
                )
    return rows


def adjustment_facts(db: Store, since: datetime) -> pd.DataFrame:
    """Level changes booked by other paths (write-offs, ex-hire legs): ``adjust_by`` lines of
    adjustment effects that are not this push's own (``SNAP-`` refs)."""
    _, happened = _returns_moments(db)
    rows = []
    for effect in _since(db.outbox.find(kind=ADJUSTMENT), since):
        group = StockAdjustmentGroup.model_validate(effect.payload)
        if group.group_ref.startswith("SNAP-"):
            continue
        applied_at = effect.updated_at if effect.state == "done" else None
        for line in group.lines:
            if line.adjust_by is None:
                continue
            rows.append(
                {
                    "stock_id": line.stock_id,
                    "site_id": group.site_id,
                    "change": line.adjust_by,
                    "happened_at": happened.get(group.group_ref, effect.created_at),
                    "applied_at": applied_at,
                    "ref": group.group_ref,
                }
            )
    return pd.DataFrame(rows, columns=[*ADJUSTMENT_COLUMNS, "ref"])


def khaos_levels(client: KhaosClient, codes: list[str], managed: set[int]) -> pd.DataFrame:
    """Level of every managed StockID on every site (``SiteID`` empty = all sites)."""
    levels = client.export_stock_status(codes, None)
    frame = pd.DataFrame(
        [(lv.stock_id, lv.site_id, lv.level) for lv in levels if lv.stock_id in managed],
        columns=["stock_id", "site_id", "level"],
    )
    return frame.astype("int64")


# --- the push ---------------------------------------------------------------------------------


def _held_ref(held: HeldVariance) -> str:
    return f"{held.snapshot_id}:{held.stock_id}:S{held.site_id}"


def _record_plan(
    db: Store,
    snapshots: StockSnapshots,
    snapshot: StockSnapshot,
    plan: PushPlan,
    costs: dict[int, Any],
    push_at: datetime,
    reasons: KhaosReasons | None = None,
) -> None:
    """Every group, every held variance (as a held effect + its exception) and the snapshot's
    "pushed" marker in ONE transaction: a crash leaves all or nothing to resend."""
    with db.transaction() as session:
        for group in plan.groups:
            db.outbox.enqueue(
                ADJUSTMENT,
                TARGET_OF[ADJUSTMENT],
                f"snapshot:{plan.snapshot_id}:site:{group.site_id}",
                group.group_ref,
                group.model_dump(mode="json"),
                session=session,
            )
        for held in plan.held:
            [group] = approved_variance_groups(
                [held], approval_ref=str(held.stock_id), cost_prices=costs, reasons=reasons
            )
            effect = db.outbox.enqueue(
                ADJUSTMENT,
                TARGET_OF[ADJUSTMENT],
                f"snapshot:{plan.snapshot_id}:held:{held.stock_id}:{held.site_id}",
                group.group_ref,
                group.model_dump(mode="json"),
                hold=True,
                session=session,
            )
            db.exceptions.raise_exception(
                _HELD_TYPE,
                _held_ref(held),
                f"StockID {held.stock_id} on site {held.site_id}: {held.held_units:+d} unit(s) "
                f"held (value {held.value if held.value is not None else 'unknown'}): "
                f"{held.reason}. Approve to push them as VARIANCE.",
                {
                    "snapshot_id": held.snapshot_id,
                    "stock_id": held.stock_id,
                    "site_id": held.site_id,
                    "level": held.level,
                    "target": held.target,
                    "pushed_to": held.pushed_to,
                    "held_units": held.held_units,
                    "sku_difference": held.sku_difference,
                    "value": None if held.value is None else str(held.value),
                    "group_ref": group.group_ref,
                },
                effect_id=effect.id,
                session=session,
            )
        snapshots.mark(
            snapshot.snapshot_id,
            "pushed",
            session=session,
            summary={k: v for k, v in plan.summary().items()},
            pushed_at=push_at,
        )


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
    description="The newest snapshot pushed to Khaos as 'adjust to' lines per site through "
    "the outbox (plausibility guard first; two-moment corrections taken at the push; "
    "variances above tolerance held for finance).",
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
    stock = conf.stock
    sku_map = sku_map_frame(khaos_sku_master, sku_mapping)
    costs = cost_prices_from(sku_map)
    meta: dict[str, Any] = {}
    result = _empty_update()
    with store.connect() as db, khaos.client() as client:
        snapshots = StockSnapshots(db.db)
        snapshot = snapshots.newest()
        last = snapshots.last_pushed()
        if snapshot is None:
            meta["snapshot"] = "none taken in yet"
        elif snapshot.state != "ingested":
            meta["snapshot"] = f"{snapshot.snapshot_id} already {snapshot.state}"
        elif not should_push(snapshot.snapshot_at, last.snapshot_at if last else None):
            with db.transaction() as session:
                snapshots.mark(snapshot.snapshot_id, "skipped", session=session)
            meta["snapshot"] = f"{snapshot.snapshot_id} not newer than the last pushed"
        else:
            counts = pd.read_parquet(snapshot.counts_path)
            totals = SnapshotTotals.from_counts(counts, conf.status_policy)
            guard = plausibility(
                totals,
                snapshots.last_accepted_totals(),
                PlausibilityThresholds(
                    max_total_drop=stock.max_total_drop,
                    max_sellable_drop=stock.max_sellable_drop,
                    max_unknown_share=stock.max_unknown_share,
                ),
            )
            meta.update({f"guard_{k}": round(v, 4) for k, v in guard.metrics.items()})
            if not guard.accepted:
                # A truncated file must never zero the website: nothing is pushed.
                with db.transaction() as session:
                    snapshots.mark(
                        snapshot.snapshot_id,
                        "refused",
                        session=session,
                        reasons=list(guard.reasons),
                    )
                    db.exceptions.raise_exception(
                        _REFUSED_TYPE,
                        snapshot.snapshot_id,
                        f"snapshot {snapshot.file_name} refused, nothing pushed: "
                        + "; ".join(guard.reasons),
                        {"file": snapshot.file_name, **guard.metrics},
                        session=session,
                    )
                meta["refused"] = 1
                meta["refused_reasons"] = MetadataValue.md(
                    "\n".join(f"- {r}" for r in guard.reasons)
                )
            else:
                site = acs_site_units(counts, sku_map, conf.status_policy, conf.khaos.sites)
                managed = set(sku_map["stock_id"].astype(int))
                since = snapshot.snapshot_at - TIMING_LOOKBACK
                # Levels and invoice/return states read together, right before applying.
                push_at = integration_now(conf)
                levels = khaos_levels(client, sorted(set(sku_map["stock_code"])), managed)
                corrections = timing_corrections(
                    snapshot_at=snapshot.snapshot_at,
                    push_at=push_at,
                    despatches=despatch_facts(db, client, conf, since),
                    returns=return_facts(
                        db,
                        conf,
                        dict(zip(sku_map["stock_code"], sku_map["stock_id"], strict=True)),
                        since,
                        acs_skus=sku_map,
                    ),
                    adjustments=adjustment_facts(db, since),
                )
                plan = plan_push(
                    site,
                    levels,
                    corrections,
                    snapshot_id=snapshot.snapshot_id,
                    sites=conf.khaos.sites,
                    tolerance=VarianceTolerance.from_settings(stock),
                    cost_prices=costs,
                    max_lines_per_group=stock.max_lines_per_adjustment,
                    reasons=conf.khaos.reasons,
                )
                _record_plan(db, snapshots, snapshot, plan, costs, push_at, conf.khaos.reasons)
                write_parquet_atomically(
                    plan.targets, conf.data_dir / "stock" / "pushes" / f"{plan.snapshot_id}.parquet"
                )
                result = plan.targets
                meta.update({k: v for k, v in plan.summary().items() if k != "snapshot_id"})
                meta["corrections"] = len(corrections)
                meta["correction_units"] = (
                    int(corrections["units"].sum()) if len(corrections) else 0
                )
                meta["pushed"] = 1
                meta["plan"] = markdown_table(
                    plan.targets.loc[plan.targets["pushed_to"] != plan.targets["level"]], 20
                )
            meta["snapshot"] = snapshot.snapshot_id
        # Also sends what earlier runs left due: approved variances, retries.
        report = dispatch(db, conf, [ADJUSTMENT], khaos=client)
    context.add_output_metadata({**meta, **dispatch_metadata(report)})
    return result


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
    with db.transaction() as s:
        return (
            s.scalars(
                select(IngestedFile.id).where(
                    IngestedFile.sha256 == sha256,
                    IngestedFile.kind == kind,
                    IngestedFile.state.in_(("processed", "duplicate")),
                )
            ).first()
            is not None
        )


@sensor(
    name="acs_stock_file_sensor",
    jobs=[stock_snapshot_job, stock_snapshot_push_job],
    default_status=DefaultSensorStatus.RUNNING,
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
    default_status=DefaultScheduleStatus.RUNNING,
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
    asset_checks=[no_non_sellable_counted_as_sellable_check],
    jobs=[stock_snapshot_job, stock_snapshot_push_job, stock_push_job],
    sensors=[acs_stock_file_sensor],
    schedules=[stock_push_schedule],
)
