"""The journey of one order, SKU or return across Khaos, ACS and the integration's store.

Pure gathering: ``trace_order``, ``trace_sku`` and ``trace_return`` read the store (and,
for an order's invoice stages, Khaos when a client is given) and return a ``Trace`` of
titled sections of text rows. ``cli_trace`` renders it. Only references are gathered
(order numbers, shipment ids, SKUs, invoice ids): never a customer's name or address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import select

from acs_khaos_dagster.domain.layout import KhaosStages
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.returns import ReturnsRepository
from acs_khaos_dagster.store.schema import AuditEntry, Effect
from acs_khaos_dagster.store.stock import StockSnapshots
from acs_khaos_dagster.store.tables.orders import DespatchEventRow
from acs_khaos_dagster.store.tables.products import SkuIdentity

MAX_ERROR = 120  # characters of an effect's last error shown
UK = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class Section:
    """One part of the journey: a table (``columns`` × ``rows``) and/or a ``note``."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    note: str = ""

    def column(self, name: str) -> list[str]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


@dataclass(frozen=True)
class Trace:
    kind: str  # order | sku | return
    ref: str
    found: bool
    sections: list[Section]

    def section(self, title: str) -> Section:
        return next(s for s in self.sections if s.title == title)

    @property
    def titles(self) -> list[str]:
        return [s.title for s in self.sections]


def _when(value: datetime | None) -> str:
    """UK wall time with its zone (GMT/BST): what the people reading it live in."""
    if value is None:
        return ""
    if value.tzinfo is None:  # the store's times are UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UK).strftime("%Y-%m-%d %H:%M:%S %Z")


def _text(value: Any) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(value, datetime | pd.Timestamp):
        return _when(pd.Timestamp(value).to_pydatetime())
    return str(value)


def _short(text: str | None) -> str:
    text = (text or "").strip().replace("\n", " ")
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def _mentions(refs: Iterable[str]) -> re.Pattern[str] | None:
    """A whole-reference match: ``SO1`` must not match inside ``SO10``."""
    refs = [r for r in refs if r]
    if not refs:
        return None
    alternatives = "|".join(re.escape(r) for r in sorted(refs, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")


# --- shared sections -----------------------------------------------------------------------


def _effects(store: Store, effects: Sequence[Effect], title: str = "Outbox effects") -> Section:
    rows = []
    for effect in effects:
        attempts = store.outbox.attempts(effect.id)
        tries = "; ".join(
            f"#{a.attempt_no} {_when(a.at)} {a.outcome}"
            + (f" ({a.error_class})" if a.error_class else "")
            for a in attempts
        )
        result = effect.result or {}
        outcome = ", ".join(
            f"{k}={v}" for k, v in sorted(result.items()) if k not in ("read_back", "moved")
        )
        rows.append(
            (
                str(effect.id),
                effect.kind,
                effect.idempotency_key,
                effect.state,
                str(effect.attempts),
                tries,
                outcome,
                _short(effect.last_error),
            )
        )
    columns = ("id", "kind", "key", "state", "attempts", "tries", "result", "last error")
    return Section(title, columns, rows, "" if rows else "no effect in the outbox")


def _exceptions(store: Store, refs: Iterable[str]) -> tuple[Section, list[int]]:
    pattern = _mentions(refs)
    rows, ids = [], []
    if pattern is not None:
        for item in store.exceptions.list(status=None):
            row = item.row
            if pattern.search(row.entity_ref) or pattern.search(row.message or ""):
                ids.append(row.id)
                rows.append(
                    (
                        str(row.id),
                        row.type,
                        row.owner,
                        row.status,
                        _when(row.opened_at),
                        str(row.count),
                        _short(row.message),
                    )
                )
    columns = ("id", "type", "owner", "status", "opened", "seen", "message")
    return Section("Exceptions", columns, rows, "" if rows else "no exception mentions it"), ids


def _audit(store: Store, subjects: Iterable[str], keys: Iterable[str]) -> Section:
    subjects, keys = set(subjects), set(keys)
    with store.db.transaction() as s:
        entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    rows = [
        (
            _when(e.at),
            e.category,
            e.actor,
            e.action,
            e.system or "",
            e.subject or "",
            e.outcome or "",
            _short(e.note),
        )
        for e in entries
        if (e.subject in subjects) or (e.idempotency_key in keys)
    ]
    columns = ("at", "category", "actor", "action", "system", "subject", "outcome", "note")
    return Section("Audit log", columns, rows, "" if rows else "no audit entry")


def _effects_where(store: Store, predicate: Any) -> list[Effect]:
    with store.db.transaction() as s:
        return [e for e in s.scalars(select(Effect).order_by(Effect.id)) if predicate(e)]


def _tail(store: Store, refs: Sequence[str], effects: Sequence[Effect]) -> list[Section]:
    """Exceptions and audit entries about the refs and their effects."""
    exceptions, ids = _exceptions(store, refs)
    subjects = [f"effect:{e.id}" for e in effects] + [f"exception:{i}" for i in ids]
    keys = [e.idempotency_key for e in effects]
    return [exceptions, _audit(store, [*subjects, *refs], keys)]


# --- an order --------------------------------------------------------------------------------


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


# --- a SKU -----------------------------------------------------------------------------------


def trace_sku(store: Store, ref: str) -> Trace:
    """Identity (StockID ↔ ACS SKU), pushes, mapping exceptions, the newest snapshot's
    units per status and the stock adjustments of one SKU (by StockID, ACS SKU or the
    stock code it was registered with)."""
    with store.db.transaction() as s:
        identity = s.scalars(
            select(SkuIdentity).where(
                (SkuIdentity.acs_sku == ref)
                | (SkuIdentity.first_stock_code == ref)
                | (SkuIdentity.stock_id == (int(ref) if ref.isdigit() else -1))
            )
        ).first()
    sections: list[Section] = []
    columns = ("StockID", "ACS SKU", "first stock code", "registered", "last pushed")
    if identity is None:
        sections.append(
            Section("Identity", columns, note="not registered at ACS by the integration")
        )
        stock_id, sku = (int(ref) if ref.isdigit() else None), ref
    else:
        stock_id, sku = identity.stock_id, identity.acs_sku
        row = (
            str(identity.stock_id),
            identity.acs_sku,
            identity.first_stock_code,
            _when(identity.registered_at),
            _when(identity.last_pushed_at),
        )
        sections.append(Section("Identity", columns, [row]))
    names = {sku, ref} | ({str(stock_id)} if stock_id is not None else set())
    pushes = _effects_where(
        store, lambda e: e.kind == EffectKind.ACS_PRODUCT and e.business_key in names
    )
    sections.append(_effects(store, pushes, "Pushes to ACS"))
    sections.append(_snapshot_units(store, sku))

    def adjusts(effect: Effect) -> bool:
        lines = (effect.payload or {}).get("lines", [])
        return effect.kind == EffectKind.KHAOS_STOCK_ADJUSTMENT and any(
            line.get("stock_id") == stock_id for line in lines
        )

    adjustments = _effects_where(store, adjusts) if stock_id is not None else []
    rows = []
    for effect in adjustments:
        payload = effect.payload or {}
        for line in payload.get("lines", []):
            if line.get("stock_id") == stock_id:
                change = (
                    f"to {line['adjust_to']}"
                    if line.get("adjust_to") is not None
                    else f"by {line.get('adjust_by')}"
                )
                rows.append(
                    (
                        payload.get("group_ref", ""),
                        str(payload.get("site_id", "")),
                        change,
                        line.get("reason_code", ""),
                        effect.state,
                        _when(effect.updated_at),
                    )
                )
    sections.append(
        Section(
            "Stock adjustments in Khaos",
            ("group", "site", "adjust", "reason", "state", "updated"),
            rows,
            "" if rows else "no stock adjustment",
        )
    )
    refs = sorted(names | {f"code:{ref}"})
    sections.extend(_tail(store, refs, [*pushes, *adjustments]))
    return Trace("sku", ref, identity is not None or bool(pushes), sections)


def _snapshot_units(store: Store, sku: str) -> Section:
    columns = ("status", "bucket", "units")
    newest = StockSnapshots(store.db).newest()
    title = "Newest ACS snapshot: units per status"
    if newest is None:
        return Section(title, columns, note="no ACS stock snapshot taken in yet")
    try:
        counts = pd.read_parquet(newest.counts_path)
    except (OSError, ValueError) as exc:
        return Section(title, columns, note=f"snapshot {newest.snapshot_id} unreadable: {exc}")
    mine = counts.loc[counts["sku"].astype(str) == sku]
    rows = [(str(r.status), str(r.bucket), str(int(r.units))) for r in mine.itertuples()]
    note = f"snapshot {newest.snapshot_id} at {_when(newest.snapshot_at)} ({newest.state})"
    return Section(title, columns, rows, note if rows else note + ": no unit of this SKU")


# --- a return --------------------------------------------------------------------------------


def trace_return(store: Store, return_ref: str) -> Trace:
    """Units, grades, the Khaos return parts with their credit, write-offs and ex-hire
    moves, exceptions and audit entries of one ACS return."""
    repo = ReturnsRepository(store.db)
    units = repo.units()
    mine = units.loc[units["return_ref"].astype(str) == return_ref]
    unit_rows = [
        (
            _text(u.unique_sku),
            _text(u.sku),
            _text(u.order_number),
            _text(u.grade),
            _text(u.action_taken),
            _text(u.received_at),
            "hire" if u.is_hire is True else ("sale" if u.is_hire is False else "not matched"),
            _text(u.associated_ref),
            _text(u.settled_by_hand_at),
        )
        for u in mine.itertuples(index=False)
    ]
    sections = [
        Section(
            "Units",
            (
                "unit",
                "sku",
                "order",
                "grade",
                "action",
                "received",
                "type",
                "Khaos part",
                "settled by hand",
            ),
            unit_rows,
            "" if unit_rows else "no unit of this return was received",
        )
    ]
    postings = repo.postings()
    parts = set(postings.loc[postings["return_ref"].astype(str) == return_ref, "associated_ref"])
    parts |= set(mine["associated_ref"].dropna().astype(str))
    sections.append(_credits(postings, parts))
    moves = repo.moves()
    moves = moves.loc[moves["return_ref"].astype(str) == return_ref]
    move_rows = [
        (
            _text(m.group_ref),
            _text(m.kind),
            _text(m.unique_sku),
            str(m.site_id),
            str(m.adjust_by),
            _text(m.reason_code),
            _text(m.value),
        )
        for m in moves.itertuples(index=False)
    ]
    sections.append(
        Section(
            "Write-offs and stock moves",
            ("group", "kind", "unit", "site", "adjust by", "reason", "value £"),
            move_rows,
            "" if move_rows else "no write-off or stock move",
        )
    )
    keys = set(postings.loc[postings["associated_ref"].isin(parts), "idempotency_key"])
    groups = set(moves["group_ref"].astype(str))
    effects = _effects_where(
        store, lambda e: e.idempotency_key in keys or e.idempotency_key in groups
        or e.business_key in parts | groups | {return_ref},
    )  # fmt: skip
    sections.append(_effects(store, effects))
    sections.extend(_tail(store, [return_ref, *sorted(parts)], effects))
    return Trace("return", return_ref, bool(unit_rows) or bool(parts), sections)
