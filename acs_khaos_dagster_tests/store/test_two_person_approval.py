"""Finance's approval limits: a large held stock variance needs two different people."""

from __future__ import annotations

from decimal import Decimal

import pytest

from acs_khaos_dagster.domain.approvals import ApprovalLimits, needs_second_approval
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.exceptions import ExceptionType, SecondApprovalNeeded

LIMITS = ApprovalLimits(units=20, value=Decimal("500.00"))


def _held(store: Store, units: int, value: str) -> tuple[int, int]:
    effect = store.outbox.enqueue(
        "khaos_stock_adjustment", "khaos", "snapshot:S1", f"held:{units}", {"x": 1}, hold=True
    )
    row = store.exceptions.raise_exception(
        ExceptionType.STOCK_VARIANCE_HELD,
        f"S1:10001:S1:{units}",
        "held",
        {"held_units": units, "value": value},
        effect_id=effect.id,
    )
    return row.id, effect.id


def test_a_variance_above_the_limits_is_booked_only_after_a_second_person_approves(
    store: Store,
) -> None:
    exception_id, effect_id = _held(store, 30, "600.00")

    with pytest.raises(SecondApprovalNeeded, match="second, different person"):
        store.approve(exception_id=exception_id, actor="alice", limits=LIMITS)
    assert store.outbox.get(effect_id).state == "held"
    with pytest.raises(SecondApprovalNeeded, match="alice approved it already"):
        store.approve(exception_id=exception_id, actor="alice", limits=LIMITS)
    assert store.outbox.get(effect_id).state == "held"

    assert store.approve(exception_id=exception_id, actor="bob", limits=LIMITS)
    assert store.outbox.get(effect_id).state == "pending"
    assert store.exceptions.get(exception_id).details["first_approved_by"] == "alice"


def test_a_variance_below_the_limits_needs_one_approver(store: Store) -> None:
    exception_id, effect_id = _held(store, 5, "100.00")

    assert store.approve(exception_id=exception_id, actor="alice", limits=LIMITS)
    assert store.outbox.get(effect_id).state == "pending"


@pytest.mark.parametrize(
    ("units", "value", "needed"),
    [(19, "499.99", False), (20, "1.00", True), (-25, "-10.00", True), (1, "500.00", True)],
)
def test_either_limit_reached_in_either_direction_needs_a_second_approver(
    units: int, value: str, needed: bool
) -> None:
    assert needs_second_approval({"held_units": units, "value": value}, LIMITS) is needed


def test_a_variance_of_unknown_value_needs_a_second_approver() -> None:
    assert needs_second_approval({"held_units": 1, "value": None}, LIMITS)


def test_closing_the_exception_first_does_not_let_one_person_release_a_large_variance(
    store: Store,
) -> None:
    exception_id, effect_id = _held(store, 900, "90000.00")
    store.exceptions.ignore(exception_id, "alice", "not worth it")

    with pytest.raises(ValueError, match="ignored by alice"):
        store.approve(exception_id=exception_id, actor="alice", limits=LIMITS)
    assert store.outbox.get(effect_id).state == "held"
