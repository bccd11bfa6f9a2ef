"""Every write reaches Khaos exactly once, proved against the sandbox's ground truth.

Khaos does not de-duplicate ImportDespatch, ImportStockAdjustments or
ImportCustomerReturns. These tests time the call out before and after the
simulator applies it, reset the connection, and kill the dispatcher between
sending and recording; each effect must still be applied exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from acs_khaos_dagster.clock import clock_for
from acs_khaos_dagster.config import OutboxSettings, load_settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.effects import TARGET_OF, EffectKind, effect_handlers
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster.sandbox.gateway import Gateway, Misbehaviour, Move
from acs_khaos_dagster.sandbox.runner import Sandbox
from acs_khaos_dagster.store import Store

from .khaos_writes import CASES, adjustment, applied, despatch

# The client gives up after 1 s; an injected 2.5 s stall is a timeout it cannot see through.
CLIENT_TIMEOUT_S = "1.0"
STALL_S = 2.5
# These faults settle before the client's timeout fires (applied, or dropped for good), so
# the read-back may come at once; a late apply is the case below that needs the wait.
NO_WAIT = OutboxSettings(max_attempts=5, backoff_initial_s=0, backoff_max_s=0, read_back_after_s=0)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with _open(store_url) as opened:
        yield opened


@pytest.fixture
def clients(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    monkeypatch.setenv("ACS_KHAOS_HTTP__READ_TIMEOUT_S", CLIENT_TIMEOUT_S)
    settings = load_settings()
    with AcsClient.from_settings(settings) as acs, KhaosClient.from_settings(settings) as khaos:
        yield acs, khaos


def _open(url: str) -> Store:
    """The store on the integration's clock (the sandbox's), as the dispatchers see it."""
    return Store.open(url, clock=clock_for(load_settings()))


def _enqueue(store: Store, kind: EffectKind, key: str, payload: dict[str, Any]) -> int:
    effect = store.outbox.enqueue(kind, TARGET_OF[kind], key, key, payload)
    return effect.id


@pytest.mark.parametrize(("kind", "operation", "payload"), CASES, ids=[c[1] for c in CASES])
@pytest.mark.parametrize(
    "fault", [FaultKind.TIMEOUT_AFTER, FaultKind.TIMEOUT_BEFORE, FaultKind.RESET_AFTER]
)
def test_an_ambiguous_failure_still_applies_the_effect_exactly_once(
    sandbox: Sandbox, clients: tuple[Any, Any], store: Store, kind, operation, payload, fault
) -> None:
    acs, khaos = clients
    key = f"{kind.value}-{fault.value}"
    sandbox.khaos_faults.add(FaultRule(operation=operation, kind=fault, count=1, latency_s=STALL_S))
    effect_id = _enqueue(store, kind, key, payload(key))

    store.dispatcher(effect_handlers(acs, khaos), NO_WAIT).drain()

    assert store.outbox.get(effect_id).state == "done"
    assert applied(sandbox, kind, key) == 1


@pytest.mark.parametrize(("kind", "operation", "payload"), CASES, ids=[c[1] for c in CASES])
def test_a_request_applied_after_the_client_gave_up_is_found_by_the_read_back_not_resent(
    sandbox: Sandbox, clients: tuple[Any, Any], store: Store, kind, operation, payload
) -> None:
    acs, khaos = clients
    key = f"{kind.value}-late"
    # Khaos sits on the request past the client's timeout, then applies it.
    sandbox.khaos_faults.add(
        FaultRule(operation=operation, kind=FaultKind.LATENCY, count=1, latency_s=STALL_S)
    )
    effect_id = _enqueue(store, kind, key, payload(key))
    settings = NO_WAIT.model_copy(update={"read_back_after_s": 60})

    store.dispatcher(effect_handlers(acs, khaos), settings).drain()
    time.sleep(STALL_S)  # the late apply lands while the effect waits for its read-back
    sandbox.advance(timedelta(seconds=60))
    store.dispatcher(effect_handlers(acs, khaos), settings).drain()

    assert store.outbox.get(effect_id).state == "done"
    assert applied(sandbox, kind, key) == 1
    outcomes = [a.outcome for a in store.outbox.attempts(effect_id)]
    assert outcomes == ["ambiguous_error", "confirmed_by_read_back"]


def test_an_effect_enqueued_twice_is_sent_once_and_replays_its_result(
    sandbox: Sandbox, clients: tuple[Any, Any], store: Store
) -> None:
    acs, khaos = clients
    kind = EffectKind.KHAOS_STOCK_ADJUSTMENT
    first = _enqueue(store, kind, "snap-1:site-1:1", adjustment("snap-1:site-1:1"))
    dispatcher = store.dispatcher(effect_handlers(acs, khaos), NO_WAIT)
    dispatcher.drain()
    again = _enqueue(store, kind, "snap-1:site-1:1", adjustment("snap-1:site-1:1"))
    dispatcher.drain()

    assert again == first
    assert store.outbox.get(first).result["group_ref"] == "snap-1:site-1:1"
    assert applied(sandbox, kind, "snap-1:site-1:1") == 1


def test_busy_khaos_is_retried_until_the_effect_lands_once(
    sandbox: Sandbox, clients: tuple[Any, Any], store: Store
) -> None:
    acs, khaos = clients
    sandbox.khaos_faults.add(
        FaultRule(operation="ImportDespatch", kind=FaultKind.ERROR_5XX, count=2)
    )
    effect_id = _enqueue(store, EffectKind.KHAOS_DESPATCH, "SHP-BUSY", despatch("SHP-BUSY"))

    store.dispatcher(effect_handlers(acs, khaos), NO_WAIT).drain()

    assert store.outbox.get(effect_id).state == "done"
    assert len(store.outbox.attempts(effect_id)) == 3
    assert applied(sandbox, EffectKind.KHAOS_DESPATCH, "SHP-BUSY") == 1


def test_a_rejected_write_is_parked_with_an_owner_and_neverapplied(
    sandbox: Sandbox, clients: tuple[Any, Any], store: Store
) -> None:
    acs, khaos = clients
    bad = adjustment("BAD-REASON")
    bad["lines"][0]["reason_code"] = "NOT_A_REASON"
    effect_id = _enqueue(store, EffectKind.KHAOS_STOCK_ADJUSTMENT, "BAD-REASON", bad)

    store.dispatcher(effect_handlers(acs, khaos), NO_WAIT).drain()

    assert store.outbox.get(effect_id).state == "parked"
    [problem] = store.exceptions.list(type="effect_failed")
    assert problem.row.owner == "integration"
    assert applied(sandbox, EffectKind.KHAOS_STOCK_ADJUSTMENT, "BAD-REASON") == 0


def _dispatch_process(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("acs-khaos")
    return subprocess.run(
        [str(cli), "outbox", "dispatch", "--systems", "khaos"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("crash_point", ["after_claim", "after_send", "before_mark_done"])
def test_a_dispatcher_killed_mid_effect_is_recovered_without_a_seconddespatch(
    sandbox: Sandbox, store_url: str, crash_point: str
) -> None:
    with _open(store_url) as store:
        _enqueue(store, EffectKind.KHAOS_DESPATCH, "SHP-KILL", despatch("SHP-KILL"))
    env = {
        **os.environ,
        "ACS_KHAOS_DATABASE_URL": store_url,
        "ACS_KHAOS_OUTBOX__BACKOFF_INITIAL_S": "0",
        "ACS_KHAOS_OUTBOX__BACKOFF_MAX_S": "0",
        # The killed process dies between whole calls (none is left in transit), and the
        # sandbox's clock stands still: the recovered effect is read back at once.
        "ACS_KHAOS_OUTBOX__READ_BACK_AFTER_S": "0",
    }

    killed = _dispatch_process({**env, "ACS_KHAOS_CRASH_AT": crash_point})
    recovered = _dispatch_process(env)

    assert killed.returncode == 137, killed.stderr
    assert recovered.returncode == 0, recovered.stderr
    with _open(store_url) as store:
        assert store.outbox.by_key("SHP-KILL").state == "done"
    assert applied(sandbox, EffectKind.KHAOS_DESPATCH, "SHP-KILL") == 1


def test_two_dispatcher_processes_on_postgres_never_apply_an_effect_twice(
    sandbox: Sandbox, fresh_postgres_database: str
) -> None:
    refs = [f"SOAK-{n:03d}" for n in range(120)]
    with _open(fresh_postgres_database) as store:
        for ref in refs:
            _enqueue(store, EffectKind.KHAOS_STOCK_ADJUSTMENT, ref, adjustment(ref))
    env = {**os.environ, "ACS_KHAOS_DATABASE_URL": fresh_postgres_database}
    cli = Path(sys.executable).with_name("acs-khaos")
    workers = [
        subprocess.Popen(
            [str(cli), "outbox", "dispatch", "--systems", "khaos"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=180) for worker in workers]

    assert all(worker.returncode == 0 for worker in workers), outputs
    groups = [g["group_ref"] for g in sandbox.khaos.truth()["adjustment_groups"]]
    assert sorted(groups) == refs
    level_moves = Decimal(len(groups))
    assert level_moves == len(refs)


def test_two_dispatchers_and_a_khaos_slower_than_the_lease_apply_each_effect_once(
    sandbox: Sandbox, store_url: str
) -> None:
    """Production settings (15-minute lease, 50 a batch, 30 s timeouts) on the simulated
    clock. The first dispatcher's first import is applied, but Khaos takes 16 minutes to
    answer; meanwhile a second dispatcher process finds the whole batch's claims expired,
    reads back and sends what is not there. The first must then send nothing more."""
    refs = [f"SLOW-{n}" for n in range(3)]
    with _open(store_url) as store:
        for ref in refs:
            _enqueue(store, EffectKind.KHAOS_STOCK_ADJUSTMENT, ref, adjustment(ref))
    with Gateway(sandbox.khaos_url) as gateway:
        env = {
            **os.environ,
            "ACS_KHAOS_DATABASE_URL": store_url,
            "ACS_KHAOS_KHAOS__BASE_URL": gateway.url,
        }
        second: list[subprocess.CompletedProcess[str]] = []

        def sixteen_minutes_later() -> None:
            sandbox.advance(timedelta(minutes=16))
            second.append(_dispatch_process(env))

        gateway.then(
            "ImportStockAdjustments",
            Misbehaviour(Move.AFTER_APPLY, hook=sixteen_minutes_later),
        )
        first = _dispatch_process(env)

    assert first.returncode == 0, first.stderr
    assert second and second[0].returncode == 0, second
    groups = Counter(g["group_ref"] for g in sandbox.khaos.truth()["adjustment_groups"])
    assert groups == dict.fromkeys(refs, 1)
    with _open(store_url) as store:
        assert {store.outbox.by_key(ref).state for ref in refs} == {"done"}
        lost = [
            a.outcome for ref in refs for a in store.outbox.attempts(store.outbox.by_key(ref).id)
        ]
    assert lost.count("claim_lost") == 2  # the first dispatcher's guard refused both
