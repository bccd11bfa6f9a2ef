"""What the reconciliation reads from each system and the store: open releases, orders
at ACS and Khaos, despatch events, open cash items and the graded return matches."""

from collections.abc import Iterable
from datetime import datetime

from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.errors import NotFoundError
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain import reconciliation as rules
from acs_khaos_dagster.domain.models import AcsOrderStatus, DespatchEvent, SalesOrder
from acs_khaos_dagster.flows.order_progress import open_units, postings_by_order
from acs_khaos_dagster.flows.reconciliation.storage import DRIFT
from acs_khaos_dagster.flows.stock_facts import ORDER_BATCH
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.tables.orders import OrderRelease


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
    by_order = postings_by_order(book.postings(releases))
    return {
        code: release
        for code, release in releases.items()
        if open_units(release, by_order.get(code, [])) > 0
    }


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
