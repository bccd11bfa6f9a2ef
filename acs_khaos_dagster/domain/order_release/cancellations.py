"""Back orders and cancellations: which orders are back orders of one already at ACS
(never sent again), and which orders cancelled in Khaos must be cancelled at ACS.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from acs_khaos_dagster.domain.layout import KhaosStages
from acs_khaos_dagster.domain.models import (
    AcsOrder,
    Invoice,
    Record,
    SalesOrder,
)
from acs_khaos_dagster.domain.order_release.mapping import release_invoice


def _despatched(invoice: Invoice, stages: KhaosStages) -> bool:
    """Evidence that a shipment was posted against this invoice."""
    return bool(invoice.external_ref) or invoice.stage_id in (stages.issue, *stages.issued)


def is_back_order_of_released_order(
    order: SalesOrder,
    already_released: Collection[str],
    *,
    stages: KhaosStages | None = None,
) -> bool:
    """True when ``order`` is at ACS already and its invoice at 9 or 18 is a back order.

    Rule: the order's code is in ``already_released`` (orders the outbox has sent to
    ACS), it has an invoice at the release stage or Awaiting Stock, and it shows it was
    split by a despatch: another invoice carries a despatch ``external_ref`` or sits at
    Issue / Issued, or it has more than one invoice that is not cancelled. ACS keeps the
    remainder of a partly despatched order open and ships it on the same order number,
    so such an invoice is never released again (a ``PUT`` would replace the order at ACS
    with only the back-ordered lines).

    An order released before and moved back whole to the release stage (one open
    invoice, nothing despatched) is *not* a back order: it may be re-sent, and its
    revision decides whether anything changed.
    """
    stages = stages or KhaosStages()
    if order.order_code not in already_released:
        return False
    waiting = [i for i in order.invoices if i.stage_id in (stages.released, stages.awaiting_stock)]
    if not waiting:
        return False
    others = [i for i in order.invoices if i not in waiting]
    live = [i for i in order.invoices if i.stage_id != stages.cancelled]
    return any(_despatched(i, stages) for i in others) or len(live) > 1


class ReleasePlan(Record):
    """What to do with the orders read at the release stage."""

    to_release: tuple[SalesOrder, ...] = ()
    back_orders: tuple[SalesOrder, ...] = ()


def release_plan(
    orders: Iterable[SalesOrder],
    already_released: Collection[str],
    *,
    stages: KhaosStages | None = None,
) -> ReleasePlan:
    """Orders with an invoice at the release stage, split into ``to_release`` and
    ``back_orders`` (``is_back_order_of_released_order``: never sent again; the order
    release acknowledges their invoice so it stops waiting at the release stage). Orders with
    no invoice at the release stage are ignored. Order of input is kept."""
    stages = stages or KhaosStages()
    to_release: list[SalesOrder] = []
    back: list[SalesOrder] = []
    for order in orders:
        if release_invoice(order, stages.released) is None:
            continue
        if is_back_order_of_released_order(order, already_released, stages=stages):
            back.append(order)
        else:
            to_release.append(order)
    return ReleasePlan(to_release=tuple(to_release), back_orders=tuple(back))


def cancellation_body(order: AcsOrder) -> AcsOrder:
    """The same order with ``cancelled=True`` (``OrderCancelled``): its own revision and key.

    Send the body last sent to ACS (the outbox payload), so ACS sees the order it holds
    being cancelled rather than a different order."""
    return order.model_copy(update={"cancelled": True})


def needs_cancelling_at_acs(
    order: SalesOrder,
    already_released: Collection[str],
    finished_at_acs: Collection[str] = (),
    *,
    stages: KhaosStages | None = None,
) -> bool:
    """True when ``order`` was cancelled in Khaos but is still live at ACS.

    Rule: the order was released to ACS (``already_released``), it is not finished there
    (``finished_at_acs``: orders fully despatched, cancelled already, or whose
    cancellation is in the outbox), it has at least one invoice at the Cancelled stage,
    and no invoice is still open (every invoice is Cancelled, or despatched: Issue,
    Issued or carrying a despatch ``external_ref``). A partly shipped order whose
    back order was cancelled qualifies: ACS must stop shipping the remainder. ACS
    answers ``409 ORDER_LOCKED`` once picking has started: that is an ``order_locked``
    exception for operations, not something to retry.
    """
    stages = stages or KhaosStages()
    if order.order_code not in already_released or order.order_code in finished_at_acs:
        return False
    cancelled = [i for i in order.invoices if i.stage_id == stages.cancelled]
    if not cancelled:
        return False
    return all(i.stage_id == stages.cancelled or _despatched(i, stages) for i in order.invoices)


def orders_to_cancel(
    orders: Iterable[SalesOrder],
    already_released: Collection[str],
    finished_at_acs: Collection[str] = (),
    *,
    stages: KhaosStages | None = None,
) -> list[SalesOrder]:
    """The orders for which ``needs_cancelling_at_acs`` holds, in input order."""
    return [
        order
        for order in orders
        if needs_cancelling_at_acs(order, already_released, finished_at_acs, stages=stages)
    ]
