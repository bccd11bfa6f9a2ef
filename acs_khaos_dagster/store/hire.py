"""Hire in the store: which orders are hire orders, and how often each unit went out.

Read-only queries over the order tables (``store.tables.orders``) for the hire valuation
and the pack's split of hire fees from sales.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select

from acs_khaos_dagster.domain.models import AcsOrder, DespatchEvent
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.tables.orders import DespatchEventRow, OrderRelease


class HireBook:
    def __init__(self, db: Database) -> None:
        self._db = db

    def hire_orders(self) -> set[str]:
        """Order numbers released to ACS whose lines are hire lines (a hire fee)."""
        with self._db.transaction() as s:
            payloads = list(s.scalars(select(OrderRelease.payload)))
        orders = (AcsOrder.model_validate(p) for p in payloads)
        return {o.order_number for o in orders if o.lines and all(ln.is_hire for ln in o.lines)}

    def unit_despatches(self, until: datetime | None = None) -> Counter[tuple[str, str]]:
        """How many times ACS despatched each unit, by ``(sku, unique_sku)`` (by ``until``
        when given): for a hire unit, its rentals so far. One count per shipment, however
        often its event was re-sent."""
        query = select(DespatchEventRow.shipment_id, DespatchEventRow.payload)
        if until is not None:
            query = query.where(DespatchEventRow.despatched_at <= until)
        seen: dict[str, set[tuple[str, str]]] = {}
        with self._db.transaction() as s:
            for shipment_id, payload in s.execute(query):
                if shipment_id in seen:
                    continue
                event = DespatchEvent.model_validate(payload)
                seen[shipment_id] = {
                    (line.sku, unit) for line in event.lines for unit in line.unique_skus
                }
        return Counter(u for units in seen.values() for u in units)
