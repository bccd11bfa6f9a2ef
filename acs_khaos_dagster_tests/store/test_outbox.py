"""Outbox: recorded before sending, sent once, retried, parked, read back when unsure."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.connectors.errors import (
    AmbiguousError,
    PermanentError,
    TransientError,
)
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.crashpoints import SimulatedCrash, crash_at
from acs_khaos_dagster.store.dispatcher import backoff_delay
from acs_khaos_dagster.store.schema import Effect

from .conftest import FakeClock
from .remote import FileRemote, ScriptedHandler

# The fake remotes apply a send at once: nothing can land late, so read back at once.
FAST = OutboxSettings(max_attempts=3, backoff_initial_s=0, backoff_max_s=0, read_back_after_s=0)


def transient(retry_after: float | None = None) -> TransientError:
    return TransientError("busy", system="khaos", operation="post", retry_after=retry_after)


def enqueue(store: Store, ref: str = "SO1", hold: bool = False) -> Effect:
    return store.outbox.enqueue("post", "khaos", ref, f"post:{ref}", {"ref": ref}, hold=hold)


def test_enqueue_is_recorded_before_anything_is_sent(store: Store) -> None:
    handler = ScriptedHandler()
    effect = enqueue(store)
    assert effect.state == "pending"
    assert handler.sends == []


def test_duplicate_enqueue_returns_the_first_result_and_sends_nothing(store: Store) -> None:
    handler = ScriptedHandler()
    first = enqueue(store)
    store.dispatcher({"post": handler}, FAST).drain()
    again = enqueue(store)
    store.dispatcher({"post": handler}, FAST).drain()
    assert again.id == first.id
    assert again.state == "done"
    assert again.result == {"remote_id": "R-SO1"}
    assert len(handler.sends) == 1


def test_transient_failure_then_success_is_done_after_two_attempts(store: Store) -> None:
    handler = ScriptedHandler(transient())
    effect = enqueue(store)
    store.dispatcher({"post": handler}, FAST).drain()
    effect = store.outbox.get(effect.id)
    assert effect.state == "done"
    assert effect.attempts == 2
    outcomes = [a.outcome for a in store.outbox.attempts(effect.id)]
    assert outcomes == ["transient_error", "sent"]
    assert store.outbox.attempts(effect.id)[0].error_class == "TransientError"


def test_transient_until_the_limit_parks_with_an_integration_exception(store: Store) -> None:
    handler = ScriptedHandler(transient(), transient(), transient(), transient())
    effect = enqueue(store)
    store.dispatcher({"post": handler}, FAST).drain()
    effect = store.outbox.get(effect.id)
    assert effect.state == "parked"
    assert len(handler.sends) == FAST.max_attempts
    [problem] = store.exceptions.list(type="effect_failed")
    assert problem.row.owner == "integration"
    assert problem.row.entity_ref == "post:SO1"
    assert problem.row.effect_id == effect.id


def test_retry_waits_for_the_backoff(store: Store, clock: FakeClock) -> None:
    settings = OutboxSettings(max_attempts=5, backoff_initial_s=10, backoff_max_s=60)
    handler = ScriptedHandler(transient())
    effect = enqueue(store)
    dispatcher = store.dispatcher({"post": handler}, settings, rng=random.Random(1))
    dispatcher.drain()
    assert store.outbox.get(effect.id).state == "pending"
    assert len(handler.sends) == 1
    clock.advance(seconds=11)
    dispatcher.drain()
    assert store.outbox.get(effect.id).state == "done"


def test_backoff_is_capped_jittered_and_honours_a_larger_retry_after() -> None:
    settings = OutboxSettings(backoff_initial_s=2, backoff_max_s=30)
    rng = random.Random(7)
    delays = [backoff_delay(n, settings, rng=rng) for n in range(1, 12)]
    assert all(
        0 <= d <= min(30, 2 * 2 ** (n - 1)) for n, d in zip(range(1, 12), delays, strict=True)
    )
    assert backoff_delay(1, settings, retry_after=120, rng=rng) == 120


def test_server_retry_after_sets_the_next_attempt(store: Store, clock: FakeClock) -> None:
    handler = ScriptedHandler(transient(retry_after=300))
    effect = enqueue(store)
    store.dispatcher({"post": handler}, FAST).drain()
    assert store.outbox.get(effect.id).next_attempt_at == clock.now + timedelta(seconds=300)


def test_permanent_failure_parks_at_once_with_the_reason(store: Store) -> None:
    error = PermanentError("SKU unknown", system="khaos", operation="post", code="E_SKU")
    handler = ScriptedHandler(error)
    effect = enqueue(store)
    store.dispatcher({"post": handler}, FAST).drain()
    effect = store.outbox.get(effect.id)
    assert effect.state == "parked"
    assert effect.attempts == 1
    assert "SKU unknown" in (effect.last_error or "")
    [problem] = store.exceptions.list(type="effect_failed")
    assert "SKU unknown" in problem.row.message
    assert problem.row.details["permanent"] is True


def test_ambiguous_failure_already_applied_is_done_by_read_back_without_resend(
    store: Store,
) -> None:
    handler = ScriptedHandler(AmbiguousError("timeout", system="khaos", operation="post"))
    handler.apply_before_error = True
    effect = enqueue(store)
    store.dispatcher({"post": handler}, FAST).drain()
    effect = store.outbox.get(effect.id)
    assert effect.state == "done"
    assert effect.result == {"remote_id": "R-SO1"}
    assert len(handler.sends) == 1
    outcomes = [a.outcome for a in store.outbox.attempts(effect.id)]
    assert outcomes == ["ambiguous_error", "confirmed_by_read_back"]


def test_ambiguous_failure_not_applied_is_resent_once(store: Store) -> None:
    handler = ScriptedHandler(AmbiguousError("reset", system="khaos", operation="post"))
    effect = enqueue(store)
    store.dispatcher({"post": handler}, FAST).drain()
    effect = store.outbox.get(effect.id)
    assert effect.state == "done"
    assert len(handler.sends) == 2
    assert handler.read_backs == 1


def test_unexpected_error_is_read_back_before_a_resend(store: Store) -> None:
    handler = ScriptedHandler(RuntimeError("boom"))
    handler.apply_before_error = True
    effect = enqueue(store)
    store.dispatcher({"post": handler}, FAST).drain()
    assert store.outbox.get(effect.id).state == "done"
    assert len(handler.sends) == 1


def test_read_back_failing_transiently_keeps_the_read_back_for_next_time(store: Store) -> None:
    handler = ScriptedHandler(
        AmbiguousError("timeout", system="khaos", operation="post"),
        read_back_errors=(transient(),),
    )
    handler.apply_before_error = True
    settings = FAST.model_copy(update={"max_attempts": 5})
    effect = enqueue(store)
    store.dispatcher({"post": handler}, settings).drain()
    effect = store.outbox.get(effect.id)
    assert effect.state == "done"
    assert len(handler.sends) == 1
    assert handler.read_backs == 2
    outcomes = [a.outcome for a in store.outbox.attempts(effect.id)]
    assert outcomes == ["ambiguous_error", "read_back_failed", "confirmed_by_read_back"]


def test_an_ambiguous_failure_is_read_back_only_once_a_late_apply_could_have_landed(
    store: Store, clock: FakeClock
) -> None:
    handler = ScriptedHandler(AmbiguousError("timeout", system="khaos", operation="post"))
    settings = FAST.model_copy(update={"read_back_after_s": 30})
    effect = enqueue(store)
    store.dispatcher({"post": handler}, settings).drain()
    clock.advance(seconds=29)
    store.dispatcher({"post": handler}, settings).drain()
    assert handler.read_backs == 0 and store.outbox.get(effect.id).state == "pending"

    clock.advance(seconds=2)
    store.dispatcher({"post": handler}, settings).drain()

    assert handler.read_backs == 1
    assert store.outbox.get(effect.id).state == "done"


def test_an_effect_recovered_long_after_its_claim_is_read_back_at_once(
    store: Store, clock: FakeClock
) -> None:
    handler = ScriptedHandler()
    effect = enqueue(store)
    settings = FAST.model_copy(update={"read_back_after_s": 30})
    store.dispatcher({"post": handler}, settings).claim(10)
    clock.advance(minutes=16)  # the lease ran out long ago: no wait is left
    store.dispatcher({"post": handler}, settings).drain()
    assert store.outbox.get(effect.id).state == "done" and len(handler.sends) == 1


def test_in_flight_effect_found_at_start_is_read_back_not_resent(
    store: Store, clock: FakeClock
) -> None:
    handler = ScriptedHandler()
    effect = enqueue(store)
    # A dispatcher claimed it and died after sending (its lease runs out).
    dead = store.dispatcher({"post": handler}, FAST)
    [claim] = dead.claim(10)
    handler.send(claim.payload)
    clock.advance(minutes=16)  # past the default lease of 15 minutes
    report = store.dispatcher({"post": handler}, FAST).drain()
    assert report.outcomes["recovered"] == 1
    assert store.outbox.get(effect.id).state == "done"
    assert len(handler.sends) == 1


def test_in_flight_effect_of_a_live_dispatcher_is_left_alone(store: Store) -> None:
    handler = ScriptedHandler()
    enqueue(store)
    busy = store.dispatcher({"post": handler}, FAST)
    busy.claim(10)
    report = store.dispatcher({"post": handler}, FAST).drain()
    assert report.claimed == 0
    assert handler.sends == []


def test_held_effect_waits_for_approval_then_is_sent(store: Store) -> None:
    handler = ScriptedHandler()
    effect = enqueue(store, hold=True)
    store.dispatcher({"post": handler}, FAST).drain()
    assert handler.sends == []
    assert store.approve(effect_id=effect.id, actor="finance.lead") is True
    assert store.approve(effect_id=effect.id, actor="finance.lead") is False
    store.dispatcher({"post": handler}, FAST).drain()
    assert len(handler.sends) == 1
    approvals = store.audit.list(action="approve")
    assert [(a.actor, a.subject) for a in approvals] == [("finance.lead", f"effect:{effect.id}")]


def test_effects_of_kinds_without_a_handler_are_left_for_another_dispatcher(
    store: Store,
) -> None:
    store.outbox.enqueue("adjust", "khaos", "SKU1", "adjust:SKU1", {"ref": "SKU1"})
    report = store.dispatcher({"post": ScriptedHandler()}, FAST).drain()
    assert report.claimed == 0
    assert store.outbox.by_key("adjust:SKU1").state == "pending"


def test_status_counts_per_kind_and_state_with_oldest_pending_age(
    store: Store, clock: FakeClock
) -> None:
    enqueue(store, "SO1")
    clock.advance(minutes=30)
    enqueue(store, "SO2", hold=True)
    store.outbox.enqueue("adjust", "khaos", "SKU1", "adjust:SKU1", {"ref": "SKU1"})
    status = store.outbox.status()
    assert status.counts == {("post", "pending"): 1, ("post", "held"): 1, ("adjust", "pending"): 1}
    assert status.oldest_pending_age == timedelta(minutes=30)
    assert status.parked == 0
    assert status.held == 1


def test_two_dispatcher_threads_never_send_the_same_effect(store: Store, tmp_path) -> None:
    for i in range(60):
        enqueue(store, f"SO{i}")
    remote = FileRemote(tmp_path / "sends.txt", delay_s=0.001)
    settings = OutboxSettings(backoff_initial_s=0, claim_batch=5)
    threads = [
        threading.Thread(target=store.dispatcher({"post": remote}, settings).drain)
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refs = [line.split()[0] for line in remote.lines()]
    assert len(refs) == 60
    assert len(set(refs)) == 60


# -- one dispatcher, several sends in flight ------------------------------------------------


class RecordingHandler:
    """Succeeds; records the order of sends and which business keys overlapped in flight."""

    idempotent = True

    def __init__(self, barrier: threading.Barrier | None = None, hold: str | None = None) -> None:
        self.barrier = barrier
        self.hold = hold  # this ref's send waits until the others have started
        self.order: list[str] = []
        self.overlapped: set[str] = set()
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._others_started = threading.Event()

    def send(self, payload: dict) -> dict:
        key = payload["key"]
        with self._lock:
            if key in self._in_flight:
                self.overlapped.add(key)
            self._in_flight.add(key)
            self.order.append(payload["ref"])
        if self.barrier is not None:
            self.barrier.wait()
        if payload["ref"] == self.hold:
            self._others_started.wait(timeout=5)
        elif self.hold is not None:
            self._others_started.set()
        with self._lock:
            self._in_flight.discard(key)
        return {"remote_id": f"R-{payload['ref']}"}

    def read_back(self, payload: dict) -> dict | None:
        return None


def enqueue_keyed(store: Store, ref: str, key: str) -> Effect:
    return store.outbox.enqueue("post", "khaos", key, f"post:{ref}", {"ref": ref, "key": key})


def test_one_dispatcher_keeps_several_sends_in_flight_at_once(store: Store) -> None:
    for i in range(4):
        enqueue_keyed(store, f"SO{i}", f"SO{i}")
    # Each send waits for the other three: only four sends in flight together get through.
    handler = RecordingHandler(barrier=threading.Barrier(4, timeout=10))
    settings = OutboxSettings(max_attempts=1, backoff_initial_s=0, concurrency=4)
    report = store.dispatcher({"post": handler}, settings).drain()
    assert report.outcomes == {"sent": 4}
    assert store.outbox.status().counts == {("post", "done"): 4}


def test_effects_of_one_business_key_go_one_at_a_time_in_claim_order(store: Store) -> None:
    enqueue_keyed(store, "release", "SO1")
    enqueue_keyed(store, "cancel", "SO1")
    for i in range(3):
        enqueue_keyed(store, f"other{i}", f"SO{i + 2}")
    # The release is held in flight while the other workers are free to take the cancel.
    handler = RecordingHandler(hold="release")
    settings = OutboxSettings(backoff_initial_s=0, concurrency=4)
    store.dispatcher({"post": handler}, settings).drain()
    assert handler.overlapped == set()
    assert [ref for ref in handler.order if ref in ("release", "cancel")] == ["release", "cancel"]
    assert store.outbox.status().counts == {("post", "done"): 5}


def test_outcomes_recorded_together_keep_one_attempt_and_one_audit_row_each(
    store: Store,
) -> None:
    class Mixed:
        idempotent = True

        def send(self, payload: dict) -> dict:
            number = int(payload["ref"][2:])
            if number % 5 == 0:
                raise PermanentError("bad", system="khaos", operation="post")
            if number % 5 == 1:
                raise transient()
            return {"remote_id": payload["ref"]}

        def read_back(self, payload: dict) -> dict | None:
            return None

    effects = [enqueue(store, f"SO{i}") for i in range(20)]
    settings = OutboxSettings(max_attempts=3, backoff_initial_s=60, concurrency=8)
    report = store.dispatcher({"post": Mixed()}, settings).drain()
    assert report.outcomes == {"sent": 12, "parked": 4, "retried": 4}
    states = {e.id: store.outbox.get(e.id).state for e in effects}
    assert sorted(states.values()).count("done") == 12
    for effect in effects:
        [attempt] = store.outbox.attempts(effect.id)
        [audit] = store.audit.list(idempotency_key=effect.idempotency_key)
        assert audit.outcome == attempt.outcome
        assert audit.subject == f"effect:{effect.id}"
    assert len(store.exceptions.list(type="effect_failed")) == 4


def test_a_send_ending_after_its_claim_was_recovered_is_read_back_not_resent(
    store: Store, clock: FakeClock
) -> None:
    applied: list[str] = []
    effect = enqueue(store)

    class SlowThenRecovered:
        def send(self, payload: dict) -> dict:
            applied.append(payload["ref"])
            # While this send is out, the lease runs out and another dispatcher recovers it.
            clock.advance(minutes=16)
            assert store.dispatcher({"post": self}, FAST).recover() == 1
            return {"remote_id": payload["ref"]}

        def read_back(self, payload: dict) -> dict | None:
            return {"remote_id": payload["ref"]} if payload["ref"] in applied else None

    store.dispatcher({"post": SlowThenRecovered()}, FAST).run_once()
    assert store.outbox.get(effect.id).state == "pending"  # the late outcome did not overwrite
    store.dispatcher({"post": SlowThenRecovered()}, FAST).drain()
    assert applied == ["SO1"]
    assert store.outbox.get(effect.id).state == "done"
    outcomes = [a.outcome for a in store.outbox.attempts(effect.id)]
    assert outcomes == ["interrupted", "sent", "confirmed_by_read_back"]


def test_first_refusal_naming_a_wait_is_retried_after_exactly_that_wait() -> None:
    settings = OutboxSettings(backoff_initial_s=10, backoff_max_s=600)
    delays = {backoff_delay(1, settings, retry_after=1, rng=random.Random(n)) for n in range(20)}
    assert delays == {1.0}


def test_a_repeated_refusal_backs_off_but_never_sooner_than_the_servers_wait() -> None:
    settings = OutboxSettings(backoff_initial_s=10, backoff_max_s=600)
    delays = [backoff_delay(2, settings, retry_after=1, rng=random.Random(n)) for n in range(50)]
    assert all(1 <= d <= 20 for d in delays)
    assert max(delays) > 1


def test_next_due_is_when_the_earliest_pending_effect_falls_due(
    store: Store, clock: FakeClock
) -> None:
    handler = ScriptedHandler(transient(retry_after=30))
    enqueue(store, "SO1")
    store.dispatcher({"post": handler}, FAST).drain()
    store.outbox.enqueue("adjust", "khaos", "SKU1", "adjust:SKU1", {"ref": "SKU1"})
    assert store.outbox.next_due(["post"]) == clock.now + timedelta(seconds=30)
    assert store.outbox.next_due() == clock.now


def test_next_due_is_none_when_nothing_is_pending(store: Store) -> None:
    enqueue(store, "SO1", hold=True)
    assert store.outbox.next_due() is None


def test_a_crash_with_several_sends_in_flight_applies_each_effect_once(
    store: Store, clock: FakeClock
) -> None:
    applied: Counter[str] = Counter()
    lock = threading.Lock()

    class Remote:
        idempotent = True

        def send(self, payload: dict) -> dict:
            with lock:
                applied[payload["ref"]] += 1
            return {"remote_id": payload["ref"]}

        def read_back(self, payload: dict) -> dict | None:
            return {"remote_id": payload["ref"]} if applied[payload["ref"]] else None

    for i in range(12):
        enqueue(store, f"SO{i}")
    settings = OutboxSettings(backoff_initial_s=0, concurrency=4)
    with crash_at("after_send", nth=3), pytest.raises(SimulatedCrash):
        store.dispatcher({"post": Remote()}, settings).drain()
    clock.advance(minutes=16)  # same process: only the lease reveals the dead claims
    store.dispatcher({"post": Remote()}, settings).drain()
    assert store.outbox.status().counts == {("post", "done"): 12}
    assert applied == Counter({f"SO{i}": 1 for i in range(12)})


def test_effects_of_a_handler_that_is_not_idempotent_go_one_at_a_time(store: Store) -> None:
    in_flight: list[int] = [0]
    most: list[int] = [0]
    lock = threading.Lock()

    class Khaos:
        def send(self, payload: dict) -> dict:
            with lock:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
            time.sleep(0.002)  # leaves room for a second send to start, were it allowed
            with lock:
                in_flight[0] -= 1
            return {"remote_id": payload["ref"]}

        def read_back(self, payload: dict) -> dict | None:
            return None

    for i in range(8):
        enqueue(store, f"SO{i}")
    settings = OutboxSettings(backoff_initial_s=0, concurrency=4)
    store.dispatcher({"post": Khaos()}, settings).drain()
    assert store.outbox.status().counts == {("post", "done"): 8}
    assert most[0] == 1
