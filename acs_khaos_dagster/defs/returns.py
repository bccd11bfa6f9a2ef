"""Returns group: ACS graded returns to Khaos customer returns, credits and write-offs.

One mover per event (``shared/ARCHITECTURE.md``): a restocked sale return moves Khaos's
Level through its customer return's "return to stock" reason; a BER or disposed sale
return is posted with a write-off reason and never adjusted; only units still in Level
(hire units) are written off, or moved to resale, by adjustment. Every write to Khaos
goes through the outbox, recorded in the same transaction as the rows that planned it.

Dagster wiring only: the steps are ``flows.returns_intake``, ``flows.return_postings``,
``flows.return_moves``, ``flows.refund_clock`` and ``flows.hire``.
"""

import json
from functools import partial

import dagster as dg
import pandas as pd

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.connectors.acs.drop import open_drop
from acs_khaos_dagster.dagster_kit.results import check_result, metadata
from acs_khaos_dagster.dagster_kit.runs import JobRuns
from acs_khaos_dagster.dagster_kit.tables import table_type
from acs_khaos_dagster.defs.automation import SENSOR_STATUS
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.flows import (
    refund_clock,
    return_moves,
    return_postings,
    returns_intake,
    tables,
)
from acs_khaos_dagster.flows.hire import SNAPSHOT_FOLDERS as SNAPSHOT_FOLDERS  # defs.hire's, tests'
from acs_khaos_dagster.flows.hire import hire_lifecycle
from acs_khaos_dagster.flows.returns_lifecycle import lifecycle_figures

# --- assets ----------------------------------------------------------------------------

returns_asset = partial(dg.asset, group_name="returns")
# The assets calling Khaos's API share its pool (dagster.yaml: one step at a time per API).
khaos_asset = partial(returns_asset, kinds={"khaos", "pandas"}, pool="khaos_api")


@returns_asset(
    kinds={"acs", "csv", "pandas"},
    dagster_type=table_type(tables.ReturnedUnitsSchema),
    description="Every returned unit ACS reported in returns_*.csv, keyed by (return_ref, "
    "unique_sku), with grade, action, reason, defects and repair cost. Each file is taken "
    "once (ledger); bad rows are quarantined in the store with their reasons.",
)
def acs_returns(settings: SettingsResource, store: StoreResource) -> dg.Output[pd.DataFrame]:
    conf = settings.load()
    with store.connect() as db, open_drop(conf) as drop:
        result = returns_intake.take_in_returns(db, drop, conf)
    return dg.Output(result.table, metadata=metadata(result.figures()))


@khaos_asset(
    dagster_type=table_type(tables.ReturnPostingsSchema),
    deps=[acs_returns],
    description="Returned sale units matched to their Khaos order lines and posted as "
    "customer returns (ImportCustomerReturns) through the outbox: one part per return, "
    "arrival batch and credit mode, credited at the line's UnitNet. Unmatched units and "
    "unknown grades are exceptions, never guesses.",
)
def khaos_return_postings(
    settings: SettingsResource, khaos: KhaosApiResource, store: StoreResource
) -> dg.Output[pd.DataFrame]:
    with store.connect() as db, khaos.client() as client:
        result = return_postings.post_customer_returns(db, client, settings.load())
    return dg.Output(result.table, metadata=metadata(result.figures()))


@khaos_asset(
    dagster_type=table_type(tables.ReturnStockMovesSchema),
    deps=[khaos_return_postings],
    description="Write-offs (WRITEOFF, at CostPrice) of BER or disposed units still in "
    "Khaos's Level (hire units) and ex-hire to resale (paired EXHIRE adjustments), through "
    "the outbox. A sale return is never adjusted: its customer return is the only mover. "
    "ACS repair costs are reported for finance, never added to stock value.",
)
def khaos_write_offs(
    settings: SettingsResource, khaos: KhaosApiResource, store: StoreResource
) -> dg.Output[pd.DataFrame]:
    with store.connect() as db, khaos.client() as client:
        result = return_moves.post_write_offs(db, client, settings.load())
    return dg.Output(result.table, metadata=metadata(result.figures()))


@khaos_asset(
    dagster_type=table_type(tables.RefundClockSchema),
    deps=[khaos_return_postings],
    description="The 14-day refund clock of each sale return part, with its credit status "
    "read back from Khaos; a refund_due exception (owner finance) opens before the deadline "
    "and closes itself once the credit is raised.",
)
def return_refund_clock(
    settings: SettingsResource, khaos: KhaosApiResource, store: StoreResource
) -> dg.Output[pd.DataFrame]:
    conf = settings.load()
    with store.connect() as db, khaos.client() as client:
        table = refund_clock.run_refund_clock(db, client, conf, integration_now(conf))
    return dg.Output(table, metadata=metadata(refund_clock.clock_figures(table)))


@returns_asset(
    name="hire_unit_lifecycle",
    kinds={"acs", "pandas"},
    dagster_type=table_type(tables.HireLifecycleSchema),
    pool="acs_api",
    deps=[khaos_write_offs],
    description="Per hire unit: where it is now (out, back, inspected, cleaned, ready, "
    "retired), since when, and its history, from the ACS unit snapshots kept by the stock "
    "flow and the hire returns ACS reported; each run folds only the snapshots and returns "
    "new since the last onto the lifecycle kept in the store.",
)
def hire_unit_lifecycle_table(
    settings: SettingsResource, acs: AcsApiResource, store: StoreResource
) -> dg.Output[pd.DataFrame]:
    with store.connect() as db, acs.client() as client:
        result = hire_lifecycle(db, client, settings.load())
    return dg.Output(result.lifecycle, metadata=metadata(lifecycle_figures(result)))


# --- checks ----------------------------------------------------------------------------


@dg.asset_check(
    asset=khaos_write_offs,
    blocking=True,
    description="One mover per event: no returned sale unit is ever adjusted (its customer "
    "return moves Level), and no unit is written off twice.",
)
def no_sale_return_adjusted(
    khaos_write_offs: pd.DataFrame, store: StoreResource
) -> dg.AssetCheckResult:
    with store.connect() as db:
        return check_result(return_moves.one_mover_per_event(db, khaos_write_offs))


@dg.asset_check(
    asset=return_refund_clock,
    description="No sale return is past its 14-day refund deadline without a credit.",
)
def no_refund_breached(return_refund_clock: pd.DataFrame) -> dg.AssetCheckResult:
    return check_result(refund_clock.no_refund_breached(return_refund_clock))


# --- job and sensor --------------------------------------------------------------------

returns_job = dg.define_asset_job(
    "returns_flow",
    selection=dg.AssetSelection.groups("returns"),
    description="Take new ACS returns files, post customer returns and write-offs to Khaos, "
    "run the refund clock and the hire lifecycle.",
)


@dg.sensor(
    job=returns_job,
    default_status=SENSOR_STATUS,
    minimum_interval_seconds=60,
    description="Starts the returns flow when a returns_*.csv the store's file ledger has not "
    "taken in is in the ACS drop. The cursor only remembers what was seen.",
)
def acs_returns_file_sensor(
    context: dg.SensorEvaluationContext, settings: SettingsResource, store: StoreResource
) -> dg.RunRequest | dg.SkipReason:
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    with open_drop(settings.load()) as drop, store.connect() as db:
        news = returns_intake.returns_files_news(db, drop, seen)
    # Remember only files still there, so the cursor stays small.
    context.update_cursor(json.dumps(news.fingerprints))
    answer = returns_intake.files_sensor_answer(news, JobRuns(context.instance, returns_job.name))
    if answer.run_key is None:
        return dg.SkipReason(answer.skip)
    return dg.RunRequest(run_key=answer.run_key, tags=answer.tags)


defs = dg.Definitions(
    assets=[
        acs_returns,
        khaos_return_postings,
        khaos_write_offs,
        return_refund_clock,
        hire_unit_lifecycle_table,
    ],
    asset_checks=[no_sale_return_adjusted, no_refund_breached],
    sensors=[acs_returns_file_sensor],
    jobs=[returns_job],
)
