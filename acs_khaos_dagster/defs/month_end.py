"""Month end and audit (group ``reconciliation``): the finance month-end pack, its schedule
on the first working day of the month, and the workflow audit report.

Both assets are partitioned by month (Europe/London) and only *read* what the daily
reconciliation stored under ``<data_dir>/reconciliation/``; rebuilding a past month from
the UI gives the same figures for the same stored days.
"""

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Config,
    DefaultScheduleStatus,
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
from sqlalchemy import select

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import Settings, SettingsError, load_settings
from acs_khaos_dagster.defs.common import markdown_table
from acs_khaos_dagster.defs.resources import KhaosApiResource, SettingsResource, StoreResource
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.domain.sla import WorkingCalendar
from acs_khaos_dagster.flows.month_end_extras import extra_pack_sheets, hire_stock_ids, without_hire
from acs_khaos_dagster.reports import MonthEndInputs, render_audit_report, render_month_end_pack
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.tables.orders import DespatchEventRow

UK_TIME_ZONE = "Europe/London"
MONTHS = MonthlyPartitionsDefinition(
    start_date="2026-01", timezone=UK_TIME_ZONE, end_offset=0, fmt="%Y-%m"
)
# The default finance calendar: weekdays that are not England-and-Wales bank holidays.
# The brand sets its own in settings (``finance_calendar``); the schedule reads it at
# each tick.
FINANCE_CALENDAR = WorkingCalendar(holiday_country="GB", holiday_subdivision="ENG")
MONTH_END_AT = time(6, 0)
RECONCILIATION_DIR = "reconciliation"


# --- reading the stored daily reconciliation -------------------------------------------------


def reconciliation_dir(settings: Settings) -> Path:
    return settings.data_dir / RECONCILIATION_DIR


def stored_days(folder: Path, table: str, month: str) -> dict[date, Path]:
    """``<folder>/<table>/<YYYY-MM-DD>.parquet`` files of the month, by day."""
    found: dict[date, Path] = {}
    for path in sorted((folder / table).glob(f"{month}-??.parquet")):
        try:
            found[date.fromisoformat(path.stem)] = path
        except ValueError:
            continue
    return found


def read_month(settings: Settings, month: str) -> dict[str, dict[date, pd.DataFrame]]:
    """Every stored daily table of the month, ``[table][day] -> frame``."""
    folder = reconciliation_dir(settings)
    return {
        table: {
            day: pd.read_parquet(path) for day, path in stored_days(folder, table, month).items()
        }
        for table in me.DAILY_TABLES
    }


def _read_optional(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


def sku_master(settings: Settings) -> pd.DataFrame | None:
    return _read_optional(settings.data_dir / "products" / "sku_master.parquet")


def cost_prices(settings: Settings) -> dict[int, float]:
    """StockID → CostPrice from the products flow's SKU master, when it has run."""
    master = sku_master(settings)
    if master is None or master.empty:
        return {}
    return dict(
        zip(master["stock_id"].astype(int), master["cost_price"].astype(float), strict=True)
    )


def _plain(value: int | Decimal) -> int | float:
    return value if isinstance(value, int) else float(value)


# --- the month-end pack ----------------------------------------------------------------------


class MonthEndConfig(Config):
    """``preview`` builds the pack before every day of the month is reconciled, as at the
    newest reconciled day, and says so on the pack; the scheduled month-end run never does."""

    preview: bool = False


@asset(
    group_name="reconciliation",
    kinds={"excel", "html", "csv"},
    partitions_def=MONTHS,
    description="The finance month-end pack for one month (as at 23:59:59 UK time on its last "
    "day): an XLSX workbook, the same tables as CSVs and an HTML report, built from the stored "
    "daily reconciliation. Refuses to build while a day of the month is not reconciled.",
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
    daily = read_month(conf, month)
    drift = _read_optional(reconciliation_dir(conf) / "drift_by_day.parquet")
    hire_ids = hire_stock_ids(sku_master(conf))
    try:
        tables = me.month_tables(
            month,
            daily,
            drift,
            selling_site_ids=[conf.khaos.sites.selling],
            cost_prices=cost_prices(conf),
            preview=config.preview,
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
    missing = me.missing_days(
        month, {table: daily.get(table, {}).keys() for table in me.DAILY_TABLES}
    )
    label = conf.acs.account_code
    if missing:
        label += f" (PREVIEW: {len(missing)} day(s) of the month not reconciled yet)"
    stock = tables.stock_reconciliation
    tables = replace(
        tables,
        non_sellable_value=me.non_sellable_value(
            without_hire(stock, hire_ids), [conf.khaos.sites.selling], cost_prices(conf)
        ),
    )
    with store.connect() as db, khaos.client() as client:
        sheets = extra_pack_sheets(
            conf,
            db,
            client,
            month,
            stock=stock,
            order_to_cash=tables.order_to_cash,
            month_returns=me.month_returns(daily["returns"], month),
            cost_prices=cost_prices(conf),
            hire_ids=hire_ids,
            as_at=me.month_bounds(month)[1],
        )
    inputs = MonthEndInputs(
        month=month,
        generated_at=integration_now(conf),
        account_name=label,
        sheets=sheets,
        **tables.as_kwargs(),
    )
    files = render_month_end_pack(inputs, conf.data_dir / "month_end" / month)
    metadata: dict[str, Any] = {
        "month": month,
        "workbook": MetadataValue.path(str(files.workbook)),
        "html": MetadataValue.path(str(files.html)),
        "csv_folder": MetadataValue.path(str(files.workbook.parent)),
        "csv_files": MetadataValue.json({k: str(v) for k, v in files.csvs.items()}),
    }
    metadata.update({key: _plain(value) for key, value in files.totals().items()})
    metadata["preview"] = bool(missing)
    metadata["days_not_reconciled"] = len(missing)
    metadata["stock_rows"] = len(tables.stock_reconciliation)
    metadata["shipments"] = len(tables.order_to_cash)
    metadata["returned_units"] = len(tables.returns)
    context.add_output_metadata(metadata)


# --- the workflow audit report ---------------------------------------------------------------


def _store_events(db: Store) -> pd.DataFrame:
    """Release, despatch and confirmed posting times the store holds, all time."""
    book = OrderBook(db.db)
    releases = [(code, r.released_at) for code, r in book.releases().items()]
    with db.db.transaction() as s:
        despatches = [
            (r.order_number, r.shipment_id, r.despatched_at)
            for r in s.scalars(select(DespatchEventRow))
        ]
    postings = []
    for posting in book.postings():
        effect = db.outbox.by_key(posting.outbox_key) if posting.outbox_key else None
        if effect is not None and effect.state == "done":
            postings.append((posting.order_number, posting.shipment_id, effect.updated_at))
    return me.store_events(releases, despatches, postings)


def _stored_events(settings: Settings, month: str) -> pd.DataFrame:
    folder = reconciliation_dir(settings)
    frames = [pd.read_parquet(p) for p in stored_days(folder, "workflow_events", month).values()]
    frames = [f[list(me.EVENT_COLUMNS)] for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(me.EVENT_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def _exception_frames(db: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every exception: type, owner, opened_at, status, acted_at; open ones with ages)."""
    listed = db.exceptions.list(status=None)
    every = pd.DataFrame(
        [
            {
                "type": x.row.type,
                "owner": x.row.owner,
                "opened_at": x.row.opened_at,
                "status": x.row.status,
                "acted_at": x.row.acted_at,
            }
            for x in listed
        ],
        columns=["type", "owner", "opened_at", "status", "acted_at"],
    )
    open_ = pd.DataFrame(
        [
            {
                "type": x.row.type,
                "owner": x.row.owner,
                "age_hours": x.age.total_seconds() / 3600,
                "target_hours": x.target_hours,
            }
            for x in listed
            if x.row.status == "open"
        ],
        columns=["type", "owner", "age_hours", "target_hours"],
    )
    return every, open_


@asset(
    group_name="reconciliation",
    kinds={"html", "csv"},
    partitions_def=MONTHS,
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
        found = [f for f in (_stored_events(conf, month), _store_events(db)) if not f.empty]
        events = (
            pd.concat(found, ignore_index=True)
            if found
            else pd.DataFrame(columns=list(me.EVENT_COLUMNS))
        )
        every, open_ = _exception_frames(db)
    lat = me.latencies(events, month)
    shipments = int((lat["ref"] != lat["order_number"]).sum()) if not lat.empty else 0
    orders = int(lat["order_number"].nunique()) if not lat.empty else 0
    rates = me.exception_rates(every, month, base_count=orders + shipments)
    drift = me.month_drift(
        _read_optional(reconciliation_dir(conf) / "drift_by_day.parquet"),
        read_month(conf, month)["stock"],
        month,
    )
    delays = me.delay_sources(lat, open_)
    files = render_audit_report(
        lat,
        rates,
        drift,
        delays,
        conf.data_dir / "audit" / month,
        period=month,
        account_name=conf.acs.account_code,
        generated_at=integration_now(conf),
    )
    metadata: dict[str, Any] = {
        "month": month,
        "html": MetadataValue.path(str(files.html)),
        "csv_files": MetadataValue.json({k: str(v) for k, v in files.csvs.items()}),
        "orders": orders,
        "shipments": shipments,
        "exceptions_opened": int(rates["opened"].sum()) if not rates.empty else 0,
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


def first_working_day(year: int, month: int, calendar: WorkingCalendar = FINANCE_CALENDAR) -> date:
    day = date(year, month, 1)
    while not calendar.is_working_day(day):
        day += timedelta(days=1)
    return day


def month_closed_on(day: date, calendar: WorkingCalendar = FINANCE_CALENDAR) -> str | None:
    """The month (``YYYY-MM``) whose pack is due on ``day``, or ``None`` if none is."""
    if day != first_working_day(day.year, day.month, calendar):
        return None
    previous = day.replace(day=1) - timedelta(days=1)
    return previous.strftime("%Y-%m")


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
    default_status=DefaultScheduleStatus.RUNNING,
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
