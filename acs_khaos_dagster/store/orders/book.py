"""The ``OrderBook``: the orders' repository, one class over the store's database."""

from __future__ import annotations

from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.orders.clocks import OrderClocks
from acs_khaos_dagster.store.orders.releases import Releases
from acs_khaos_dagster.store.orders.shipments import Shipments


class OrderBook(Releases, OrderClocks, Shipments):
    def __init__(self, db: Database) -> None:
        self._db = db
