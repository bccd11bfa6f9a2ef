"""``Warehouse``: the ACS state's data and what every part of it uses: the lock, the
timetable of due warehouse actions (``advance``), and the moves of orders and units.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from acs_khaos_dagster.sandbox.acs.state.records import (
    PRODUCT_FIELDS,
    Order,
    Product,
    Unit,
    _err,
    iso,
)
from acs_khaos_dagster.sandbox.scenario.manifest import FulfilmentPlan, ScenarioManifest


class Warehouse:
    """The data the parts of ``AcsState`` share and the timetable. Setting up from the
    scenario uses ``ProductRegistry`` and ``StockUnits``; the actions the timetable applies
    are the ``_ship`` and ``_do_<action>`` methods of ``Fulfilment`` and ``HireCycle``."""

    def __init__(
        self,
        manifest: ScenarioManifest,
        scenario_dir: Path,
        account_code: str,
        activation_lag: timedelta | None,
        seed: int = 0,
    ) -> None:
        """``activation_lag``: how long ACS takes to set up a new SKU (None: never)."""
        self.lock = threading.RLock()
        self.received_returns: set[tuple[str, str]] = set()
        self.returned_per_line: dict[tuple[str, str], int] = {}
        self.account_code = account_code
        self.activation_lag = activation_lag
        self._random = random.Random(seed)
        self._seq = itertools.count()
        self._due: list[tuple[datetime, int, str, str]] = []  # (when, seq, order, action)
        self.products: dict[str, Product] = {}
        self.orders: dict[str, Order] = {}
        self.plans: dict[str, FulfilmentPlan] = {p.order_code: p for p in manifest.fulfilment_plans}
        self.feed: list[dict[str, Any]] = []  # served by ``feed.page``
        self.suppressed: set[str] = set()
        self.feed_faults: list[dict[str, Any]] = []
        self.delayed_events: list[dict[str, Any]] = []  # published on the next read
        self.units: dict[str, Unit] = {}
        self.units_by_sku: dict[str, list[Unit]] = {}
        self.despatched_units: dict[str, str] = {}  # unique_sku -> order number
        self.pending_returns: list[dict[str, str]] = []
        self.returns_written = 0
        self._event_seq = itertools.count(1)
        # Indexes kept beside the products: a brand registers 50k of them, and every request
        # would otherwise scan them all (activation, barcode uniqueness).
        self._activations: list[tuple[datetime, str]] = []  # (active_at, sku), a heap
        self._skus_by_barcode: dict[str, set[str]] = {}
        for product in manifest.acs_registry:
            status = str(product.status)
            self._add_product(
                Product(
                    sku=product.sku,
                    attributes=product.model_dump(mode="json", include=set(PRODUCT_FIELDS)),
                    status=status,
                    registered_at=manifest.start_at,
                    active_at=self._set_up_at(manifest.start_at) if status == "pending" else None,
                )
            )
        units_path = scenario_dir / manifest.files.stock_units
        if units_path.exists():
            self._load_units(units_path)

    # --- time ----------------------------------------------------------------

    def advance(self, now: datetime) -> None:
        """Apply everything due up to ``now``, in time order (so the feed is chronological)."""
        with self.lock:
            while self._activations and self._activations[0][0] <= now:
                active_at, sku = heapq.heappop(self._activations)
                product = self.products[sku]
                if product.status == "pending" and product.active_at == active_at:
                    product.status = "active"
            while self._due and self._due[0][0] <= now:
                when, _, number, action = heapq.heappop(self._due)
                order = self.orders.get(number)
                if order is None or order.cancelled:
                    continue
                name, _, argument = action.partition(":")
                if name == "ship":
                    self._ship(order, int(argument), when)
                else:
                    getattr(self, f"_do_{name}")(order, when)

    def _schedule(self, when: datetime, order: Order, action: str) -> None:
        heapq.heappush(self._due, (when, next(self._seq), order.number, action))

    def _move(self, order: Order, status: str, when: datetime) -> None:
        order.status = status
        order.history.append((iso(when), status))

    def _set_unit(
        self,
        unit: Unit,
        status: str,
        when: datetime,
        order_number: str | None = None,
        location: str | None = None,
        expected_return: str | None = None,
    ) -> None:
        unit.status = status
        unit.last_event_at = iso(when)
        if order_number is not None:
            unit.order_number = order_number
        if location is not None:
            unit.location_code = location
        if expected_return is not None:
            unit.expected_return_date = expected_return

    def _check_account(self, body: dict[str, Any], errors: list[dict[str, str]]) -> None:
        if body.get("AccountCode") != self.account_code:
            errors.append(
                _err(
                    "AccountCode", "INVALID_ACCOUNT", "AccountCode does not match this subscription"
                )
            )
