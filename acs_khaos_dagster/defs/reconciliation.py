"""Reconciliation group: does the warehouse (ACS) agree with the ledger (Khaos)? (issue 9)

Dagster wiring only: each asset calls one flow of ``flows.reconciliation`` (which reads
both systems and the store, calls one rule of ``domain.reconciliation``, keeps the day's
table as Parquet and raises what it finds as ``drift`` exceptions) and attaches metadata
from its result. The storage layout is described in ``flows.reconciliation.storage``.

Partitioned by day (Europe/London); ``reconciliation_schedule`` runs yesterday at 02:30.
"""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Definitions,
    RunRequest,
    ScheduleEvaluationContext,
    asset,
    define_asset_job,
    schedule,
)

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import UK_TIME_ZONE
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS
from acs_khaos_dagster.defs.common import markdown_table
from acs_khaos_dagster.defs.partitions import RECONCILIATION_DAYS
from acs_khaos_dagster.defs.reconciliation_checks import RECONCILIATION_CHECKS
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.defs.tables import (
    IntegrationExceptionsType,
    OrderStatusReconciliationType,
    OrderToCashType,
    ReturnsReconciliationType,
    StockReconciliationType,
)
from acs_khaos_dagster.domain.reconciliation import (
    order_to_cash_ageing,
)
from acs_khaos_dagster.flows.reconciliation import (
    exception_queue,
    reconcile_order_status,
    reconcile_order_to_cash,
    reconcile_returns,
    reconcile_stock,
)
from acs_khaos_dagster.flows.stock_snapshot import sku_map_frame

GROUP = "reconciliation"
SCHEDULE_CRON = "30 2 * * *"


def _opened(**counts: int | None) -> dict[str, int]:
    """The open exceptions this run synced, per kind. A kind whose exceptions a newer day
    had synced already (this run changed none) is left out: the UI plots every number, so a
    stand-in such as -1 would read as a measurement."""
    return {name: int(count) for name, count in counts.items() if count is not None}


@asset(
    group_name=GROUP,
    kinds={"acs", "khaos", "parquet", "pandas"},
    dagster_type=StockReconciliationType,
    partitions_def=RECONCILIATION_DAYS,
    # Read from the store and files, not as inputs: drawn as lineage.
    deps=["acs_stock_snapshot", "khaos_stock_update"],
    pool="khaos_api",
    description="Per StockID × site: ACS's units (newest snapshot of the day, status policy) "
    "against Khaos's Level read now (Level vs Level), explained by timing (in_flight), by "
    "pushes never confirmed (push_missing), the rest unexplained; valued at CostPrice.",
)
def stock_reconciliation(
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
        result = reconcile_stock(
            db, client, conf, sku_map, context.partition_key, integration_now(conf)
        )
    frame = result.frame
    meta: dict = {"snapshot": result.snapshot}
    if result.levels_read_at is not None:
        meta["levels_read_at"] = result.levels_read_at.isoformat()
    context.add_output_metadata(
        {
            **meta,
            **result.counts(),
            **_opened(
                khaos_duplicates_open=result.khaos_duplicates_open, drift_open=result.drift_open
            ),
            "not_in_step": markdown_table(frame.loc[frame["classification"] != "in_step"]),
        }
    )
    return frame


@asset(
    group_name=GROUP,
    kinds={"acs", "khaos", "parquet", "pandas"},
    dagster_type=OrderStatusReconciliationType,
    partitions_def=RECONCILIATION_DAYS,
    # Read from the store and files, not as inputs: drawn as lineage.
    deps=["acs_order_release", "acs_shipments"],
    pool="acs_api",
    description="Every open order the integration released: its status at ACS (GET orders) "
    "against Khaos (ExportOrderStatusEx) and the despatch events received: despatched with "
    "no event, cancelled on one side only, held or unknown at ACS.",
)
def order_status_reconciliation(
    context: AssetExecutionContext,
    settings: SettingsResource,
    acs: AcsApiResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    with store.connect() as db, acs.client() as ac, khaos.client() as kc:
        result = reconcile_order_status(db, ac, kc, conf, context.partition_key)
    frame = result.frame
    context.add_output_metadata(
        {
            **result.counts(),
            **_opened(drift_open=result.drift_open),
            "mismatches": markdown_table(frame.loc[frame["mismatch"] != "in_step"]),
        }
    )
    return result.table


@asset(
    group_name=GROUP,
    kinds={"acs", "khaos", "parquet", "pandas"},
    dagster_type=OrderToCashType,
    partitions_def=RECONCILIATION_DAYS,
    # Read from the store and files, not as inputs: drawn as lineage.
    deps=["acs_shipments", "khaos_shipment_postings"],
    pool="khaos_api",
    description="Every ACS shipment (despatch feed, and GET orders for shipments whose event "
    "never came) against its confirmed Khaos posting and invoice, as at 23:59:59 UK on the "
    "day: despatched-not-posted (a fulfilment Khaos will never invoice), posted-not-invoiced, "
    "invoiced; ageing and the value waiting.",
)
def order_to_cash_reconciliation(
    context: AssetExecutionContext,
    settings: SettingsResource,
    acs: AcsApiResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    day, now = context.partition_key, integration_now(conf)
    with store.connect() as db, acs.client() as ac, khaos.client() as kc:
        result = reconcile_order_to_cash(db, ac, kc, conf, day, now)
    context.add_output_metadata(
        {
            "as_at": result.as_at.isoformat(),
            **result.counts(),
            **_opened(
                drift_open=result.drift_open, khaos_duplicates_open=result.khaos_duplicates_open
            ),
            "ageing": markdown_table(order_to_cash_ageing(result.frame)),
            "waiting": markdown_table(result.waiting),
        }
    )
    return result.frame


@asset(
    group_name=GROUP,
    kinds={"khaos", "parquet", "pandas"},
    dagster_type=ReturnsReconciliationType,
    partitions_def=RECONCILIATION_DAYS,
    # Read from the store and files, not as inputs: drawn as lineage.
    deps=["acs_returns", "khaos_return_postings", "khaos_write_offs"],
    pool="khaos_api",
    description="Each graded returned unit against Khaos: its customer return and credit "
    "(raised, pending review, none), BER/disposed units against write-offs (a write-off the "
    "outbox gave up on is missing), the 14-day refund clock and the value of credits pending.",
)
def returns_reconciliation(
    context: AssetExecutionContext,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    day, now = context.partition_key, integration_now(conf)
    with store.connect() as db, khaos.client() as client:
        result = reconcile_returns(db, client, conf, day, now)
    context.add_output_metadata(
        {
            **result.counts(),
            **_opened(
                drift_open=result.drift_open, khaos_duplicates_open=result.khaos_duplicates_open
            ),
            "problems": markdown_table(result.problems),
        }
    )
    return result.frame


# --- the exception queue -----------------------------------------------------------------------


@asset(
    group_name=GROUP,
    kinds={"parquet", "pandas"},
    dagster_type=IntegrationExceptionsType,
    partitions_def=RECONCILIATION_DAYS,
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
    context: AssetExecutionContext, settings: SettingsResource, store: StoreResource
) -> pd.DataFrame:
    conf = settings.load()
    with store.connect() as db:
        frame = exception_queue(db, conf, context.partition_key)
    per_owner = frame.groupby("owner")["count"].sum() if len(frame) else pd.Series(dtype=int)
    context.add_output_metadata(
        {
            "open_exceptions": int(frame["count"].sum()) if len(frame) else 0,
            "over_target": int(frame["over_target"].sum()) if len(frame) else 0,
            **{f"open_{owner}": int(n) for owner, n in per_owner.items()},
            "queue": markdown_table(frame, 40),
        }
    )
    return frame


# --- job and schedule ---------------------------------------------------------------------------

RECONCILIATION_ASSETS = [
    stock_reconciliation,
    order_status_reconciliation,
    order_to_cash_reconciliation,
    returns_reconciliation,
    integration_exceptions,
]

reconciliation_job = define_asset_job(
    "reconciliation_job",
    selection=AssetSelection.assets(*RECONCILIATION_ASSETS),
    description="The nightly reconciliation of one day (Europe/London): stock, order status, "
    "order to cash, returns and the exception queue.",
)


@schedule(
    name="reconciliation_schedule",
    job=reconciliation_job,
    cron_schedule=SCHEDULE_CRON,
    execution_timezone=UK_TIME_ZONE,
    default_status=SCHEDULE_STATUS,
    description="Every night at 02:30 UK time: reconcile the day just ended.",
)
def reconciliation_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    tick = context.scheduled_execution_time.astimezone(ZoneInfo(UK_TIME_ZONE))
    day = (tick.date() - timedelta(days=1)).isoformat()
    return RunRequest(run_key=day, partition_key=day)


defs = Definitions(
    assets=RECONCILIATION_ASSETS,
    asset_checks=RECONCILIATION_CHECKS,
    jobs=[reconciliation_job],
    schedules=[reconciliation_schedule],
)
