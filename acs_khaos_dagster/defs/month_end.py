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
from functools import partial

import dagster as dg

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import UK_TIME_ZONE
from acs_khaos_dagster.dagster_kit.results import metadata
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS
from acs_khaos_dagster.defs.resources import KhaosApiResource, SettingsResource, StoreResource
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.flows.audit_report import build_audit_report
from acs_khaos_dagster.flows.month_end_due import finance_calendar, month_due
from acs_khaos_dagster.flows.month_end_pack import build_month_end_pack, missing_figures

# end_offset=1: the month still open is a partition, so finance can preview it; its final
# pack refuses to build until every day of it is reconciled.
MONTHS = dg.MonthlyPartitionsDefinition(
    start_date="2026-01", timezone=UK_TIME_ZONE, end_offset=1, fmt="%Y-%m"
)
MONTH_END_AT = time(6, 0)
GROUP = "finance"
# A month's partition reads every daily partition inside it (daily -> monthly).
DAYS_OF_THE_MONTH = dg.TimeWindowPartitionMapping()
# The run tag (and asset tag) that says which kind of pack a run built.
PACK_TAG = "month_end/pack"
# Every asset of the group: one per month.
month_asset = partial(dg.asset, group_name=GROUP, partitions_def=MONTHS)


def _days_of_the_month(*names: str) -> list[dg.AssetDep]:
    return [dg.AssetDep(name, partition_mapping=DAYS_OF_THE_MONTH) for name in names]


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
    dg.AssetDep("acs_order_release"),
    dg.AssetDep("acs_shipments"),
    dg.AssetDep("khaos_shipment_postings"),
]


# --- the month-end pack and its preview ------------------------------------------------------
# A preview is its own asset, not a materialisation of ``month_end_pack`` with a flag: a
# controller reads a month of ``month_end_pack`` shown as materialised (green) as "the pack
# for this month is final", and its latest materialisation as the figures to post. A
# preview built mid-month must change neither, so it lands on ``month_end_pack_preview``
# (its own files under ``preview/``), and its runs are tagged ``month_end/pack: preview``.


def _pack_asset(name: str, kind: str, description: str) -> dg.AssetsDefinition:
    """The final pack (``kind`` "final") or its preview: the same build, its own asset."""

    @month_asset(
        name=name,
        kinds={"excel", "html", "csv"},
        deps=PACK_DEPS,
        tags={PACK_TAG: kind},
        description=description,
    )
    def pack(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        store: StoreResource,
        khaos: KhaosApiResource,
    ) -> None:
        run = context.instance.get_run_by_id(context.run.run_id)  # as tagged so far
        if (run.tags if run else {}).get(PACK_TAG, kind) != kind:
            # The run's tag says which pack it built: one run builds one kind (not both, as
            # a "Materialize all" of the finance group would).
            raise dg.Failure(description="build the final pack and its preview in separate runs")
        context.instance.add_run_tags(context.run.run_id, {PACK_TAG: kind})
        conf, month, preview = settings.load(), context.partition_key, kind == "preview"
        try:
            with store.connect() as db, khaos.client() as client:
                built = build_month_end_pack(
                    conf, db, month, preview=preview, now=integration_now(conf), khaos=client
                )
        except me.MonthIncomplete as exc:
            raise dg.Failure(str(exc), metadata=metadata(missing_figures(exc))) from None
        context.add_output_metadata(metadata(built.figures(conf, month, preview)))

    return pack


month_end_pack = _pack_asset(
    "month_end_pack",
    "final",
    "The finance month-end pack for one month (as at 23:59:59 UK time on its last "
    "day): an XLSX workbook, the same tables as CSVs and an HTML report, built from the stored "
    "daily reconciliation, with the cut-off accruals, the differences within tolerance and the "
    "month's stock adjustments. Refuses to build while a day of the month is not reconciled "
    "(month_end_pack_preview builds a preview meanwhile).",
)
month_end_pack_preview = _pack_asset(
    "month_end_pack_preview",
    "preview",
    "PREVIEW of the month-end pack while the month is open — not for posting: "
    "as at its own moment (the end of the newest reconciled day, or now), marked PREVIEW on "
    "every sheet, file and page, written to the month's preview/ folder. Never replaces or "
    "stands for month_end_pack.",
)


# --- the workflow audit report ---------------------------------------------------------------


@month_asset(
    kinds={"html", "csv"},
    deps=AUDIT_DEPS,
    description="The workflow audit for one month: release → despatch → posting → invoice "
    "latencies (p50/p95), exception rates by type and owner, the drift trend and the largest "
    "sources of delay, as an HTML page and CSVs.",
)
def workflow_audit_report(
    context: dg.AssetExecutionContext, settings: SettingsResource, store: StoreResource
) -> None:
    conf = settings.load()
    with store.connect() as db:
        report = build_audit_report(db, conf, context.partition_key, integration_now(conf))
    context.add_output_metadata(metadata(report.figures(conf, context.partition_key)))


# --- the schedule ----------------------------------------------------------------------------

month_end_job = dg.define_asset_job(
    "month_end_job",
    selection=dg.AssetSelection.assets(month_end_pack, workflow_audit_report),
    description="The month-end pack and the workflow audit report of one month.",
)
month_end_preview_job = dg.define_asset_job(
    "month_end_preview_job",
    selection=dg.AssetSelection.assets(month_end_pack_preview, workflow_audit_report),
    description="While a month is open: a PREVIEW of its pack and its audit report so far.",
)


@dg.schedule(
    job=month_end_job,
    cron_schedule=f"{MONTH_END_AT.minute} {MONTH_END_AT.hour} * * *",
    execution_timezone=UK_TIME_ZONE,
    default_status=SCHEDULE_STATUS,
    description="On the first working day of each month (the finance calendar in settings: "
    "by default weekdays, England-and-Wales bank holidays excluded) build the month-end pack "
    "and audit report of the month just closed.",
)
def month_end_schedule(
    context: dg.ScheduleEvaluationContext,
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    month, why_not = month_due(context.scheduled_execution_time, finance_calendar())
    if month is None:
        yield dg.SkipReason(why_not)
    else:
        yield dg.RunRequest(
            run_key=f"month_end:{month}", partition_key=month, tags={"month": month}
        )


defs = dg.Definitions(
    assets=[month_end_pack, month_end_pack_preview, workflow_audit_report],
    jobs=[month_end_job, month_end_preview_job],
    schedules=[month_end_schedule],
)
