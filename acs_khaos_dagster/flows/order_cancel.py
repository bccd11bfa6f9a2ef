"""Orders cancelled in Khaos after release: cancelled at ACS (the order's body again with
its cancellation) unless already finished there, and what ACS answered — cancelled, or
``ORDER_LOCKED`` (picking started), which is an ``order_locked`` exception for operations.

Steps of ``flows.order_release.release_orders``, before and after the ACS dispatch, and
the helpers the release steps share: a release row, the acknowledgement (``MoveInvoices``
to the acknowledged stage) and closing a refused effect.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.layout import KhaosStages
from acs_khaos_dagster.domain.models import AcsOrder, SalesOrder
from acs_khaos_dagster.domain.order_release import (
    cancellation_body,
    orders_to_cancel,
    release_outbox_key,
)
from acs_khaos_dagster.domain.shipments import order_completion
from acs_khaos_dagster.effects import TARGET_OF, EffectKind, versions_of
from acs_khaos_dagster.flows.order_progress import open_units, posted_and_closed, postings_by_order
from acs_khaos_dagster.flows.queues import ExceptionSpec
from acs_khaos_dagster.store import Store, Transaction
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.tables.orders import OrderRelease


def close_effect_failed(db: Store, key: str, note: str) -> None:
    """The parked effect is now a business exception of its own; its technical one closes."""
    for item in db.exceptions.list(type="effect_failed", entity_ref=key):
        db.exceptions.resolve(item.row.id, "integration", note)


def release_row(
    order: SalesOrder | OrderRelease, action: str, key: str = "", detail: str = ""
) -> dict[str, Any]:
    """One row of the release table: what happened to ``order`` this run."""
    code = order.order_code
    return {
        "order_code": code,
        "order_id": order.order_id,
        "action": action,
        "acknowledged": False,
        "outbox_key": key,
        "detail": detail,
    }


def ack_key(order_code: str, invoice_ids: Iterable[int]) -> str:
    return f"ack:{order_code}:{'-'.join(str(i) for i in sorted(invoice_ids))}"


def enqueue_ack(
    db: Store,
    order_code: str,
    order_id: int,
    invoice_ids: list[int],
    stage_id: int,
    session: Transaction | None = None,
) -> str:
    key = ack_key(order_code, invoice_ids)
    kind = EffectKind.KHAOS_MOVE_INVOICES
    payload = {"order_ids": [order_id], "invoice_ids": sorted(invoice_ids), "stage_id": stage_id}
    db.outbox.enqueue(kind, TARGET_OF[kind], order_code, key, payload, session=session)
    return key


def request_cancellations(
    db: Store,
    book: OrderBook,
    kc: KhaosClient,
    accepted: set[str],
    stages: KhaosStages,
) -> tuple[dict[str, str], list[SalesOrder]]:
    """Queue a cancellation at ACS for each live order cancelled in Khaos; the cancellation
    effects still waiting from earlier runs join them. Returns them by order code, and the
    Khaos statuses read of the live orders."""
    # Cancelled in Khaos after release: cancel at ACS unless finished there.
    # Orders fully despatched per the store are finished: Khaos is not asked about them.
    # Only open orders are read: a finished one (every unit posted or closed short, or
    # its cancellation settled) has no open units and no cancellation waiting.
    all_postings = postings_by_order(book.open_postings())
    releases = book.open_releases()
    live = {
        code: r
        for code, r in releases.items()
        if code in accepted
        and r.cancel_state is None
        and open_units(r, all_postings.get(code, [])) > 0
    }
    statuses = (
        kc.export_order_status([r.order_id for r in live.values()], include_tracking=False)
        if live
        else []
    )
    postings = all_postings
    shipped = {
        o.order_code
        for o in statuses
        if order_completion(o, *posted_and_closed(postings.get(o.order_code, []))) == "shipped"
    }
    cancels: dict[str, str] = {}
    for order in orders_to_cancel(statuses, accepted, shipped, stages=stages):
        release = live[order.order_code]
        body = cancellation_body(AcsOrder.model_validate(release.payload))
        key = release_outbox_key(body)
        kind = EffectKind.ACS_ORDER
        with db.transaction() as session:
            db.outbox.enqueue(
                kind,
                TARGET_OF[kind],
                order.order_code,
                key,
                body.model_dump(mode="json"),
                session=session,
                supersede_key=versions_of(kind, order.order_code),
            )
            book.set_cancel(order.order_code, "requested", key, session)
        cancels[order.order_code] = key
    # A cancellation still waiting in the outbox from an earlier run.
    for code, r in releases.items():
        if r.cancel_state == "requested" and r.cancel_outbox_key and code not in cancels:
            cancels[code] = r.cancel_outbox_key
    return cancels, statuses


def settle_cancellations(
    db: Store, book: OrderBook, cancels: dict[str, str], rows: dict[str, dict[str, Any]]
) -> int:
    """Record what ACS answered to each cancellation (rows by order code); raises an
    ``order_locked`` exception for each refused as picked. Returns how many were."""
    locked: list[ExceptionSpec] = []
    releases = book.releases_of(cancels)
    for code, key in cancels.items():
        effect = db.outbox.by_key(key)
        release = releases[code]
        if effect is None:
            continue
        if effect.state == "done":
            book.set_cancel(code, "cancelled", None)
            rows[code] = release_row(release, "cancelled", key)
        elif effect.state in ("parked", "failed"):
            if "ORDER_LOCKED" in (effect.last_error or ""):
                locked.append(
                    ExceptionSpec(
                        type="order_locked",
                        entity_ref=f"order:{code}",
                        message=(
                            f"order {code} was cancelled in Khaos but ACS has started "
                            "picking it (ORDER_LOCKED): stop the parcel at ACS or raise a "
                            "return when it arrives"
                        ),
                        details={"order_code": code, "outbox_key": key},
                    )
                )
                close_effect_failed(db, key, "ACS refused: order_locked raised")
                book.set_cancel(code, "locked", None)
                rows[code] = release_row(release, "cancel_locked", key, effect.last_error or "")
            else:
                rows[code] = release_row(release, "cancel_queued", key, effect.last_error or "")
        else:
            rows[code] = release_row(release, "cancel_queued", key)
    for spec in locked:
        db.exceptions.raise_exception(spec.type, spec.entity_ref, spec.message, spec.details)
    return len(locked)
