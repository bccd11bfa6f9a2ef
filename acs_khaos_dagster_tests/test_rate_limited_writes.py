"""Writes refused for the rate limit over real HTTP: ACS's 429 and its gateway's 403 call
quota, Khaos's 429. Each is sent again exactly after the ``Retry-After`` the simulator
named, however many times it is refused, and lands once. Production outbox settings, on
the sandbox's simulated clock; the oracle is the simulators' ground truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from acs_khaos_dagster.clock import clock_for
from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.order_release import to_acs_order
from acs_khaos_dagster.effects import TARGET_OF, EffectKind, effect_handlers
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster.sandbox.runner import Sandbox
from acs_khaos_dagster.store import Store

from .khaos_writes import applied, despatch

RETRY_AFTER_S = 45


@pytest.fixture
def store(sandbox: Sandbox, store_url: str) -> Iterator[Store]:
    with Store.open(store_url, clock=clock_for(load_settings())) as opened:
        yield opened


def _order_payload(sandbox: Sandbox) -> tuple[str, dict[str, Any]]:
    skus = {item.stock_id: item.stock_code for item in sandbox.manifest.stock_items}
    order = to_acs_order(sandbox.manifest.orders[0], skus)
    return order.order_number, order.model_dump(mode="json")


def _acs_puts(sandbox: Sandbox, number: str) -> int:
    return sum(o["puts"] for o in sandbox.acs.truth()["orders"] if o["order_number"] == number)


@pytest.mark.parametrize(
    ("system", "kind"),
    [
        ("khaos", FaultKind.RATE_LIMIT),
        ("acs", FaultKind.RATE_LIMIT),
        ("acs", FaultKind.QUOTA_403),
    ],
    ids=["khaos-429", "acs-429", "acs-quota-403"],
)
def test_a_write_refused_more_often_than_max_attempts_is_retried_after_retry_after_and_lands_once(
    sandbox: Sandbox, store: Store, system: str, kind: FaultKind
) -> None:
    settings = load_settings()  # production outbox settings
    refusals = settings.outbox.max_attempts + 2
    if system == "khaos":
        effect_kind, operation, faults = (
            EffectKind.KHAOS_DESPATCH,
            "ImportDespatch",
            sandbox.khaos_faults,
        )
        key, payload = "SHP-429", despatch("SHP-429")
    else:
        effect_kind, operation, faults = EffectKind.ACS_ORDER, "put_order", sandbox.acs_faults
        key, payload = _order_payload(sandbox)
    faults.add(FaultRule(operation=operation, kind=kind, count=refusals, retry_after=RETRY_AFTER_S))
    effect_id = store.outbox.enqueue(effect_kind, TARGET_OF[effect_kind], key, key, payload).id

    waits: list[timedelta] = []
    with AcsClient.from_settings(settings) as acs, KhaosClient.from_settings(settings) as khaos:
        for _ in range(refusals + 1):
            handlers = effect_handlers(acs, khaos)
            store.dispatcher(handlers, settings.outbox, http=settings.http).drain()
            effect = store.outbox.get(effect_id)
            if effect.state != "pending":
                break
            waits.append(effect.next_attempt_at - store.db.now())
            sandbox.advance(timedelta(seconds=RETRY_AFTER_S))

    effect = store.outbox.get(effect_id)
    assert effect.state == "done"
    assert effect.attempts == 1
    assert waits == [timedelta(seconds=RETRY_AFTER_S)] * refusals
    assert faults.stats()["injected"] == {f"{operation}:{kind}": refusals}
    if system == "khaos":
        assert applied(sandbox, effect_kind, key) == 1
    else:
        assert _acs_puts(sandbox, key) == 1
