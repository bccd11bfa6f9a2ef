"""The outbox backlog (``flows/outbox.py``) without Dagster: what counts as due, per target,
and when the integration owner hears that effects are left waiting.

A SQLite store with a settable clock: the effects' ages are the clock's, so every
expected age and count below is the test's own arithmetic on the times it set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.effects import TARGET_OF, EffectKind
from acs_khaos_dagster.flows.figures import dispatch_figures
from acs_khaos_dagster.flows.outbox import (
    backlog_over_limit,
    dispatch_due,
    due_effects,
    due_targets,
    kinds_of,
    record_backlog,
)
from acs_khaos_dagster.store import DispatchReport, DueEffects, Store
from acs_khaos_dagster.store.schema import Effect
from acs_khaos_dagster_tests.store.conftest import FakeClock

LIMIT_S = 1800.0  # outbox.due_alert_after_s: half an hour


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def settings() -> Settings:
    conf = load_settings()
    assert conf.outbox.due_alert_after_s == LIMIT_S
    return conf


def enqueue(store: Store, kind: EffectKind, key: str, *, hold: bool = False) -> int:
    effect = store.outbox.enqueue(kind, TARGET_OF[kind], key, f"test:{key}", {"k": key}, hold=hold)
    return effect.id


def backlog(store: Store, status: str | None = "open") -> dict[str, str]:
    return {
        item.row.entity_ref: item.row.status
        for item in store.exceptions.list(type="outbox_backlog", status=status)
    }


# --- kinds per target ----------------------------------------------------------------------


def test_every_effect_kind_belongs_to_exactly_one_target() -> None:
    acs, khaos = set(kinds_of("acs")), set(kinds_of("khaos"))
    assert acs == {"acs.put_product", "acs.put_order"}
    assert khaos == {
        "khaos.move_invoices",
        "khaos.import_despatch",
        "khaos.import_stock_adjustments",
        "khaos.import_stock_move",
        "khaos.import_customer_return",
    }
    assert acs | khaos == {str(kind) for kind in EffectKind}
    assert kinds_of("sage") == []


# --- what is due -----------------------------------------------------------------------------


def test_an_effect_just_recorded_is_due_at_once_and_has_waited_no_time(
    store: Store, settings: Settings
) -> None:
    enqueue(store, EffectKind.ACS_ORDER, "SO1")
    due = due_effects(store, settings)
    assert due.by_target == {"acs": 1}
    assert due.oldest_due_age == timedelta(0)


def test_an_effect_held_for_approval_is_not_due(store: Store, settings: Settings) -> None:
    enqueue(store, EffectKind.KHAOS_STOCK_ADJUSTMENT, "SNAP-1", hold=True)
    assert due_effects(store, settings).total == 0
    assert due_effects(store, settings).oldest_due_age is None


def test_due_effects_of_a_target_count_only_that_targets_kinds(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    enqueue(store, EffectKind.KHAOS_DESPATCH, "SHP-1")
    clock.advance(minutes=10)
    enqueue(store, EffectKind.ACS_ORDER, "SO1")
    enqueue(store, EffectKind.ACS_PRODUCT, "SKU-1")
    clock.advance(minutes=5)
    acs = due_effects(store, settings, "acs")
    khaos = due_effects(store, settings, "khaos")
    assert acs.by_target == {"acs": 2} and acs.oldest_due_age == timedelta(minutes=5)
    assert khaos.by_target == {"khaos": 1} and khaos.oldest_due_age == timedelta(minutes=15)
    everything = due_effects(store, settings)
    assert everything.total == 3 and everything.oldest_due_age == timedelta(minutes=15)


def test_a_claim_whose_dispatcher_stopped_renewing_it_is_due_again_after_the_lease(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    effect_id = enqueue(store, EffectKind.ACS_ORDER, "SO1")
    with store.transaction() as s:  # a dispatcher claimed it, then died
        row = s.get(Effect, effect_id)
        row.state = "in_flight"
        row.claimed_at = clock.now
        row.renewed_at = clock.now
    lease = settings.outbox.lease_s
    clock.advance(seconds=lease - 1)
    assert due_effects(store, settings, "acs").total == 0
    clock.advance(seconds=1)
    assert due_effects(store, settings, "acs").total == 1


# --- the backlog exception -------------------------------------------------------------------


def test_an_effect_waiting_past_the_limit_opens_a_backlog_exception_for_the_integration_owner(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    enqueue(store, EffectKind.ACS_ORDER, "SO1")
    enqueue(store, EffectKind.ACS_PRODUCT, "SKU-1")
    clock.advance(minutes=45)
    record_backlog(store, settings, "acs", due_effects(store, settings, "acs"))
    [item] = store.exceptions.list(type="outbox_backlog")
    assert item.row.entity_ref == "outbox:acs"
    assert item.row.owner == "integration"
    assert item.row.message.startswith(
        "2 effect(s) to acs are due and the oldest has waited 45 min past its time (limit 30 min)"
    )
    assert "acs_api pool" in item.row.message
    assert item.row.details == {"target": "acs", "due": 2, "oldest_due_age_s": 2700}


def test_an_effect_waiting_exactly_the_limit_is_not_yet_a_backlog(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    enqueue(store, EffectKind.ACS_ORDER, "SO1")
    clock.advance(seconds=LIMIT_S)
    due = due_effects(store, settings, "acs")
    assert not backlog_over_limit(settings, due)
    clock.advance(seconds=1)
    assert backlog_over_limit(settings, due_effects(store, settings, "acs"))


def test_nothing_due_is_never_a_backlog(settings: Settings) -> None:
    assert not backlog_over_limit(settings, DueEffects(by_target={}, oldest_due_age=None))


def test_the_backlog_exception_closes_itself_once_dispatching_keeps_up(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    enqueue(store, EffectKind.KHAOS_DESPATCH, "SHP-1")
    clock.advance(hours=1)
    record_backlog(store, settings, "khaos", due_effects(store, settings, "khaos"))
    assert backlog(store) == {"outbox:khaos": "open"}
    record_backlog(store, settings, "khaos", DueEffects(by_target={}, oldest_due_age=None))
    assert backlog(store) == {}
    assert backlog(store, status="resolved") == {"outbox:khaos": "resolved"}


def test_one_target_keeping_up_does_not_close_the_other_targets_backlog(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    enqueue(store, EffectKind.KHAOS_DESPATCH, "SHP-1")
    enqueue(store, EffectKind.ACS_ORDER, "SO1")
    clock.advance(hours=1)
    for target in ("acs", "khaos"):
        record_backlog(store, settings, target, due_effects(store, settings, target))
    assert backlog(store) == {"outbox:acs": "open", "outbox:khaos": "open"}
    record_backlog(store, settings, "acs", DueEffects(by_target={}, oldest_due_age=None))
    assert backlog(store) == {"outbox:khaos": "open"}


def test_a_backlog_seen_again_counts_one_more_sighting_with_the_new_age(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    enqueue(store, EffectKind.ACS_ORDER, "SO1")
    clock.advance(minutes=40)
    record_backlog(store, settings, "acs", due_effects(store, settings, "acs"))
    clock.advance(minutes=20)
    record_backlog(store, settings, "acs", due_effects(store, settings, "acs"))
    [item] = store.exceptions.list(type="outbox_backlog")
    assert item.row.count == 2
    assert item.row.details["oldest_due_age_s"] == 3600


def test_a_backlog_that_comes_back_reopens_the_same_exception(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    enqueue(store, EffectKind.ACS_ORDER, "SO1")
    clock.advance(hours=1)
    record_backlog(store, settings, "acs", due_effects(store, settings, "acs"))
    record_backlog(store, settings, "acs", DueEffects(by_target={}, oldest_due_age=None))
    clock.advance(hours=1)
    record_backlog(store, settings, "acs", due_effects(store, settings, "acs"))
    rows = store.exceptions.list(type="outbox_backlog", status=None)
    assert [(r.row.entity_ref, r.row.status) for r in rows] == [("outbox:acs", "open")]


# --- a dispatch pass -------------------------------------------------------------------------


def test_a_dispatch_pass_names_only_the_two_systems(store: Store, settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown target 'sage'"):
        dispatch_due(store, settings, "sage")


def test_a_pass_over_one_target_leaves_the_other_targets_effects_waiting(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    acs_id = enqueue(store, EffectKind.ACS_ORDER, "SO1")
    clock.advance(minutes=50)
    done = dispatch_due(store, settings, "khaos")  # no Khaos client: nothing it could send
    assert (done.target, done.due_before, done.still_due) == ("khaos", 0, 0)
    assert done.oldest_due_age is None and done.oldest_due_age_s == 0.0
    assert not done.backlog_over_limit
    assert store.outbox.get(acs_id).state == "pending"
    assert backlog(store) == {}


def test_a_late_pass_reports_how_late_it_came_and_raises_the_backlog_first(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    enqueue(store, EffectKind.KHAOS_DESPATCH, "SHP-1")
    clock.advance(minutes=31)
    done = dispatch_due(store, settings, "khaos")  # no client given: the effect stays due
    assert done.due_before == 1 and done.still_due == 1
    assert done.oldest_due_age_s == 31 * 60
    assert done.backlog_over_limit
    assert backlog(store) == {"outbox:khaos": "open"}


def test_a_late_pass_warns_with_its_figures_and_says_how_late_against_the_limit(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    enqueue(store, EffectKind.KHAOS_DESPATCH, "SHP-1")
    clock.advance(seconds=1860.04)
    done = dispatch_due(store, settings, "khaos")
    verdict = done.verdict(LIMIT_S)
    assert not verdict.passed and verdict.warn
    assert verdict.figures == {"oldest_due_age_s": 1860.0}
    assert isinstance(done.figures()["oldest_due_age_s"], float)  # plotted as a float
    assert done.figures() == {"due_before": 1, "oldest_due_age_s": 1860.0, "still_due": 1}
    assert done.lateness(LIMIT_S) == "the oldest due effect waited 1860 s (limit 1800 s)"


def test_a_pass_in_time_passes_the_check(store: Store, settings: Settings) -> None:
    enqueue(store, EffectKind.ACS_ORDER, "SO1")
    assert dispatch_due(store, settings, "khaos").verdict(LIMIT_S).passed


def test_dispatch_figures_count_effects_per_outcome_in_order_under_a_prefix() -> None:
    report = DispatchReport(claimed=3, outcomes=Counter({"sent": 2, "failed": 1}))
    assert list(dispatch_figures(report, prefix="acs_").items()) == [
        ("acs_effects_failed", 1),
        ("acs_effects_sent", 2),
    ]
    assert dispatch_figures(DispatchReport()) == {}


# --- what the sensor starts ------------------------------------------------------------------


def test_due_targets_name_only_the_targets_with_due_effects_and_raise_their_backlog(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    assert due_targets(store, settings) == {}
    enqueue(store, EffectKind.KHAOS_DESPATCH, "SHP-1")
    enqueue(store, EffectKind.KHAOS_DESPATCH, "SHP-2")
    clock.advance(hours=1)
    assert due_targets(store, settings) == {"khaos": 2}
    assert backlog(store) == {"outbox:khaos": "open"}
