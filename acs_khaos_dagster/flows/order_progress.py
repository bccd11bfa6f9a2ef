"""How far each released order has got, from the store alone: the units posted to Khaos
and closed short per order line, and the units still open.

Shared by the order release (cancellations of orders still open), the despatch postings
(what a shipment may still post) and the stuck-order clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from acs_khaos_dagster.store.tables.orders import OrderRelease, ShipmentPosting


def postings_by_order(postings: Iterable[ShipmentPosting]) -> dict[str, list[ShipmentPosting]]:
    out: dict[str, list[ShipmentPosting]] = {}
    for posting in postings:
        out.setdefault(posting.order_number, []).append(posting)
    return out


def posted_and_closed(
    postings: Iterable[ShipmentPosting], exclude: str | None = None
) -> tuple[dict[int, int], dict[int, int]]:
    posted: dict[int, int] = {}
    closed: dict[int, int] = {}
    for p in postings:
        if p.shipment_id == exclude:
            continue
        if p.state == "queued":
            for item, qty in p.lines:
                posted[int(item)] = posted.get(int(item), 0) + int(qty)
        for item, qty in p.closed:
            closed[int(item)] = closed.get(int(item), 0) + int(qty)
    return posted, closed


def open_units(release: OrderRelease, postings: Iterable[ShipmentPosting]) -> int:
    """Units of the body sent to ACS neither posted to Khaos nor closed short."""
    ordered: dict[int, int] = {}
    for line in release.payload.get("lines", []):
        item = int(line["line_item_id"])
        ordered[item] = ordered.get(item, 0) + int(line["quantity"])
    posted, closed = posted_and_closed(postings)
    return sum(max(0, q - posted.get(i, 0) - closed.get(i, 0)) for i, q in ordered.items())
