"""Orders corrected in Khaos while their release was on its way to ACS.

A step of ``flows.order_release.release_orders``, between the ACS dispatch and the
acknowledgements: the soak found an address corrected after the release read the order
and before it acknowledged it; ACS shipped to the old address and nobody was told.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.models import Invoice, SalesOrder
from acs_khaos_dagster.domain.order_release import release_invoice, release_revision, to_acs_order
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.flows.order_cancel import close_effect_failed, enqueue_ack, release_row
from acs_khaos_dagster.store import Store

if TYPE_CHECKING:
    from acs_khaos_dagster.flows.order_release import Sending


def edited_while_sent(
    db: Store,
    kc: KhaosClient,
    conf: Settings,
    to_send: dict[str, Sending],
    sku_for: dict[int, str],
) -> set[str]:
    """Orders ACS accepted this run whose body in Khaos is no longer the one sent.

    Customer services may correct an order (an address, a phone number) after this run
    read it and before its acknowledgement moves it on from the release stage; once moved,
    the release never reads it again and ACS would ship the old body without anyone
    knowing. So Khaos is read again right before acknowledging: an order whose body
    changed is left at the release stage, and the next run sends its new revision (ACS
    takes it until picking starts; after that it refuses, and the failed effect is an
    owned exception)."""
    stages = conf.khaos.stages
    sent_states = db.outbox.states(key for *_, key in to_send.values())
    accepted = {
        code: entry for code, entry in to_send.items() if sent_states.get(entry[3]) == "done"
    }
    if not accepted:
        return set()
    fresh = kc.export_order_status(
        [order.order_id for order, *_ in accepted.values()], include_tracking=False
    )
    edited: set[str] = set()
    for order in fresh:
        entry = accepted.get(order.order_code)
        invoice = release_invoice(order, stages.released)
        if entry is None or invoice is None:
            continue  # moved on or cancelled meanwhile: the acknowledgement is as before
        try:
            body = to_acs_order(
                order,
                sku_for,
                couriers=conf.couriers,
                invoice=invoice,
                released_stage=stages.released,
            )
        except (KeyError, ValueError):
            edited.add(order.order_code)  # edited into something the next run must hold
            continue
        if release_revision(body) != release_revision(entry[1]):
            edited.add(order.order_code)
    return edited


def locked_edit(effect: Any, code: str) -> bool:
    """ACS refused a new revision of an order it already holds: picking had started."""
    return "ORDER_LOCKED" in (effect.last_error or "") and effect.idempotency_key.startswith(
        f"order:{code}:"
    )


def settle_locked_edit(
    db: Store, order: SalesOrder, invoice: Invoice, key: str, acknowledged_stage: int
) -> dict[str, Any]:
    """An edit that reached ACS too late: operations get an ``order_locked`` exception
    naming what changed hands (the parcel goes out as ACS holds it unless someone stops or
    redirects it), the refused effect is closed, and the order is acknowledged in Khaos so
    it does not wait at the release stage for a send that can never land."""
    code = order.order_code
    _raise_order_locked(
        db,
        code,
        key,
        "the change did not reach ACS; correct the parcel at ACS or with the courier",
    )
    ack = enqueue_ack(db, code, order.order_id, [invoice.invoice_id], acknowledged_stage)
    row = release_row(order, "edit_locked", key, "edited after picking started at ACS")
    row["ack_key"] = ack
    return row


def settle_stranded_locked_edits(db: Store, sending: Collection[str]) -> int:
    """Edits ACS refused as picked (``ORDER_LOCKED``) whose order is no longer at the
    release stage (ACS shipped it meanwhile, its despatch moved the order on): no release
    run reads those orders again, so the refusal is found among the parked sends.
    Operations get the same ``order_locked`` exception as for an edit refused while the
    order waited (``settle_locked_edit``); there is nothing left to acknowledge. Orders in
    ``sending`` are this run's own; each refusal is raised once (its technical
    ``effect_failed`` closes). Returns how many were raised."""
    raised = 0
    for effect in db.outbox.find(kind=EffectKind.ACS_ORDER, state="parked"):
        code = effect.business_key
        key = effect.idempotency_key
        if code in sending or not locked_edit(effect, code):
            continue
        if not any(
            item.row.status == "open"
            for item in db.exceptions.list(type="effect_failed", entity_ref=key)
        ):
            continue  # raised already, or closed by someone
        _raise_order_locked(
            db,
            code,
            key,
            "it has left the warehouse as ACS held it: the change did not reach ACS; "
            "correct the parcel with the courier",
        )
        raised += 1
    return raised


def _raise_order_locked(db: Store, code: str, key: str, what_now: str) -> None:
    """Operations' ``order_locked`` for an edit ACS refused as picked; the refused send's
    technical ``effect_failed`` closes."""
    db.exceptions.raise_exception(
        "order_locked",
        f"order:{code}",
        f"order {code} was edited in Khaos after ACS started picking it (ORDER_LOCKED): "
        + what_now,
        {"order_code": code, "outbox_key": key},
    )
    close_effect_failed(db, key, "ACS refused the edit: order_locked raised")
