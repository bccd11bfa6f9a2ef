"""Returns: matching to orders, the grade policy, Khaos return parts, write-offs, refund clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from acs_khaos_dagster.domain.layout import KhaosSites
from acs_khaos_dagster.domain.models import CreditMode, OrderLine, SalesOrder, StockItem
from acs_khaos_dagster.domain.returns import (
    GradePolicy,
    GradeRule,
    ReturnProblemKind,
    StockMoveKind,
    apply_grade_policy,
    match_returns,
    plan_return_postings,
    plan_write_offs,
    refund_deadline,
    refund_due,
    repair_costs,
    returns_summary,
)

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
SITES = KhaosSites()
POLICY = GradePolicy()

# Khaos StockID -> ACS SKU. StockID 2 was renamed in Khaos: its code no longer equals the SKU.
IDENTITY = {1: "DRESS-RED-10", 2: "TOP-BLU-M", 3: "GOWN-HIRE-12", 4: "GOWN-12"}
ITEMS = {
    1: StockItem(stock_id=1, stock_code="DRESS-RED-10", cost_price=Decimal("20.00")),
    2: StockItem(stock_id=2, stock_code="TOP-BLUE-M", cost_price=Decimal("9.00")),
    3: StockItem(stock_id=3, stock_code="GOWN-HIRE-12", cost_price=Decimal("120.00"), is_hire=True),
    4: StockItem(stock_id=4, stock_code="GOWN-12", cost_price=Decimal("120.00")),
}
SKU_TO_STOCK_ID = {sku: sid for sid, sku in IDENTITY.items()}

SALE_ORDER = SalesOrder(
    order_id=1,
    order_code="SO1",
    order_date=T0 - timedelta(days=10),
    customer_urn="CUST1",
    site_id=SITES.selling,
    lines=(
        OrderLine(
            order_item_id=101,
            stock_id=1,
            stock_code="DRESS-RED-10",
            quantity=3,
            unit_net=Decimal("50.00"),
        ),
        OrderLine(
            order_item_id=102,
            stock_id=2,
            stock_code="TOP-BLU-M",
            quantity=1,
            unit_net=Decimal("30.00"),
        ),
    ),
)
HIRE_ORDER = SalesOrder(
    order_id=2,
    order_code="HO2",
    order_date=T0 - timedelta(days=10),
    customer_urn="CUST2",
    site_id=SITES.hire_stock,
    lines=(
        OrderLine(
            order_item_id=201,
            stock_id=3,
            stock_code="GOWN-HIRE-12",
            quantity=1,
            unit_net=Decimal("80.00"),
            is_hire=True,
        ),
    ),
)
ORDERS = {o.order_code: o for o in (SALE_ORDER, HIRE_ORDER)}
DESPATCHED = {("SO1", 101): 3, ("SO1", 102): 1, ("HO2", 201): 1}


def unit(
    unique_sku: str,
    *,
    ref: str = "RET1",
    order: str | None = "SO1",
    line: str = "101",
    sku: str = "DRESS-RED-10",
    grade: str = "A",
    action: str = "RESTOCK",
    received_at: datetime = T0,
    batch: str = "returns_BRAND01_20250602110000.csv",
    repair_cost: str | None = None,
) -> dict[str, Any]:
    return {
        "line_number": 1,
        "return_ref": ref,
        "order_number": order,
        "line_item_id": line if order else None,
        "sku": sku,
        "unique_sku": unique_sku,
        "received_at": pd.Timestamp(received_at),
        "grade": grade,
        "grade_known": grade in ("A", "B", "C", "BER"),
        "action_taken": action,
        "action_known": True,
        "action_reason": "",
        "defect_codes": [],
        "repair_cost": Decimal(repair_cost) if repair_cost else None,
        "batch_id": batch,
    }


def hire_unit(unique_sku: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ref": "RET9", "order": "HO2", "line": "201", "sku": "GOWN-HIRE-12"}
    return unit(unique_sku, **{**base, **kw})


def matched(*rows: dict[str, Any]) -> pd.DataFrame:
    frame, problems = match_returns(pd.DataFrame(rows), ORDERS, IDENTITY, DESPATCHED)
    assert problems == []
    return frame


def postings_for(*rows: dict[str, Any], **kw: Any) -> list:
    return plan_return_postings(matched(*rows), POLICY, **kw)


# --- the grade policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "action", "reason", "mode", "written_off"),
    [
        ("A", "RESTOCK", "RESTOCK", CreditMode.AUTO, 0),
        ("B", "CLEAN", "RESTOCK", CreditMode.AUTO, 0),
        ("B", "REPAIR", "RESTOCK", CreditMode.AUTO, 0),
        ("C", "REPAIR", "RESTOCK", CreditMode.REVIEW, 0),
        ("C", "QUARANTINE", "RESTOCK", CreditMode.REVIEW, 0),
        ("C", "RESALE", "RESTOCK", CreditMode.REVIEW, 0),
        ("C", "DISPOSE", "WRITEOFF", CreditMode.REVIEW, 1),
        ("BER", "", "BER", CreditMode.REVIEW, 1),
        ("BER", "DISPOSE", "WRITEOFF", CreditMode.REVIEW, 1),
    ],
)
def test_each_grade_posts_with_its_return_reason_credit_mode_and_write_off_flag(
    grade: str, action: str, reason: str, mode: CreditMode, written_off: int
) -> None:
    [posting] = postings_for(unit("U1", grade=grade, action=action))

    assert posting.customer_return.items[0].return_reason == reason
    assert posting.customer_return.credit_mode == mode
    assert posting.written_off_units == written_off


def test_unknown_grade_is_a_problem_and_the_unit_is_not_posted_or_restocked() -> None:
    graded, problems = apply_grade_policy(matched(unit("U1", grade="D")), POLICY)

    assert graded.empty
    assert [(p.kind, p.exception_type, p.unique_sku) for p in problems] == [
        (ReturnProblemKind.UNKNOWN_GRADE, "unknown_grade", "U1")
    ]
    assert plan_return_postings(matched(unit("U1", grade="D")), POLICY) == []


def test_unknown_action_is_a_problem_rather_than_a_guess() -> None:
    graded, problems = apply_grade_policy(matched(unit("U1", grade="A", action="SHRED")), POLICY)

    assert graded.empty
    assert problems[0].kind == ReturnProblemKind.UNKNOWN_GRADE
    assert "SHRED" in problems[0].message


def test_a_configured_grade_action_rule_wins_over_the_grade_rule() -> None:
    rules = {
        **POLICY.rules,
        "c:quarantine": GradeRule(return_reason="FAULTY", credit_mode=CreditMode.REVIEW),
    }
    policy = GradePolicy(rules=rules)

    assert policy.rule_for("C", "QUARANTINE").return_reason == "FAULTY"
    assert policy.rule_for("C", "REPAIR").return_reason == "RESTOCK"


def test_policy_refuses_a_return_reason_khaos_does_not_know() -> None:
    with pytest.raises(ValidationError, match="unknown Khaos return reason"):
        GradePolicy(rules={"A": GradeRule(return_reason="BIN_IT", credit_mode=CreditMode.AUTO)})


def test_a_policy_may_name_the_reasons_the_install_has() -> None:
    policy = GradePolicy(
        rules={"A": GradeRule(return_reason="rts", credit_mode=CreditMode.AUTO)},
        hire_return_reason="SCRAP",
        return_reasons={"RTS": "return_to_stock", "SCRAP": "write_off"},
    )
    rule = policy.rule_for("A")
    assert rule is not None and policy.restocks(rule) and not policy.writes_off(rule)


def test_policy_refuses_a_hire_return_reason_that_would_restock() -> None:
    with pytest.raises(ValidationError, match="write-off reason"):
        GradePolicy(post_hire_returns=True, hire_return_reason="RESTOCK")


# --- matching to the source order ------------------------------------------------------


def test_return_without_an_order_number_is_unmatched_for_operations() -> None:
    frame, problems = match_returns(
        pd.DataFrame([unit("U1", order=None)]), ORDERS, IDENTITY, DESPATCHED
    )

    assert frame.empty
    assert [(p.exception_type, p.owner, p.unique_sku) for p in problems] == [
        ("return_unmatched", "operations", "U1")
    ]


def test_return_for_an_order_khaos_does_not_know_is_unmatched() -> None:
    _, problems = match_returns(
        pd.DataFrame([unit("U1", order="SO404")]), ORDERS, IDENTITY, DESPATCHED
    )

    assert problems[0].kind == ReturnProblemKind.RETURN_UNMATCHED
    assert "SO404" in problems[0].message


def test_sku_not_on_that_order_line_is_unmatched_not_guessed() -> None:
    _, problems = match_returns(
        pd.DataFrame([unit("U1", line="101", sku="TOP-BLU-M")]), ORDERS, IDENTITY, DESPATCHED
    )

    assert [p.kind for p in problems] == [ReturnProblemKind.RETURN_UNMATCHED]


def test_sku_matches_a_renamed_line_through_the_identity_map() -> None:
    frame = matched(unit("U1", line="102", sku="TOP-BLU-M"))

    assert frame.loc[0, ["order_item_id", "stock_id"]].tolist() == [102, 2]


def test_blank_line_item_matches_the_only_line_with_that_sku() -> None:
    row = unit("U1", sku="TOP-BLU-M")
    row["line_item_id"] = None

    assert matched(row).loc[0, "order_item_id"] == 102


def test_unit_beyond_the_quantity_despatched_on_the_line_is_unmatched() -> None:
    rows = [unit(f"U{i}", received_at=T0 + timedelta(minutes=i)) for i in range(3)]
    frame, problems = match_returns(pd.DataFrame(rows), ORDERS, IDENTITY, {("SO1", 101): 2})

    assert frame["unique_sku"].tolist() == ["U0", "U1"]
    assert [(p.kind, p.unique_sku) for p in problems] == [
        (ReturnProblemKind.RETURN_UNMATCHED, "U2")
    ]


def test_units_matched_in_earlier_runs_count_against_the_despatched_quantity() -> None:
    frame, problems = match_returns(
        pd.DataFrame([unit("U2", ref="RET2")]),
        ORDERS,
        IDENTITY,
        {("SO1", 101): 1},
        matched_before={("RET1", "U1"): ("SO1", 101)},
    )

    assert frame.empty
    assert problems[0].unique_sku == "U2"


def _order_numbered_from_one(code: str, order_id: int) -> SalesOrder:
    line = OrderLine(
        order_item_id=1, stock_id=1, stock_code="DRESS-RED-10", quantity=1, unit_net=Decimal("50")
    )
    return SalesOrder(
        order_id=order_id,
        order_code=code,
        order_date=T0 - timedelta(days=10),
        customer_urn="CUST1",
        site_id=SITES.selling,
        lines=(line,),
    )


def test_line_ids_numbered_per_order_are_counted_per_order_not_pooled() -> None:
    # An install numbering line ids 1, 2, … in each order: SO7's line 1 and SO8's line 1
    # are two lines, each with its own despatched unit.
    orders = {c: _order_numbered_from_one(c, n) for n, c in enumerate(("SO7", "SO8"), 7)}
    rows = [
        unit("U1", ref="RET7", order="SO7", line="1"),
        unit("U2", ref="RET8", order="SO8", line="1", received_at=T0 + timedelta(hours=1)),
    ]
    despatched = {("SO7", 1): 1, ("SO8", 1): 1}

    frame, problems = match_returns(pd.DataFrame(rows), orders, IDENTITY, despatched)
    later, again = match_returns(
        pd.DataFrame(rows[1:]),
        orders,
        IDENTITY,
        despatched,
        matched_before={("RET7", "U1"): ("SO7", 1)},
    )

    assert problems == [] and frame["order_number"].tolist() == ["SO7", "SO8"]
    assert again == [] and later["unique_sku"].tolist() == ["U2"]


def test_the_same_unit_twice_in_the_input_is_one_unit() -> None:
    frame = matched(unit("U1"), unit("U1", batch="returns_BRAND01_20250603110000.csv"))

    assert len(frame) == 1


# --- return parts ------------------------------------------------------------------------


def test_return_split_across_two_files_becomes_two_parts_each_unit_once() -> None:
    first = "returns_BRAND01_20250602110000.csv"
    second = "returns_BRAND01_20250603110000.csv"
    postings = postings_for(unit("U2", batch=second), unit("U1", batch=first))

    assert [(p.associated_ref, p.unique_skus) for p in postings] == [
        ("RET1-P1", ("U1",)),
        ("RET1-P2", ("U2",)),
    ]


def test_parts_continue_numbering_after_those_already_used() -> None:
    postings = postings_for(unit("U3"), part_numbers_used={"RET1": 2})

    assert [p.associated_ref for p in postings] == ["RET1-P3"]
    assert postings[0].idempotency_key == "khaos-return:RET1-P3"


def test_mixed_grades_in_one_file_split_by_credit_mode() -> None:
    postings = postings_for(
        unit("U1", grade="A"), unit("U2", grade="B", action="CLEAN"), unit("U3", grade="C")
    )

    assert [(p.associated_ref, p.credit_mode, p.unique_skus) for p in postings] == [
        ("RET1-P1", CreditMode.AUTO, ("U1", "U2")),
        ("RET1-P2", CreditMode.REVIEW, ("U3",)),
    ]


def test_redelivered_file_with_every_unit_posted_plans_nothing_new() -> None:
    rows = [unit("U1"), unit("U2", grade="C")]
    first = postings_for(*rows)
    posted = {u for p in first for u in p.units}

    again = postings_for(*rows, already_posted_units=posted, part_numbers_used={"RET1": 2})

    assert again == []


def test_planning_twice_from_the_same_inputs_gives_the_same_parts() -> None:
    rows = [unit("U1"), unit("U2", grade="C"), unit("U3", grade="BER", action="DISPOSE")]

    assert postings_for(*rows) == postings_for(*reversed(rows))


def test_credit_value_is_the_unit_net_of_each_units_source_line() -> None:
    [posting] = postings_for(unit("U1"), unit("U2"), unit("U3", line="102", sku="TOP-BLU-M"))

    assert posting.credit_value == Decimal("130.00")
    assert {(i.source_order_item_id, i.quantity) for i in posting.customer_return.items} == {
        (101, 2),
        (102, 1),
    }


def test_posting_carries_the_customer_and_the_current_khaos_stock_code() -> None:
    [posting] = postings_for(
        unit("U1", line="102", sku="TOP-BLU-M"), stock_code_for_stock_id={2: "TOP-BLUE-M"}
    )

    assert posting.customer_return.customer_urn == "CUST1"
    assert posting.customer_return.items[0].sku == "TOP-BLUE-M"


def test_sale_ber_is_written_off_by_its_return_credited_for_review_with_no_adjustment() -> None:
    rows = matched(unit("U1", grade="BER", action="DISPOSE"))
    [posting] = plan_return_postings(rows, POLICY)
    moves, problems = plan_write_offs(
        apply_grade_policy(rows, POLICY)[0], ITEMS, SKU_TO_STOCK_ID, SITES, POLICY
    )

    assert posting.customer_return.items[0].return_reason == "WRITEOFF"
    assert posting.credit_mode == CreditMode.REVIEW
    assert posting.credit_value == Decimal("50.00")
    assert (moves, problems) == ([], [])


def test_hire_return_raises_no_credit_and_is_not_posted_by_default() -> None:
    rows = matched(hire_unit("H1"))
    graded, _ = apply_grade_policy(rows, POLICY)

    assert graded.loc[0, "credit_mode"] == CreditMode.NONE.value
    assert plan_return_postings(rows, POLICY) == []


def test_hire_return_posted_when_configured_has_no_credit_and_a_write_off_reason() -> None:
    policy = GradePolicy(post_hire_returns=True)
    [posting] = plan_return_postings(matched(hire_unit("H1")), policy)

    assert posting.credit_mode == CreditMode.NONE
    assert posting.credit_value == Decimal("0")
    assert posting.customer_return.items[0].return_reason == "WRITEOFF"
    assert posting.is_hire


# --- write-offs and ex-hire -------------------------------------------------------------


def _moves(*rows: dict[str, Any], **kw: Any) -> tuple[list, list]:
    graded, _ = apply_grade_policy(matched(*rows), POLICY)
    return plan_write_offs(graded, ITEMS, SKU_TO_STOCK_ID, SITES, POLICY, **kw)


def test_hire_unit_graded_ber_is_written_off_by_adjustment_at_cost_price() -> None:
    [move], problems = _moves(hire_unit("H1", grade="BER", action="EX_HIRE"))

    [group] = move.groups
    assert problems == []
    assert move.kind == StockMoveKind.WRITE_OFF
    assert (group.site_id, group.group_ref) == (SITES.hire_stock, "WO-H1")
    assert [(ln.stock_id, ln.adjust_by, ln.reason_code, ln.value) for ln in group.lines] == [
        (3, -1, "WRITEOFF", Decimal("120.00"))
    ]


def test_sale_unit_damaged_in_the_warehouse_is_written_off_on_the_selling_site() -> None:
    units = pd.DataFrame(
        [
            {
                "unique_sku": "U9",
                "sku": "DRESS-RED-10",
                "grade": "BER",
                "action_taken": "DISPOSE",
                "is_hire": False,
                "in_level": True,
            }
        ]
    )
    [move], _ = plan_write_offs(units, ITEMS, SKU_TO_STOCK_ID, SITES, POLICY)

    assert move.groups[0].site_id == SITES.selling
    assert move.groups[0].lines[0].stock_id == 1
    assert move.value == Decimal("20.00")


def test_ex_hired_unit_to_resale_is_a_paired_exhire_adjustment_at_cost_price() -> None:
    [move], _ = _moves(hire_unit("H1", grade="B", action="EX_HIRE"), resale_stock_id_for={3: 4})

    assert move.kind == StockMoveKind.EX_HIRE
    assert [
        (g.site_id, g.group_ref, ln.stock_id, ln.adjust_by, ln.reason_code, ln.value)
        for g in move.groups
        for ln in g.lines
    ] == [
        (SITES.hire_stock, "EXH-H1-OUT", 3, -1, "EXHIRE", Decimal("120.00")),
        (SITES.selling, "EXH-H1-IN", 4, 1, "EXHIRE", Decimal("120.00")),
    ]


def test_ex_hire_with_no_resale_stock_id_is_a_problem_and_no_adjustment() -> None:
    moves, problems = _moves(hire_unit("H1", grade="B", action="EX_HIRE"))

    assert moves == []
    assert [p.kind for p in problems] == [ReturnProblemKind.RESALE_UNMAPPED]


def test_hire_unit_back_in_good_order_needs_no_adjustment() -> None:
    assert _moves(hire_unit("H1", grade="A", action="RESTOCK")) == ([], [])


def test_write_off_already_planned_is_not_planned_again() -> None:
    moves, _ = _moves(hire_unit("H1", grade="BER"), already_planned={"WO-H1"})

    assert moves == []


# --- refund clock --------------------------------------------------------------------


def test_refund_deadline_is_the_end_of_the_fourteenth_day_after_receipt_uk_time() -> None:
    # Received Monday 2 June 2025 (BST): refund due by midnight at the end of 16 June.
    assert refund_deadline(T0) == datetime(2025, 6, 16, 23, 0, tzinfo=UTC)


def test_refund_warning_opens_for_finance_when_three_days_or_fewer_remain() -> None:
    [posting] = postings_for(unit("U1", grade="C"))
    now = datetime(2025, 6, 14, 9, 0, tzinfo=UTC)

    [warning] = refund_due([posting], now, {"RET1-P1": "review"})

    assert (warning.exception_type, warning.owner) == ("refund_due", "finance")
    assert warning.exception_ref == "refund:RET1-P1"
    assert warning.days_left == pytest.approx(2.58, abs=0.01)
    assert not warning.breached


def test_no_refund_warning_once_the_credit_is_raised() -> None:
    [posting] = postings_for(unit("U1", grade="C"))
    now = datetime(2025, 6, 14, 9, 0, tzinfo=UTC)

    assert refund_due([posting], now, {"RET1-P1": "raised"}) == []


def test_no_refund_warning_while_the_deadline_is_far() -> None:
    [posting] = postings_for(unit("U1", grade="C"))

    assert refund_due([posting], T0 + timedelta(days=5)) == []


def test_refund_past_the_deadline_is_flagged_breached() -> None:
    [posting] = postings_for(unit("U1", grade="C"))

    [warning] = refund_due([posting], datetime(2025, 6, 18, tzinfo=UTC))

    assert warning.breached and warning.days_left < 0


# --- finance reports ---------------------------------------------------------------------


def test_repair_costs_are_reported_per_return_and_month_and_not_in_write_off_value() -> None:
    rows = matched(
        unit("U1", grade="B", action="REPAIR", repair_cost="12.50"),
        unit("U2", grade="C", action="REPAIR", repair_cost="30.00"),
        hire_unit("H1", grade="BER", repair_cost="5.00"),
    )
    graded, _ = apply_grade_policy(rows, POLICY)
    moves, _ = plan_write_offs(graded, ITEMS, SKU_TO_STOCK_ID, SITES, POLICY)

    per_return = repair_costs(graded, by="return")
    per_month = repair_costs(graded, by="month")

    assert per_return[["return_ref", "repair_cost"]].values.tolist() == [
        ["RET1", Decimal("42.50")],
        ["RET9", Decimal("5.00")],
    ]
    assert per_month[["month", "repair_cost"]].values.tolist() == [["2025-06", Decimal("47.50")]]
    assert [m.value for m in moves] == [Decimal("120.00")]


def test_summary_counts_grades_credits_and_write_offs() -> None:
    rows = matched(
        unit("U1"),
        unit("U2", grade="C"),
        unit("U3", grade="BER", action="DISPOSE"),
        hire_unit("H1", grade="BER"),
    )
    graded, _ = apply_grade_policy(rows, POLICY)
    postings = plan_return_postings(graded, POLICY)
    moves, _ = plan_write_offs(graded, ITEMS, SKU_TO_STOCK_ID, SITES, POLICY)

    summary = returns_summary(graded, postings, moves)

    assert summary.units_by_grade == {"A": 1, "C": 1, "BER": 2}
    assert (summary.credits_raised, summary.credits_raised_value) == (1, Decimal("50.00"))
    assert (summary.credits_pending_review, summary.credits_pending_review_value) == (
        1,
        Decimal("100.00"),
    )
    assert (summary.units_written_off, summary.write_off_value) == (2, Decimal("120.00"))
