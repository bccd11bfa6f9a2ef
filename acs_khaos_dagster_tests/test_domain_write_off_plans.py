"""Write-offs and ex-hires for units still in Khaos's Level (``domain/returns/write_offs.py``):
what is adjusted, where, at what value, under which idempotency key, and what comes back as
a problem instead. Units are given as plain rows (grade, action, hire or sale); the
expected adjustment lines are written out by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pytest

from acs_khaos_dagster.domain.layout import KhaosReasons, KhaosSites
from acs_khaos_dagster.domain.models import StockItem
from acs_khaos_dagster.domain.returns import ReturnProblemKind
from acs_khaos_dagster.domain.returns.write_offs import (
    StockMoveKind,
    ex_hire_group_refs,
    plan_write_offs,
    write_off_group_ref,
)

SITES = KhaosSites()  # selling 1, hire stock 2
ITEMS = {
    3: StockItem(stock_id=3, stock_code="GOWN-HIRE", cost_price=Decimal("120.00"), is_hire=True),
    4: StockItem(stock_id=4, stock_code="GOWN", cost_price=Decimal("90.00")),
    5: StockItem(stock_id=5, stock_code="DRESS", cost_price=Decimal("20.00")),
}
IDENTITY = {"GOWN-HIRE": 3, "GOWN": 4, "DRESS": 5}
RECEIVED = datetime(2026, 3, 4, 10, tzinfo=UTC)


def unit(unique: str, sku: str = "GOWN-HIRE", **row: object) -> dict:
    base = {
        "unique_sku": unique,
        "sku": sku,
        "return_ref": "R1",
        "grade": "BER",
        "action_taken": "DISPOSE",
        "is_hire": sku == "GOWN-HIRE",
        "received_at": RECEIVED,
    }
    return {**base, **row}


def plan(*rows: dict, **kwargs: object) -> tuple[list, list]:
    return plan_write_offs(pd.DataFrame(list(rows)), ITEMS, IDENTITY, SITES, **kwargs)


def lines(move: object) -> list[tuple]:
    return [
        (g.site_id, g.group_ref, ln.stock_id, ln.adjust_by, ln.reason_code, ln.value)
        for g in move.groups  # type: ignore[attr-defined]
        for ln in g.lines
    ]


# --- keys ----------------------------------------------------------------------------------------


def test_a_unit_is_written_off_once_in_its_life_under_one_key() -> None:
    assert write_off_group_ref("U000123") == "WO-U000123"


def test_an_ex_hire_has_an_out_and_an_in_key() -> None:
    assert ex_hire_group_refs("H7") == ("EXH-H7-OUT", "EXH-H7-IN")


# --- write-offs ----------------------------------------------------------------------------------


def test_a_hire_unit_beyond_repair_is_written_off_the_hire_stock_site_at_cost() -> None:
    [move], problems = plan(unit("H1"))
    assert problems == []
    assert (move.kind, move.unique_sku, move.return_ref, move.stock_id) == (
        StockMoveKind.WRITE_OFF,
        "H1",
        "R1",
        3,
    )
    assert (move.value, move.happened_at) == (Decimal("120.00"), RECEIVED)
    assert lines(move) == [(2, "WO-H1", 3, -1, "WRITEOFF", Decimal("120.00"))]
    assert move.idempotency_keys == ("WO-H1",)


def test_a_sale_unit_beyond_repair_is_not_adjusted_its_return_moves_it() -> None:
    assert plan(unit("U1", sku="DRESS")) == ([], [])


def test_a_sale_unit_damaged_in_the_warehouse_is_written_off_the_selling_site() -> None:
    [move], _ = plan(unit("U1", sku="DRESS", in_level=True))
    assert lines(move) == [(1, "WO-U1", 5, -1, "WRITEOFF", Decimal("20.00"))]


def test_a_hire_unit_no_longer_in_level_is_not_written_off() -> None:
    assert plan(unit("H1", in_level=False)) == ([], [])


def test_a_unit_on_another_site_is_written_off_where_it_is() -> None:
    [move], _ = plan(unit("H1", site_id=5))
    assert move.groups[0].site_id == 5


def test_a_known_stock_id_wins_over_the_sku_lookup() -> None:
    [move], _ = plan(unit("U1", sku="UNKNOWN-SKU", stock_id=5, is_hire=False, in_level=True))
    assert move.stock_id == 5


def test_a_hire_write_off_takes_the_hire_valuation_when_given() -> None:
    def book_value(unique_sku: str, cost: Decimal) -> Decimal:
        assert (unique_sku, cost) == ("H1", Decimal("120.00"))
        return Decimal("48.00")

    [move], _ = plan(unit("H1"), hire_write_off_value=book_value)
    assert move.value == Decimal("48.00")
    assert lines(move)[0][-1] == Decimal("48.00")


def test_the_installs_own_reason_codes_are_sent() -> None:
    [move], _ = plan(unit("H1"), reasons=KhaosReasons(write_off="BIN"))
    assert lines(move)[0][4] == "BIN"


def test_a_unit_listed_twice_is_planned_once() -> None:
    moves, _ = plan(unit("H1"), unit("H1", return_ref="R2"))
    assert [(m.unique_sku, m.return_ref) for m in moves] == [("H1", "R1")]


def test_a_write_off_already_planned_is_left_out() -> None:
    assert plan(unit("H1"), already_planned={"WO-H1"}) == ([], [])


@pytest.mark.parametrize(("grade", "action"), [("A", "RESTOCK"), ("B", "REPAIR"), ("C", "")])
def test_a_hire_unit_kept_in_the_fleet_is_not_adjusted(grade: str, action: str) -> None:
    assert plan(unit("H1", grade=grade, action_taken=action)) == ([], [])


# --- ex-hire -------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["EX_HIRE", "resale", "Resale"])
def test_a_hire_unit_sent_to_resale_moves_from_hire_stock_to_its_resale_stock_id(
    action: str,
) -> None:
    [move], problems = plan(unit("H1", grade="B", action_taken=action), resale_stock_id_for={3: 4})
    assert problems == []
    assert (move.kind, move.stock_id, move.resale_stock_id) == (StockMoveKind.EX_HIRE, 3, 4)
    assert lines(move) == [
        (2, "EXH-H1-OUT", 3, -1, "EXHIRE", Decimal("120.00")),
        (1, "EXH-H1-IN", 4, 1, "EXHIRE", Decimal("120.00")),
    ]


def test_an_ex_hire_carries_the_used_garment_value_when_given() -> None:
    [move], _ = plan(
        unit("H1", grade="B", action_taken="EX_HIRE"),
        resale_stock_id_for={3: 4},
        ex_hire_value=lambda stock_id, cost: cost / 2,
    )
    assert [ln[-1] for ln in lines(move)] == [Decimal("60.00"), Decimal("60.00")]


def test_an_ex_hire_without_a_resale_stock_id_is_a_problem_and_no_adjustment() -> None:
    moves, [problem] = plan(unit("H1", grade="B", action_taken="EX_HIRE"))
    assert moves == []
    assert (problem.kind, problem.unique_sku, problem.return_ref) == (
        ReturnProblemKind.RESALE_UNMAPPED,
        "H1",
        "R1",
    )
    assert "no resale StockID is mapped" in problem.message


def test_an_ex_hire_already_planned_on_both_halves_is_left_out() -> None:
    rows = unit("H1", grade="B", action_taken="EX_HIRE")
    done = {"EXH-H1-OUT", "EXH-H1-IN"}
    assert plan(rows, resale_stock_id_for={3: 4}, already_planned=done) == ([], [])
    [again], _ = plan(rows, resale_stock_id_for={3: 4}, already_planned={"EXH-H1-OUT"})
    assert again.idempotency_keys == ("EXH-H1-OUT", "EXH-H1-IN")


def test_a_sale_unit_sent_to_resale_is_no_ex_hire() -> None:
    rows = unit("U1", sku="GOWN", grade="B", action_taken="EX_HIRE", is_hire=False)
    assert plan(rows, resale_stock_id_for={4: 4}) == ([], [])


# --- problems ------------------------------------------------------------------------------------


def test_a_unit_with_a_grade_the_policy_does_not_know_is_a_problem_never_adjusted() -> None:
    moves, [problem] = plan(unit("H1", grade="Z"))
    assert moves == []
    assert problem.kind == ReturnProblemKind.UNKNOWN_GRADE
    assert problem.message == (
        "Unit H1 (GOWN-HIRE) has grade 'Z', unknown to the grade policy: not written off or moved."
    )


def test_a_unit_whose_stock_item_is_unknown_is_a_problem() -> None:
    moves, [problem] = plan(unit("H1", sku="NOT-MAPPED", is_hire=True))
    assert moves == []
    assert problem.kind == ReturnProblemKind.STOCK_ITEM_UNKNOWN
    assert problem.message == (
        "Unit H1 (NOT-MAPPED) is to be written off but its Khaos StockItem is not known: "
        "map the SKU, then re-run."
    )


def test_problems_do_not_stop_the_other_units() -> None:
    moves, problems = plan(unit("H1", grade="Z"), unit("H2"))
    assert [m.unique_sku for m in moves] == ["H2"]
    assert [p.unique_sku for p in problems] == ["H1"]
