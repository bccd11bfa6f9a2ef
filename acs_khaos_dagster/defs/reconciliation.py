"""Reconciliation group: does the warehouse (ACS) agree with the ledger (Khaos)? (issue 9)

Dagster wiring only: each asset calls one flow of ``flows.reconciliation`` (which reads
both systems and the store, calls one rule of ``domain.reconciliation``, keeps the day's
table as Parquet and raises what it finds as ``drift`` exceptions) and attaches metadata
from its result. The storage layout is described in ``flows.reconciliation.storage``.

Partitioned by day (Europe/London); ``reconciliation_schedule`` runs yesterday at 02:30.
"""

from datetime import timedelta
from functools import partial
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import UK_TIME_ZONE
from acs_khaos_dagster.dagster_kit.checks import owned_by, partitioned_check
from acs_khaos_dagster.dagster_kit.results import check_result, metadata
from acs_khaos_dagster.dagster_kit.tables import table_type
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS
from acs_khaos_dagster.defs.partitions import RECONCILIATION_DAYS
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.flows import reconciliation as flow
from acs_khaos_dagster.flows import tables
from acs_khaos_dagster.flows.reconciliation import checks as rules
from acs_khaos_dagster.flows.reconciliation.returns import queue_figures
from acs_khaos_dagster.flows.stock_snapshot import sku_map_frame

GROUP = "reconciliation"
SCHEDULE_CRON = "30 2 * * *"

# Every asset of the group is one day's; most read other groups' tables from the store and
# files, not as inputs (their ``deps`` draw that as lineage).
daily_asset = partial(dg.asset, group_name=GROUP, partitions_def=RECONCILIATION_DAYS)
# Each check reads its own day's table as the flow kept it (the one the month-end pack
# reads too), so re-running it for a past day from the UI judges that day's data, not the
# newest; the rules are ``flows.reconciliation.checks``.
daily_check = partial(partitioned_check, partitions_def=RECONCILIATION_DAYS)


@daily_asset(
    kinds={"acs", "khaos", "parquet", "pandas"},
    dagster_type=table_type(tables.StockReconciliationSchema),
    deps=["acs_stock_snapshot", "khaos_stock_update"],
    pool="khaos_api",
    description="Per StockID × site: ACS's units (newest snapshot of the day, status policy) "
    "against Khaos's Level read now (Level vs Level), explained by timing (in_flight), by "
    "pushes never confirmed (push_missing), the rest unexplained; valued at CostPrice.",
)
def stock_reconciliation(
    context: dg.AssetExecutionContext,
    khaos_sku_master: pd.DataFrame,
    sku_mapping: pd.DataFrame,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> dg.Output[pd.DataFrame]:
    conf, day = settings.load(), context.partition_key
    sku_map = sku_map_frame(khaos_sku_master, sku_mapping)
    with store.connect() as db, khaos.client() as client:
        result = flow.reconcile_stock(db, client, conf, sku_map, day, integration_now(conf))
    return dg.Output(result.frame, metadata=metadata(result.figures()))


@daily_asset(
    kinds={"acs", "khaos", "parquet", "pandas"},
    dagster_type=table_type(tables.OrderStatusReconciliationSchema),
    deps=["acs_order_release", "acs_shipments"],
    pool="acs_api",
    description="Every open order the integration released: its status at ACS (GET orders) "
    "against Khaos (ExportOrderStatusEx) and the despatch events received: despatched with "
    "no event, cancelled on one side only, held or unknown at ACS.",
)
def order_status_reconciliation(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    acs: AcsApiResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> dg.Output[pd.DataFrame]:
    conf = settings.load()
    with store.connect() as db, acs.client() as ac, khaos.client() as kc:
        result = flow.reconcile_order_status(db, ac, kc, conf, context.partition_key)
    return dg.Output(result.table, metadata=metadata(result.figures()))


@daily_asset(
    kinds={"acs", "khaos", "parquet", "pandas"},
    dagster_type=table_type(tables.OrderToCashSchema),
    deps=["acs_shipments", "khaos_shipment_postings"],
    pool="khaos_api",
    description="Every ACS shipment (despatch feed, and GET orders for shipments whose event "
    "never came) against its confirmed Khaos posting and invoice, as at 23:59:59 UK on the "
    "day: despatched-not-posted (a fulfilment Khaos will never invoice), posted-not-invoiced, "
    "invoiced; ageing and the value waiting.",
)
def order_to_cash_reconciliation(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    acs: AcsApiResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> dg.Output[pd.DataFrame]:
    conf, day = settings.load(), context.partition_key
    with store.connect() as db, acs.client() as ac, khaos.client() as kc:
        result = flow.reconcile_order_to_cash(db, ac, kc, conf, day, integration_now(conf))
    return dg.Output(result.frame, metadata=metadata(result.figures()))


@daily_asset(
    kinds={"khaos", "parquet", "pandas"},
    dagster_type=table_type(tables.ReturnsReconciliationSchema),
    deps=["acs_returns", "khaos_return_postings", "khaos_write_offs"],
    pool="khaos_api",
    description="Each graded returned unit against Khaos: its customer return and credit "
    "(raised, pending review, none), BER/disposed units against write-offs (a write-off the "
    "outbox gave up on is missing), the 14-day refund clock and the value of credits pending.",
)
def returns_reconciliation(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> dg.Output[pd.DataFrame]:
    conf, day = settings.load(), context.partition_key
    with store.connect() as db, khaos.client() as client:
        result = flow.reconcile_returns(db, client, conf, day, integration_now(conf))
    return dg.Output(result.frame, metadata=metadata(result.figures()))


# --- the exception queue -----------------------------------------------------------------------


@daily_asset(
    kinds={"parquet", "pandas"},
    dagster_type=table_type(tables.IntegrationExceptionsSchema),
    # After the findings of the night are raised (the order-to-cash check is not blocking
    # for this reason: it would stop this table on the nights it matters most).
    deps=[
        stock_reconciliation,
        order_status_reconciliation,
        returns_reconciliation,
        "order_to_cash_reconciliation",
    ],
    description="The open exception queue by owner team and type: how many, the oldest, "
    "the owner's target age and how many are over it.",
)
def integration_exceptions(
    context: dg.AssetExecutionContext, settings: SettingsResource, store: StoreResource
) -> dg.Output[pd.DataFrame]:
    with store.connect() as db:
        frame = flow.exception_queue(db, settings.load(), context.partition_key)
    return dg.Output(frame, metadata=metadata(queue_figures(frame)))


# --- checks, one result per day ----------------------------------------------------------------


@daily_check(
    asset=stock_reconciliation,
    name="unexplained_stock_drift_within_tolerance",
    metadata=owned_by("finance"),
    description="No StockID × site differs beyond the variance tolerance (units and £) once "
    "timing and unconfirmed pushes are taken out. A warning: it blocks nothing.",
)
def unexplained_stock_drift_within_tolerance(
    context: dg.AssetCheckExecutionContext, settings: SettingsResource
) -> dg.AssetCheckResult:
    return check_result(rules.stock_drift_on(settings.load(), context.partition_key))


@daily_check(
    asset=order_to_cash_reconciliation,
    name="no_shipment_despatched_not_invoiced_too_long",
    metadata=owned_by("finance"),
    # Not blocking: the exception queue is downstream (it must count the night's
    # ``recon:cash`` findings), and a blocking failure would stop it on the very nights a
    # shipment is late, and fail every nightly run for an item that already has an owner.
    # The month-end pack shows these shipments in its order-to-cash sheet.
    description=f"No ACS shipment despatched more than {flow.NOT_INVOICED_AFTER_HOURS:g} h ago "
    "is still not posted or not invoiced in Khaos: each one is open in finance's queue and "
    "in the month-end pack's order-to-cash sheet.",
)
def no_shipment_despatched_not_invoiced_too_long(
    context: dg.AssetCheckExecutionContext, settings: SettingsResource
) -> dg.AssetCheckResult:
    return check_result(rules.late_shipments_on(settings.load(), context.partition_key))


@daily_check(
    asset=returns_reconciliation,
    name="no_ber_unit_without_write_off",
    metadata=owned_by("finance"),
    description="Every returned unit graded BER or disposed is written off in Khaos (a "
    "write-off adjustment for a hire unit, a write-off reason on a sale return).",
)
def no_ber_unit_without_write_off(
    context: dg.AssetCheckExecutionContext, settings: SettingsResource
) -> dg.AssetCheckResult:
    return check_result(rules.ber_write_offs_on(settings.load(), context.partition_key))


@daily_check(
    asset=integration_exceptions,
    name="no_exception_older_than_owner_target",
    metadata=owned_by("integration"),
    description="No open exception is older than its owner team's target age "
    "(settings.owner_targets). A warning: it blocks nothing.",
)
def no_exception_older_than_owner_target(
    context: dg.AssetCheckExecutionContext, settings: SettingsResource
) -> dg.AssetCheckResult:
    return check_result(rules.exception_ages_on(settings.load(), context.partition_key))


# --- job and schedule ---------------------------------------------------------------------------

RECONCILIATION_ASSETS = [
    stock_reconciliation,
    order_status_reconciliation,
    order_to_cash_reconciliation,
    returns_reconciliation,
    integration_exceptions,
]

reconciliation_job = dg.define_asset_job(
    "reconciliation_job",
    selection=dg.AssetSelection.assets(*RECONCILIATION_ASSETS),
    description="The nightly reconciliation of one day (Europe/London): stock, order status, "
    "order to cash, returns and the exception queue.",
)


@dg.schedule(
    name="reconciliation_schedule",
    job=reconciliation_job,
    cron_schedule=SCHEDULE_CRON,
    execution_timezone=UK_TIME_ZONE,
    default_status=SCHEDULE_STATUS,
    description="Every night at 02:30 UK time: reconcile the day just ended.",
)
def reconciliation_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick = context.scheduled_execution_time.astimezone(ZoneInfo(UK_TIME_ZONE))
    day = (tick.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=day, partition_key=day)


defs = dg.Definitions(
    assets=RECONCILIATION_ASSETS,
    asset_checks=[
        unexplained_stock_drift_within_tolerance,
        no_shipment_despatched_not_invoiced_too_long,
        no_ber_unit_without_write_off,
        no_exception_older_than_owner_target,
    ],
    jobs=[reconciliation_job],
    schedules=[reconciliation_schedule],
)
