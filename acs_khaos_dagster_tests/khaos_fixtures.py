"""A tiny hand-built Khaos scenario and a harness serving the simulator on loopback.

One uvicorn server per test module (``serve_in_thread``); each test gets a fresh
simulator behind it, so tests never see each other's orders, levels or clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.models import (
    Address,
    Barcode,
    Contact,
    Invoice,
    InvoiceLine,
    OrderLine,
    SalesOrder,
    Site,
    StockItem,
)
from acs_khaos_dagster.sandbox.clock import SimClock
from acs_khaos_dagster.sandbox.faults import FaultInjector, FaultRule
from acs_khaos_dagster.sandbox.http import serve_in_thread
from acs_khaos_dagster.sandbox.khaos import IssuePolicy, KhaosInstall, KhaosSimulator
from acs_khaos_dagster.sandbox.scenario.manifest import (
    ScenarioFiles,
    ScenarioManifest,
    SiteLevel,
)

USER = "integration"
PASSWORD = "s3cret-khaos-pw-7d1e"
EXE = "KhaosTest"
START = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # GMT: UK local = UTC
SELLING, HIRE = 1, 2

# StockIDs
PARENT, DRESS_S, DRESS_M, SUIT_HIRE, TOTE = 1000, 1001, 1002, 1003, 1004
# Order ids and their order item ids
ORDER_A, ORDER_HIRE, ORDER_NAMES = 500001, 500002, 500003
A_DRESS_S, A_DRESS_M = 11, 12
H_SUIT, H_DRESS_S = 21, 22
N_TOTE = 31
INV_A, INV_HIRE, INV_NAMES = 200001, 200002, 200003

AWKWARD_NAME = "Zoë O'Brien & Sons <VIP>"
AWKWARD_TEXT = 'Tote "Crème" & <bag> l\'été'


def _item(stock_id: int, code: str, **kw: Any) -> StockItem:
    return StockItem(stock_id=stock_id, stock_code=code, **kw)


def stock_items() -> list[StockItem]:
    return [
        _item(
            PARENT,
            "DRESS-RED",
            description="Red dress",
            stock_controlled=False,
            style="DRESS",
            colour="Red",
        ),
        _item(
            DRESS_S,
            "DRESS-RED-S",
            description="Red dress S",
            buy_price=Decimal("18.00"),
            cost_price=Decimal("20.00"),
            sell_price=Decimal("80.00"),
            publish_on_web=True,
            scs_parent_id=PARENT,
            style="DRESS",
            colour="Red",
            size="S",
            barcodes=(Barcode(value="5012345678900"), Barcode(value="DRS-S", kind="OTHER")),
        ),
        _item(
            DRESS_M,
            "DRESS-RED-M",
            description="Red dress M",
            cost_price=Decimal("20.00"),
            sell_price=Decimal("80.00"),
            scs_parent_id=PARENT,
            style="DRESS",
            colour="Red",
            size="M",
        ),
        _item(
            SUIT_HIRE,
            "SUIT-HIRE-40",
            description="Morning suit (hire)",
            is_hire=True,
            cost_price=Decimal("150.00"),
            sell_price=Decimal("45.00"),
        ),
        _item(
            TOTE,
            "TOTE-CREME",
            description=AWKWARD_TEXT,
            cost_price=Decimal("5.50"),
            sell_price=Decimal("25.00"),
            discontinued=True,
        ),
    ]


def _order(
    order_id: int,
    code: str,
    invoice_id: int,
    lines: list[OrderLine],
    contact: Contact | None = None,
    address: Address | None = None,
) -> SalesOrder:
    return SalesOrder(
        order_id=order_id,
        order_code=code,
        associated_ref=f"WEB-{order_id}",
        order_date=START - timedelta(hours=3),
        courier_code="DPD",
        customer_urn=f"C{order_id}",
        site_id=SELLING,
        contact=contact or Contact(first_name="Ann", last_name="Smith"),
        delivery_address=address or Address(line1="1 High St", city="Leeds", postcode="LS1 1AA"),
        lines=tuple(lines),
        invoices=(
            Invoice(
                invoice_id=invoice_id,
                invoice_code=f"INV{invoice_id}",
                stage_id=9,
                lines=tuple(
                    InvoiceLine(
                        order_item_id=ln.order_item_id, stock_id=ln.stock_id, quantity=ln.quantity
                    )
                    for ln in lines
                ),
            ),
        ),
    )


def orders() -> list[SalesOrder]:
    return [
        _order(
            ORDER_A,
            "SO-A",
            INV_A,
            [
                OrderLine(
                    order_item_id=A_DRESS_S,
                    stock_id=DRESS_S,
                    stock_code="DRESS-RED-S",
                    quantity=3,
                    unit_net=Decimal("66.67"),
                ),
                OrderLine(
                    order_item_id=A_DRESS_M,
                    stock_id=DRESS_M,
                    stock_code="DRESS-RED-M",
                    quantity=1,
                    unit_net=Decimal("70.00"),
                ),
            ],
        ),
        _order(
            ORDER_HIRE,
            "SO-H",
            INV_HIRE,
            [
                OrderLine(
                    order_item_id=H_SUIT,
                    stock_id=SUIT_HIRE,
                    stock_code="SUIT-HIRE-40",
                    quantity=1,
                    unit_net=Decimal("45.00"),
                    is_hire=True,
                ),
                OrderLine(
                    order_item_id=H_DRESS_S,
                    stock_id=DRESS_S,
                    stock_code="DRESS-RED-S",
                    quantity=1,
                    unit_net=Decimal("80.00"),
                ),
            ],
        ),
        _order(
            ORDER_NAMES,
            "SO-N",
            INV_NAMES,
            [
                OrderLine(
                    order_item_id=N_TOTE,
                    stock_id=TOTE,
                    stock_code="TOTE-CREME",
                    quantity=1,
                    unit_net=Decimal("25.00"),
                ),
            ],
            contact=Contact(
                first_name="Zoë", last_name="O'Brien & Sons <VIP>", email="zoe@example.com"
            ),
            address=Address(
                line1="Flat 2, Crème Brûlée House",
                line2="Rue d'Été & <Co>",
                city="Bath",
                postcode="BA1 1AA",
            ),
        ),
    ]


def build_manifest() -> ScenarioManifest:
    return ScenarioManifest(
        seed=1,
        size="tiny",
        account_code="BRAND01",
        start_at=START,
        sites=[Site(site_id=SELLING, name="Selling"), Site(site_id=HIRE, name="Hire stock")],
        stock_items=stock_items(),
        acs_registry=[],
        khaos_levels=[
            SiteLevel(stock_id=DRESS_S, site_id=SELLING, level=10),
            SiteLevel(stock_id=DRESS_M, site_id=SELLING, level=5),
            SiteLevel(stock_id=TOTE, site_id=SELLING, level=3),
            SiteLevel(stock_id=SUIT_HIRE, site_id=HIRE, level=4),
        ],
        customers=[],
        orders=orders(),
        fulfilment_plans=[],
        files=ScenarioFiles(stock_units="stock_units.csv", returns="returns.csv"),
    )


class _Swappable:
    """An ASGI app forwarding to whichever simulator the current test installed."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class KhaosHarness:
    def __init__(
        self, base_url: str, sim: KhaosSimulator, clock: SimClock, faults: FaultInjector
    ) -> None:
        self.base_url = base_url
        self.soap_url = f"{base_url}/{EXE}.exe/soap/IKosWeb"
        self.sim = sim
        self.clock = clock
        self.faults = faults
        self._clients: list[KhaosClient] = []

    def client(self, **kwargs: Any) -> KhaosClient:
        options: dict[str, Any] = {
            "timeout": 2.0,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.05,
            "read_retries": 3,
        }
        options.update(kwargs)
        password = options.pop("password", PASSWORD)
        client = KhaosClient(self.soap_url, USER, password, **options)
        self._clients.append(client)
        return client

    def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)
        self.sim.on_clock()

    def truth(self) -> dict[str, Any]:
        return self.sim.truth()

    def stock(self, stock_id: int, site_id: int = SELLING) -> dict[str, Any]:
        for row in self.truth()["stock"]:
            if row["stock_id"] == stock_id and row["site_id"] == site_id:
                return row
        raise KeyError((stock_id, site_id))

    def invoices(self, order_id: int) -> list[dict[str, Any]]:
        return [i for i in self.truth()["invoices"] if i["order_id"] == order_id]

    def fault(self, **rule: Any) -> None:
        self.faults.add(FaultRule(**rule))

    def post_raw(self, body: bytes | str, action: str = "") -> httpx.Response:
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        if action:
            headers["SOAPAction"] = action
        return httpx.post(self.soap_url, content=body, headers=headers, timeout=5.0)

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture(scope="module")
def khaos_server() -> Iterator[tuple[str, _Swappable]]:
    app = _Swappable()
    base_url, stop = serve_in_thread(app)
    try:
        yield base_url, app
    finally:
        stop()


def make_harness(
    server: tuple[str, _Swappable],
    policy: IssuePolicy | None = None,
    *,
    install: KhaosInstall = KhaosInstall(),
    start: datetime = START,
) -> KhaosHarness:
    """A fresh simulator of one Khaos install behind the module's server."""
    base_url, swappable = server
    clock = SimClock(start)
    faults = FaultInjector(seed=7)
    sim = KhaosSimulator(
        build_manifest(),
        clock,
        faults,
        username=USER,
        password=PASSWORD,
        exe_name=EXE,
        issue_policy=policy,
        seed=3,
        install=install,
    )
    swappable.app = sim.app
    return KhaosHarness(base_url, sim, clock, faults)


@pytest.fixture
def khaos(khaos_server: tuple[str, _Swappable]) -> Iterator[KhaosHarness]:
    harness = make_harness(khaos_server)
    try:
        yield harness
    finally:
        harness.close()
