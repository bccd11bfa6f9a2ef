"""Order reconciliations: each open order's status at ACS against Khaos, and each ACS
shipment against its confirmed Khaos posting and invoice (order to cash)."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain import reconciliation as rules
from acs_khaos_dagster.domain.duplicates import duplicate_invoices
from acs_khaos_dagster.domain.models import DespatchEvent, SalesOrder
from acs_khaos_dagster.domain.reconciliation import (
    ORDER_STATUS_COLUMNS,
    CashStatus,
    OrderMismatch,
    drift_findings,
    order_to_cash,
    order_to_cash_ageing,
)
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.flows.common import write_parquet_atomically
from acs_khaos_dagster.flows.duplicates import invoice_frame, raise_duplicates
from acs_khaos_dagster.flows.figures import Figures, table
from acs_khaos_dagster.flows.period_costs import period_cost_prices
from acs_khaos_dagster.flows.reconciliation.sources import (
    acs_orders,
    despatch_events,
    khaos_orders,
    open_cash_items,
    open_releases,
)
from acs_khaos_dagster.flows.reconciliation.storage import (
    as_at,
    day_window,
    id_text,
    opened,
    sync_findings,
    table_path,
)
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.tables.orders import OrderRelease

# A shipment despatched this long ago and still not
# invoiced is drift (exception) and fails the blocking order-to-cash check.
NOT_INVOICED_AFTER_HOURS = 48.0
# Despatch events older than this before the day's end are read again only while their
# shipment is still an open item (its ``recon:cash`` exception is open): the nightly Khaos
# reads stay bounded, and a shipment never invoiced is tracked whatever its age.
CASH_LOOKBACK = timedelta(days=92)


# --- order status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderStatusReconciliation:
    frame: pd.DataFrame  # every column the domain gives (the asset returns ORDER_STATUS_COLUMNS)
    drift_open: int | None

    def counts(self) -> dict[str, int]:
        counts = self.frame["mismatch"].value_counts()
        return {
            "open_orders": len(self.frame),
            **{f"{m}_orders": int(counts.get(str(m), 0)) for m in OrderMismatch},
        }

    def figures(self) -> Figures:
        frame = self.frame
        return {
            **self.counts(),
            **opened(drift_open=self.drift_open),
            "mismatches": table(frame.loc[frame["mismatch"] != "in_step"]),
        }

    @property
    def table(self) -> pd.DataFrame:
        return self.frame[list(ORDER_STATUS_COLUMNS)]


def _khaos_cancelled(order: SalesOrder | None, conf: Settings) -> bool:
    if order is None:
        return False
    stages = conf.khaos.stages
    live = [i for i in order.invoices if i.stage_id not in stages.issued]
    return bool(live) and all(i.stage_id == stages.cancelled for i in live)


def reconcile_order_status(
    db: Store, acs: AcsClient, khaos: KhaosClient, conf: Settings, day: str
) -> OrderStatusReconciliation:
    """Every open release at ACS and Khaos against the events received; keeps the table and
    syncs the ``recon:order:`` drift exceptions."""
    releases = open_releases(db)
    at_acs = acs_orders(acs, releases)
    orders = khaos_orders(khaos, (r.order_id for r in releases.values()))
    received: dict[str, set[str]] = {}
    for event in despatch_events(db, datetime(1970, 1, 1, tzinfo=UTC)):
        received.setdefault(event.order_number, set()).add(event.shipment_id)
    acs_rows = [
        {
            "order_number": number,
            "acs_status": str(status.status) if status is not None else None,
            "acs_shipment_ids": tuple(s.shipment_id for s in status.shipments)
            if status is not None
            else (),
        }
        for number, status in at_acs.items()
    ]
    khaos_rows = [
        {
            "order_number": number,
            "khaos_stage_ids": tuple(
                i.stage_id for i in getattr(orders.get(r.order_id), "invoices", ())
            ),
            "khaos_cancelled": _khaos_cancelled(orders.get(r.order_id), conf),
            "received_shipment_ids": tuple(sorted(received.get(number, ()))),
        }
        for number, r in releases.items()
    ]
    acs_frame = pd.DataFrame(acs_rows, columns=["order_number", "acs_status", "acs_shipment_ids"])
    khaos_frame = pd.DataFrame(
        khaos_rows,
        columns=["order_number", "khaos_stage_ids", "khaos_cancelled", "received_shipment_ids"],
    )
    frame = id_text(rules.order_status_reconciliation(acs_frame, khaos_frame))
    frame["acs_status"] = frame["acs_status"].fillna("").astype(str)
    opened = sync_findings(
        db, "order_status", ["recon:order:"], drift_findings(order_status=frame), day
    )
    write_parquet_atomically(frame, table_path(conf, "order_status", day))
    return OrderStatusReconciliation(frame, opened)


# --- order to cash ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderToCash:
    frame: pd.DataFrame
    as_at: datetime
    drift_open: int | None
    khaos_duplicates_open: int | None

    @property
    def waiting(self) -> pd.DataFrame:
        return self.frame.loc[self.frame["status"] != str(CashStatus.INVOICED)]

    def counts(self) -> dict[str, int | float]:
        frame, counts = self.frame, self.frame["status"].value_counts()
        return {
            "shipments": len(frame),
            **{f"{s}_shipments": int(counts.get(str(s), 0)) for s in CashStatus},
            "value_waiting": round(float(frame["value_waiting"].fillna(0).sum()), 2),
            "not_invoiced_over_limit": int(
                (self.waiting["age_hours"] > NOT_INVOICED_AFTER_HOURS).sum()
            ),
        }

    def figures(self) -> Figures:
        return {
            "as_at": self.as_at.isoformat(),
            **self.counts(),
            **opened(drift_open=self.drift_open, khaos_duplicates_open=self.khaos_duplicates_open),
            "ageing": table(order_to_cash_ageing(self.frame)),
            "waiting": table(self.waiting),
        }


def reconcile_order_to_cash(
    db: Store, acs: AcsClient, khaos: KhaosClient, conf: Settings, day: str, now: datetime
) -> OrderToCash:
    """Every shipment (feed events, and ACS's own record of those the feed never brought)
    against its posting and invoice as at the day's end; keeps the table and the day's
    workflow events, syncs the ``recon:cash:`` drift and invoice duplicates."""
    start, end = day_window(day, conf.time_zone)
    at = as_at(conf, day, now)
    releases = OrderBook(db.db).releases()
    events = {
        e.shipment_id: e for e in despatch_events(db, at - CASH_LOOKBACK, open_cash_items(db))
    }
    # ACS's own record of shipments the feed never delivered.
    for status in acs_orders(acs, open_releases(db)).values():
        for shipment in status.shipments if status is not None else ():
            events.setdefault(shipment.shipment_id, shipment)
    wanted = {releases[e.order_number].order_id for e in events.values()
              if e.order_number in releases}  # fmt: skip
    orders = khaos_orders(khaos, wanted)
    by_code = {o.order_code: o for o in orders.values()}
    postings = [
        {
            "shipment_id": e.business_key,
            "invoice_id": int((e.result or {}).get("invoice_id", 0)) or None,
            "posted_at": e.updated_at,
        }
        for e in db.outbox.find(kind=EffectKind.KHAOS_DESPATCH, state="done")
    ]
    invoices = [
        {
            "invoice_id": i.invoice_id,
            "stage_id": i.stage_id,
            "issue_date": i.issue_date,
            "external_ref": i.external_ref,
        }
        for o in orders.values()
        for i in o.invoices
    ]
    frame = order_to_cash(
        shipment_lines(events.values(), by_code),
        pd.DataFrame(postings, columns=["shipment_id", "invoice_id", "posted_at"]).dropna(
            subset=["invoice_id"]
        ),
        pd.DataFrame(invoices, columns=["invoice_id", "stage_id", "issue_date", "external_ref"]),
        at,
        conf.time_zone,
        issued_stages=conf.khaos.stages.issued,
        cancelled_stage=conf.khaos.stages.cancelled,
        cost_prices=period_cost_prices(conf, day),
    )
    findings = drift_findings(cash=frame, not_invoiced_after_hours=NOT_INVOICED_AFTER_HOURS)
    opened = sync_findings(db, "order_to_cash", ["recon:cash:"], findings, day)
    # Invoices Khaos holds twice under one ExternalRef (khaos_duplicate).
    doubled = raise_duplicates(
        db,
        "invoice",
        duplicate_invoices(
            invoice_frame(orders.values()), cancelled_stage=conf.khaos.stages.cancelled
        ),
        day,
    )
    write_parquet_atomically(frame, table_path(conf, "order_to_cash", day))
    write_parquet_atomically(
        workflow_events(releases, frame, start, end), table_path(conf, "workflow_events", day)
    )
    return OrderToCash(frame, at, opened, doubled)


def shipment_lines(
    events: Iterable[DespatchEvent], orders_by_code: dict[str, SalesOrder]
) -> pd.DataFrame:
    rows = []
    for event in events:
        order = orders_by_code.get(event.order_number)
        lines = order.lines if order else ()
        nets = {str(line.order_item_id): line.unit_net for line in lines}
        stock_ids = {str(line.order_item_id): line.stock_id for line in lines}
        for line in event.lines or ():
            rows.append(
                {
                    "shipment_id": event.shipment_id,
                    "order_number": event.order_number,
                    "despatched_at": event.despatched_at,
                    "units": line.quantity,
                    "unit_net": nets.get(str(line.line_item_id)),
                    "stock_id": stock_ids.get(str(line.line_item_id)),
                }
            )
    return pd.DataFrame(
        rows,
        columns=["shipment_id", "order_number", "despatched_at", "units", "unit_net", "stock_id"],
    )


def workflow_events(
    releases: dict[str, OrderRelease], cash: pd.DataFrame, start: datetime, end: datetime
) -> pd.DataFrame:
    rows = [
        (code, "", "released", r.released_at)
        for code, r in releases.items()
        if r.released_at is not None
    ]
    for step, column in (("despatched", "despatched_at"), ("posted", "posted_at")):
        rows += [
            (o, s, step, at) for o, s, at in cash[["order_number", "shipment_id", column]].values
        ]
    issued = cash.loc[cash["status"] == str(CashStatus.INVOICED)]
    rows += [
        (o, s, "invoiced", at)
        for o, s, at in issued[["order_number", "shipment_id", "issue_date"]].values
    ]
    frame = pd.DataFrame(rows, columns=["order_number", "shipment_id", "step", "at"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    within = frame["at"].notna() & (frame["at"] >= start) & (frame["at"] <= end)
    frame = frame.loc[within].astype({"order_number": str, "shipment_id": str, "step": str})
    return frame.sort_values(["at", "order_number", "step"], ignore_index=True)
