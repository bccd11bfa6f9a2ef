"""Month end and audit (group ``reconciliation``): the finance month-end pack, its schedule
on the first working day of the month, and the workflow audit report.

Both assets are partitioned by month (Europe/London) and only *read* what the daily
reconciliation stored under ``<data_dir>/reconciliation/``; rebuilding a past month from
the UI gives the same figures for the same stored days.
"""

from collections.abc import Iterator
from datetime import time
from decimal import Decimal
from typing import Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Config,
    Definitions,
    Failure,
    MetadataValue,
    MonthlyPartitionsDefinition,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    schedule,
)

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import SettingsError, load_settings
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS
from acs_khaos_dagster.defs.common import markdown_table
from acs_khaos_dagster.defs.resources import KhaosApiResource, SettingsResource, StoreResource
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.domain.month_end import FINANCE_CALENDAR, month_closed_on
from acs_khaos_dagster.domain.sla import WorkingCalendar
from acs_khaos_dagster.flows.audit_report import build_audit_report
from acs_khaos_dagster.flows.month_end_pack import build_month_end_pack
from acs_khaos_dagster.reports.pack_registry import summary_markdown

UK_TIME_ZONE = "Europe/London"
MONTHS = MonthlyPartitionsDefinition(
    start_date="2026-01", timezone=UK_TIME_ZONE, end_offset=0, fmt="%Y-%m"
)
MONTH_END_AT = time(6, 0)


def _plain(value: int | Decimal) -> int | float:
    return value if isinstance(value, int) else float(value)


# --- the month-end pack ----------------------------------------------------------------------


class MonthEndConfig(Config):
    """``preview`` builds the pack while the month is open, as at its own moment (the end of
    the newest reconciled day, or now), marked PREVIEW on every sheet, file and page and
    written to its own files; the scheduled month-end run never does."""

    preview: bool = False


@asset(
    group_name="reconciliation",
    kinds={"excel", "html", "csv"},
    partitions_def=MONTHS,
    # Every day of the month's reconciliations (daily -> monthly).
    deps=[
        "stock_reconciliation",
        "order_status_reconciliation",
        "order_to_cash_reconciliation",
        "returns_reconciliation",
        "integration_exceptions",
    ],
    description="The finance month-end pack for one month (as at 23:59:59 UK time on its last "
    "day): an XLSX workbook, the same tables as CSVs and an HTML report, built from the stored "
    "daily reconciliation, with the cut-off accruals, the differences within tolerance and the "
    "month's stock adjustments. Refuses to build while a day of the month is not reconciled "
    "(unless asked for a preview).",
)
def month_end_pack(
    context: AssetExecutionContext,
    config: MonthEndConfig,
    settings: SettingsResource,
    store: StoreResource,
    khaos: KhaosApiResource,
) -> None:
    conf = settings.load()
    month = context.partition_key
    try:
        with store.connect() as db, khaos.client() as client:
            built = build_month_end_pack(
                conf, db, month, preview=config.preview, now=integration_now(conf), khaos=client
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
    files, tables = built.files, built.tables
    as_at = tables.as_at.astimezone(conf.tz).strftime("%d %b %Y %H:%M") if tables.as_at else ""
    metadata: dict[str, Any] = {
        # First, so a preview cannot be taken for the final pack on the asset's page.
        "pack": f"PREVIEW as at {as_at} (UK time) — not for posting"
        if config.preview
        else f"FINAL, as at the cut-off {as_at} (UK time)",
        "summary": MetadataValue.md(summary_markdown(files.summary)),
        "workbook": MetadataValue.url(files.workbook.resolve().as_uri()),
        "html": MetadataValue.url(files.html.resolve().as_uri()),
        "csv_folder": MetadataValue.url(files.workbook.parent.resolve().as_uri()),
        "month": month,
        "as_at": tables.as_at.isoformat() if tables.as_at else "",
        "csv_files": MetadataValue.json({k: str(v) for k, v in files.csvs.items()}),
    }
    metadata.update({key: _plain(value) for key, value in files.totals().items()})
    metadata["preview"] = config.preview
    metadata["days_not_reconciled"] = built.days_not_reconciled
    metadata["stock_rows"] = len(tables.stock_reconciliation)
    metadata["shipments"] = len(tables.order_to_cash)
    metadata["returned_units"] = len(tables.returns)
    context.add_output_metadata(metadata)


# --- the workflow audit report ---------------------------------------------------------------


@asset(
    group_name="reconciliation",
    kinds={"html", "csv"},
    partitions_def=MONTHS,
    # Every day of the month's reconciliations (daily -> monthly).
    deps=["order_status_reconciliation", "integration_exceptions"],
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
        "html": MetadataValue.path(str(files.html)),
        "csv_files": MetadataValue.json({k: str(v) for k, v in files.csvs.items()}),
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
    assets=[month_end_pack, workflow_audit_report],
    jobs=[month_end_job],
    schedules=[month_end_schedule],
)
