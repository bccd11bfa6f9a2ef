"""Orders group: release to ACS, despatches back to Khaos, holds, cancellations, stuck orders.

Dagster wiring only: the steps are ``flows.order_release`` (with ``flows.order_cancel``),
``flows.despatch_postings`` and ``flows.order_sla``; ``flows.orders_figures`` their metadata.

- ``acs_order_release``: orders waiting at the release stage are validated against the
  SKUs ready for sale, sent to ACS (``PUT orders``) and, once ACS accepted them,
  acknowledged in Khaos (invoice moved to the acknowledgement stage). Orders cancelled
  in Khaos after release are cancelled at ACS.
- ``acs_shipments`` / ``khaos_shipment_postings``: the ACS despatch feed, its cursor in
  the store, and one ``ImportDespatch`` per shipment. ``acs_despatch_sensor`` starts
  ``despatch_posting_job`` when the feed has anything beyond the stored cursor.
- ``order_sla_breaches``: the stuck-order clock over the store's timestamps.
"""

import dagster as dg
import pandas as pd

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import OrderSettings, setting_at_load
from acs_khaos_dagster.dagster_kit.results import metadata
from acs_khaos_dagster.dagster_kit.runs import NOT_STARTED, RUN_IN_PROGRESS, JobRuns
from acs_khaos_dagster.dagster_kit.tables import table_type
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS, SENSOR_STATUS
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.flows import despatch_postings as despatch
from acs_khaos_dagster.flows import orders_figures as figures
from acs_khaos_dagster.flows import tables
from acs_khaos_dagster.flows.order_release import (
    ready_sku_map,
    release_cron,
    release_orders,
    released_orders,
)
from acs_khaos_dagster.flows.order_sla import check_order_sla

RELEASE_JOB = "order_release_job"
DESPATCH_JOB = "despatch_posting_job"
# Tag carrying the stored feed cursor a despatch run was started for.
CURSOR_TAG = "acs_khaos/despatch_cursor"


# --- order release ---------------------------------------------------------------------------


@dg.asset(
    group_name="orders",
    kinds={"khaos", "pandas"},
    dagster_type=table_type(tables.ReleasedOrderLinesSchema),
    pool="khaos_api",
    description="Lines of orders whose invoice waits at the release stage "
    "for the sites ACS fulfils.",
)
def khaos_released_orders(
    settings: SettingsResource, khaos: KhaosApiResource
) -> dg.Output[pd.DataFrame]:
    with khaos.client() as client:
        frame = released_orders(settings.load(), client)
    return dg.Output(frame, metadata=metadata(figures.released_lines_figures(frame)))


@dg.asset(
    group_name="orders",
    kinds={"acs", "khaos", "pandas"},
    dagster_type=table_type(tables.OrderReleaseSchema),
    pool="acs_api",
    description="Orders sent to ACS, held for SKUs, cancelled and acknowledged in Khaos this run.",
)
def acs_order_release(
    khaos_released_orders: pd.DataFrame,
    sku_mapping: pd.DataFrame,
    ready_for_sale_skus: pd.DataFrame,
    settings: SettingsResource,
    acs: AcsApiResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> dg.Output[pd.DataFrame]:
    conf = settings.load()
    ready = ready_sku_map(sku_mapping, ready_for_sale_skus)
    with store.connect() as db, khaos.client() as kc, acs.client() as ac:
        result = release_orders(
            db, ac, kc, conf, integration_now(conf), khaos_released_orders, ready
        )
    return dg.Output(result.frame, metadata=metadata(figures.release_figures(result)))


# --- despatch back ---------------------------------------------------------------------------


@dg.asset(
    group_name="orders",
    kinds={"acs", "pandas"},
    dagster_type=table_type(tables.ShipmentsSchema),
    pool="acs_api",
    description="ACS shipments read from the despatch feed this run (one row per shipment); "
    "the feed cursor is kept in the store and moves with the events it covers.",
)
def acs_shipments(
    settings: SettingsResource, acs: AcsApiResource, store: StoreResource
) -> dg.Output[pd.DataFrame]:
    with store.connect() as db, acs.client() as client:
        intake = despatch.read_despatch_feed(db, client, settings.load())
    frame = despatch.shipments_frame(intake)
    return dg.Output(frame, metadata=metadata(figures.shipments_figures(intake, frame)))


@dg.asset(
    group_name="orders",
    kinds={"khaos", "pandas"},
    dagster_type=table_type(tables.ShipmentPostingsSchema),
    pool="khaos_api",
    deps=[acs_shipments],
    description="Each ACS shipment posted to Khaos as one ImportDespatch (keyed by the ACS "
    "shipment id) through the outbox; problems and short closures are exceptions.",
)
def khaos_shipment_postings(
    settings: SettingsResource, khaos: KhaosApiResource, store: StoreResource
) -> dg.Output[pd.DataFrame]:
    with store.connect() as db, khaos.client() as kc:
        result = despatch.post_shipments(db, kc, settings.load())
    return dg.Output(result.frame, metadata=metadata(figures.postings_figures(result)))


# --- stuck orders ----------------------------------------------------------------------------


@dg.asset(
    group_name="orders",
    kinds={"pandas"},
    dagster_type=table_type(tables.SlaBreachesSchema),
    deps=[acs_order_release],
    description="Orders past the agreed turnaround (warehouse working time), left at the "
    "release stage, or waiting too long in back order; each an exception for operations.",
)
def order_sla_breaches(settings: SettingsResource, store: StoreResource) -> dg.Output[pd.DataFrame]:
    conf = settings.load()
    with store.connect() as db:
        result = check_order_sla(db, conf, integration_now(conf))
    return dg.Output(result.frame, metadata=metadata(figures.sla_figures(result)))


# --- jobs, sensor, schedule ------------------------------------------------------------------


RELEASE_ASSETS = [khaos_released_orders, acs_order_release, order_sla_breaches]
DESPATCH_ASSETS = [acs_shipments, khaos_shipment_postings]

order_release_job = dg.define_asset_job(
    RELEASE_JOB,
    selection=dg.AssetSelection.assets(*RELEASE_ASSETS),
    description="Release waiting orders to ACS, cancel, acknowledge, and check the SLA clock.",
)

despatch_posting_job = dg.define_asset_job(
    DESPATCH_JOB,
    selection=dg.AssetSelection.assets(*DESPATCH_ASSETS),
    description="Read the ACS despatch feed from the stored cursor and post each shipment.",
)

# Intervals are fixed when the code location loads; bad settings fail each run later,
# naming the setting. Any other error is a bug and stops the location loading.
_ORDER_SETTINGS = setting_at_load(lambda s: s.orders, OrderSettings())

order_release_schedule = dg.ScheduleDefinition(
    name="order_release_schedule",
    job=order_release_job,
    cron_schedule=release_cron(_ORDER_SETTINGS.release_interval_s),
    execution_timezone="Europe/London",
    default_status=SCHEDULE_STATUS,
    description="How often outbound orders post to ACS (settings.orders.release_interval_s).",
)

_LIVE = (*RUN_IN_PROGRESS, dg.DagsterRunStatus.SUCCESS)


@dg.sensor(
    job=despatch_posting_job,
    minimum_interval_seconds=_ORDER_SETTINGS.despatch_sensor_interval_s,
    default_status=SENSOR_STATUS,
    description="Starts one despatch posting run when the ACS feed has events the "
    "integration's database has not recorded yet, beyond or on the page of its stored "
    "cursor (the run reads and posts them itself).",
)
def acs_despatch_sensor(
    context: dg.SensorEvaluationContext,
    settings: SettingsResource,
    acs: AcsApiResource,
    store: StoreResource,
) -> dg.SensorResult | dg.SkipReason:
    # A run not started yet reads the feed from the stored cursor to its end when it
    # starts: another run for events that arrived meanwhile would find nothing, and on a
    # one-run instance its start would delay the next despatch by seconds.
    despatch_runs = JobRuns(context.instance, DESPATCH_JOB)
    if waiting := despatch_runs.find(NOT_STARTED, limit=1):
        run = waiting[0].run_id
        return dg.SkipReason(f"despatch run {run} has not started yet: it takes these")
    with store.connect() as db, acs.client() as client:
        news = despatch.unrecorded_despatches(db, client, settings.load().orders.despatch_page_size)
    if why_not := news.nothing_new():
        return dg.SkipReason(why_not)
    tag = news.tag
    runs = despatch_runs.find(tags={CURSOR_TAG: tag})
    if any(run.status in _LIVE for run in runs):
        return dg.SkipReason(f"a run for stored cursor {tag} is already on its way")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=news.run_key(len(runs)), tags={CURSOR_TAG: tag})],
        cursor=tag,
    )


defs = dg.Definitions(
    assets=[*RELEASE_ASSETS, *DESPATCH_ASSETS],
    jobs=[order_release_job, despatch_posting_job],
    schedules=[order_release_schedule],
    sensors=[acs_despatch_sensor],
)
