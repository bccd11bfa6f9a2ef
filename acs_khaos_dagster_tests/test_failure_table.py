"""Every row of the failure table, made real, for each Khaos import that does not de-duplicate.

A gateway (``sandbox/gateway.py``, a real HTTP reverse proxy) in front of the Khaos
simulator applies the import and then fails as a load balancer does, or fails before
forwarding; other rows come from the network itself (a closed port, a host that does not
resolve, TLS spoken to a plain-HTTP port). Whatever the failure, the effect ends applied
exactly once in Khaos's ground truth — or, when rejected, never, parked with an owner —
and an ambiguous one is found by the read-back, never resent blind.

Production outbox timings (read-back delay, backoff, lease) on the sandbox's simulated
clock; only the client's read timeout is 1 s, so a timeout row costs a second, not thirty.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from acs_khaos_dagster.clock import clock_for
from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.connectors.failures import (
    WRITE_FAILURES,
    Failure,
    Verdict,
    transport_failure,
)
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.effects import TARGET_OF, effect_handlers
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster.sandbox.gateway import Body, Gateway, Misbehaviour, Move
from acs_khaos_dagster.sandbox.runner import Sandbox
from acs_khaos_dagster.store import Store

from .khaos_writes import CASES, applied

CLIENT_TIMEOUT_S = 1.0
STALL_S = 2.0


@dataclass(frozen=True)
class Row:
    """One way to make a failure happen, and the failure-table row it is."""

    name: str
    failure: Failure
    script: Callable[[Gateway, Sandbox, str], None] = lambda gateway, sandbox, operation: None
    # The Khaos base URL of the first attempt (the network rows); the gateway's otherwise.
    first_url: Callable[[Gateway], str] | None = None


def _gateway(move: Move, status: int = 502, body: Body = Body.HTML, **kw: Any) -> Callable:
    def script(gateway: Gateway, sandbox: Sandbox, operation: str) -> None:
        gateway.then(operation, Misbehaviour(move, status=status, body=body, **kw))

    return script


def _busy(gateway: Gateway, sandbox: Sandbox, operation: str) -> None:
    sandbox.khaos_faults.add(FaultRule(operation=operation, kind=FaultKind.ERROR_5XX, count=1))


def _closed_port(gateway: Gateway) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more


ROWS = [
    Row("refused", Failure.CONNECTION_REFUSED, first_url=_closed_port),
    # https: plain http is refused for a remote Khaos (issue 20); the name fails to resolve
    # before any TLS is attempted.
    Row("dns", Failure.DNS_FAILURE, first_url=lambda gateway: "https://khaos-gateway.invalid"),
    Row("tls", Failure.TLS_HANDSHAKE, first_url=lambda gw: gw.url.replace("http:", "https:")),
    Row("408", Failure.REQUEST_TIMEOUT, _gateway(Move.STATUS_BEFORE, 408)),
    Row(
        "429",
        Failure.RATE_LIMITED,
        _gateway(Move.STATUS_BEFORE, 429, Body.EMPTY, headers=(("Retry-After", "1"),)),
    ),
    Row("busy", Failure.SERVER_BUSY, _busy),
    Row("401", Failure.AUTHENTICATION, _gateway(Move.STATUS_BEFORE, 401)),
    Row("404", Failure.NOT_FOUND, _gateway(Move.STATUS_BEFORE, 404)),
    Row("409", Failure.CONFLICT, _gateway(Move.STATUS_BEFORE, 409)),
    Row("client-fault", Failure.INVALID, _gateway(Move.STATUS_BEFORE, 500, Body.SOAP_CLIENT_FAULT)),
    Row("timeout", Failure.READ_TIMEOUT, _gateway(Move.APPLY_THEN_STALL, stall_s=STALL_S)),
    Row("late-apply", Failure.READ_TIMEOUT, _gateway(Move.STALL_THEN_APPLY, stall_s=STALL_S)),
    Row("reset", Failure.RESET_AFTER_SEND, _gateway(Move.APPLY_THEN_RESET)),
    Row("truncated", Failure.TRUNCATED_REPLY, _gateway(Move.APPLY_THEN_TRUNCATE)),
    Row(
        "server-fault",
        Failure.SERVER_FAULT,
        _gateway(Move.APPLY_THEN_STATUS, 500, Body.SOAP_SERVER_FAULT),
    ),
    *[
        Row(
            f"{status}-{body.value}",
            Failure.GATEWAY_ERROR,
            _gateway(Move.APPLY_THEN_STATUS, status, body),
        )
        for status in (502, 503, 504)
        for body in (Body.HTML, Body.EMPTY, Body.SOAP_WITHOUT_FAULT)
    ],
    # A gateway that refuses before forwarding looks the same: read back, then resend once.
    Row("503-before", Failure.GATEWAY_ERROR, _gateway(Move.STATUS_BEFORE, 503)),
    Row(
        "garbage-200",
        Failure.UNPARSEABLE_REPLY,
        _gateway(Move.APPLY_THEN_STATUS, 200, Body.GARBAGE),
    ),
]


@pytest.fixture
def gateway(sandbox: Sandbox) -> Iterator[Gateway]:
    with Gateway(sandbox.khaos_url) as running:
        yield running


def _settings(base_url: str) -> Settings:
    return load_settings(
        khaos={"base_url": base_url}, http={"read_timeout_s": CLIENT_TIMEOUT_S, "read_retries": 0}
    )


def _dispatch(store: Store, settings: Settings) -> None:
    with KhaosClient.from_settings(settings) as khaos:
        store.dispatcher(effect_handlers(khaos=khaos), settings.outbox, http=settings.http).drain()


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
@pytest.mark.parametrize(("kind", "operation", "payload"), CASES, ids=[c[1] for c in CASES])
def test_each_failure_of_a_khaos_import_ends_with_the_effect_applied_at_most_once(
    sandbox: Sandbox, gateway: Gateway, tmp_path, row: Row, kind, operation, payload
) -> None:
    verdict = WRITE_FAILURES[operation][row.failure]
    settings = _settings(gateway.url)
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}", clock=clock_for(settings))
    key = f"{operation}-{row.name}"
    effect = store.outbox.enqueue(kind, TARGET_OF[kind], key, key, payload(key))
    row.script(gateway, sandbox, operation)

    _dispatch(store, _settings(row.first_url(gateway)) if row.first_url else settings)

    first = store.outbox.get(effect.id)
    [attempt] = store.outbox.attempts(effect.id)
    assert f"({row.failure.name.lower()}):" in (attempt.message or ""), attempt.message
    if verdict is Verdict.REJECTED:
        assert first.state == "parked"
        [problem] = store.exceptions.list(type="effect_failed")
        assert problem.row.owner == "integration"
        assert applied(sandbox, kind, key) == 0
        return
    assert first.state == "pending"
    assert first.needs_read_back is (verdict is Verdict.AMBIGUOUS)
    gateway.wait_for_late_applies()
    # Nothing is resent before the read-back delay, however often a dispatcher looks.
    _dispatch(store, settings)
    assert len(store.outbox.attempts(effect.id)) == 1
    sandbox.advance(timedelta(seconds=settings.outbox.read_back_after_s))

    _dispatch(store, settings)

    outcomes = [a.outcome for a in store.outbox.attempts(effect.id)]
    assert store.outbox.get(effect.id).state == "done"
    assert applied(sandbox, kind, key) == 1
    applied_by_first_attempt = (
        row.first_url is None
        and row.script is not _busy
        and (verdict is Verdict.AMBIGUOUS and row.name != "503-before")
    )
    if applied_by_first_attempt:
        assert outcomes == ["ambiguous_error", "confirmed_by_read_back"]
    elif verdict is Verdict.AMBIGUOUS:
        assert outcomes == ["ambiguous_error", "sent"]  # read back, found nothing, sent once
    elif row.failure is Failure.RATE_LIMITED:
        assert outcomes == ["rate_limited", "sent"]  # a refusal, not a failed attempt
    else:
        assert outcomes == ["transient_error", "sent"]


def test_every_row_of_the_failure_table_is_exercised_here_or_below() -> None:
    made_real = {row.failure for row in ROWS}
    below = {Failure.CONNECT_TIMEOUT, Failure.POOL_TIMEOUT, Failure.WRITE_TIMEOUT}
    assert made_real | below == set(Failure)


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (httpx.ConnectTimeout("connect"), Failure.CONNECT_TIMEOUT),
        (httpx.PoolTimeout("pool"), Failure.POOL_TIMEOUT),
        (httpx.WriteTimeout("write"), Failure.WRITE_TIMEOUT),
    ],
    ids=lambda value: getattr(value, "name", ""),
)
def test_timeouts_before_and_while_writing_are_told_apart(error, failure) -> None:
    # Connecting or waiting for a pooled connection sends nothing; a write cut off by its
    # timeout may have handed the whole request to the server already.
    assert transport_failure(error) is failure
    verdicts = {WRITE_FAILURES[op][failure] for op in WRITE_FAILURES}
    assert verdicts == {Verdict.AMBIGUOUS if failure is Failure.WRITE_TIMEOUT else Verdict.NOT_SENT}
