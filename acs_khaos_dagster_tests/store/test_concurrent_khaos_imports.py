"""Khaos imports several at a time, over real HTTP against the Khaos simulator (issue 23).

With ``outbox.import_concurrency`` > 1 one dispatcher keeps several ``ImportDespatch``
calls in flight, never two for one order. Khaos does not de-duplicate, and the simulator
answers some calls ambiguously after applying them (a gateway 502, a reply that never
comes) or applies them only later (``late_apply``): every shipment must still be posted
exactly once, by the simulator's own records, and so after a dispatcher dies with several
sends in flight and another recovers its claims.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.models import DespatchPosting, OrderLine
from acs_khaos_dagster.effects import EffectKind, effect_handlers
from acs_khaos_dagster.sandbox.clock import SimClock
from acs_khaos_dagster.sandbox.faults import FaultInjector
from acs_khaos_dagster.sandbox.khaos import KhaosSimulator
from acs_khaos_dagster.sandbox.scenario.manifest import SiteLevel
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.crashpoints import SimulatedCrash, crash_at
from acs_khaos_dagster_tests.khaos_fixtures import (
    DRESS_S,
    EXE,
    PASSWORD,
    SELLING,
    START,
    USER,
    KhaosHarness,
    _order,
    build_manifest,
    khaos_server,  # noqa: F401  (the module's server)
)

from .conftest import FakeClock

ORDERS = 8
SHIPMENTS = 3  # per order: one unit each, so an order's postings share it
LATE_S = 20.0  # a late apply lands this long after the call (simulated seconds)
KIND = EffectKind.KHAOS_DESPATCH


def order_id(n: int) -> int:
    return 600_000 + n


@pytest.fixture
def khaos(khaos_server: Any) -> Iterator[KhaosHarness]:  # noqa: F811
    base_url, swappable = khaos_server
    orders = [
        _order(
            order_id(n),
            f"SO-C{n}",
            700_000 + n,
            [
                OrderLine(
                    order_item_id=9_000 + n,
                    stock_id=DRESS_S,
                    stock_code="DRESS-RED-S",
                    quantity=SHIPMENTS,
                    unit_net=Decimal("66.67"),
                )
            ],
        )
        for n in range(ORDERS)
    ]
    manifest = build_manifest().model_copy(
        update={
            "orders": orders,
            "khaos_levels": [SiteLevel(stock_id=DRESS_S, site_id=SELLING, level=1000)],
        }
    )
    clock = SimClock(START)
    faults = FaultInjector(seed=11)
    sim = KhaosSimulator(
        manifest, clock, faults, username=USER, password=PASSWORD, exe_name=EXE, seed=3
    )
    swappable.app = sim.app
    harness = KhaosHarness(base_url, sim, clock, faults)
    try:
        yield harness
    finally:
        harness.close()


class Watched:
    """Counts ``ImportDespatch`` calls in flight at once, overall and per order."""

    def __init__(self, client: KhaosClient) -> None:
        self.lock = threading.Lock()
        self.in_flight: Counter[int] = Counter()
        self.most = 0
        self.overlapped: set[int] = set()
        send = client.import_despatch

        def watched(posting: DespatchPosting) -> Any:
            with self.lock:
                if self.in_flight[posting.order_id]:
                    self.overlapped.add(posting.order_id)
                self.in_flight[posting.order_id] += 1
                self.most = max(self.most, sum(self.in_flight.values()))
            try:
                return send(posting)
            finally:
                with self.lock:
                    self.in_flight[posting.order_id] -= 1

        client.import_despatch = watched  # type: ignore[method-assign]


def enqueue_shipments(store: Store) -> list[str]:
    refs = []
    for n in range(ORDERS):
        for s in range(SHIPMENTS):
            ref = f"SHIP-{n}-{s}"
            posting = DespatchPosting(
                order_id=order_id(n), external_ref=ref, lines=((9_000 + n, 1),)
            )
            store.outbox.enqueue(
                KIND, "khaos", ref, f"despatch:{ref}", posting.model_dump(mode="json")
            )
            refs.append(ref)
    return refs


def settings(import_concurrency: int) -> OutboxSettings:
    return OutboxSettings(
        backoff_initial_s=0,
        backoff_max_s=0,
        max_attempts=20,
        concurrency=8,
        import_concurrency=import_concurrency,
        read_back_after_s=LATE_S + 10,
    )


def posted_once(khaos: KhaosHarness, refs: list[str]) -> None:
    """By the simulator's records: one despatch call and one shipped invoice per shipment."""
    truth = khaos.truth()
    calls = Counter(c["external_ref"] for c in truth["despatch_calls"])
    assert calls == Counter(refs)
    shipped = Counter(i["external_ref"] for i in truth["invoices"] if i["external_ref"])
    assert shipped == Counter(refs)
    assert not [w for w in truth["late_writes"] if not w["applied_at"]]


def drain_until_done(store: Store, clock: FakeClock, khaos: KhaosHarness, dispatch: Any) -> None:
    for _ in range(30):
        dispatch()
        counts = store.outbox.status().counts
        if counts == {(str(KIND), "done"): ORDERS * SHIPMENTS}:
            return
        # Both systems' time moves on: late applies land, read-backs fall due.
        step = timedelta(seconds=LATE_S + 11)
        khaos.advance(step)
        clock.advance(seconds=step.total_seconds())
    raise AssertionError(f"not all done: {store.outbox.status().counts}")


@pytest.mark.parametrize("import_concurrency", [1, 4])
def test_every_shipment_is_posted_once_through_ambiguous_failures_with_sends_in_flight_together(
    store: Store, clock: FakeClock, khaos: KhaosHarness, import_concurrency: int
) -> None:
    refs = enqueue_shipments(store)
    khaos.fault(operation="ImportDespatch", kind="applied_then_5xx", rate=0.2)
    khaos.fault(operation="ImportDespatch", kind="timeout_after", rate=0.15, latency_s=0.6)
    khaos.fault(operation="ImportDespatch", kind="late_apply", rate=0.15, apply_after_s=LATE_S)
    khaos.fault(operation="ImportDespatch", kind="latency", rate=1.0, latency_s=0.02)
    client = khaos.client(timeout=0.3)
    watched = Watched(client)
    dispatcher = store.dispatcher(effect_handlers(khaos=client), settings(import_concurrency))

    drain_until_done(store, clock, khaos, dispatcher.drain)

    posted_once(khaos, refs)
    injected = khaos.faults.stats()["injected"]
    assert {"applied_then_5xx", "timeout_after", "late_apply"} <= {
        k.split(":")[1] for k in injected
    }, injected
    assert watched.overlapped == set()  # never two postings of one order at once
    assert watched.most <= import_concurrency
    if import_concurrency > 1:
        assert watched.most > 1


def test_a_dispatcher_dying_with_several_postings_in_flight_leaves_each_to_be_read_back(
    store: Store, clock: FakeClock, khaos: KhaosHarness
) -> None:
    refs = enqueue_shipments(store)
    khaos.fault(operation="ImportDespatch", kind="latency", rate=1.0, latency_s=0.05)
    client = khaos.client(timeout=2.0)
    watched = Watched(client)
    first = store.dispatcher(effect_handlers(khaos=client), settings(4))
    with crash_at("after_send", nth=3), pytest.raises(SimulatedCrash):
        first.drain()
    assert watched.most > 1  # it died with several postings on the wire
    counts = store.outbox.status().counts
    assert counts[(str(KIND), "in_flight")] > 1
    sent_before = len(khaos.truth()["despatch_calls"])
    assert sent_before >= 3
    unrecorded = sent_before - counts.get((str(KIND), "done"), 0)
    assert unrecorded > 1  # sent, but the dispatcher died before recording them

    # Same process, so only the lease reveals the dead claims; each is read back first.
    clock.advance(minutes=16)
    khaos.advance(timedelta(minutes=16))
    second = store.dispatcher(effect_handlers(khaos=khaos.client()), settings(4))
    report = second.drain()

    posted_once(khaos, refs)
    assert report.outcomes["confirmed_by_read_back"] == unrecorded
    assert store.outbox.status().counts == {(str(KIND), "done"): ORDERS * SHIPMENTS}
