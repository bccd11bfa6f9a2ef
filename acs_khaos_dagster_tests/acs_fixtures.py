"""A tiny hand-built ACS scenario and a harness serving the simulator on loopback.

One uvicorn server per test module (``serve_in_thread``); each test gets a fresh
simulator behind it, so tests never see each other's orders or clock.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.domain.models import (
    AcsOrder,
    AcsOrderLine,
    AcsProduct,
    AcsProductStatus,
    Address,
    Contact,
    Site,
    StockItem,
)
from acs_khaos_dagster.sandbox.acs import AcsSimulator
from acs_khaos_dagster.sandbox.acs.install import MODELLED as ACS_MODELLED
from acs_khaos_dagster.sandbox.acs.install import AcsInstall
from acs_khaos_dagster.sandbox.clock import SimClock
from acs_khaos_dagster.sandbox.faults import FaultInjector
from acs_khaos_dagster.sandbox.http import serve_in_thread
from acs_khaos_dagster.sandbox.scenario.manifest import (
    FulfilmentPlan,
    PlannedShipmentLine,
    ScenarioFiles,
    ScenarioManifest,
)

KEY = "test-acs-subscription-key-5f2c"
ACCOUNT = "BRAND01"
START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)  # a Monday (UTC = UK time in January)
LAG = timedelta(hours=2)
READY = "In Warehouse - Ready For Customer"

# sku -> (status at ACS, is_hire, ready units, other units)
CATALOGUE: dict[str, tuple[AcsProductStatus, bool, int, int]] = {
    "TEE-BLK-M": (AcsProductStatus.ACTIVE, False, 6, 0),
    "TEE-BLK-L": (AcsProductStatus.ACTIVE, False, 3, 1),
    "DRESS-RED-10": (AcsProductStatus.ACTIVE, True, 2, 0),
    "SKIRT-PNK-8": (AcsProductStatus.INACTIVE, False, 1, 0),
}
MULTI_ORDER = "SO-MULTI"  # two shipments, one unit of line 102 closed short
PRE_ALLOCATED_ORDER = "SO-PRE"  # one unit already shows as allocated to it


def build_scenario(folder: Path) -> ScenarioManifest:
    folder.mkdir(parents=True, exist_ok=True)
    units_name = f"stock_units_{ACCOUNT}_20240108000000.csv"
    with (folder / units_name).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "account_code",
                "snapshot_at",
                "sku",
                "unique_sku",
                "rfid_epc",
                "status",
                "location_code",
                "grade",
                "last_event_at",
                "order_number",
                "expected_return_date",
            ]
        )
        for sku, (_, _, ready, other) in CATALOGUE.items():
            for n in range(ready + other):
                status = READY if n < ready else "In Refurbishment"
                writer.writerow(
                    [
                        ACCOUNT,
                        "2024-01-08T00:00:00Z",
                        sku,
                        f"{sku}-U{n:03d}",
                        f"E200{n:08d}",
                        status,
                        f"A-{n:02d}",
                        "A",
                        "2024-01-01T00:00:00Z",
                        "",
                        "",
                    ]
                )
        # Already allocated to an order the integration released before the scenario began.
        writer.writerow(
            [
                ACCOUNT,
                "2024-01-08T00:00:00Z",
                "TEE-BLK-M",
                "TEE-BLK-M-PRE",
                "E200PRE",
                "ALLOCATED",
                "A-99",
                "A",
                "2024-01-07T00:00:00Z",
                PRE_ALLOCATED_ORDER,
                "",
            ]
        )
    items = [
        StockItem(stock_id=i, stock_code=sku, is_hire=hire)
        for i, (sku, (_, hire, _, _)) in enumerate(CATALOGUE.items(), start=1)
    ]
    return ScenarioManifest(
        seed=0,
        size="tiny",
        account_code=ACCOUNT,
        start_at=START,
        sites=[Site(site_id=1, name="Selling")],
        stock_items=items,
        acs_registry=[
            AcsProduct(sku=sku, status=status, is_hire=hire)
            for sku, (status, hire, _, _) in CATALOGUE.items()
        ],
        khaos_levels=[],
        customers=[],
        orders=[],
        fulfilment_plans=[
            FulfilmentPlan(
                order_code=MULTI_ORDER,
                shipments=[
                    [PlannedShipmentLine(order_item_id=101, quantity=2)],
                    [PlannedShipmentLine(order_item_id=102, quantity=1)],
                ],
                closed_short=[PlannedShipmentLine(order_item_id=102, quantity=1)],
                short_reason="DAMAGED_AT_PICK",
            )
        ],
        files=ScenarioFiles(
            stock_units=units_name, returns=f"returns_{ACCOUNT}_20240108000000.csv"
        ),
    )


def make_order(
    number: str,
    lines: list[tuple[str, str, int]] | None = None,
    *,
    hire: bool = False,
    address: Address | None = None,
    cancelled: bool = False,
    comments: str = "",
    warehouse_return_date: datetime | None = None,
) -> AcsOrder:
    lines = lines or [("1", "TEE-BLK-M", 1)]
    return AcsOrder(
        order_number=number,
        order_date=START,
        contact=Contact(
            first_name="Ada", last_name="Lovelace", email="ada@example.test", phone="07700900000"
        ),
        delivery_address=address
        or Address(line1="1 High Street", city="Glasgow", postcode="G1 1AA"),
        comments=comments,
        cancelled=cancelled,
        warehouse_return_date=warehouse_return_date,
        lines=tuple(
            AcsOrderLine(
                line_item_id=line_id, sku=sku, quantity=qty, price=Decimal("19.99"), is_hire=hire
            )
            for line_id, sku, qty in lines
        ),
    )


class _Swappable:
    """An ASGI app that forwards to whichever simulator the current test installed."""

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)


class AcsHarness:
    def __init__(
        self,
        base_url: str,
        sim: AcsSimulator,
        clock: SimClock,
        faults: FaultInjector,
        drop_folder: Path,
    ) -> None:
        self.base_url = base_url
        self.sim = sim
        self.clock = clock
        self.faults = faults
        self.drop_folder = drop_folder
        self.http = httpx.Client(base_url=base_url, timeout=10)

    def client(self, **kwargs: Any) -> AcsClient:
        kwargs.setdefault("timeout", httpx.Timeout(5.0, connect=2.0))
        kwargs.setdefault("backoff_initial_s", 0.01)
        kwargs.setdefault("backoff_max_s", 2.0)
        return AcsClient(self.base_url, kwargs.pop("key", KEY), ACCOUNT, **kwargs)

    def advance(self, delta: timedelta, step: timedelta = timedelta(minutes=15)) -> None:
        target = self.clock.now() + delta
        while self.clock.now() < target:
            self.clock.advance(min(step, target - self.clock.now()))
            self.sim.on_clock()

    def set_time(self, when: datetime) -> None:
        self.advance(when - self.clock.now())

    def truth(self) -> dict[str, Any]:
        return self.http.get("/_sandbox/truth").json()

    def order_truth(self, number: str) -> dict[str, Any]:
        return next(o for o in self.truth()["orders"] if o["order_number"] == number)

    def fault(self, **rule: Any) -> None:
        response = self.http.post("/_sandbox/faults", json=rule)
        response.raise_for_status()

    def stats(self) -> dict[str, dict[str, int]]:
        return self.http.get("/_sandbox/faults/stats").json()

    def api(self, method: str, path: str, *, key: str = KEY, **kwargs: Any) -> httpx.Response:
        return self.http.request(
            method, "/api/partner/v1" + path, headers={"Ocp-Apim-Subscription-Key": key}, **kwargs
        )


@pytest.fixture(scope="module", name="acs_server")
def acs_server_fixture() -> Iterator[tuple[str, _Swappable]]:
    app = _Swappable()
    base_url, stop = serve_in_thread(app)
    try:
        yield base_url, app
    finally:
        stop()


@pytest.fixture(name="acs")
def acs_fixture(acs_server: tuple[str, _Swappable], tmp_path: Path) -> Iterator[AcsHarness]:
    harness = make_harness(acs_server, tmp_path)
    try:
        yield harness
    finally:
        harness.http.close()


def make_harness(
    acs_server: tuple[str, _Swappable],
    tmp_path: Path,
    install: AcsInstall = ACS_MODELLED,
    start: datetime = START,
) -> AcsHarness:
    """A fresh simulator of one ACS account (``install``) behind the module's server."""
    base_url, swappable = acs_server
    manifest = build_scenario(tmp_path / "scenario")
    clock = SimClock(start)
    faults = FaultInjector(seed=7)
    drop = tmp_path / "drop"
    sim = AcsSimulator(
        manifest,
        tmp_path / "scenario",
        drop,
        clock,
        faults,
        subscription_key=KEY,
        account_code=ACCOUNT,
        activation_lag=LAG,
        seed=3,
        install=install,
    )
    swappable.target = sim.app
    return AcsHarness(base_url, sim, clock, faults, drop)
