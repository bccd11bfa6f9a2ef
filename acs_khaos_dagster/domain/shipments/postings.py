"""Each ACS shipment as one Khaos ``DespatchPosting`` (``to_despatch_posting``), or a
``PostingProblem`` when anything does not add up; and the quantities already posted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from acs_khaos_dagster.domain.layout import KhaosStages
from acs_khaos_dagster.domain.models import (
    DespatchEvent,
    DespatchPosting,
    Package,
    Record,
    SalesOrder,
)
from acs_khaos_dagster.domain.shipments.events import CarrierMap, _line_quantities

ProblemKind = Literal["unknown_order", "unknown_line", "over_shipment", "courier_unmapped", "empty"]

_PROBLEM_EXCEPTION: dict[str, str] = {"courier_unmapped": "courier_unmapped"}


class PostingProblem(Record):
    """Why a shipment cannot be posted to Khaos as it stands."""

    kind: ProblemKind
    order_number: str
    shipment_id: str
    event_id: str
    message: str
    line_item_ids: tuple[str, ...] = ()

    @property
    def exception_type(self) -> str:
        """``courier_unmapped`` for a missing mapping; ``shipment_unpostable`` for the rest
        (unknown order or line, more units than open, nothing to post)."""
        return _PROBLEM_EXCEPTION.get(self.kind, "shipment_unpostable")

    @property
    def exception_ref(self) -> str:
        """One exception per shipment: a fixed mapping or order re-raises the same row."""
        return f"shipment:{self.shipment_id}"


def line_item_to_order_item(line_item_id: str, order: SalesOrder) -> int | None:
    """The Khaos ``order_item_id`` behind an ACS ``line_item_id`` (``str(order_item_id)``)."""
    text = line_item_id.strip()
    if not text.isdigit():
        return None
    order_item_id = int(text)
    return order_item_id if any(li.order_item_id == order_item_id for li in order.lines) else None


def posted_quantities(
    postings: Iterable[DespatchPosting], *, exclude_ref: str | None = None
) -> dict[int, int]:
    """Units posted per ``order_item_id`` by ``postings``, leaving out ``exclude_ref``.

    Pass the shipment being posted as ``exclude_ref`` so its own earlier (possibly
    half-confirmed) attempt does not count against it."""
    totals: dict[int, int] = {}
    for posting in postings:
        if exclude_ref is not None and posting.external_ref == exclude_ref:
            continue
        for order_item_id, quantity in posting.lines:
            totals[order_item_id] = totals.get(order_item_id, 0) + quantity
    return totals


def posted_quantities_from_invoices(
    order: SalesOrder, *, exclude_ref: str | None = None, stages: KhaosStages | None = None
) -> dict[int, int]:
    """Units Khaos already holds as despatched, per ``order_item_id``, read from its invoices.

    An invoice counts when it carries a despatch ``external_ref`` (the ACS shipment id)
    other than ``exclude_ref``. Cancelled invoices never count."""
    stages = stages or KhaosStages()
    totals: dict[int, int] = {}
    for invoice in order.invoices:
        if not invoice.external_ref or invoice.external_ref == exclude_ref:
            continue
        if invoice.stage_id == stages.cancelled:
            continue
        for line in invoice.lines:
            totals[line.order_item_id] = totals.get(line.order_item_id, 0) + line.quantity
    return totals


def to_despatch_posting(
    event: DespatchEvent,
    order: SalesOrder | None,
    courier_map: CarrierMap,
    already_posted: Mapping[int, int] | None = None,
    tz: str = "Europe/London",
) -> DespatchPosting | PostingProblem | None:
    """The ``ImportDespatch`` for one shipment, a ``PostingProblem``, or ``None``.

    - ``None``: the event has no lines but closes lines short: nothing ships, so nothing
      is posted (``short_closures`` reports the closures).
    - Problems, checked in this order, the first found is returned:
      ``unknown_order`` (no Khaos order, or its code differs from the event's order
      number), ``empty`` (no lines and no closures), ``courier_unmapped`` (the
      carrier/service pair is not in ``courier_map``), ``unknown_line`` (a
      ``line_item_id`` that is not ``str(order_item_id)`` of a line of this order;
      all such lines are named), ``over_shipment`` (a line's units in this shipment
      exceed the ordered quantity minus ``already_posted`` for it; all such lines
      named). ``already_posted`` must leave out this shipment itself (see
      ``posted_quantities``).
    - The posting: ``order_id`` of the Khaos order, ``external_ref`` = the ACS shipment
      id, ``lines`` = ``(order_item_id, quantity)`` of **this shipment's lines only**
      (summed per line, sorted), one package per parcel with ``consignment_ref`` = its
      tracking number, the mapped courier code and ``shipment_date`` = ``despatched_at``
      in UTC (the Khaos client writes it in UK local time, ``tz``, which dates the
      invoice). A shipment without parcels posts without packages.
    """
    del tz  # the Khaos client converts to UK local time; kept for the documented signature
    if order is None or order.order_code != event.order_number:
        return _problem(event, "unknown_order", f"no Khaos order {event.order_number}")
    if not event.lines:
        if event.closed_short:
            return None
        return _problem(event, "empty", "despatch event has no lines and no closures")
    courier = courier_map.courier_for(event.carrier, event.service)
    if courier is None:
        return _problem(
            event,
            "courier_unmapped",
            f"ACS carrier {event.carrier!r} service {event.service!r} has no Khaos courier "
            "code: add it to the carrier map",
        )
    quantities = _line_quantities(event)
    unknown = [lid for lid in quantities if line_item_to_order_item(lid, order) is None]
    if unknown:
        return _problem(
            event,
            "unknown_line",
            f"order {order.order_code} has no line {', '.join(unknown)}",
            unknown,
        )
    ordered = {line.order_item_id: line.quantity for line in order.lines}
    posted = already_posted or {}
    lines: list[tuple[int, int]] = []
    over: list[str] = []
    reasons: list[str] = []
    for line_item_id, quantity in quantities.items():
        order_item_id = int(line_item_id.strip())
        open_units = ordered[order_item_id] - posted.get(order_item_id, 0)
        if quantity > open_units:
            over.append(line_item_id)
            reasons.append(
                f"line {line_item_id}: ships {quantity}, ordered {ordered[order_item_id]}, "
                f"already posted {posted.get(order_item_id, 0)}"
            )
        lines.append((order_item_id, quantity))
    if over:
        return _problem(
            event,
            "over_shipment",
            f"order {order.order_code} shipment {event.shipment_id} ships more than is open: "
            + "; ".join(reasons),
            over,
        )
    shipment_date = event.despatched_at
    packages = tuple(
        Package(
            consignment_ref=parcel.tracking_number,
            courier_code=courier,
            shipment_date=shipment_date,
            tracking_url=parcel.tracking_url,
        )
        for parcel in sorted(event.parcels, key=lambda p: p.parcel_no)
    )
    return DespatchPosting(
        order_id=order.order_id,
        external_ref=event.shipment_id,
        lines=tuple(sorted(lines)),
        packages=packages,
    )


def _problem(
    event: DespatchEvent, kind: ProblemKind, message: str, lines: Iterable[str] = ()
) -> PostingProblem:
    return PostingProblem(
        kind=kind,
        order_number=event.order_number,
        shipment_id=event.shipment_id,
        event_id=event.event_id,
        message=message,
        line_item_ids=tuple(lines),
    )
