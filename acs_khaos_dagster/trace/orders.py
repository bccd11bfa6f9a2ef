"""An order's journey: released, sent, shipments, postings, Khaos invoice stages, returns."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import select

from acs_khaos_dagster.domain.layout import KhaosStages
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.returns import ReturnsRepository
from acs_khaos_dagster.store.tables.orders import DespatchEventRow
from acs_khaos_dagster.trace.model import Section, Trace, _short, _text, _when
from acs_khaos_dagster.trace.shared import _effects, _effects_where, _tail


def trace_order(
    store: Store, order_number: str, khaos: Any = None, *, stages: KhaosStages | None = None
) -> Trace:
    """Released, sent, acknowledged, each shipment, its posting, the invoice stages (read
    live from Khaos when ``khaos`` is a ``KhaosClient``), returns and credits,
    exceptions and audit entries of one order."""
    stages = stages or KhaosStages()
    book = OrderBook(store.db)
    release = book.releases().get(order_number)
    with store.db.transaction() as s:
        events = list(
            s.scalars(
                select(DespatchEventRow)
                .where(DespatchEventRow.order_number == order_number)
                .order_by(DespatchEventRow.despatched_at)
            )
        )
    postings = book.postings([order_number])
    shipment_ids = sorted({e.shipment_id for e in events} | {p.shipment_id for p in postings})
    refs = [order_number, *shipment_ids]
    effects = _effects_where(store, lambda e: e.business_key in refs)
    sections: list[Section] = []

    columns = ("order id", "invoices", "released", "revision", "acknowledged", "cancellation")
    if release is None:
        sections.append(Section("Released", columns, note="never released to ACS"))
    else:
        row = (
            str(release.order_id),
            ", ".join(str(i) for i in release.invoice_ids),
            _when(release.released_at),
            release.revision,
            _when(release.acknowledged_at) or "not yet",
            release.cancel_state or "",
        )
        sections.append(Section("Released", columns, [row]))

    sent = [e for e in effects if e.kind == EffectKind.ACS_ORDER]
    sections.append(_effects(store, sent, "Sent to ACS"))
    acks = [e for e in effects if e.kind == EffectKind.KHAOS_MOVE_INVOICES]
    ack = _effects(store, acks, "Acknowledged in Khaos")
    if release is not None and release.acknowledged_at is not None:
        ack = Section(
            ack.title,
            ack.columns,
            ack.rows,
            f"invoices moved to stage {stages.acknowledged} at {_when(release.acknowledged_at)}",
        )
    sections.append(ack)

    ship_rows = []
    for event in events:
        payload = event.payload or {}
        units = sum(int(line.get("quantity", 0)) for line in payload.get("lines", []))
        short = sum(int(c.get("quantity", 0)) for c in payload.get("closed_short", []))
        tracking = ", ".join(p.get("tracking_number", "") for p in payload.get("parcels", []))
        ship_rows.append(
            (
                event.shipment_id,
                event.event_id,
                _when(event.despatched_at),
                _when(event.received_at),
                str(units),
                str(short),
                " ".join(x for x in (payload.get("carrier"), payload.get("service")) if x),
                tracking,
            )
        )
    sections.append(
        Section(
            "Shipments (ACS despatch events)",
            ("shipment", "event", "despatched", "received", "units", "closed short", "carrier",
             "tracking"),
            ship_rows,
            "" if ship_rows else "no despatch event received",
        )
    )  # fmt: skip

    by_key = {e.idempotency_key: e for e in effects}
    post_rows = []
    for posting in sorted(postings, key=lambda p: p.shipment_id):
        effect = by_key.get(posting.outbox_key or "")
        result = (effect.result or {}) if effect is not None else {}
        post_rows.append(
            (
                posting.shipment_id,
                posting.state,
                effect.state if effect is not None else "",
                _text(result.get("invoice_id")),
                _text(result.get("invoice_code")),
                _when(effect.updated_at) if effect is not None and effect.state == "done" else "",
                _short(posting.problem),
            )
        )
    sections.append(
        Section(
            "Postings to Khaos",
            ("shipment", "posting", "effect", "invoice id", "invoice", "confirmed", "problem"),
            post_rows,
            "" if post_rows else "nothing posted",
        )
    )
    sections.append(_invoice_stages(khaos, release.order_id if release else None, stages))
    sections.extend(_order_returns(store, order_number))
    despatches = [e for e in effects if e.kind == EffectKind.KHAOS_DESPATCH]
    sections.append(_effects(store, despatches, "Posting effects"))
    sections.extend(_tail(store, refs, effects))
    found = release is not None or bool(events) or bool(postings)
    return Trace("order", order_number, found, sections)


def _invoice_stages(khaos: Any, order_id: int | None, stages: KhaosStages) -> Section:
    columns = ("invoice id", "invoice", "stage", "meaning", "shipment", "issued")
    title = "Invoice stage (live from Khaos)"
    if order_id is None:
        return Section(title, columns, note="no Khaos order id known to the integration")
    if khaos is None:
        return Section(title, columns, note="Khaos not asked (--offline or no connection)")
    try:
        orders = khaos.export_order_status([order_id], include_tracking=False)
    except Exception as exc:  # any failure reads as "not reachable", never as a crash
        return Section(title, columns, note=f"Khaos not reachable: {type(exc).__name__}: {exc}")
    meaning = {
        stages.cancelled: "cancelled",
        stages.released: "released (waiting for the integration)",
        stages.acknowledged: "acknowledged (at ACS)",
        stages.issue: "to issue",
        stages.awaiting_stock: "awaiting stock",
    }
    rows = []
    for order in orders:
        for invoice in order.invoices:
            issued = invoice.stage_id in stages.issued
            rows.append(
                (
                    str(invoice.invoice_id),
                    invoice.invoice_code,
                    str(invoice.stage_id),
                    "issued" if issued else meaning.get(invoice.stage_id, ""),
                    invoice.external_ref,
                    _when(invoice.issue_date),
                )
            )
    return Section(title, columns, rows, "" if rows else "Khaos lists no invoice for it")


def _order_returns(store: Store, order_number: str) -> list[Section]:
    repo = ReturnsRepository(store.db)
    units = repo.units()
    mine = units.loc[units["order_number"].astype(str) == order_number]
    unit_rows = [
        (
            _text(u.return_ref),
            _text(u.unique_sku),
            _text(u.sku),
            _text(u.grade),
            _text(u.action_taken),
            _text(u.received_at),
            _text(u.associated_ref),
        )
        for u in mine.itertuples(index=False)
    ]
    columns = ("return", "unit", "sku", "grade", "action", "received", "Khaos part")
    sections = [Section("Returns", columns, unit_rows, "" if unit_rows else "no return")]
    parts = set(mine["associated_ref"].dropna().astype(str))
    sections.append(_credits(repo.postings(), parts))
    return sections


def _credits(postings: pd.DataFrame, parts: set[str]) -> Section:
    mine = postings.loc[postings["associated_ref"].astype(str).isin(parts)]
    rows = [
        (
            _text(p.associated_ref),
            _text(p.credit_mode),
            str(p.units),
            str(p.written_off_units),
            _text(p.credit_value),
            _text(p.credit_status) or "not checked yet",
        )
        for p in mine.itertuples(index=False)
    ]
    columns = ("Khaos part", "credit mode", "units", "written off", "credit £", "credit status")
    return Section("Customer returns and credits", columns, rows, "" if rows else "no credit")
