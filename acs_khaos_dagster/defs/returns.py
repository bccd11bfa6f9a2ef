"""Returns group: ACS graded returns to Khaos customer returns, credits and write-offs.

One mover per event (``shared/ARCHITECTURE.md``): a restocked sale return moves Khaos's
Level through its customer return's "return to stock" reason; a BER or disposed sale
return is posted with a write-off reason and never adjusted; only units still in Level
(hire units) are written off, or moved to resale, by adjustment. Every write to Khaos
goes through the outbox, recorded in the same transaction as the rows that planned it.

Dagster wiring only: the steps are ``flows.returns_intake``, ``flows.return_postings``,
``flows.return_moves``, ``flows.refund_clock`` and ``flows.hire``.
"""

import hashlib
import json
from collections import Counter

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetSelection,
    Definitions,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    define_asset_job,
    sensor,
)

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.connectors.acs.drop import open_drop
from acs_khaos_dagster.defs.automation import SENSOR_STATUS
from acs_khaos_dagster.defs.brand import brand_tags
from acs_khaos_dagster.defs.common import RUN_IN_PROGRESS, dispatch_metadata, markdown_table
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.defs.tables import (
    HireLifecycleType,
    RefundClockType,
    ReturnedUnitsType,
    ReturnPostingsType,
    ReturnStockMovesType,
)
from acs_khaos_dagster.domain.hire import HireStage
from acs_khaos_dagster.domain.returns import GRADES
from acs_khaos_dagster.flows.hire import (
    SNAPSHOT_FOLDERS,  # noqa: F401 (defs.hire's, tests')
    hire_lifecycle,
)
from acs_khaos_dagster.flows.refund_clock import run_refund_clock
from acs_khaos_dagster.flows.return_moves import (
    MOVE_PROBLEM_TYPES,
    moves_breaking_one_mover,
    post_write_offs,
    repair_cost_total,
)
from acs_khaos_dagster.flows.return_postings import (
    credit_figures,
    post_customer_returns,
)
from acs_khaos_dagster.flows.returns_intake import (
    RETURNS_FILE_GLOB,
    returns_files_news,
    take_in_returns,
)

# --- assets ----------------------------------------------------------------------------


@asset(
    group_name="returns",
    kinds={"acs", "csv", "pandas"},
    dagster_type=ReturnedUnitsType,
    description="Every returned unit ACS reported in returns_*.csv, keyed by (return_ref, "
    "unique_sku), with grade, action, reason, defects and repair cost. Each file is taken "
    "once (ledger); bad rows are quarantined in the store with their reasons.",
)
def acs_returns(
    context: AssetExecutionContext, settings: SettingsResource, store: StoreResource
) -> pd.DataFrame:
    conf = settings.load()
    with store.connect() as db, open_drop(conf) as drop:
        result = take_in_returns(db, drop, conf)
    table = result.table
    grades = Counter(table["grade"])
    context.add_output_metadata(
        {
            "files_processed": result.files_processed,
            "files_skipped": result.files_skipped,
            "files_failed": result.files_failed,
            "units_new": result.units_new,
            "units_corrected": result.units_corrected,
            "corrections_not_applied": result.corrections_not_applied,
            "rows_quarantined": result.rows_quarantined,
            "returned_units": len(table),
            **{f"units_grade_{g}": int(grades.get(g, 0)) for g in GRADES},
            "units_grade_unknown": int(sum(n for g, n in grades.items() if g not in GRADES)),
            "unexpected_returns": int(table["order_number"].isna().sum()),
            "repair_cost_total": round(float(table["repair_cost"].sum()), 2),
            "file_problems": markdown_table(pd.DataFrame({"problem": result.problems})),
        }
    )
    return table


@asset(
    group_name="returns",
    kinds={"khaos", "pandas"},
    dagster_type=ReturnPostingsType,
    pool="khaos_api",
    deps=[acs_returns],
    description="Returned sale units matched to their Khaos order lines and posted as "
    "customer returns (ImportCustomerReturns) through the outbox: one part per return, "
    "arrival batch and credit mode, credited at the line's UnitNet. Unmatched units and "
    "unknown grades are exceptions, never guesses.",
)
def khaos_return_postings(
    context: AssetExecutionContext,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    with store.connect() as db, khaos.client() as client:
        result = post_customer_returns(db, client, settings.load())
    table = result.table
    context.add_output_metadata(
        {
            "parts_queued": result.parts_queued,
            "units_posted": result.units_posted,
            "units_matched": result.units_matched,
            "units_unmatched": int(result.open_counts.get("return_unmatched", 0)),
            "units_unknown_grade": int(result.open_counts.get("unknown_grade", 0)),
            "return_parts": len(table),
            **credit_figures(table),
            **dispatch_metadata(result.report),
            "parts": markdown_table(
                table[["associated_ref", "credit_mode", "units", "credit_value", "state"]]
            ),
        }
    )
    return table


@asset(
    group_name="returns",
    kinds={"khaos", "pandas"},
    dagster_type=ReturnStockMovesType,
    pool="khaos_api",
    deps=[khaos_return_postings],
    description="Write-offs (WRITEOFF, at CostPrice) of BER or disposed units still in "
    "Khaos's Level (hire units) and ex-hire to resale (paired EXHIRE adjustments), through "
    "the outbox. A sale return is never adjusted: its customer return is the only mover. "
    "ACS repair costs are reported for finance, never added to stock value.",
)
def khaos_write_offs(
    context: AssetExecutionContext,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    with store.connect() as db, khaos.client() as client:
        result = post_write_offs(db, client, settings.load())
    table, write_offs, ex_hire_out = result.table, result.write_offs, result.ex_hire_out
    context.add_output_metadata(
        {
            "moves_queued": result.moves_queued,
            "units_written_off": len(write_offs) + result.sale_written_off,
            "units_written_off_by_adjustment": len(write_offs),
            "sale_units_written_off": result.sale_written_off,
            "write_off_value": round(float(write_offs["value"].sum()), 2),
            "ex_hired_to_resale": len(ex_hire_out),
            "ex_hire_value": round(float(ex_hire_out["value"].sum()), 2),
            "mapping_gaps": int(sum(result.open_counts.get(t, 0) for t in MOVE_PROBLEM_TYPES)),
            "repair_cost_total": repair_cost_total(result.repair_costs),
            "repair_costs_by_month": markdown_table(result.repair_costs),
            **dispatch_metadata(result.report),
            "moves": markdown_table(table[["group_ref", "kind", "value", "state"]]),
        }
    )
    return table


@asset(
    group_name="returns",
    kinds={"khaos", "pandas"},
    dagster_type=RefundClockType,
    pool="khaos_api",
    deps=[khaos_return_postings],
    description="The 14-day refund clock of each sale return part, with its credit status "
    "read back from Khaos; a refund_due exception (owner finance) opens before the deadline "
    "and closes itself once the credit is raised.",
)
def return_refund_clock(
    context: AssetExecutionContext,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    with store.connect() as db, khaos.client() as client:
        table = run_refund_clock(db, client, conf, integration_now(conf))
    context.add_output_metadata(
        {
            "sale_return_parts": len(table),
            "credits_raised": int((table["credit_status"] == "raised").sum()),
            "credits_pending_review": int((table["credit_status"] == "review").sum()),
            "refunds_due": int(table["due"].sum()),
            "refunds_breached": int(table["breached"].sum()),
            "due": markdown_table(table[table["due"]]),
        }
    )
    return table


@asset(
    name="hire_unit_lifecycle",
    group_name="returns",
    kinds={"acs", "pandas"},
    dagster_type=HireLifecycleType,
    pool="acs_api",
    deps=[khaos_write_offs],
    description="Per hire unit: where it is now (out, back, inspected, cleaned, ready, "
    "retired), since when, and its history, from the ACS unit snapshots kept by the stock "
    "flow and the hire returns ACS reported; each run folds only the snapshots and returns "
    "new since the last onto the lifecycle kept in the store.",
)
def hire_unit_lifecycle_table(
    context: AssetExecutionContext,
    settings: SettingsResource,
    acs: AcsApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    with store.connect() as db, acs.client() as client:
        result = hire_lifecycle(db, client, settings.load())
    lifecycle = result.lifecycle
    stages = Counter(lifecycle["stage"])
    context.add_output_metadata(
        {
            # This run's: the lifecycle is folded incrementally (flows.hire).
            "snapshots_read": result.snapshots_read,
            "snapshots_late": result.snapshots_late,
            "hire_units_rewritten": result.units_rewritten,
            "hire_units": len(lifecycle),
            **{f"hire_units_{s.value}": int(stages.get(s.value, 0)) for s in HireStage},
            "hire_returns": result.hire_returns,
            "sample": markdown_table(lifecycle, 10),
        }
    )
    return lifecycle


# --- checks ----------------------------------------------------------------------------


@asset_check(
    asset=khaos_write_offs,
    blocking=True,
    description="One mover per event: no returned sale unit is ever adjusted (its customer "
    "return moves Level), and no unit is written off twice.",
)
def no_sale_return_adjusted(
    khaos_write_offs: pd.DataFrame, store: StoreResource
) -> AssetCheckResult:
    with store.connect() as db:
        bad = moves_breaking_one_mover(db, khaos_write_offs)
    return AssetCheckResult(
        passed=bad.empty,
        metadata={"bad_moves": len(bad), "sample": markdown_table(bad)},
    )


@asset_check(
    asset=return_refund_clock,
    description="No sale return is past its 14-day refund deadline without a credit.",
)
def no_refund_breached(return_refund_clock: pd.DataFrame) -> AssetCheckResult:
    breached = return_refund_clock[return_refund_clock["breached"]]
    return AssetCheckResult(
        passed=breached.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={"breached": len(breached), "sample": markdown_table(breached)},
    )


# --- job and sensor --------------------------------------------------------------------

returns_job = define_asset_job(
    "returns_flow",
    selection=AssetSelection.groups("returns"),
    description="Take new ACS returns files, post customer returns and write-offs to Khaos, "
    "run the refund clock and the hire lifecycle.",
)


UNFINISHED_TAG = "acs_returns_unfinished"
UNFINISHED_RETRIES = 3


@sensor(
    job=returns_job,
    default_status=SENSOR_STATUS,
    minimum_interval_seconds=60,
    description="Starts the returns flow when a returns_*.csv the store's file ledger has not "
    "taken in is in the ACS drop. The cursor only remembers what was seen.",
)
def acs_returns_file_sensor(
    context: SensorEvaluationContext, settings: SettingsResource, store: StoreResource
) -> RunRequest | SkipReason:
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    with open_drop(settings.load()) as drop, store.connect() as db:
        news = returns_files_news(db, drop, seen)
    # Remember only files still there, so the cursor stays small.
    context.update_cursor(json.dumps(news.fingerprints))
    if news.new:
        run_key = hashlib.sha256("\n".join(news.new).encode()).hexdigest()[:24]
        return RunRequest(run_key=run_key, tags={"acs_returns_files": str(len(news.new))})
    stuck = list(news.stuck)
    if news.never_recorded and _a_returns_run_has_ended(context):
        stuck = sorted({*stuck, *news.never_recorded})
    if not stuck:
        return SkipReason(f"no {RETURNS_FILE_GLOB} in the ACS drop that is not taken in")
    return _retry_unfinished(context, stuck)


def _a_returns_run_has_ended(context: SensorEvaluationContext) -> bool:
    """A run for the files seen has come to an end (the daemon creates the run at the tick
    that asks for it, so none at all means it was never launched here)."""
    runs = context.instance.get_runs(
        filters=RunsFilter(job_name=returns_job.name, tags=brand_tags()), limit=1
    )
    return bool(runs) and runs[0].status not in RUN_IN_PROGRESS


def _retry_unfinished(
    context: SensorEvaluationContext, stuck: list[str]
) -> RunRequest | SkipReason:
    key = hashlib.sha256("\n".join(stuck).encode()).hexdigest()[:24]
    # Any returns run still on its way (the first for a file, or a retry of it) may yet
    # record the files: wait for it rather than start a second.
    live = context.instance.get_runs(
        filters=RunsFilter(
            job_name=returns_job.name, statuses=list(RUN_IN_PROGRESS), tags=brand_tags()
        ),
        limit=1,
    )
    if live:
        return SkipReason(f"a run is taking in {', '.join(stuck)}")
    runs = context.instance.get_runs(
        filters=RunsFilter(job_name=returns_job.name, tags={UNFINISHED_TAG: key, **brand_tags()})
    )
    if len(runs) >= UNFINISHED_RETRIES:
        return SkipReason(
            f"{', '.join(stuck)} still unfinished after {len(runs)} runs: see their failures"
        )
    return RunRequest(run_key=f"unfinished:{key}:{len(runs)}", tags={UNFINISHED_TAG: key})


defs = Definitions(
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
