"""What the reconciliation reads from each system and the store: open releases, orders
at ACS and Khaos, despatch events, open cash items and the graded return matches."""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.errors import NotFoundError
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain import reconciliation as rules
from acs_khaos_dagster.domain.models import AcsOrderStatus, DespatchEvent, SalesOrder
from acs_khaos_dagster.domain.returns import MATCHED_COLUMNS
from acs_khaos_dagster.flows.reconciliation.storage import DRIFT
from acs_khaos_dagster.flows.stock_facts import ORDER_BATCH
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.tables.orders import OrderRelease, ShipmentPosting


def khaos_orders(client: KhaosClient, order_ids: Iterable[int]) -> dict[int, SalesOrder]:
    ids = sorted(set(order_ids))
    found: dict[int, SalesOrder] = {}
    for start in range(0, len(ids), ORDER_BATCH):
        for order in client.export_order_status(
            ids[start : start + ORDER_BATCH], include_tracking=False
        ):
            found[order.order_id] = order
    return found


def open_releases(db: Store) -> dict[str, OrderRelease]:
    """Orders sent to ACS with units neither posted to Khaos nor closed short."""
    book = OrderBook(db.db)
    releases = book.releases()
    by_order = _postings_by_order(book.postings(releases))
    return {
        code: release
        for code, release in releases.items()
        if _open_units(release, by_order.get(code, [])) > 0
    }


# The three below are the order flow's own (``defs/orders.py``), read here the same way.


def _postings_by_order(postings: Iterable[ShipmentPosting]) -> dict[str, list[ShipmentPosting]]:
    out: dict[str, list[ShipmentPosting]] = {}
    for posting in postings:
        out.setdefault(posting.order_number, []).append(posting)
    return out


def _posted_and_closed(
    postings: Iterable[ShipmentPosting],
) -> tuple[dict[int, int], dict[int, int]]:
    posted: dict[int, int] = {}
    closed: dict[int, int] = {}
    for p in postings:
        if p.state == "queued":
            for item, qty in p.lines:
                posted[int(item)] = posted.get(int(item), 0) + int(qty)
        for item, qty in p.closed:
            closed[int(item)] = closed.get(int(item), 0) + int(qty)
    return posted, closed


def _open_units(release: OrderRelease, postings: Iterable[ShipmentPosting]) -> int:
    """Units of the body sent to ACS neither posted to Khaos nor closed short."""
    ordered: dict[int, int] = {}
    for line in release.payload.get("lines", []):
        item = int(line["line_item_id"])
        ordered[item] = ordered.get(item, 0) + int(line["quantity"])
    posted, closed = _posted_and_closed(postings)
    return sum(max(0, q - posted.get(i, 0) - closed.get(i, 0)) for i, q in ordered.items())


def acs_orders(client: AcsClient, numbers: Iterable[str]) -> dict[str, AcsOrderStatus | None]:
    found: dict[str, AcsOrderStatus | None] = {}
    for number in sorted(numbers):
        try:
            found[number] = client.get_order(number)
        except NotFoundError:
            found[number] = None
    return found


def despatch_events(
    db: Store, since: datetime, also_shipments: Iterable[str] = ()
) -> list[DespatchEvent]:
    """Despatch events since ``since``, plus every event of ``also_shipments`` whatever
    its age (the open items)."""
    return OrderBook(db.db).despatch_events(since, also_shipments=also_shipments)


def open_cash_items(db: Store) -> list[str]:
    """Shipments whose ``recon:cash:<shipment>`` exception is open: not invoiced when last
    seen, so read again until they are (never dropped for their age)."""
    prefix = rules.finding_key("cash", "")
    return [
        x.row.entity_ref.removeprefix(prefix)
        for x in db.exceptions.list(type=DRIFT)
        if x.row.entity_ref.startswith(prefix)
    ]


# The two below are the returns flow's own (``defs/returns.py``), read here the same way.


def _money(value: Any) -> Decimal:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return Decimal("0")
    return Decimal(str(value))


def stored_matches(units: pd.DataFrame) -> pd.DataFrame:
    """Units already linked to their order line, in ``match_returns``' shape."""
    matched = units[units["order_item_id"].notna()].copy()
    matched["batch_id"] = matched["batch_id"].astype(str)
    matched["repair_cost"] = matched["repair_cost"].map(_money)
    matched["defect_codes"] = matched["defect_codes"].map(
        lambda s: [c for c in str(s or "").split("|") if c]
    )
    if matched.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in MATCHED_COLUMNS})
    matched["order_item_id"] = matched["order_item_id"].astype(int)
    matched["stock_id"] = matched["stock_id"].astype(int)
    matched["unit_net"] = matched["unit_net"].map(_money)
    matched["is_hire"] = matched["is_hire"].astype(bool)
    return matched[list(MATCHED_COLUMNS)].reset_index(drop=True)
