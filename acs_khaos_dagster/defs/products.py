"""Products group: Khaos SKU master to ACS, the mapping report, and what is ready for sale.

Khaos is the single source of truth for SKUs. A SKU is ready for sale only once
ACS confirms it active with matching attributes; pushes go through the outbox and
activation is never waited for inside a run.
"""

from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    Config,
    Definitions,
    MetadataValue,
    ScheduleDefinition,
    asset,
    asset_check,
    define_asset_job,
)

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import UK_TIME_ZONE, ProductSettings, SettingsError, load_settings
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS
from acs_khaos_dagster.defs.common import (
    dispatch,
    dispatch_metadata,
    markdown_table,
    sync_exceptions,
    write_parquet_atomically,
)
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.defs.schemas import (
    AcsRegistryType,
    ReadyForSaleType,
    SkuMappingType,
    SkuMasterType,
    SkuPushType,
)
from acs_khaos_dagster.domain.catalogue import SKU_MASTER_COLUMNS, sku_master_frame
from acs_khaos_dagster.domain.readiness import NOT_READY_COLUMNS, not_ready_for_sale
from acs_khaos_dagster.domain.sku_mapping import (
    ExceptionSpec,
    acs_registry_frame,
    classify_skus,
    code_problems_series,
    coverage,
    mapping_exceptions,
    products_to_push,
    ready_for_sale,
    summary_counts,
)
from acs_khaos_dagster.effects import TARGET_OF, EffectKind, versions_of
from acs_khaos_dagster.reports._tables import neutralise_text, write_csv
from acs_khaos_dagster.store.products import SkuIdentities

# GetStockList needs a "changed since" date; this one predates any Khaos install.
BEGINNING_OF_TIME = datetime(2000, 1, 1, tzinfo=UTC)
# Re-read a little before the last watermark: a change saved while we read is not missed.
WATERMARK_OVERLAP = timedelta(minutes=5)
WATERMARK_CURSOR = "khaos.stock_list.changed_since"
MAPPING_EXCEPTION_TYPES = (
    "invalid_sku_code",
    "sku_missing_in_acs",
    "sku_mismatch",
    "sku_renamed",
    "sku_not_live",
)


def _is_code_ref(ref: str) -> bool:
    """Codes Khaos lists but cannot export have no StockID; they are keyed by code."""
    return ref.startswith("code:")


class SkuMasterConfig(Config):
    """``full_refresh`` re-reads every stock item instead of those changed since the watermark."""

    full_refresh: bool = False


def _merge_master(previous: pd.DataFrame | None, changed: pd.DataFrame) -> pd.DataFrame:
    """The full table keyed by StockID: changed rows replace their previous version."""
    if previous is None or previous.empty:
        return changed
    if changed.empty:
        return previous
    kept = previous[~previous["stock_id"].isin(changed["stock_id"])]
    merged = pd.concat([kept, changed], ignore_index=True)[SKU_MASTER_COLUMNS]
    merged = merged.astype(changed.dtypes.to_dict())
    return merged.sort_values("stock_id", kind="stable", ignore_index=True)


@asset(
    group_name="products",
    kinds={"khaos", "pandas"},
    dagster_type=SkuMasterType,
    pool="khaos_api",
    description="Khaos stock items (style parents and their colour/size children) keyed by "
    "the stable StockID, fetched incrementally since the stored watermark.",
)
def khaos_sku_master(
    context: AssetExecutionContext,
    config: SkuMasterConfig,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    master_path = conf.data_dir / "products" / "sku_master.parquet"
    previous = (
        None if config.full_refresh or not master_path.exists() else pd.read_parquet(master_path)
    )
    with store.connect() as db:
        watermark = db.cursors.get(WATERMARK_CURSOR)
        since = (
            BEGINNING_OF_TIME
            if previous is None or not watermark
            else (datetime.fromisoformat(watermark) - WATERMARK_OVERLAP)
        )
        # Taken before reading, so anything saved while we read is inside the next window.
        started = integration_now(conf)
        with khaos.client() as client:
            codes, refused = client.requestable_codes(client.get_stock_list(since))
            changed = sku_master_frame(client.export_stock(codes))
        refused_problems = [
            ExceptionSpec(
                type="invalid_sku_code",
                entity_ref=f"code:{code}",
                message=f"Khaos stock code cannot be read: {reason}",
                details={"stock_code": code},
            )
            for code, reason in refused.items()
        ]
        sync_exceptions(db, refused_problems, ["invalid_sku_code"], owns=_is_code_ref)
        master = _merge_master(previous, changed)
        write_parquet_atomically(master, master_path)
        with db.transaction() as session:
            db.cursors.set(WATERMARK_CURSOR, started.isoformat(), session)
    children = master[master["stock_controlled"]]
    context.add_output_metadata(
        {
            "changed_since": since.isoformat(),
            "stock_items_fetched": len(changed),
            "stock_codes_refused": len(refused),
            "stock_items": len(master),
            "style_parents": int((~master["stock_controlled"]).sum()),
            "hire_skus": int(children["is_hire"].sum()),
            "discontinued": int(children["discontinued"].sum()),
            "published_on_web": int(children["publish_on_web"].sum()),
            "sample": markdown_table(master, 10),
        }
    )
    return master


@asset(
    group_name="products",
    kinds={"acs", "pandas"},
    dagster_type=AcsRegistryType,
    pool="acs_api",
    description="The SKU registry as ACS holds it, with each SKU's status (active, pending, "
    "inactive).",
)
def acs_product_registry(context: AssetExecutionContext, acs: AcsApiResource) -> pd.DataFrame:
    with acs.client() as client:
        registry = acs_registry_frame(client.iter_products())
    context.add_output_metadata(
        {
            "skus": len(registry),
            **{f"status_{k}": int(v) for k, v in registry["status"].value_counts().items()},
        }
    )
    return registry


@asset(
    group_name="products",
    kinds={"pandas"},
    dagster_type=SkuMappingType,
    description="One row per SKU with its classification (matched, missing, pending, inactive, "
    "attribute mismatch, unknown to Khaos, invalid code, renamed, discontinued).",
)
def sku_mapping(
    context: AssetExecutionContext,
    khaos_sku_master: pd.DataFrame,
    acs_product_registry: pd.DataFrame,
    store: StoreResource,
) -> pd.DataFrame:
    with store.connect() as db:
        identity = SkuIdentities(db.db).identity()
        mapping = classify_skus(khaos_sku_master, acs_product_registry, identity)
        open_counts = sync_exceptions(
            db,
            mapping_exceptions(mapping),
            MAPPING_EXCEPTION_TYPES,
            owns=lambda ref: not _is_code_ref(ref),
        )
    counts = summary_counts(mapping)
    problems = mapping[mapping["classification"] != "matched"]
    context.add_output_metadata(
        {
            **{f"class_{name}": count for name, count in counts.items()},
            "ready_for_sale": int(mapping["ready_for_sale"].sum()),
            "web_coverage": round(coverage(mapping), 4),
            **{f"open_{t}": n for t, n in open_counts.items()},
            "problems_sample": markdown_table(
                problems[
                    [
                        "stock_id",
                        "stock_code",
                        "acs_sku",
                        "classification",
                        "mismatch_detail",
                        "code_problems",
                    ]
                ]
            ),
        }
    )
    return mapping


@asset(
    group_name="products",
    kinds={"pandas"},
    dagster_type=ReadyForSaleType,
    description="SKUs active at ACS with matching attributes: what the order and stock flows use.",
)
def ready_for_sale_skus(
    context: AssetExecutionContext, sku_mapping: pd.DataFrame, settings: SettingsResource
) -> pd.DataFrame:
    ready = ready_for_sale(sku_mapping)
    waiting = not_ready_for_sale(sku_mapping)
    # Ecommerce's worklist: the first 50 here, every one in the CSV beside the SKU master.
    path = write_csv(
        settings.load().data_dir / "products" / "not_ready_for_sale.csv",
        NOT_READY_COLUMNS,
        [[neutralise_text(str(v)) for v in row] for row in waiting.itertuples(index=False)],
    )
    context.add_output_metadata(
        {
            "ready_for_sale": len(ready),
            "not_ready_for_sale": len(waiting),
            "not_ready_first_50": markdown_table(waiting, limit=50),
            "not_ready_csv": MetadataValue.path(str(path)),
        }
    )
    return ready


@asset(
    group_name="products",
    kinds={"acs", "pandas"},
    dagster_type=SkuPushType,
    pool="acs_api",
    deps=["sku_mapping"],
    description="New or changed SKUs sent to ACS through the outbox, keyed by their content so "
    "an unchanged SKU is never re-sent. Invalid codes are never sent.",
)
def acs_sku_push(
    context: AssetExecutionContext,
    khaos_sku_master: pd.DataFrame,
    acs_product_registry: pd.DataFrame,
    settings: SettingsResource,
    acs: AcsApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    kind = EffectKind.ACS_PRODUCT
    with store.connect() as db:
        identities = SkuIdentities(db.db)
        plan = products_to_push(
            khaos_sku_master,
            acs_product_registry,
            identities.identity(),
            identities.last_pushed_hashes(),
        )
        codes = dict(zip(khaos_sku_master["stock_id"], khaos_sku_master["stock_code"], strict=True))
        # The pushes, the identities they register and their hashes land together or not at all.
        with db.transaction() as session:
            for push in plan.pushes:
                payload = push.product.model_dump(mode="json", exclude={"status"})
                db.outbox.enqueue(
                    kind,
                    TARGET_OF[kind],
                    push.product.sku,
                    push.idempotency_key,
                    payload,
                    session=session,
                    supersede_key=versions_of(kind, push.product.sku),
                )
            identities.record(
                plan.identity_updates,
                codes,
                {push.stock_id: push.content_hash for push in plan.pushes},
                session,
            )
        with acs.client() as client:
            report = dispatch(db, conf, [kind], acs=client)
        rows = [
            {
                "stock_id": push.stock_id,
                "acs_sku": push.product.sku,
                "reason": push.reason,
                "content_hash": push.content_hash,
                "state": db.outbox.by_key(push.idempotency_key).state,
            }
            for push in plan.pushes
        ]
    pushed = pd.DataFrame(rows, columns=["stock_id", "acs_sku", "reason", "content_hash", "state"])
    context.add_output_metadata(
        {
            "queued": len(plan.pushes),
            "new": int((pushed["reason"] == "new").sum()),
            "changed": int((pushed["reason"] == "changed").sum()),
            "refused_invalid_code": len(plan.invalid),
            **dispatch_metadata(report),
        }
    )
    return pushed


@asset_check(
    asset=acs_sku_push,
    blocking=True,
    description="No SKU whose code breaks the Khaos/ACS rules was sent to ACS.",
)
def no_invalid_code_pushed(acs_sku_push: pd.DataFrame) -> AssetCheckResult:
    problems = code_problems_series(acs_sku_push["acs_sku"].astype(str))
    bad = acs_sku_push[problems != ""]
    return AssetCheckResult(
        passed=bad.empty,
        metadata={"invalid_pushed": len(bad), "sample": markdown_table(bad)},
    )


@asset_check(
    asset=AssetKey("sku_mapping"),
    description="Share of web-published Khaos SKUs that are ready for sale at ACS "
    "(warns under the configured threshold).",
)
def web_coverage(sku_mapping: pd.DataFrame, settings: SettingsResource) -> AssetCheckResult:
    threshold = settings.load().products.coverage_warn_below
    share = coverage(sku_mapping)
    not_live = sku_mapping[sku_mapping["publish_on_web"] & ~sku_mapping["ready_for_sale"]]
    return AssetCheckResult(
        passed=share >= threshold,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "coverage": round(share, 4),
            # A setting, not a measurement: text, so the UI does not plot it.
            "threshold": MetadataValue.text(f"{threshold:.0%} (products.coverage_warn_below)"),
            "published_not_ready": len(not_live),
            "sample": markdown_table(not_live[["stock_id", "stock_code", "classification"]]),
        },
    )


product_sync_job = define_asset_job(
    "product_sync_job",
    selection=AssetSelection.groups("products"),
    description="Read Khaos's SKU master, push new and changed SKUs to ACS, refresh which "
    "SKUs are ready for sale.",
)


def _sync_cron() -> str:
    try:
        return load_settings().products.sync_cron
    except SettingsError:
        return ProductSettings().sync_cron


product_sync_schedule = ScheduleDefinition(
    name="product_sync_schedule",
    job=product_sync_job,
    cron_schedule=_sync_cron(),
    execution_timezone=UK_TIME_ZONE,
    default_status=SCHEDULE_STATUS,
    description="The product sync (settings.products.sync_cron, UK time).",
)

defs = Definitions(
    assets=[khaos_sku_master, acs_product_registry, sku_mapping, ready_for_sale_skus, acs_sku_push],
    asset_checks=[no_invalid_code_pushed, web_coverage],
    jobs=[product_sync_job],
    schedules=[product_sync_schedule],
)
