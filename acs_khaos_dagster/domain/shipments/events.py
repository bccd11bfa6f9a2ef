"""ACS's despatch events as a shipments table: one row per shipment whatever the order
or repeats of arrival (``shipment_rows``), and the carrier map (ACS carrier and service to
a Khaos courier code).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from acs_khaos_dagster.domain.models import (
    DespatchEvent,
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
