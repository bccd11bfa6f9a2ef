"""The stuck-order clock: when each order started waiting at ACS's release stage or in
back order, from what each cycle saw there (the SLA's inputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.orders.releases import _KEYS_PER_QUERY
from acs_khaos_dagster.store.tables.orders import OrderObservation, OrderRelease

# A pass loses to a concurrent first sighting at most once per order it inserts; three
# passes cover two cycles racing on the same new orders without hiding a real key bug.
_OBSERVE_ATTEMPTS = 3


class OrderClocks:
    """The observations half of ``OrderBook``."""

    # Set by ``OrderBook.__init__``.
    _db: Database

    def observations(self) -> dict[str, OrderObservation]:
        """Every observation ever recorded; a cycle wants ``open_observations``."""
        with self._db.transaction() as s:
            return {o.order_code: o for o in s.scalars(select(OrderObservation))}

    def open_observations(self) -> dict[str, OrderObservation]:
        """Observations whose clock is running (waiting at the release stage or in back
        order) of orders not finished at ACS: the SLA's inputs, without the orders whose
        waits are long over. (A back order's clock is stopped only by a sighting without
        it; a finished order is not sighted again, so its finish is what leaves it out.)"""
        running = or_(
            OrderObservation.at_release_since.is_not(None),
            OrderObservation.back_order_since.is_not(None),
        )
        finished = (
            select(OrderRelease.order_code)
            .where(
                OrderRelease.order_code == OrderObservation.order_code,
                OrderRelease.finished_at.is_not(None),
            )
            .exists()
        )
        query = select(OrderObservation).where(running, ~finished)
        with self._db.transaction() as s:
            return {o.order_code: o for o in s.scalars(query)}

    def observe(
        self,
        seen: Mapping[str, tuple[int, bool, bool]],
        at: datetime,
        *,
        release_stage_complete: bool,
    ) -> None:
        """Record what was seen now: ``order_code -> (order_id, at_release, back_order)``.

        The first sighting of a wait starts its clock; a wait no longer seen stops it.
        With ``release_stage_complete`` every order at the release stage is in ``seen``,
        so a tracked order missing from it has left that stage.

        Two cycles at once (two runs on PostgreSQL) may both see an order for the first time:
        the later insert fails on the order's key and rolls back, and its second pass finds
        the other's row and only updates it, keeping the clock the first sighting started.
        """
        for attempt in range(_OBSERVE_ATTEMPTS):
            try:
                return self._observe(seen, at, release_stage_complete=release_stage_complete)
            except IntegrityError:
                if attempt == _OBSERVE_ATTEMPTS - 1:
                    raise

    def _observe(
        self,
        seen: Mapping[str, tuple[int, bool, bool]],
        at: datetime,
        *,
        release_stage_complete: bool,
    ) -> None:
        now = self._db.now()
        with self._db.transaction() as s:
            # Only the orders seen now and the clocks still running: an order whose waits
            # ended long ago is never read again.
            codes = sorted(seen)
            rows: dict[str, OrderObservation] = {}
            for start in range(0, len(codes), _KEYS_PER_QUERY):
                chunk = codes[start : start + _KEYS_PER_QUERY]
                query = select(OrderObservation).where(OrderObservation.order_code.in_(chunk))
                rows.update({o.order_code: o for o in s.scalars(query)})
            if release_stage_complete:
                running = select(OrderObservation).where(
                    OrderObservation.at_release_since.is_not(None)
                )
                for o in s.scalars(running):
                    rows.setdefault(o.order_code, o)
            for code, (order_id, at_release, back_order) in seen.items():
                row = rows.get(code)
                if row is None:
                    row = OrderObservation(order_code=code, order_id=order_id, updated_at=now)
                    s.add(row)
                    rows[code] = row
                if at_release and row.at_release_since is None:
                    row.at_release_since = at
                if not at_release:
                    row.at_release_since = None
                if back_order and row.back_order_since is None:
                    row.back_order_since = at
                if not back_order:
                    row.back_order_since = None
                row.updated_at = now
            if release_stage_complete:
                for code, row in rows.items():
                    if code not in seen and row.at_release_since is not None:
                        row.at_release_since = None
                        row.updated_at = now
