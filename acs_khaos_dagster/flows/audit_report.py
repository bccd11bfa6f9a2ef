"""Workflow audit flow: one month's release → despatch → posting → invoice latencies,
exception rates by type and owner, the drift trend and the largest sources of delay,
written as an HTML page and CSVs under ``<data_dir>/audit/<YYYY-MM>/``.

Reads only what is stored: the daily reconciliation's ``workflow_events`` and
``drift_by_day`` (``flows.reconciliation.storage``) and the store's own release, despatch,
posting and exception records. No Dagster here: ``defs/month_end.py`` wires it in.
"""

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.flows.figures import Figures, FileLink, bullets, file_link, table
from acs_khaos_dagster.flows.month_end_pack import (
    read_month,
    read_optional,
    reconciliation_dir,
    stored_days,
)
from acs_khaos_dagster.reports import render_audit_report
from acs_khaos_dagster.reports.audit_report import AuditReportFiles
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook


@dataclass(frozen=True)
class AuditReport:
    files: AuditReportFiles
    orders: int
    shipments: int
    exceptions_opened: int

    def figures(self, conf: Settings, month: str) -> Figures:
        """The report's metadata: its files, counts, and each step's p50/p95 latency in hours
        (plotted month by month)."""
        files = self.files
        figures: Figures = {
            "month": month,
            "html": file_link(conf, files.html),
            "csv_folder": file_link(conf, files.html.parent),
            "folder": FileLink(files.html.parent, url=None),  # the path, beside the link
            "orders": self.orders,
            "shipments": self.shipments,
            "exceptions_opened": self.exceptions_opened,
            "largest_delays": bullets(files.largest_delays, limit=None),
            "latency": table(files.latency_summary),
        }
        for row in files.latency_summary.itertuples(index=False):
            for quantile in ("p50_hours", "p95_hours"):
                value = getattr(row, quantile)
                if pd.notna(value):
                    figures[f"{row.step}_{quantile}"] = round(float(value), 2)
        return figures


def build_audit_report(db: Store, conf: Settings, month: str, now: datetime) -> AuditReport:
    """Build and write the month's audit report from the stored events and exceptions."""
    found = [f for f in (stored_events(conf, month), store_events(db)) if not f.empty]
    events = (
        pd.concat(found, ignore_index=True)
        if found
        else pd.DataFrame(columns=list(me.EVENT_COLUMNS))
    )
    every, open_ = exception_frames(db)
    lat = me.latencies(events, month)
    shipments = int((lat["ref"] != lat["order_number"]).sum()) if not lat.empty else 0
    orders = int(lat["order_number"].nunique()) if not lat.empty else 0
    rates = me.exception_rates(every, month, base_count=orders + shipments)
    drift = me.month_drift(
        read_optional(reconciliation_dir(conf) / "drift_by_day.parquet"),
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
        generated_at=now,
    )
    opened = int(rates["opened"].sum()) if not rates.empty else 0
    return AuditReport(files, orders, shipments, opened)


def store_events(db: Store) -> pd.DataFrame:
    """Release, despatch and confirmed posting times the store holds, all time."""
    book = OrderBook(db.db)
    releases = [(code, r.released_at) for code, r in book.releases().items()]
    despatches = book.despatch_times()
    postings = []
    for posting in book.postings():
        effect = db.outbox.by_key(posting.outbox_key) if posting.outbox_key else None
        if effect is not None and effect.state == "done":
            postings.append((posting.order_number, posting.shipment_id, effect.updated_at))
    return me.store_events(releases, despatches, postings)


def stored_events(settings: Settings, month: str) -> pd.DataFrame:
    """The month's ``workflow_events`` the daily reconciliation kept."""
    folder = reconciliation_dir(settings)
    frames = [pd.read_parquet(p) for p in stored_days(folder, "workflow_events", month).values()]
    frames = [f[list(me.EVENT_COLUMNS)] for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(me.EVENT_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def exception_frames(db: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
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
