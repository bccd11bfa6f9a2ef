"""Finance's returns reports (``domain/returns/reports.py``): ACS repair charges by return
and by UK month, and the returns summary — credits raised or waiting for review (as
Khaos says, else by the part's credit mode), write-offs, ex-hires and problems. Figures
are added up by hand from the rows given."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pytest

from acs_khaos_dagster.domain.models import (
    CreditMode,
    CustomerReturn,
    ReturnItem,
    StockAdjustmentGroup,
)
from acs_khaos_dagster.domain.returns import ReturnPosting, ReturnProblem, ReturnProblemKind
from acs_khaos_dagster.domain.returns.reports import repair_costs, returns_summary
from acs_khaos_dagster.domain.returns.write_offs import StockMove, StockMoveKind


def units(*rows: tuple[str, str, str | None, datetime]) -> pd.DataFrame:
    """(return_ref, grade, repair_cost, received_at) rows."""
    return pd.DataFrame(
        [
            {
                "return_ref": r,
                "unique_sku": f"U{n}",
                "grade": g,
                "repair_cost": c,
                "received_at": at,
            }
            for n, (r, g, c, at) in enumerate(rows, start=1)
        ]
    )


JUNE = datetime(2026, 6, 10, 9, tzinfo=UTC)

# --- repair charges ------------------------------------------------------------------------------


def test_repair_charges_are_added_up_per_return_with_units_and_repaired_units() -> None:
    table = repair_costs(
        units(
            ("R2", "B", "12.50", JUNE),
            ("R1", "B", "7.25", JUNE),
            ("R2", "A", None, JUNE),
            ("R2", "C", "0.75", JUNE),
        )
    )
    assert table.to_dict("records") == [
        {"return_ref": "R1", "units": 1, "repaired_units": 1, "repair_cost": Decimal("7.25")},
        {"return_ref": "R2", "units": 3, "repaired_units": 2, "repair_cost": Decimal("13.25")},
    ]


def test_repair_charges_by_month_follow_the_uk_calendar() -> None:
    # 23:30 UTC on 31 May is 00:30 BST on 1 June: a June charge.
    table = repair_costs(
        units(
            ("R1", "B", "10.00", datetime(2026, 5, 31, 22, 30, tzinfo=UTC)),
            ("R2", "B", "20.00", datetime(2026, 5, 31, 23, 30, tzinfo=UTC)),
            ("R3", "B", "5.00", JUNE),
        ),
        by="month",
    )
    assert table.to_dict("records") == [
        {"month": "2026-05", "units": 1, "repaired_units": 1, "repair_cost": Decimal("10.00")},
        {"month": "2026-06", "units": 2, "repaired_units": 2, "repair_cost": Decimal("25.00")},
    ]


@pytest.mark.parametrize("by", ["return", "month"])
def test_no_units_give_an_empty_table_with_its_columns(by: str) -> None:
    key = "return_ref" if by == "return" else "month"
    table = repair_costs(pd.DataFrame(), by=by)  # type: ignore[arg-type]
    assert table.empty
    assert list(table.columns) == [key, "units", "repaired_units", "repair_cost"]


# --- the summary ---------------------------------------------------------------------------------


def posting(ref: str, mode: CreditMode, value: str, *, hire: bool = False, written_off: int = 0):
    return ReturnPosting(
        return_ref=ref,
        part=1,
        associated_ref=f"{ref}-P1",
        batch_id="1",
        credit_mode=mode,
        customer_return=CustomerReturn(
            associated_ref=f"{ref}-P1",
            customer_urn="C1",
            items=(ReturnItem(sku="DRESS", quantity=1, return_reason="RTS"),),
        ),
        unique_skus=("U1",),
        credit_value=Decimal(value),
        goods_value=Decimal(value),
        received_at=JUNE,
        is_hire=hire,
        written_off_units=written_off,
        idempotency_key=f"return:{ref}-P1",
    )


def move(kind: StockMoveKind, unique: str, value: str) -> StockMove:
    return StockMove(
        kind=kind,
        unique_sku=unique,
        return_ref="R9",
        stock_id=3,
        groups=(StockAdjustmentGroup(site_id=2, group_ref=f"WO-{unique}", lines=()),),
        value=Decimal(value),
    )


def problem(kind: ReturnProblemKind) -> ReturnProblem:
    return ReturnProblem(kind=kind, return_ref="R1", unique_sku="U1", sku="X", message="m")


def test_units_are_counted_by_grade_in_the_policys_order_unknown_ones_last() -> None:
    summary = returns_summary(
        units(
            ("R1", "ber", None, JUNE),
            ("R1", "A", None, JUNE),
            ("R1", "Z", None, JUNE),
            ("R1", "C", None, JUNE),
            ("R1", "A", None, JUNE),
            ("R1", "", None, JUNE),
        )
    )
    assert list(summary.units_by_grade.items()) == [
        ("A", 2),
        ("C", 1),
        ("BER", 1),
        ("?", 1),
        ("Z", 1),
    ]


def test_credits_count_as_raised_or_pending_by_mode_when_khaos_has_not_said() -> None:
    summary = returns_summary(
        pd.DataFrame(),
        postings=[
            posting("R1", CreditMode.AUTO, "50.00"),
            posting("R2", CreditMode.REVIEW, "30.00"),
            posting("R3", CreditMode.REVIEW, "20.00"),
            posting("R4", CreditMode.NONE, "0"),
        ],
    )
    assert (summary.credits_raised, summary.credits_raised_value) == (1, Decimal("50.00"))
    assert (summary.credits_pending_review, summary.credits_pending_review_value) == (
        2,
        Decimal("50.00"),
    )


def test_what_khaos_says_of_a_credit_wins_over_its_mode() -> None:
    summary = returns_summary(
        pd.DataFrame(),
        postings=[
            posting("R1", CreditMode.AUTO, "50.00"),
            posting("R2", CreditMode.REVIEW, "30.00"),
        ],
        credit_status={"R1-P1": "review", "R2-P1": "raised"},
    )
    assert (summary.credits_raised, summary.credits_raised_value) == (1, Decimal("30.00"))
    assert (summary.credits_pending_review, summary.credits_pending_review_value) == (
        1,
        Decimal("50.00"),
    )


def test_written_off_units_are_sale_returns_plus_adjustments_hire_postings_left_out() -> None:
    summary = returns_summary(
        pd.DataFrame(),
        postings=[
            posting("R1", CreditMode.REVIEW, "10", written_off=2),
            posting("R2", CreditMode.NONE, "0", hire=True, written_off=1),
        ],
        moves=[
            move(StockMoveKind.WRITE_OFF, "H1", "120.00"),
            move(StockMoveKind.WRITE_OFF, "H2", "48.50"),
            move(StockMoveKind.EX_HIRE, "H3", "60.00"),
        ],
    )
    assert (summary.sale_units_written_off, summary.units_written_off_by_adjustment) == (2, 2)
    assert summary.units_written_off == 4
    assert summary.write_off_value == Decimal("168.50")
    assert summary.ex_hired_to_resale == 1


def test_problems_are_counted_by_kind() -> None:
    summary = returns_summary(
        pd.DataFrame(),
        problems=[
            problem(ReturnProblemKind.UNKNOWN_GRADE),
            problem(ReturnProblemKind.RESALE_UNMAPPED),
            problem(ReturnProblemKind.UNKNOWN_GRADE),
        ],
    )
    assert summary.problems_by_kind == {"resale_unmapped": 1, "unknown_grade": 2}


def test_the_summary_reads_as_lines_for_the_demo_and_finance() -> None:
    summary = returns_summary(
        units(("R1", "A", "4.50", JUNE), ("R1", "BER", None, JUNE)),
        postings=[posting("R1", CreditMode.AUTO, "50.00", written_off=1)],
        moves=[move(StockMoveKind.WRITE_OFF, "H1", "120.00")],
        problems=[problem(ReturnProblemKind.UNKNOWN_GRADE)],
    )
    assert summary.lines() == [
        "returned units by grade: A 1, BER 1",
        "credits raised: 1 (£50.00)",
        "credits pending review: 0 (£0)",
        "units written off: 2 (1 sale returns, 1 by adjustment worth £120.00)",
        "ex-hired to resale: 0",
        "ACS repair charges: £4.50",
        "problems: unknown_grade 1",
    ]


def test_an_empty_summary_says_none() -> None:
    lines = returns_summary(pd.DataFrame()).lines()
    assert lines[0] == "returned units by grade: none"
    assert lines[-1] == "problems: none"
