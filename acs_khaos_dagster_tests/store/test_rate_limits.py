"""A refusal for the target's rate limit is not a failure: retried exactly when the target
said, never counted toward ``max_attempts``, an alert when one effect waits too long.

Every test runs the dispatcher with the production defaults (``OutboxSettings()``) on a
simulated clock.
"""

from __future__ import annotations

from datetime import timedelta

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.connectors.errors import TransientError
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.schema import Effect

from .conftest import FakeClock
from .remote import ScriptedHandler

DEFAULTS = OutboxSettings()


def refused(retry_after: float | None = 1) -> TransientError:
    return TransientError(
        "rate limited",
        system="acs",
        operation="put_order",
        retry_after=retry_after,
        rate_limited=True,
    )


def enqueue(store: Store, ref: str = "SO1") -> Effect:
    return store.outbox.enqueue("post", "acs", ref, f"post:{ref}", {"ref": ref})


def drain_until_done(
    store: Store, clock: FakeClock, handler: ScriptedHandler, effect_id: int, rounds: int = 50
) -> list[timedelta]:
    """Dispatch, then move the clock to the next retry, until done; the waits it was given."""
    waits = []
    for _ in range(rounds):
        store.dispatcher({"post": handler}, DEFAULTS).drain()
        effect = store.outbox.get(effect_id)
        if effect.state != "pending":
            return waits
        waits.append(effect.next_attempt_at - clock.now)
        clock.now = effect.next_attempt_at
    raise AssertionError(f"not settled after {rounds} rounds")


def test_an_effect_refused_more_often_than_max_attempts_is_sent_and_never_parked(
    store: Store, clock: FakeClock
) -> None:
    refusals = DEFAULTS.max_attempts * 2
    handler = ScriptedHandler(*(refused() for _ in range(refusals)))
    effect = enqueue(store)

    drain_until_done(store, clock, handler, effect.id)

    effect = store.outbox.get(effect.id)
    assert effect.state == "done"
    assert effect.attempts == 1  # the refusals did not count
    outcomes = [a.outcome for a in store.outbox.attempts(effect.id)]
    assert outcomes == ["rate_limited"] * refusals + ["sent"]
    assert store.exceptions.list(type="effect_failed") == []


def test_each_refusal_is_retried_exactly_after_the_retry_after_it_named(
    store: Store, clock: FakeClock
) -> None:
    named = [1, 7, 30, 1, 120]
    handler = ScriptedHandler(*(refused(s) for s in named))
    effect = enqueue(store)

    waits = drain_until_done(store, clock, handler, effect.id)

    assert waits == [timedelta(seconds=s) for s in named]


def test_a_retry_after_beyond_the_cap_is_cut_to_the_cap(store: Store, clock: FakeClock) -> None:
    handler = ScriptedHandler(refused(retry_after=86_400))
    effect = enqueue(store)

    waits = drain_until_done(store, clock, handler, effect.id)

    assert waits == [timedelta(seconds=DEFAULTS.rate_limit_wait_max_s)]


def test_a_refusal_naming_no_wait_waits_about_as_long_as_refused_so_far(
    store: Store, clock: FakeClock
) -> None:
    handler = ScriptedHandler(*(refused(retry_after=None) for _ in range(8)))
    effect = enqueue(store)

    waits = [w.total_seconds() for w in drain_until_done(store, clock, handler, effect.id)]

    assert DEFAULTS.backoff_initial_s / 2 <= waits[0] <= DEFAULTS.backoff_initial_s
    assert all(w <= DEFAULTS.rate_limit_wait_max_s for w in waits)
    assert sum(waits[4:]) > sum(waits[:4])  # it backs off rather than hammer the target


def test_rate_limit_refusals_leave_the_attempts_to_real_failures(
    store: Store, clock: FakeClock
) -> None:
    busy = TransientError("busy", system="acs", operation="put_order")
    failures = [busy] * (DEFAULTS.max_attempts - 1)
    handler = ScriptedHandler(*failures[:2], refused(), refused(), *failures[2:], refused())
    effect = enqueue(store)

    drain_until_done(store, clock, handler, effect.id)

    effect = store.outbox.get(effect.id)
    assert effect.state == "done"
    assert effect.attempts == DEFAULTS.max_attempts


def test_an_effect_refused_past_the_alert_setting_opens_an_exception_closed_once_it_is_sent(
    store: Store, clock: FakeClock
) -> None:
    wait = 600
    refusals = int(DEFAULTS.rate_limit_alert_after_s // wait) + 2
    handler = ScriptedHandler(*(refused(wait) for _ in range(refusals)))
    effect = enqueue(store)
    dispatcher = store.dispatcher({"post": handler}, DEFAULTS)

    for _ in range(refusals):
        assert store.exceptions.list(type="effect_rate_limited", status="open") == []
        dispatcher.drain()
        clock.advance(seconds=wait)
        if now_open := store.exceptions.list(type="effect_rate_limited", status="open"):
            break
    [alert] = now_open
    assert alert.row.owner == "integration"
    assert alert.row.effect_id == effect.id
    assert alert.row.details["refused_for_s"] > DEFAULTS.rate_limit_alert_after_s

    drain_until_done(store, clock, handler, effect.id)

    assert store.outbox.get(effect.id).state == "done"
    assert store.exceptions.list(type="effect_rate_limited", status="open") == []


def test_an_effect_refused_for_less_than_the_alert_setting_raises_nothing(
    store: Store, clock: FakeClock
) -> None:
    handler = ScriptedHandler(*(refused(60) for _ in range(10)))
    effect = enqueue(store)

    drain_until_done(store, clock, handler, effect.id)

    assert store.exceptions.list(type="effect_rate_limited") == []


def test_a_refused_read_back_is_retried_without_using_an_attempt(
    store: Store, clock: FakeClock
) -> None:
    from acs_khaos_dagster.connectors.errors import AmbiguousError

    timeout = AmbiguousError("timeout", system="acs", operation="put_order")
    handler = ScriptedHandler(
        timeout, read_back_errors=tuple(refused(5) for _ in range(DEFAULTS.max_attempts))
    )
    effect = enqueue(store)

    drain_until_done(store, clock, handler, effect.id)

    effect = store.outbox.get(effect.id)
    assert effect.state == "done"
    assert effect.attempts == 2
    outcomes = [a.outcome for a in store.outbox.attempts(effect.id)]
    assert outcomes == ["ambiguous_error"] + ["read_back_rate_limited"] * 6 + ["sent"]
