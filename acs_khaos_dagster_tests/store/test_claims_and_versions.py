"""Claims that cannot go stale, and the newest version of a thing winning.

Production outbox settings (15-minute lease, 60 s heartbeat, 30 s read-back delay, 95 s
longest request) on a simulated clock: a send that takes longer than the lease is a clock
jump inside the handler, another dispatcher acting meanwhile is a call from inside it.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from acs_khaos_dagster.config import HttpSettings, OutboxSettings
from acs_khaos_dagster.connectors.errors import AmbiguousError, PermanentError
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.dispatcher import Dispatcher
from acs_khaos_dagster.store.outbox import NotApprovable

from .conftest import FakeClock

PRODUCTION = OutboxSettings()


class Ledger:
    """A target that does not de-duplicate: every send is applied (and counted)."""

    def __init__(self) -> None:
        self.applied: Counter[str] = Counter()
        self.order: list[str] = []

    def apply(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.applied[payload["ref"]] += 1
        self.order.append(payload["ref"])
        return {"remote_id": f"R-{payload['ref']}"}

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return {"remote_id": f"R-{payload['ref']}"} if self.applied[payload["ref"]] else None


class Remote:
    """A handler over the ledger; ``during_send`` runs while a send is on its way."""

    def __init__(self, ledger: Ledger, during_send=None) -> None:
        self.ledger = ledger
        self.during_send = during_send

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        result = self.ledger.apply(payload)
        if self.during_send is not None:
            hook, self.during_send = self.during_send, None
            hook(payload)
        return result

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return self.ledger.read_back(payload)


def enqueue(store: Store, ref: str, *, versions: str | None = None, hold: bool = False):
    return store.outbox.enqueue(
        "post", "khaos", ref, f"post:{ref}", {"ref": ref}, hold=hold, supersede_key=versions
    )


class Timer:
    """A dispatcher's own monotonic clock, moved only when the test says so (so that when
    its heartbeat fires, relative to what other dispatchers do, is the test's choice)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def dispatcher(
    store: Store, handler: Any, clock: FakeClock, name: str, timer: Timer | None = None
) -> Dispatcher:
    """A dispatcher on the simulated clock. With a ``timer`` its heartbeat follows that
    timer; without one it follows the simulated clock."""
    start = clock.now
    return store.dispatcher(
        {"post": handler},
        PRODUCTION,
        name=name,
        monotonic=timer or (lambda: (clock.now - start).total_seconds()),
        owner_gone=lambda owner: False,  # one process: only the lease can tell
    )


def test_a_dispatcher_whose_claims_were_recovered_sends_none_of_its_remaining_batch(
    store: Store, clock: FakeClock
) -> None:
    ledger = Ledger()
    effects = [enqueue(store, f"SO{i}") for i in range(3)]

    def slower_than_the_lease(payload: dict[str, Any]) -> None:
        # The first send takes 16 minutes; meanwhile another dispatcher finds every claim
        # of the batch expired, reads back and sends what is not there.
        clock.advance(minutes=16)
        other = dispatcher(store, Remote(ledger), clock, "b")
        assert other.drain().outcomes["recovered"] == 3

    stalled = Timer()  # its heartbeat never fires: only the guard stands in the way
    report = dispatcher(store, Remote(ledger, slower_than_the_lease), clock, "a", stalled).drain()

    assert ledger.applied == {"SO0": 1, "SO1": 1, "SO2": 1}
    assert report.outcomes["claim_lost"] == 2  # its guard refused both remaining sends
    assert {store.outbox.get(e.id).state for e in effects} == {"done"}
    outcomes = [a.outcome for a in store.outbox.attempts(effects[0].id)]
    assert "confirmed_by_read_back" in outcomes  # its late send was found, not repeated
    for effect in effects[1:]:
        assert "claim_lost" in [a.outcome for a in store.outbox.attempts(effect.id)]


def test_a_heartbeat_that_finds_its_claims_taken_drops_them_unsent(
    store: Store, clock: FakeClock
) -> None:
    ledger = Ledger()
    for i in range(3):
        enqueue(store, f"SO{i}")

    timer = Timer()

    def slower_than_the_lease(payload: dict[str, Any]) -> None:
        clock.advance(minutes=16)
        dispatcher(store, Remote(ledger), clock, "b").drain()
        timer.seconds += 16 * 60  # the first dispatcher's heartbeat is due once this returns

    report = dispatcher(store, Remote(ledger, slower_than_the_lease), clock, "a", timer).drain()

    assert ledger.applied == {"SO0": 1, "SO1": 1, "SO2": 1}
    assert report.outcomes["claim_lost"] == 2


def test_the_heartbeat_keeps_a_batch_longer_than_the_lease_from_being_recovered(
    store: Store, clock: FakeClock
) -> None:
    ledger = Ledger()
    for i in range(3):
        enqueue(store, f"SO{i}")
    recovered_by_other: list[int] = []

    class SixMinutesEach(Remote):
        def send(self, payload: dict[str, Any]) -> dict[str, Any]:
            clock.advance(minutes=6)  # three sends: 18 minutes, past the 15-minute lease
            other = dispatcher(store, Remote(ledger), clock, "b")
            recovered_by_other.append(other.recover())
            return self.ledger.apply(payload)

    report = dispatcher(store, SixMinutesEach(ledger), clock, "a").drain()

    assert report.outcomes == {"sent": 3}
    assert recovered_by_other == [0, 0, 0]
    assert ledger.applied == {"SO0": 1, "SO1": 1, "SO2": 1}


def test_the_claim_of_a_dispatcher_that_just_died_is_read_back_once_a_late_apply_landed(
    store: Store, clock: FakeClock
) -> None:
    effect = enqueue(store, "SO1")
    dispatcher(store, Remote(Ledger()), clock, "dead").claim(1)
    clock.advance(seconds=10)  # it died mid-send: its request may reach Khaos and apply late

    recovering = store.dispatcher(
        {"post": Remote(Ledger())}, PRODUCTION, owner_gone=lambda owner: "dead" in str(owner)
    )
    assert recovering.recover() == 1

    assert store.outbox.get(effect.id).next_attempt_at == clock.now + timedelta(
        seconds=PRODUCTION.read_back_after_s
    )


def test_an_expired_claim_is_read_back_no_sooner_than_its_last_request_could_land(
    store: Store, clock: FakeClock
) -> None:
    effect = enqueue(store, "SO1")
    dispatcher(store, Remote(Ledger()), clock, "stalled").claim(1)
    clock.advance(minutes=1)
    # A short lease (a test's, never a valid production one) ends before the request could.
    impatient = store.dispatcher(
        {"post": Remote(Ledger())}, PRODUCTION, lease=timedelta(seconds=30)
    )
    assert impatient.recover() == 1

    longest_request = HttpSettings().longest_request_s
    assert store.outbox.get(effect.id).next_attempt_at == clock.now - timedelta(
        minutes=1
    ) + timedelta(seconds=longest_request + PRODUCTION.read_back_after_s)


def test_a_newer_version_supersedes_an_unsent_older_one_and_closes_its_exception(
    store: Store, clock: FakeClock
) -> None:
    class Refuses:
        def send(self, payload: dict[str, Any]) -> dict[str, Any]:
            raise PermanentError("SKU inactive", system="acs", operation="put_order")

        def read_back(self, payload: dict[str, Any]) -> None:
            return None

    older = enqueue(store, "rev-a", versions="order:SO1")
    dispatcher(store, Refuses(), clock, "a").drain()
    assert store.outbox.get(older.id).state == "parked"

    newer = enqueue(store, "rev-b", versions="order:SO1")

    kept = store.outbox.get(older.id)
    assert (kept.state, kept.superseded_by) == ("superseded", newer.id)
    [closed] = store.exceptions.list(type="effect_failed", status="resolved")
    assert f"superseded by effect {newer.id}" in (closed.row.resolution_note or "")
    assert store.audit.list(subject=f"effect:{older.id}")[-1].action == "supersede"
    assert not store.outbox.requeue(older.id, "ops.anna")  # never sent again


def test_an_older_version_on_the_wire_makes_the_newer_wait_and_go_after_it(
    store: Store, clock: FakeClock
) -> None:
    ledger = Ledger()
    enqueue(store, "rev-a", versions="order:SO1")
    other = dispatcher(store, Remote(ledger), clock, "b")
    newer = []

    def edited_meanwhile(payload: dict[str, Any]) -> None:
        newer.append(enqueue(store, "rev-b", versions="order:SO1"))
        assert other.drain().outcomes == {"deferred": 1}

    dispatcher(store, Remote(ledger, edited_meanwhile), clock, "a").drain()
    assert store.outbox.get(newer[0].id).attempts == 0  # waiting is not a failed attempt
    clock.advance(seconds=5)
    other.drain()

    assert ledger.order == ["rev-a", "rev-b"]
    assert store.outbox.get(newer[0].id).state == "done"


def test_an_older_version_not_yet_on_the_wire_is_superseded_not_sent(
    store: Store, clock: FakeClock
) -> None:
    ledger = Ledger()
    older = enqueue(store, "rev-a", versions="order:SO1")
    holder = dispatcher(store, Remote(ledger), clock, "a")
    [claim] = holder.claim(1)  # claimed, not yet sent
    newer = enqueue(store, "rev-b", versions="order:SO1")

    holder.finish([holder.talk(claim)])
    dispatcher(store, Remote(ledger), clock, "b").drain()

    assert ledger.order == ["rev-b"]
    assert store.outbox.get(older.id).state == "superseded"
    assert store.outbox.get(newer.id).state == "done"


def test_an_older_version_that_may_have_landed_is_settled_before_the_newer_is_sent(
    store: Store, clock: FakeClock
) -> None:
    ledger = Ledger()

    class TimesOutOnce(Remote):
        def send(self, payload: dict[str, Any]) -> dict[str, Any]:
            raise AmbiguousError("no reply", system="acs", operation="put_order")

    older = enqueue(store, "rev-a", versions="order:SO1")
    dispatcher(store, TimesOutOnce(ledger), clock, "a").drain()
    newer = enqueue(store, "rev-b", versions="order:SO1")
    assert store.outbox.get(older.id).state == "pending"  # it may still land: not settled yet

    dispatcher(store, Remote(ledger), clock, "b").drain()
    assert ledger.order == []  # the newer one waits for the older one's read-back
    clock.advance(seconds=PRODUCTION.read_back_after_s)
    dispatcher(store, Remote(ledger), clock, "b").drain()

    assert ledger.order == ["rev-b"]
    assert store.outbox.get(older.id).state == "superseded"
    assert store.outbox.get(newer.id).state == "done"


def test_a_held_version_replaced_by_a_newer_one_can_no_longer_be_approved(
    store: Store, clock: FakeClock
) -> None:
    older = enqueue(store, "variance-1", versions="level:10005:1", hold=True)
    newer = enqueue(store, "variance-2", versions="level:10005:1", hold=True)

    with pytest.raises(NotApprovable, match=f"superseded by effect {newer.id}"):
        store.outbox.approve(older.id, "fin.sam")
    assert store.outbox.get(older.id).state == "superseded"
