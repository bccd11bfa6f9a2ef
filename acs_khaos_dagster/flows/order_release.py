"""Order release: orders waiting at Khaos's release stage validated against the SKUs ready
for sale, sent to ACS (``PUT orders``) through the outbox and, once ACS accepted them,
acknowledged in Khaos (invoice moved to the acknowledgement stage). Orders cancelled in
Khaos after release are cancelled at ACS (``flows.order_cancel``).

The rules live in ``domain.order_release``; ``release_orders`` reads, calls them, writes
through the outbox and the store, and returns one row per order handled.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.models import AcsOrder, Invoice, SalesOrder
from acs_khaos_dagster.domain.order_release import (
    ReadySku,
    ReleaseDecision,
    SkuProblem,
    SkuReadiness,
    hold_from_acs_rejection,
    readiness_from_classification,
    release_invoice,
    release_outbox_key,
    release_plan,
    release_revision,
    to_acs_order,
    validate_against_ready_skus,
)
from acs_khaos_dagster.domain.orders import released_order_lines_frame
from acs_khaos_dagster.effects import TARGET_OF, EffectKind, versions_of
from acs_khaos_dagster.flows.order_cancel import (
    ack_key,
    close_effect_failed,
    enqueue_ack,
    release_row,
    request_cancellations,
    settle_cancellations,
)
from acs_khaos_dagster.flows.order_edits import (
    edited_while_sent,
    locked_edit,
    settle_locked_edit,
    settle_stranded_locked_edits,
)
from acs_khaos_dagster.flows.queues import (
    dispatch,
    effect_states,
    sync_exceptions,
    transaction_batches,
)
from acs_khaos_dagster.store import DispatchReport, Store
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.products import SkuIdentities

# ACS error codes that mean "the SKU is not ready": the order is held, not failed.
SKU_REJECTION_CODES = ("UNKNOWN_SKU", "INACTIVE_SKU")
_CODE_IN_ERROR_RE = re.compile(r"\[([A-Z_]+)\]\s*$")
_MESSAGE_IN_ERROR_RE = re.compile(r"put_order: (.*?)(?: \(HTTP \d+\))?(?: \[[A-Z_]+\])?$")
RELEASE_ACTIONS = [
    "sent",
    "queued",
    "held",
    "back_order",
    "cancel_queued",
    "cancelled",
    "cancel_locked",
    "edited_while_sent",
    "edit_locked",
]
RELEASE_COLUMNS = ["order_code", "order_id", "action", "acknowledged", "outbox_key", "detail"]
# An order about to be sent: the Khaos order, its ACS body, the invoice released, the key.
Sending = tuple[SalesOrder, AcsOrder, Invoice, str]


@dataclass(frozen=True)
class ReleaseResult:
    """What one release pass did: a row per order handled (``RELEASE_COLUMNS``)."""

    frame: pd.DataFrame
    acknowledged: int
    open_holds: int
    order_locked: int
    acs_report: DispatchReport
    khaos_report: DispatchReport


def released_orders(settings: Settings, khaos: KhaosClient) -> pd.DataFrame:
    """Lines of the orders whose invoice waits at the release stage, on the sites ACS
    fulfils (sale and hire)."""
    conf = settings.khaos
    released = conf.stages.released
    orders = []
    for site_id in (conf.sites.selling, conf.sites.hire_stock):
        orders.extend(khaos.export_orders([released], site_id))
    unique = {order.order_id: order for order in orders}
    return released_order_lines_frame(unique.values(), released)


def ready_sku_map(
    sku_mapping: pd.DataFrame, ready_for_sale_skus: pd.DataFrame
) -> dict[int, ReadySku]:
    """Every StockID the products flow knows, with its readiness for orders.

    All ``sku_mapping`` rows count (a pending or inactive SKU holds an order with that
    reason, not as ``unknown``); ``ready_for_sale_skus`` has the last word on ``ready``.
    """
    ready_ids = set(ready_for_sale_skus["stock_id"].astype(int))
    out: dict[int, ReadySku] = {}
    for row in sku_mapping[sku_mapping["stock_id"].notna()].itertuples(index=False):
        stock_id = int(row.stock_id)
        state = readiness_from_classification(str(row.classification))
        if stock_id in ready_ids:
            state = SkuReadiness.READY
        elif state is SkuReadiness.READY:
            state = SkuReadiness.NOT_READY
        detail = "; ".join(
            str(v) for v in (row.mismatch_detail, row.code_problems) if isinstance(v, str) and v
        )
        out[stock_id] = ReadySku(
            stock_id=stock_id,
            sku=str(row.acs_sku or row.stock_code),
            state=state,
            detail=detail or str(row.classification),
        )
    return out


def rejection_details(last_error: str | None) -> list[dict[str, str]]:
    """The ACS error behind a parked effect (the outbox keeps its text only)."""
    text = (last_error or "").strip()
    code = _CODE_IN_ERROR_RE.search(text)
    message = _MESSAGE_IN_ERROR_RE.search(text)
    if code is None:
        return []
    return [{"code": code.group(1), "field": "", "message": message.group(1) if message else text}]


def is_sku_rejection(last_error: str | None) -> bool:
    return any(d["code"] in SKU_REJECTION_CODES for d in rejection_details(last_error))


def release_orders(
    db: Store,
    ac: AcsClient,
    kc: KhaosClient,
    conf: Settings,
    now: datetime,
    released: pd.DataFrame,
    ready: dict[int, ReadySku],
) -> ReleaseResult:
    """Release the orders of ``released`` (``released_orders``) that are ``ready``
    (``ready_sku_map``), cancel, acknowledge, and record what the stuck-order clock needs."""
    stages = conf.khaos.stages
    order_ids = sorted({int(i) for i in released["order_id"]})
    rows: dict[str, dict[str, Any]] = {}
    holds: list[ReleaseDecision] = []
    book = OrderBook(db.db)
    identities = SkuIdentities(db.db).identity()
    sku_for = {sid: e.sku for sid, e in ready.items() if e.state is SkuReadiness.READY}
    sku_for.update(identities)
    waiting = kc.export_order_status(order_ids, include_tracking=False) if order_ids else []
    # Accepted at ACS (release effect done), read before this run records new bodies: of
    # the day's waiting orders (finished or not: a back order of a finished order is still
    # never sent again) and of the orders still open (the cancellations' candidates). A
    # finished order's release is never read otherwise, however long the history.
    releases = {**book.open_releases(), **book.releases_of(o.order_code for o in waiting)}
    release_states = effect_states(db, [r.outbox_key for r in releases.values()])
    accepted = {
        code for code, state in zip(releases, release_states, strict=True) if state == "done"
    }
    plan = release_plan(waiting, accepted, stages=stages)

    # Back orders of orders ACS already has: acknowledged without being sent again.
    for order in plan.back_orders:
        invoice_ids = [i.invoice_id for i in order.invoices if i.stage_id == stages.released]
        key = enqueue_ack(db, order.order_code, order.order_id, invoice_ids, stages.acknowledged)
        rows[order.order_code] = release_row(order, "back_order", key, "already at ACS")

    to_send: dict[str, Sending] = {}
    for order in plan.to_release:
        invoice = release_invoice(order, stages.released)
        assert invoice is not None  # release_plan keeps only orders with one
        decision = validate_against_ready_skus(
            order,
            ready,
            sku_for_stock_id=identities,
            invoice=invoice,
            released_stage=stages.released,
        )
        if not decision.held:
            try:
                acs_order = to_acs_order(
                    order,
                    sku_for,
                    couriers=conf.couriers,
                    invoice=invoice,
                    released_stage=stages.released,
                )
            except (KeyError, ValueError) as exc:
                problem = SkuProblem(reason="not_ready", detail=str(exc))
                decision = ReleaseDecision(
                    order_number=order.order_code, action="hold", problems=(problem,)
                )
        if decision.held:
            holds.append(decision)
            rows[order.order_code] = release_row(order, "held", detail=decision.message)
            continue
        to_send[order.order_code] = (order, acs_order, invoice, release_outbox_key(acs_order))
    _record_releases(db, book, to_send, now)

    cancels, statuses = request_cancellations(db, book, kc, accepted, stages)
    acs_report = dispatch(db, conf, [EffectKind.ACS_ORDER], acs=ac)
    edited = edited_while_sent(db, kc, conf, to_send, sku_for)
    _settle_sent(db, to_send, stages.acknowledged, rows, holds, edited)
    locked = settle_cancellations(db, book, cancels, rows)
    locked += settle_stranded_locked_edits(db, to_send)

    khaos_report = dispatch(db, conf, [EffectKind.KHAOS_MOVE_INVOICES], khaos=kc)
    acknowledged = _mark_acknowledged(db, book, now, rows)
    open_holds = sync_exceptions(
        db, holds, ["order_held"], owns=lambda ref: ref.startswith("order:")
    )
    # What the stuck-order clock needs: who waits at the release stage or in back order.
    seen: dict[str, tuple[int, bool, bool]] = {}
    for order in [*waiting, *statuses]:
        # Read before this run's moves: an order acknowledged just now has left stage 9.
        moved = rows.get(order.order_code, {}).get("acknowledged", False)
        at_release = not moved and any(i.stage_id == stages.released for i in order.invoices)
        back = any(i.stage_id == stages.awaiting_stock for i in order.invoices)
        seen[order.order_code] = (order.order_id, at_release, back)
    book.observe(seen, now, release_stage_complete=True)

    frame = pd.DataFrame(
        [{k: v for k, v in r.items() if k != "ack_key"} for r in rows.values()],
        columns=RELEASE_COLUMNS,
    )
    return ReleaseResult(
        frame,
        acknowledged=acknowledged,
        open_holds=open_holds.get("order_held", 0),
        order_locked=locked,
        acs_report=acs_report,
        khaos_report=khaos_report,
    )


def _record_releases(
    db: Store, book: OrderBook, to_send: dict[str, Sending], now: datetime
) -> None:
    """Queue each new body (a new version when edited back to one already recorded) with its
    release row; ask ACS again for those it refused for a SKU."""
    releases = book.releases_of(to_send)
    known = db.outbox.states(key for *_, key in to_send.values())
    # Edited back to a body already recorded (A, B, A): a new version with a new key.
    for code, (order, acs_order, invoice, key) in list(to_send.items()):
        last = releases.get(code)
        if last is None:
            continue
        if last.revision == release_revision(acs_order):
            to_send[code] = (order, acs_order, invoice, last.outbox_key)
        elif key in known:
            again = release_outbox_key(acs_order, after=last.outbox_key)
            to_send[code] = (order, acs_order, invoice, again)
    known = db.outbox.states(key for *_, key in to_send.values())
    new_releases = [entry for entry in to_send.values() if entry[3] not in known]
    # Recorded a batch per transaction (a first load is a brand's whole order book);
    # nothing is sent before its batch is committed.
    kind = EffectKind.ACS_ORDER
    for session, batch in transaction_batches(db, new_releases):
        for order, acs_order, invoice, key in batch:
            db.outbox.enqueue(
                kind,
                TARGET_OF[kind],
                order.order_code,
                key,
                acs_order.model_dump(mode="json"),
                session=session,
                supersede_key=versions_of(kind, order.order_code),
            )
            book.record_release(
                acs_order,
                order.order_id,
                [invoice.invoice_id],
                release_revision(acs_order),
                key,
                now,
                session,
            )
    for *_, key in to_send.values():
        if known.get(key) in ("parked", "failed"):
            existing = db.outbox.by_key(key)
            if existing is not None and is_sku_rejection(existing.last_error):
                # ACS refused a SKU last time; it is the authority, so ask again
                # (idempotent).
                db.outbox.requeue(existing.id, "integration")


def _settle_sent(
    db: Store,
    to_send: dict[str, Sending],
    acknowledged_stage: int,
    rows: dict[str, dict[str, Any]],
    holds: list[ReleaseDecision],
    edited: Collection[str] = (),
) -> None:
    """After the ACS dispatch: an accepted order's acknowledgement is queued (unless it was
    edited in Khaos meanwhile: ``flows.order_edits``); one ACS refused for a SKU is held;
    the rest wait in the outbox."""
    sent_states = db.outbox.states(key for *_, key in to_send.values())
    for code in edited:
        order, _, _, key = to_send[code]
        rows[code] = release_row(
            order, "edited_while_sent", key, "edited in Khaos while sent: the next run sends it"
        )
    accepted_now = [
        (code, entry)
        for code, entry in to_send.items()
        if sent_states.get(entry[3]) == "done" and code not in edited
    ]
    for session, batch in transaction_batches(db, accepted_now):
        for code, (order, _, invoice, key) in batch:
            ack = enqueue_ack(
                db,
                code,
                order.order_id,
                [invoice.invoice_id],
                acknowledged_stage,
                session=session,
            )
            rows[code] = release_row(order, "sent", key)
            rows[code]["ack_key"] = ack
    for code, (order, acs_order, invoice, key) in to_send.items():
        if sent_states.get(key) == "done":
            continue
        effect = db.outbox.by_key(key)
        state = effect.state if effect is not None else ""
        if state in ("parked", "failed") and effect is not None and locked_edit(effect, code):
            rows[code] = settle_locked_edit(db, order, invoice, key, acknowledged_stage)
        elif state in ("parked", "failed") and effect is not None:
            hold = hold_from_acs_rejection(code, rejection_details(effect.last_error), acs_order)
            if hold is None:
                rows[code] = release_row(order, "queued", key, effect.last_error or "")
                continue
            holds.append(hold)
            close_effect_failed(db, key, "ACS refused a SKU: the order is held (order_held)")
            rows[code] = release_row(order, "held", key, hold.message)
        else:
            rows[code] = release_row(
                order, "queued", key, effect.last_error or "" if effect else ""
            )


def _mark_acknowledged(
    db: Store, book: OrderBook, now: datetime, rows: dict[str, dict[str, Any]]
) -> int:
    """Releases whose acknowledgement Khaos took are marked; returns how many this run."""
    acknowledged = 0
    unacknowledged = book.unacknowledged_releases()
    ack_states = effect_states(
        db, [ack_key(code, r.invoice_ids) for code, r in unacknowledged.items()]
    )
    with db.transaction() as session:
        for code, state in zip(unacknowledged, ack_states, strict=True):
            if state == "done":
                book.mark_acknowledged(code, now, session)
                acknowledged += 1
                if code in rows:
                    rows[code]["acknowledged"] = True
    back_orders = [row for row in rows.values() if row["action"] == "back_order"]
    for row, state in zip(
        back_orders, effect_states(db, [r["outbox_key"] for r in back_orders]), strict=True
    ):
        row["acknowledged"] = state == "done"
    return acknowledged


def release_cron(interval_s: int) -> str:
    """A cron for ``orders.release_interval_s`` (whole minutes, at least one; hourly past 59)."""
    minutes = max(1, interval_s // 60)
    if minutes >= 60:
        return "0 * * * *"
    return f"*/{minutes} * * * *"
