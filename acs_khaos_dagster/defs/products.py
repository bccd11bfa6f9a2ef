"""Products group: Khaos SKU master to ACS, the mapping report, and what is ready for sale.

Khaos is the single source of truth for SKUs. A SKU is ready for sale only once
ACS confirms it active with matching attributes; pushes go through the outbox and
activation is never waited for inside a run.
"""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
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
from acs_khaos_dagster.defs.checks import owned_by
from acs_khaos_dagster.defs.common import (
    dispatch_metadata,
    markdown_table,
    report_link,
    sync_exceptions,
)
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.defs.tables import (
    AcsRegistryType,
    ReadyForSaleType,
    SkuMappingType,
    SkuMasterType,
    SkuPushType,
)
from acs_khaos_dagster.domain.readiness import (
    NOT_READY_COLUMNS,
    not_ready_for_sale,
    on_sale,
    ready_but_not_active,
)
from acs_khaos_dagster.domain.sku_mapping import (
    acs_registry_frame,
    classify_skus,
    code_problems_series,
    coverage,
    mapping_exceptions,
    ready_for_sale,
    summary_counts,
)
from acs_khaos_dagster.flows.products import is_code_ref, push_skus, sync_sku_master
from acs_khaos_dagster.reports._tables import neutralise_text, write_csv
from acs_khaos_dagster.store.products import SkuIdentities

MAPPING_EXCEPTION_TYPES = (
    "invalid_sku_code",
    "sku_missing_in_acs",
    "sku_mismatch",
    "sku_renamed",
    "sku_not_live",
)


class SkuMasterConfig(Config):
    """``full_refresh`` re-reads every stock item instead of those changed since the watermark."""

    full_refresh: bool = False


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
    with store.connect() as db, khaos.client() as client:
        result = sync_sku_master(
            db, client, conf, integration_now(conf), full_refresh=config.full_refresh
        )
    context.add_output_metadata(
        {
            "changed_since": result.since.isoformat(),
            "stock_items_fetched": result.fetched,
            "stock_codes_refused": result.refused,
            "stock_items": len(result.frame),
            "style_parents": result.style_parents,
            "hire_skus": result.hire_skus,
            "discontinued": result.discontinued,
            "published_on_web": result.published_on_web,
            "sample": markdown_table(result.frame, 10),
        }
    )
    return result.frame


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
            owns=lambda ref: not is_code_ref(ref),
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
    conf = settings.load()
    ready = ready_for_sale(sku_mapping)
    waiting = not_ready_for_sale(sku_mapping)
    # Ecommerce's worklist: the first 50 here, every one in the CSV beside the SKU master.
    path = write_csv(
        conf.data_dir / "products" / "not_ready_for_sale.csv",
        NOT_READY_COLUMNS,
        [[neutralise_text(str(v)) for v in row] for row in waiting.itertuples(index=False)],
    )
    context.add_output_metadata(
        {
            "ready_for_sale": len(ready),
            "not_ready_for_sale": len(waiting),
            "not_ready_first_50": markdown_table(waiting, limit=50),
            "not_ready_csv": report_link(conf, path),
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
    with store.connect() as db, acs.client() as client:
        result = push_skus(db, client, settings.load(), khaos_sku_master, acs_product_registry)
    context.add_output_metadata(
        {
            "queued": result.queued,
            "new": result.new,
            "changed": result.changed,
            "refused_invalid_code": result.refused_invalid_code,
            **dispatch_metadata(result.report),
        }
    )
    return result.frame


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


@asset_check(
    asset=ready_for_sale_skus,
    name="every_ready_sku_is_active_at_acs",
    additional_ins={"acs_product_registry": AssetIn("acs_product_registry")},
    metadata=owned_by("ecommerce"),
    # Not blocking: order release already holds an order whose SKU ACS refuses, and a block
    # would stop every order of the cycle for one SKU.
    description="Every SKU ready for sale is active at ACS, re-derived from ACS's registry "
    "(not from sku_mapping): the order flow trusts this table, so a SKU in it ACS cannot "
    "fulfil would have orders released for it. The SKUs are listed.",
)
def every_ready_sku_is_active_at_acs(
    ready_for_sale_skus: pd.DataFrame, acs_product_registry: pd.DataFrame
) -> AssetCheckResult:
    bad = ready_but_not_active(ready_for_sale_skus, acs_product_registry)
    return AssetCheckResult(
        passed=bad.empty,
        severity=AssetCheckSeverity.ERROR,
        metadata={"ready_not_active": len(bad), "skus": markdown_table(bad, limit=50)},
    )


@asset_check(
    asset=ready_for_sale_skus,
    name="not_ready_share_within_limit",
    additional_ins={"sku_mapping": AssetIn("sku_mapping")},
    metadata=owned_by("ecommerce"),
    description="At most products.not_ready_warn_above of the Khaos SKUs on sale (not "
    "discontinued) are not ready for sale at ACS; the first 50 with why (all of them in "
    "ready_for_sale_skus' CSV). A warning: it blocks nothing.",
)
def not_ready_share_within_limit(
    ready_for_sale_skus: pd.DataFrame, sku_mapping: pd.DataFrame, settings: SettingsResource
) -> AssetCheckResult:
    limit = settings.load().products.not_ready_warn_above
    selling = on_sale(sku_mapping)
    waiting = not_ready_for_sale(selling)
    share = len(waiting) / len(selling) if len(selling) else 0.0
    return AssetCheckResult(
        passed=share <= limit,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "not_ready": len(waiting),
            "on_sale": len(selling),
            "not_ready_share": round(share, 4),
            # A setting, not a measurement: text, so the UI does not plot it.
            "limit": MetadataValue.text(f"{limit:.0%} (products.not_ready_warn_above)"),
            "skus": markdown_table(waiting, limit=50),
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
    asset_checks=[
        no_invalid_code_pushed,
        web_coverage,
        every_ready_sku_is_active_at_acs,
        not_ready_share_within_limit,
    ],
    jobs=[product_sync_job],
    schedules=[product_sync_schedule],
)
