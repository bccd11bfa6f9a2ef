"""Despatch back: ACS shipments as a table, and each shipment as one Khaos ``ImportDespatch``.

Pure functions over ``domain.models`` records; no Dagster, no network, no database.

Rules (each function's docstring has the detail):
- Events arrive at least once and in any order. ``shipment_rows`` keeps one row per
  shipment whatever the arrival order or repeats.
- One ACS shipment = one ``DespatchPosting`` keyed by the ACS shipment id
  (``external_ref``); it carries only that shipment's lines. Anything that does not
  add up is a ``PostingProblem``, never a guess: unknown order or line, more units
  than are still open, an unmapped courier, an empty event.
- Lines ACS closes short are ``ShortLine`` problems for operations with the action
  to take in Khaos.
- An order is ``shipped`` only when every unit is posted or closed short.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from acs_khaos_dagster.domain.layout import KhaosStages
from acs_khaos_dagster.domain.models import (
    DespatchEvent,
    DespatchPosting,
    Package,
    Record,
    SalesOrder,
)

SHIPMENT_COLUMNS = [
    "order_number",
    "shipment_id",
    "event_id",
    "despatched_at",
    "carrier",
    "service",
    "lines",
    "line_count",
    "units",
    "parcels",
    "tracking_numbers",
    "tracking_urls",
    "closed_short_units",
]


def unique_events(events: Iterable[DespatchEvent]) -> list[DespatchEvent]:
    """Events de-duplicated and in a stable order, whatever order they arrived in.

    The same ``event_id`` twice counts once (the first copy is kept). The same
    ``shipment_id`` under two event ids is one shipment: the copy with the smallest
    ``(despatched_at, event_id)`` is kept. Result sorted by order number, despatch
    time, shipment id.
    """
    by_event: dict[str, DespatchEvent] = {}
    for event in events:
        by_event.setdefault(event.event_id, event)
    by_shipment: dict[tuple[str, str], DespatchEvent] = {}
    for event in sorted(by_event.values(), key=lambda e: (e.despatched_at, e.event_id)):
        by_shipment.setdefault((event.order_number, event.shipment_id), event)
    return sorted(
        by_shipment.values(), key=lambda e: (e.order_number, e.despatched_at, e.shipment_id)
    )


def shipment_rows(events: Iterable[DespatchEvent]) -> pd.DataFrame:
    """One row per shipment (``SHIPMENT_COLUMNS``), from ``unique_events``.

    ``lines`` is ``"line_item_id x quantity"`` joined by ``", "`` (quantities summed per
    line), ``units`` their total, ``parcels`` the parcel count, ``tracking_numbers`` and
    ``tracking_urls`` joined by ``" "`` in parcel order, ``despatched_at`` UTC.
    An event with no lines (a closure-only notice) is not a shipment and has no row;
    its closures are reported by ``short_closures``.
    """
    rows = []
    for event in unique_events(events):
        if not event.lines:
            continue
        quantities = _line_quantities(event)
        parcels = sorted(event.parcels, key=lambda p: p.parcel_no)
        rows.append(
            {
                "order_number": event.order_number,
                "shipment_id": event.shipment_id,
                "event_id": event.event_id,
                "despatched_at": pd.Timestamp(event.despatched_at).tz_convert("UTC"),
                "carrier": event.carrier,
                "service": event.service,
                "lines": ", ".join(f"{line} x {qty}" for line, qty in quantities.items()),
                "line_count": len(quantities),
                "units": sum(quantities.values()),
                "parcels": len(parcels),
                "tracking_numbers": " ".join(p.tracking_number for p in parcels),
                "tracking_urls": " ".join(p.tracking_url for p in parcels if p.tracking_url),
                "closed_short_units": sum(c.quantity for c in event.closed_short),
            }
        )
    frame = pd.DataFrame(rows, columns=SHIPMENT_COLUMNS)
    frame["despatched_at"] = pd.to_datetime(frame["despatched_at"], utc=True)
    for column in ("line_count", "units", "parcels", "closed_short_units"):
        frame[column] = frame[column].astype("int64")
    return frame.reset_index(drop=True)


def _line_quantities(event: DespatchEvent) -> dict[str, int]:
    quantities: dict[str, int] = {}
    for line in event.lines:
        quantities[line.line_item_id] = quantities.get(line.line_item_id, 0) + line.quantity
    return quantities


# --- Carrier mapping (ACS carrier + service -> Khaos courier code) --------------------------


def _route_key(carrier: str, service: str) -> str:
    return f"{carrier.strip().upper()}/{service.strip().upper()}"


class CarrierMap(BaseModel):
    """ACS ``carrier`` + ``service`` -> Khaos ``CourierCode`` (configuration, never a guess).

    Keys are ``"CARRIER/SERVICE"`` (case-insensitive, trimmed); ``"CARRIER/*"`` matches
    any service of that carrier. An exact key wins over the wildcard. Anything else is
    unmapped and becomes a ``courier_unmapped`` problem. The defaults map the carriers
    and services ACS is known to use (``DPD``, ``RM`` with ``24``/``48``/``ND``) to the
    Khaos codes of the same name, which is what the sandbox sends out.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    routes: dict[str, str] = {
        "DPD/24": "DPD",
        "DPD/48": "DPD",
        "DPD/ND": "DPD",
        "RM/24": "RM",
        "RM/48": "RM",
    }

    @field_validator("routes")
    @classmethod
    def _normalise(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, code in value.items():
            carrier, sep, service = key.partition("/")
            if not sep or not carrier.strip() or not service.strip():
                raise ValueError(f"carrier route {key!r} must look like 'CARRIER/SERVICE'")
            if not code.strip():
                raise ValueError(f"carrier route {key!r} maps to an empty courier code")
            out[_route_key(carrier, service)] = code.strip()
        return out

    def courier_for(self, carrier: str, service: str) -> str | None:
        """The Khaos courier code, or ``None`` when the pair is not configured."""
        if not carrier.strip():
            return None
        exact = self.routes.get(_route_key(carrier, service))
        return exact if exact is not None else self.routes.get(_route_key(carrier, "*"))


# --- Postings --------------------------------------------------------------------------------

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


# --- Short closures and completion ------------------------------------------------------------


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
