"""Orders in the store: releases to ACS, despatch events, shipment postings, order clocks.

Every write takes the caller's session, so a release is recorded in the same transaction
as its outbox effect, and despatch events with the feed cursor that covers them.

The package's modules: ``book`` (``OrderBook``, made of the three below), ``releases``
(the bodies sent to ACS, their acknowledgement and cancellation, when an order is over),
``clocks`` (the stuck-order clock: how long an order has waited at the release stage or in
back order) and ``shipments`` (despatch events, shipment postings and their invoices).
"""

from __future__ import annotations

from acs_khaos_dagster.store.orders.book import OrderBook
from acs_khaos_dagster.store.orders.releases import FINISHED_CANCEL_STATES, release_finished
from acs_khaos_dagster.store.orders.shipments import DESPATCH_CURSOR, PostingRecord

__all__ = [
    "DESPATCH_CURSOR",
    "FINISHED_CANCEL_STATES",
    "OrderBook",
    "PostingRecord",
    "release_finished",
]
