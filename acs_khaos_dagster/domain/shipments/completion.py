"""Lines ACS closes short (``ShortLine``, for operations) and when an order counts as
shipped: every unit posted or closed short.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

from acs_khaos_dagster.domain.models import (
    DespatchEvent,
    Record,
    SalesOrder,
)
from acs_khaos_dagster.domain.shipments.postings import line_item_to_order_item


class ShortLine(Record):
    """A line ACS closed short: a ``despatch_closed_short`` exception for operations."""

    order_number: str
    shipment_id: str
    line_item_id: str
    order_item_id: int | None
    stock_code: str
    quantity: int
    reason: str
    action: str
    closed_at: datetime

    @property
    def exception_type(self) -> str:
        return "despatch_closed_short"

    @property
    def owner(self) -> str:
        return "operations"

    @property
    def exception_ref(self) -> str:
        """Stable per order, shipment and line: a repeated event updates the same row."""
        return f"short:{self.order_number}:{self.shipment_id}:{self.line_item_id}"

    @property
    def message(self) -> str:
        item = f"line {self.line_item_id}" + (f" ({self.stock_code})" if self.stock_code else "")
        return (
            f"ACS closed {item} of order {self.order_number} short by {self.quantity} "
            f"unit(s): {self.reason}. {self.action}"
        )


def short_closures(event: DespatchEvent, order: SalesOrder | None) -> list[ShortLine]:
    """Each line ACS closed short in ``event`` (quantities summed per line).

    The remainder stays in Khaos as a back order that will never ship and keeps stock
    allocated, so the action names what to do there: cancel the back-order line in
    Sales Invoice Manager (stage 18 Awaiting Stock), or reallocate it. A line the
    order does not know is still reported (``order_item_id`` ``None``).
    """
    merged: dict[str, tuple[int, list[str]]] = {}
    for closure in event.closed_short:
        quantity, reasons = merged.get(closure.line_item_id, (0, []))
        if closure.reason and closure.reason not in reasons:
            reasons.append(closure.reason)
        merged[closure.line_item_id] = (quantity + closure.quantity, reasons)
    out = []
    for line_item_id, (quantity, reasons) in merged.items():
        order_item_id = line_item_to_order_item(line_item_id, order) if order else None
        stock_code = ""
        if order is not None and order_item_id is not None:
            stock_code = next(
                li.stock_code for li in order.lines if li.order_item_id == order_item_id
            )
        target = (
            f"order item {order_item_id}" if order_item_id is not None else f"line {line_item_id}"
        )
        action = (
            f"In Khaos Sales Invoice Manager, cancel the back-order {target} for {quantity} "
            f"unit(s) of order {event.order_number} at stage 18 Awaiting Stock, or reallocate "
            "it to another fulfilment; ACS will not ship it."
        )
        out.append(
            ShortLine(
                order_number=event.order_number,
                shipment_id=event.shipment_id,
                line_item_id=line_item_id,
                order_item_id=order_item_id,
                stock_code=stock_code,
                quantity=quantity,
                reason=", ".join(reasons) or "not given",
                action=action,
                closed_at=event.despatched_at,
            )
        )
    return out


def closed_quantities(short_lines: Iterable[ShortLine]) -> dict[int, int]:
    """Units closed short per ``order_item_id`` (lines the order does not know are skipped)."""
    totals: dict[int, int] = {}
    for short in short_lines:
        if short.order_item_id is not None:
            totals[short.order_item_id] = totals.get(short.order_item_id, 0) + short.quantity
    return totals


Completion = Literal["open", "partially_shipped", "shipped"]


def order_completion(
    order: SalesOrder,
    posted_quantities: Mapping[int, int],
    closed_quantities: Mapping[int, int] | None = None,
) -> Completion:
    """Where the order stands at the warehouse.

    ``shipped`` when every line's posted plus closed-short units reach its ordered
    quantity (nothing is left for ACS to ship; an order closed short entirely counts
    here too, its closures being exceptions); ``partially_shipped`` when some units
    are posted and some are still to ship; ``open`` when nothing is posted yet.
    """
    closed = closed_quantities or {}
    remaining = sum(
        max(
            0,
            line.quantity
            - posted_quantities.get(line.order_item_id, 0)
            - closed.get(line.order_item_id, 0),
        )
        for line in order.lines
    )
    if remaining == 0:
        return "shipped"
    posted = sum(posted_quantities.get(line.order_item_id, 0) for line in order.lines)
    return "partially_shipped" if posted > 0 else "open"
