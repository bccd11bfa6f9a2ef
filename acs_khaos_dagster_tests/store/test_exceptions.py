"""Exception queue: one row per problem, owned by a team, closed by people or by the flows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.connectors.errors import PermanentError
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.exceptions import DEFAULT_OWNERS, ExceptionType, OwnerTargets

from .conftest import FakeClock
from .remote import ScriptedHandler


def test_same_problem_twice_is_one_row_counted_twice(store: Store, clock: FakeClock) -> None:
    first = store.exceptions.raise_exception("sku_mismatch", "SKU:ABC", "barcode differs")
    clock.advance(minutes=5)
    again = store.exceptions.raise_exception("sku_mismatch", "SKU:ABC", "barcode still differs")
    assert again.id == first.id
    assert again.count == 2
    assert again.last_seen == first.first_seen + timedelta(minutes=5)
    assert again.message == "barcode still differs"
    assert len(store.exceptions.list()) == 1


def test_every_type_has_a_documented_default_owner() -> None:
    assert set(DEFAULT_OWNERS) == set(ExceptionType)
    assert DEFAULT_OWNERS[ExceptionType.EFFECT_FAILED] == "integration"
    assert DEFAULT_OWNERS[ExceptionType.STOCK_VARIANCE_HELD] == "finance"
    assert DEFAULT_OWNERS[ExceptionType.ORDER_HELD] == "ecommerce"
    assert DEFAULT_OWNERS[ExceptionType.UNKNOWN_STOCK_STATUS] == "operations"
    assert DEFAULT_OWNERS[ExceptionType.SKU_MISSING_IN_ACS] == "ecommerce"


def test_owner_comes_from_the_default_map_and_can_be_overridden(db_url: str) -> None:
    with Store.open(db_url, owners={"drift": "operations"}) as store:
        assert store.exceptions.raise_exception("refund_due", "RET1", "refund").owner == "finance"
        assert store.exceptions.raise_exception("drift", "SKU1", "drift").owner == "operations"


def test_unknown_type_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown exception type"):
        store.exceptions.raise_exception("sku_mismtach", "SKU1", "typo")


def test_auto_resolve_closes_the_problems_no_longer_seen(store: Store) -> None:
    for ref in ("A", "B", "C"):
        store.exceptions.raise_exception("sku_missing_in_acs", ref, "missing")
    store.exceptions.raise_exception("drift", "A", "other type stays")
    closed = store.exceptions.auto_resolve("sku_missing_in_acs", still_open_refs=["B"])
    assert len(closed) == 2
    open_refs = {(i.row.type, i.row.entity_ref) for i in store.exceptions.list()}
    assert open_refs == {("sku_missing_in_acs", "B"), ("drift", "A")}
    resolved = store.exceptions.list(status="resolved")
    assert {i.row.acted_by for i in resolved} == {"integration"}


def test_resolved_problem_seen_again_reopens_as_a_new_occurrence(
    store: Store, clock: FakeClock
) -> None:
    row = store.exceptions.raise_exception("order_held", "SO1", "held")
    store.exceptions.resolve(row.id, "ops.anna", "released by hand")
    clock.advance(hours=1)
    again = store.exceptions.raise_exception("order_held", "SO1", "held again")
    assert again.id == row.id
    assert again.status == "open"
    assert again.count == 2
    assert again.opened_at == clock.now


def test_ignored_problem_stays_ignored_when_seen_again(store: Store) -> None:
    row = store.exceptions.raise_exception("courier_unmapped", "DPD-X", "unknown courier")
    store.exceptions.ignore(row.id, "eng.bob", "legacy courier")
    again = store.exceptions.raise_exception("courier_unmapped", "DPD-X", "unknown courier")
    assert again.status == "ignored"
    assert again.count == 2


def test_list_shows_age_and_whether_it_is_over_the_owner_target(
    store: Store, clock: FakeClock
) -> None:
    store.exceptions.raise_exception("order_sla_breach", "SO1", "late")  # operations: 4 h
    store.exceptions.raise_exception("drift", "SKU1", "drift")  # finance: 24 h
    clock.advance(hours=5)
    items = {i.row.type: i for i in store.exceptions.list()}
    assert items["order_sla_breach"].age == timedelta(hours=5)
    assert items["order_sla_breach"].over_target is True
    assert items["drift"].over_target is False
    assert items["drift"].target_hours == OwnerTargets().finance


def test_list_filters_by_type_owner_status_and_age(store: Store, clock: FakeClock) -> None:
    store.exceptions.raise_exception("order_held", "SO1", "held")
    clock.advance(hours=3)
    store.exceptions.raise_exception("refund_due", "RET1", "refund")
    done = store.exceptions.raise_exception("drift", "SKU9", "drift")
    store.exceptions.resolve(done.id, "fin.carl", "booked")
    assert [i.row.entity_ref for i in store.exceptions.list(owner="finance")] == ["RET1"]
    assert [i.row.entity_ref for i in store.exceptions.list(type="order_held")] == ["SO1"]
    assert [i.row.entity_ref for i in store.exceptions.list(status="resolved")] == ["SKU9"]
    old = store.exceptions.list(older_than=timedelta(hours=2))
    assert [i.row.entity_ref for i in old] == ["SO1"]


def test_retry_requeues_the_parked_effect_with_attempts_reset(store: Store) -> None:
    handler = ScriptedHandler(PermanentError("locked", system="acs", operation="post"))
    store.outbox.enqueue("post", "acs", "SO1", "post:SO1", {"ref": "SO1"})
    settings = OutboxSettings(backoff_initial_s=0)
    store.dispatcher({"post": handler}, settings).drain()
    [problem] = store.exceptions.list(type="effect_failed")
    store.exceptions.retry(problem.row.id, "eng.bob")
    effect = store.outbox.by_key("post:SO1")
    assert (effect.state, effect.attempts) == ("pending", 0)
    store.dispatcher({"post": handler}, settings).drain()
    assert store.outbox.by_key("post:SO1").state == "done"
    assert [a.actor for a in store.audit.list(action="retry")] == ["eng.bob"]


def test_retry_of_a_problem_that_is_not_an_effect_is_refused(store: Store) -> None:
    row = store.exceptions.raise_exception("order_held", "SO1", "held")
    with pytest.raises(ValueError, match="only effect_failed"):
        store.exceptions.retry(row.id, "eng.bob")


def test_approving_through_the_exception_releases_the_held_effect_once(store: Store) -> None:
    effect = store.outbox.enqueue(
        "adjust", "khaos", "SKU1", "adjust:SKU1:2026-03-02", {"ref": "SKU1"}, hold=True
    )
    problem = store.exceptions.raise_exception(
        "stock_variance_held", "SKU1", "variance 40 units", effect_id=effect.id
    )
    assert store.approve(exception_id=problem.id, actor="fin.carl") is True
    assert store.approve(exception_id=problem.id, actor="fin.carl") is False
    assert store.outbox.get(effect.id).state == "pending"
    assert store.exceptions.get(problem.id).status == "resolved"
    assert len(store.audit.list(action="approve")) == 1
