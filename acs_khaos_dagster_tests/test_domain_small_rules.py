"""Small pure rules the flows lean on, checked without Dagster or a database:

* freshness: which day a deadline is for, and which days are overdue (``domain/freshness``);
* two-person approval limits of held variances (``domain/approvals``);
* ex-hired units: their value, and counting them on their resale StockID (``domain/ex_hire``);
* why a Khaos SKU is not ready for sale, in ecommerce's order (``domain/readiness``).

Expected values are hand-written: days, pence and rows as a person would work them out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.domain.approvals import ApprovalLimits, needs_second_approval
from acs_khaos_dagster.domain.ex_hire import (
    add_to_site_units,
    ex_hire_unit_value,
    ex_hired_units_held_under_hire_sku,
)
from acs_khaos_dagster.domain.freshness import due_days, entity_ref, overdue
from acs_khaos_dagster.domain.readiness import NOT_READY_COLUMNS, not_ready_for_sale
from acs_khaos_dagster.domain.stock_status import StatusPolicy

UK = ZoneInfo("Europe/London")

# --- freshness ---------------------------------------------------------------------------------


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UK)


def test_a_morning_snapshot_deadline_is_for_that_days_snapshot() -> None:
    assert due_days([at(12, 9), at(13, 9)], days_before=0) == ["2026-03-12", "2026-03-13"]


def test_a_night_reconciliation_deadline_is_for_the_day_before() -> None:
    assert due_days([at(12, 6), at(1, 6)], days_before=1) == ["2026-02-28", "2026-03-11"]


def test_a_day_made_on_time_is_not_overdue_and_a_missing_one_is() -> None:
    late = overdue(
        "stock_snapshot",
        "snapshot_overdue",
        [at(10, 9), at(11, 9), at(12, 9)],
        0,
        made={"2026-03-10", "2026-03-12"},
        first_day="2026-03-01",
    )
    assert [(o.type, o.entity_ref) for o in late] == [
        ("snapshot_overdue", "stock_snapshot:2026-03-11")
    ]
    assert late[0].message == (
        "stock_snapshot for 2026-03-11 was due by Wed 11 Mar 09:00 (UK time) and has not been made"
    )
    assert late[0].details == {
        "asset": "stock_snapshot",
        "day": "2026-03-11",
        "due": at(11, 9).isoformat(),
    }


def test_days_before_the_first_partition_are_never_overdue() -> None:
    late = overdue("recon", "reconciliation_overdue", [at(2, 6), at(3, 6)], 1, set(), "2026-03-02")
    assert [o.entity_ref for o in late] == ["recon:2026-03-02"]


def test_two_deadlines_for_one_day_report_the_day_once_by_its_earliest_deadline() -> None:
    late = overdue("recon", "reconciliation_overdue", [at(5, 18), at(5, 6)], 0, set(), "2026-03-01")
    assert len(late) == 1 and late[0].details["due"] == at(5, 6).isoformat()


def test_an_overdue_day_keeps_one_exception_reference_per_asset_and_day() -> None:
    assert entity_ref("stock_snapshot", "2026-03-11") == "stock_snapshot:2026-03-11"


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=20), st.integers(0, 2))
def test_overdue_days_are_exactly_the_due_days_not_made(offsets: list[int], before: int) -> None:
    deadlines = [datetime(2026, 1, 1, 9, tzinfo=UK) + timedelta(days=o) for o in offsets]
    days = due_days(deadlines, before)
    made = set(days[::2])
    late = overdue("a", "t", deadlines, before, made, first_day="2000-01-01")
    assert [o.details["day"] for o in late] == [d for d in days if d not in made]


# --- two-person approval -----------------------------------------------------------------------

LIMITS = ApprovalLimits(units=10, value=Decimal("500.00"))


def test_a_small_held_variance_needs_one_approver() -> None:
    assert not needs_second_approval({"held_units": 9, "value": "499.99"}, LIMITS)


def test_a_held_variance_at_either_limit_needs_a_second_approver() -> None:
    assert needs_second_approval({"held_units": 10, "value": "1.00"}, LIMITS)
    assert needs_second_approval({"held_units": 1, "value": "500.00"}, LIMITS)


def test_a_shortfall_is_judged_by_its_size_not_its_sign() -> None:
    assert needs_second_approval({"held_units": -12, "value": "-30"}, LIMITS)
    assert needs_second_approval({"held_units": -1, "value": "-600"}, LIMITS)


def test_a_held_variance_of_unknown_value_always_needs_a_second_approver() -> None:
    assert needs_second_approval({"held_units": 1, "value": None}, LIMITS)
    assert needs_second_approval({"held_units": 1}, LIMITS)
    assert needs_second_approval({"held_units": 1, "value": "n/a"}, LIMITS)


# --- ex-hired units ------------------------------------------------------------------------------


def test_an_ex_hired_unit_is_worth_its_share_of_cost_rounded_half_up() -> None:
    assert ex_hire_unit_value(7, Decimal("8.96"), share_of_cost=Decimal("0.25")) == Decimal("2.24")
    assert ex_hire_unit_value(7, Decimal("0.10"), share_of_cost=Decimal("0.25")) == Decimal("0.03")
    assert ex_hire_unit_value(7, Decimal("120.00")) == Decimal("120.00")


def test_a_fixed_value_for_the_hire_stock_id_wins_over_the_share_of_cost() -> None:
    values = {7: Decimal("3.5")}
    assert ex_hire_unit_value(7, Decimal("80"), unit_values=values) == Decimal("3.50")
    assert ex_hire_unit_value(
        8, Decimal("80"), share_of_cost=Decimal("0.5"), unit_values=values
    ) == (Decimal("40.00"))


POLICY = StatusPolicy()


def snapshot(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["unique_sku", "status"])


def legs(*rows: tuple[str, int, int, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["unique_sku", "stock_id", "site_id", "group_ref"])


def test_an_ex_hired_unit_still_at_acs_counts_on_its_resale_stock_id() -> None:
    held = ex_hired_units_held_under_hire_sku(
        snapshot(("U1", "Ex-Hired"), ("U2", "EX\u2013HIRED")),
        legs(("U1", 501, 1, "EXH-1"), ("U2", 502, 1, "EXH-2")),
        POLICY,
    )
    assert held.to_dict("records") == [
        {"stock_id": 501, "site_id": 1, "units": 1, "ref": "EXH-1"},
        {"stock_id": 502, "site_id": 1, "units": 1, "ref": "EXH-2"},
    ]


def test_an_ex_hired_unit_acs_put_back_to_work_is_not_counted_twice() -> None:
    held = ex_hired_units_held_under_hire_sku(
        snapshot(("U1", "In Warehouse - Ready For Customer"), ("U2", "With Customer")),
        legs(("U1", 501, 1, "EXH-1"), ("U2", 501, 1, "EXH-2")),
        POLICY,
    )
    assert held.empty and list(held.columns) == ["stock_id", "site_id", "units", "ref"]


def test_a_unit_missing_from_the_snapshot_is_not_counted() -> None:
    held = ex_hired_units_held_under_hire_sku(
        snapshot(("U9", "Ex-Hired")), legs(("U1", 501, 1, "EXH-1")), POLICY
    )
    assert held.empty
    assert ex_hired_units_held_under_hire_sku(snapshot(), legs(), POLICY).empty


def test_held_ex_hired_units_are_added_to_the_units_acs_has_on_each_site() -> None:
    site_units = pd.DataFrame({"stock_id": [501, 600], "site_id": [1, 1], "units": [4, 2]})
    held = pd.DataFrame(
        {"stock_id": [501, 501, 502], "site_id": [1, 1, 1], "units": [1, 1, 1], "ref": list("abc")}
    )
    out = add_to_site_units(site_units, held).sort_values("stock_id").to_dict("records")
    assert out == [
        {"stock_id": 501, "site_id": 1, "units": 6},
        {"stock_id": 502, "site_id": 1, "units": 1},
        {"stock_id": 600, "site_id": 1, "units": 2},
    ]
    assert add_to_site_units(site_units, held.iloc[0:0]) is site_units


# --- not ready for sale ------------------------------------------------------------------------


def mapping(*rows: dict[str, object]) -> pd.DataFrame:
    base = {
        "stock_id": 1,
        "stock_code": "X",
        "acs_sku": "X",
        "classification": "matched",
        "acs_status": "active",
        "ready_for_sale": True,
        "mismatch_detail": None,
        "code_problems": None,
        "publish_on_web": False,
    }
    return pd.DataFrame([{**base, **row} for row in rows])


def test_only_khaos_skus_not_ready_are_listed_published_ones_first() -> None:
    frame = mapping(
        {"stock_code": "B-HIDDEN", "classification": "pending_in_acs", "ready_for_sale": False},
        {"stock_code": "Z-LIVE", "classification": "missing_in_acs", "ready_for_sale": False,
         "publish_on_web": True},
        {"stock_code": "A-READY"},
        {"stock_id": None, "stock_code": "", "acs_sku": "ACS-ONLY", "ready_for_sale": False,
         "classification": "missing_in_khaos"},
    )  # fmt: skip
    out = not_ready_for_sale(frame)
    assert list(out.columns) == NOT_READY_COLUMNS
    assert out["stock_code"].tolist() == ["Z-LIVE", "B-HIDDEN"]
    assert out["why"].tolist() == [
        "not at ACS yet: sent by the SKU push, ACS must set it up",
        "ACS has it pending: waits for ACS to activate it",
    ]


def test_the_reason_names_the_mismatch_and_the_code_problems() -> None:
    frame = mapping(
        {"stock_code": "A", "classification": "attribute_mismatch", "ready_for_sale": False,
         "mismatch_detail": "colour Red != Rouge"},
        {"stock_code": "B", "classification": "invalid_code", "ready_for_sale": False,
         "code_problems": "has a space"},
        {"stock_code": "C", "classification": "something_new", "ready_for_sale": False},
    )  # fmt: skip
    assert not_ready_for_sale(frame)["why"].tolist() == [
        "ACS holds other details: colour Red != Rouge",
        "its code cannot be sent to ACS (has a space)",
        "something_new",
    ]
