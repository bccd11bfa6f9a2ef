"""Mapping a releasable order: which invoice and lines, the ACS order body, and the
revision and outbox key that keep an unchanged order from being sent twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from acs_khaos_dagster.domain.models import (
    AcsOrder,
    AcsOrderLine,
    Invoice,
    OrderLine,
    SalesOrder,
)
from acs_khaos_dagster.domain.order_release.couriers import CourierMap


class HireDates(BaseModel):
    """Dates ACS needs for a hire order (all timezone-aware); absent for a sale."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    despatch_date: datetime | None = None
    event_date: datetime | None = None
    warehouse_return_date: datetime | None = None


def release_invoice(order: SalesOrder, released_stage: int = 9) -> Invoice | None:
    """The order's invoice waiting at the release stage (lowest ``invoice_id`` if several)."""
    waiting = [inv for inv in order.invoices if inv.stage_id == released_stage]
    return min(waiting, key=lambda inv: inv.invoice_id) if waiting else None


def release_lines(
    order: SalesOrder, invoice: Invoice | None = None, *, released_stage: int = 9
) -> list[tuple[OrderLine, int]]:
    """The order lines on the invoice being released, each with the quantity on that invoice.

    Rule (same as ``domain.orders.released_order_lines_frame``): an invoice that lists its
    lines gives the quantities; an invoice without lines (or an order with no invoice at
    all) stands for the whole order. Lines with no quantity on the invoice are left out.
    """
    invoice = invoice if invoice is not None else release_invoice(order, released_stage)
    on_invoice = {line.order_item_id: line.quantity for line in invoice.lines} if invoice else {}
    chosen = []
    for line in order.lines:
        quantity = on_invoice.get(line.order_item_id, 0) if on_invoice else line.quantity
        if quantity > 0:
            chosen.append((line, quantity))
    return chosen


def to_acs_order(
    order: SalesOrder,
    sku_for_stock_id: Mapping[int, str],
    *,
    couriers: CourierMap | None = None,
    hire_dates: HireDates | None = None,
    invoice: Invoice | None = None,
    released_stage: int = 9,
    comments: str = "",
) -> AcsOrder:
    """The ACS order for ``order``'s invoice at the release stage.

    Rules:
    - ``order_number`` is the Khaos ``order_code``; ``order_date`` the Khaos order date.
    - One ACS line per order line on the released invoice (``release_lines``):
      ``line_item_id = str(order_item_id)`` (the despatch feed maps back through it),
      ``sku`` = the ACS SKU registered for the line's **StockID** (``sku_for_stock_id``, the
      identity map kept by the products flow), never the current Khaos stock code, so a
      renamed stock code still orders the SKU ACS knows; ``price = unit_net``,
      ``quantity`` = the quantity on the invoice, ``is_hire`` as in Khaos.
    - Contact and delivery address are copied as they are (no trimming, no splitting:
      the ACS client enforces its field limits); awkward characters are preserved.
    - ``delivery_agent``/``delivery_service`` come from the Khaos courier code via
      ``couriers`` (``CourierMap``); hire dates, when given, fill the hire fields.

    Raises ``KeyError`` naming the StockID when a line has no ACS SKU (run
    ``validate_against_ready_skus`` first: such an order is held, not mapped),
    ``UnmappedCourierError`` when the courier cannot be routed, and ``ValueError``
    when no line is left to release.
    """
    route = (couriers or CourierMap()).route_for(order.courier_code)
    lines = []
    for line, quantity in release_lines(order, invoice, released_stage=released_stage):
        if line.stock_id not in sku_for_stock_id:
            raise KeyError(f"StockID {line.stock_id} ({line.stock_code}) has no ACS SKU")
        lines.append(
            AcsOrderLine(
                line_item_id=str(line.order_item_id),
                sku=sku_for_stock_id[line.stock_id],
                quantity=quantity,
                price=line.unit_net,
                is_hire=line.is_hire,
            )
        )
    if not lines:
        raise ValueError(f"order {order.order_code} has no line to release")
    dates = hire_dates or HireDates()
    return AcsOrder(
        order_number=order.order_code,
        order_date=order.order_date,
        contact=order.contact,
        delivery_address=order.delivery_address,
        delivery_service=route.service,
        delivery_agent=route.agent,
        comments=comments,
        lines=tuple(lines),
        despatch_date=dates.despatch_date,
        event_date=dates.event_date,
        warehouse_return_date=dates.warehouse_return_date,
    )


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Normalised so 12.5 and 12.50 hash alike (same price, same order).
        text = format(value.normalize(), "f")
        return text
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def release_revision(order: AcsOrder) -> str:
    """A stable hash of the mapped body: 16 hex digits of SHA-256.

    Canonical JSON: sorted keys, no spaces, ``Decimal`` as its normalised string,
    datetimes as ISO 8601 with their offset. Any change of a field (a line, the
    address, ``cancelled``) gives a new revision; the same body always the same one.
    """
    body = _canonical(order.model_dump(mode="python"))
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def release_outbox_key(order: AcsOrder, after: str | None = None) -> str:
    """Outbox idempotency key of a ``PUT orders``: ``order:{order_number}:{revision}``.

    An order edited back to a body it had before (A, then B, then A again) needs a new
    key, or the outbox would take the second A for the first and ACS would keep B:
    ``after`` is the key of the version it follows, which makes the key new and still the
    same on every rerun.
    """
    key = f"order:{order.order_number}:{release_revision(order)}"
    if after is None:
        return key
    return f"{key}:after:{hashlib.sha256(after.encode('utf-8')).hexdigest()[:8]}"
