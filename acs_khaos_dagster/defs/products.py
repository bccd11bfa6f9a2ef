"""Products group: Khaos SKU master to ACS, the mapping report, and what is ready for sale.

Khaos is the single source of truth for SKUs. A SKU is ready for sale only once
ACS confirms it active with matching attributes; pushes go through the outbox and
activation is never waited for inside a run.
"""

import dagster as dg
import pandas as pd

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import UK_TIME_ZONE, ProductSettings, setting_at_load
from acs_khaos_dagster.dagster_kit.checks import owned_by
from acs_khaos_dagster.dagster_kit.results import check_result, metadata
from acs_khaos_dagster.dagster_kit.tables import table_type
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.domain.sku_mapping import acs_registry_frame
from acs_khaos_dagster.flows import products_checks as rules
from acs_khaos_dagster.flows import products_mapping as mapping
from acs_khaos_dagster.flows import tables
from acs_khaos_dagster.flows.products import push_skus, sync_sku_master


class SkuMasterConfig(dg.Config):
    """``full_refresh`` re-reads every stock item instead of those changed since the watermark."""

    full_refresh: bool = False


@dg.asset(
    group_name="products",
    kinds={"khaos", "pandas"},
    dagster_type=table_type(tables.SkuMasterSchema),
    pool="khaos_api",
    description="Khaos stock items (style parents and their colour/size children) keyed by "
    "the stable StockID, fetched incrementally since the stored watermark.",
)
def khaos_sku_master(
    config: SkuMasterConfig,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> dg.Output[pd.DataFrame]:
    conf = settings.load()
    with store.connect() as db, khaos.client() as client:
        result = sync_sku_master(
            db, client, conf, integration_now(conf), full_refresh=config.full_refresh
        )
    return dg.Output(result.frame, metadata=metadata(result.figures()))


@dg.asset(
    group_name="products",
    kinds={"acs", "pandas"},
    dagster_type=table_type(tables.AcsRegistrySchema),
    pool="acs_api",
    description="The SKU registry as ACS holds it, with each SKU's status (active, pending, "
    "inactive).",
)
def acs_product_registry(acs: AcsApiResource) -> dg.Output[pd.DataFrame]:
    with acs.client() as client:
        registry = acs_registry_frame(client.iter_products())
    return dg.Output(registry, metadata=metadata(mapping.registry_figures(registry)))


@dg.asset(
    group_name="products",
    kinds={"pandas"},
    dagster_type=table_type(tables.SkuMappingSchema),
    description="One row per SKU with its classification (matched, missing, pending, inactive, "
    "attribute mismatch, unknown to Khaos, invalid code, renamed, discontinued).",
)
def sku_mapping(
    khaos_sku_master: pd.DataFrame, acs_product_registry: pd.DataFrame, store: StoreResource
) -> dg.Output[pd.DataFrame]:
    with store.connect() as db:
        result = mapping.map_skus(db, khaos_sku_master, acs_product_registry)
    return dg.Output(result.frame, metadata=metadata(result.figures()))


@dg.asset(
    group_name="products",
    kinds={"pandas"},
    dagster_type=table_type(tables.ReadyForSaleSchema),
    description="SKUs active at ACS with matching attributes: what the order and stock flows use.",
)
def ready_for_sale_skus(
    sku_mapping: pd.DataFrame, settings: SettingsResource
) -> dg.Output[pd.DataFrame]:
    conf = settings.load()
    result = mapping.ready_for_sale_skus(conf, sku_mapping)
    return dg.Output(result.ready, metadata=metadata(result.figures(conf)))


@dg.asset(
    group_name="products",
    kinds={"acs", "pandas"},
    dagster_type=table_type(tables.SkuPushSchema),
    pool="acs_api",
    deps=["sku_mapping"],
    description="New or changed SKUs sent to ACS through the outbox, keyed by their content so "
    "an unchanged SKU is never re-sent. Invalid codes are never sent.",
)
def acs_sku_push(
    khaos_sku_master: pd.DataFrame,
    acs_product_registry: pd.DataFrame,
    settings: SettingsResource,
    acs: AcsApiResource,
    store: StoreResource,
) -> dg.Output[pd.DataFrame]:
    with store.connect() as db, acs.client() as client:
        result = push_skus(db, client, settings.load(), khaos_sku_master, acs_product_registry)
    return dg.Output(result.frame, metadata=metadata(result.figures()))


@dg.asset_check(
    asset=acs_sku_push,
    blocking=True,
    description="No SKU whose code breaks the Khaos/ACS rules was sent to ACS.",
)
def no_invalid_code_pushed(acs_sku_push: pd.DataFrame) -> dg.AssetCheckResult:
    return check_result(rules.no_invalid_code_pushed(acs_sku_push))


@dg.asset_check(
    asset=dg.AssetKey("sku_mapping"),
    description="Share of web-published Khaos SKUs that are ready for sale at ACS "
    "(warns under the configured threshold).",
)
def web_coverage(sku_mapping: pd.DataFrame, settings: SettingsResource) -> dg.AssetCheckResult:
    return check_result(rules.web_coverage(settings.load(), sku_mapping))


@dg.asset_check(
    asset=ready_for_sale_skus,
    name="every_ready_sku_is_active_at_acs",
    additional_ins={"acs_product_registry": dg.AssetIn("acs_product_registry")},
    metadata=owned_by("ecommerce"),
    # Not blocking: order release already holds an order whose SKU ACS refuses, and a block
    # would stop every order of the cycle for one SKU.
    description="Every SKU ready for sale is active at ACS, re-derived from ACS's registry "
    "(not from sku_mapping): the order flow trusts this table, so a SKU in it ACS cannot "
    "fulfil would have orders released for it. The SKUs are listed.",
)
def every_ready_sku_is_active_at_acs(
    ready_for_sale_skus: pd.DataFrame, acs_product_registry: pd.DataFrame
) -> dg.AssetCheckResult:
    return check_result(rules.ready_skus_active_at_acs(ready_for_sale_skus, acs_product_registry))


@dg.asset_check(
    asset=ready_for_sale_skus,
    name="not_ready_share_within_limit",
    additional_ins={"sku_mapping": dg.AssetIn("sku_mapping")},
    metadata=owned_by("ecommerce"),
    description="At most products.not_ready_warn_above of the Khaos SKUs on sale (not "
    "discontinued) are not ready for sale at ACS; the first 50 with why (all of them in "
    "ready_for_sale_skus' CSV). A warning: it blocks nothing.",
)
def not_ready_share_within_limit(
    ready_for_sale_skus: pd.DataFrame, sku_mapping: pd.DataFrame, settings: SettingsResource
) -> dg.AssetCheckResult:
    return check_result(rules.not_ready_share_within_limit(settings.load(), sku_mapping))


product_sync_job = dg.define_asset_job(
    "product_sync_job",
    selection=dg.AssetSelection.groups("products"),
    description="Read Khaos's SKU master, push new and changed SKUs to ACS, refresh which "
    "SKUs are ready for sale.",
)


product_sync_schedule = dg.ScheduleDefinition(
    name="product_sync_schedule",
    job=product_sync_job,
    cron_schedule=setting_at_load(lambda s: s.products.sync_cron, ProductSettings().sync_cron),
    execution_timezone=UK_TIME_ZONE,
    default_status=SCHEDULE_STATUS,
    description="The product sync (settings.products.sync_cron, UK time).",
)

defs = dg.Definitions(
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
