"""Month end and audit (group ``finance``): the finance month-end pack, its preview while
the month is open, its schedule on the first working day of the month, and the workflow
audit report.

The assets are partitioned by month (Europe/London) and only *read* what the daily
reconciliation stored under ``<data_dir>/reconciliation/`` (each month's partition
depends on every day of that month of the daily assets it reads); rebuilding a past month
from the UI gives the same figures for the same stored days. Their files are linked as
``/files/...`` URLs, which the webserver serves (``report_files``), with the folder's path
as text beside them.
"""

from collections.abc import Iterator
from datetime import time
from typing import Any

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetSelection,
    Definitions,
    Failure,
    MetadataValue,
    MonthlyPartitionsDefinition,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    TimeWindowPartitionMapping,
    asset,
    define_asset_job,
    schedule,
)

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import UK_TIME_ZONE, Settings, SettingsError, load_settings
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS
from acs_khaos_dagster.defs.common import markdown_table, report_link
from acs_khaos_dagster.defs.resources import KhaosApiResource, SettingsResource, StoreResource
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.domain.month_end import FINANCE_CALENDAR, month_closed_on
from acs_khaos_dagster.domain.sla import WorkingCalendar
from acs_khaos_dagster.flows.audit_report import build_audit_report
from acs_khaos_dagster.flows.month_end_pack import PackResult, build_month_end_pack
from acs_khaos_dagster.reports.pack_registry import metadata_figures, summary_markdown

# end_offset=1: the month still open is a partition, so finance can preview it; its final
# pack refuses to build until every day of it is reconciled.
MONTHS = MonthlyPartitionsDefinition(
    start_date="2026-01", timezone=UK_TIME_ZONE, end_offset=1, fmt="%Y-%m"
)
MONTH_END_AT = time(6, 0)
GROUP = "finance"
# A month's partition reads every daily partition inside it (daily -> monthly).
DAYS_OF_THE_MONTH = TimeWindowPartitionMapping()
# The run tag (and asset tag) that says which kind of pack a run built.
PACK_TAG = "month_end/pack"


def _days_of_the_month(*names: str) -> list[AssetDep]:
    return [AssetDep(name, partition_mapping=DAYS_OF_THE_MONTH) for name in names]


PACK_DEPS = _days_of_the_month(
    "stock_reconciliation",
    "order_status_reconciliation",
    "order_to_cash_reconciliation",
    "returns_reconciliation",
    "integration_exceptions",
)
# What the audit report reads: the days' stock tables and drift (stock), workflow events
# (order status) and exceptions, and the store's release, despatch and posting times,
# which the (unpartitioned) order release, ACS shipments and despatch postings write.
AUDIT_DEPS = [
    *_days_of_the_month(
        "stock_reconciliation", "order_status_reconciliation", "integration_exceptions"
    ),
    AssetDep("acs_order_release"),
    AssetDep("acs_shipments"),
    AssetDep("khaos_shipment_postings"),
]


# --- the month-end pack and its preview ------------------------------------------------------
# A preview is its own asset, not a materialisation of ``month_end_pack`` with a flag: a
# controller reads a month of ``month_end_pack`` shown as materialised (green) as "the pack
# for this month is final", and its latest materialisation as the figures to post. A
# preview built mid-month must change neither, so it lands on ``month_end_pack_preview``
# (its own files under ``preview/``), and its runs are tagged ``month_end/pack: preview``.


def _build_pack(
    context: AssetExecutionContext,
    settings: SettingsResource,
    store: StoreResource,
    khaos: KhaosApiResource,
    *,
    preview: bool,
) -> None:
    kind = "preview" if preview else "final"
    run = context.instance.get_run_by_id(context.run.run_id)  # as tagged so far, not at start
    if (run.tags if run else {}).get(PACK_TAG, kind) != kind:
        # The run's tag says which pack it built: one run builds one kind (not both, as a
        # "Materialize all" of the finance group would).
        raise Failure(description="build the final pack and its preview in separate runs")
    context.instance.add_run_tags(context.run.run_id, {PACK_TAG: kind})
    conf = settings.load()
    month = context.partition_key
    try:
        with store.connect() as db, khaos.client() as client:
            built = build_month_end_pack(
                conf, db, month, preview=preview, now=integration_now(conf), khaos=client
            )
    except me.MonthIncomplete as exc:
        raise Failure(
            description=str(exc),
            metadata={
                "missing_days": MetadataValue.json(
                    {d.isoformat(): tables for d, tables in sorted(exc.missing.items())}
                ),
                "missing_day_count": len(exc.missing),
            },
        ) from None
    context.add_output_metadata(_pack_metadata(conf, month, built, preview))


def _pack_metadata(conf: Settings, month: str, built: PackResult, preview: bool) -> dict:
    files, tables = built.files, built.tables
    as_at = tables.as_at.astimezone(conf.tz).strftime("%d %b %Y %H:%M") if tables.as_at else ""
    metadata: dict[str, Any] = {
        # First, so the kind of pack is the first thing read on the asset's page.
        "pack": f"PREVIEW as at {as_at} (UK time) — not for posting"
        if preview
        else f"FINAL, as at the cut-off {as_at} (UK time)",
        # What finance reads: every figure, in £ with pence.
        "summary": MetadataValue.md(summary_markdown(files.summary)),
        "workbook": report_link(conf, files.workbook),
        "html": report_link(conf, files.html),
        "csv_folder": report_link(conf, files.workbook.parent),
        "folder": MetadataValue.path(str(files.workbook.parent)),
        "month": month,
        "as_at": tables.as_at.isoformat() if tables.as_at else "",
        "days_not_reconciled": built.days_not_reconciled,
    }
    metadata.update(metadata_figures(files.summary))
    metadata["stock_rows"] = len(tables.stock_reconciliation)
    metadata["shipments"] = len(tables.order_to_cash)
    metadata["returned_units"] = len(tables.returns)
    return metadata


@asset(
    group_name=GROUP,
    kinds={"excel", "html", "csv"},
    partitions_def=MONTHS,
    deps=PACK_DEPS,
    tags={PACK_TAG: "final"},
    description="The finance month-end pack for one month (as at 23:59:59 UK time on its last "
    "day): an XLSX workbook, the same tables as CSVs and an HTML report, built from the stored "
    "daily reconciliation, with the cut-off accruals, the differences within tolerance and the "
    "month's stock adjustments. Refuses to build while a day of the month is not reconciled "
    "(month_end_pack_preview builds a preview meanwhile).",
)
def month_end_pack(
    context: AssetExecutionContext,
    settings: SettingsResource,
    store: StoreResource,
    khaos: KhaosApiResource,
) -> None:
    _build_pack(context, settings, store, khaos, preview=False)


@asset(
    group_name=GROUP,
    kinds={"excel", "html", "csv"},
    partitions_def=MONTHS,
    deps=PACK_DEPS,
    tags={PACK_TAG: "preview"},
    description="PREVIEW of the month-end pack while the month is open — not for posting: "
    "as at its own moment (the end of the newest reconciled day, or now), marked PREVIEW on "
    "every sheet, file and page, written to the month's preview/ folder. Never replaces or "
    "stands for month_end_pack.",
)
def month_end_pack_preview(
    context: AssetExecutionContext,
    settings: SettingsResource,
    store: StoreResource,
    khaos: KhaosApiResource,
) -> None:
    _build_pack(context, settings, store, khaos, preview=True)


# --- the workflow audit report ---------------------------------------------------------------


@asset(
    group_name=GROUP,
    kinds={"html", "csv"},
    partitions_def=MONTHS,
    deps=AUDIT_DEPS,
    description="The workflow audit for one month: release → despatch → posting → invoice "
    "latencies (p50/p95), exception rates by type and owner, the drift trend and the largest "
    "sources of delay, as an HTML page and CSVs.",
)
def workflow_audit_report(
    context: AssetExecutionContext, settings: SettingsResource, store: StoreResource
) -> None:
    conf = settings.load()
    month = context.partition_key
    with store.connect() as db:
        report = build_audit_report(db, conf, month, integration_now(conf))
    files = report.files
    metadata: dict[str, Any] = {
        "month": month,
        "html": report_link(conf, files.html),
        "csv_folder": report_link(conf, files.html.parent),
        "folder": MetadataValue.path(str(files.html.parent)),
        "orders": report.orders,
        "shipments": report.shipments,
        "exceptions_opened": report.exceptions_opened,
        "largest_delays": MetadataValue.md(
            "\n".join(f"- {name}" for name in files.largest_delays) or "_none_"
        ),
        "latency": markdown_table(files.latency_summary),
    }
    for row in files.latency_summary.itertuples(index=False):
        for quantile in ("p50_hours", "p95_hours"):
            value = getattr(row, quantile)
            if pd.notna(value):
                metadata[f"{row.step}_{quantile}"] = round(float(value), 2)
    context.add_output_metadata(metadata)


# --- the schedule ----------------------------------------------------------------------------


def _finance_calendar() -> WorkingCalendar:
    try:
        return load_settings().finance_calendar
    except SettingsError:
        return FINANCE_CALENDAR  # bad settings fail the run itself, with their message


month_end_job = define_asset_job(
    "month_end_job",
    selection=AssetSelection.assets(month_end_pack, workflow_audit_report),
    description="The month-end pack and the workflow audit report of one month.",
)
month_end_preview_job = define_asset_job(
    "month_end_preview_job",
    selection=AssetSelection.assets(month_end_pack_preview, workflow_audit_report),
    description="While a month is open: a PREVIEW of its pack and its audit report so far.",
)


@schedule(
    job=month_end_job,
    cron_schedule=f"{MONTH_END_AT.minute} {MONTH_END_AT.hour} * * *",
    execution_timezone=UK_TIME_ZONE,
    default_status=SCHEDULE_STATUS,
    description="On the first working day of each month (the finance calendar in settings: "
    "by default weekdays, England-and-Wales bank holidays excluded) build the month-end pack "
    "and audit report of the month just closed.",
)
def month_end_schedule(context: ScheduleEvaluationContext) -> Iterator[RunRequest | SkipReason]:
    when = context.scheduled_execution_time
    if when is None:  # only a hand-built context has no tick time
        yield SkipReason("no scheduled execution time")
        return
    calendar = _finance_calendar()
    local = when.astimezone(calendar.tz)
    month = month_closed_on(local.date(), calendar)
    if month is None:
        yield SkipReason(f"{local.date().isoformat()} is not the first working day of its month")
        return
    yield RunRequest(run_key=f"month_end:{month}", partition_key=month, tags={"month": month})


defs = Definitions(
    assets=[month_end_pack, month_end_pack_preview, workflow_audit_report],
    jobs=[month_end_job, month_end_preview_job],
    schedules=[month_end_schedule],
)
