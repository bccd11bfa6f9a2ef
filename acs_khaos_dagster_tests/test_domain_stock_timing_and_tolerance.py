"""Two rules the stock reconciliation shares with the push (``domain/reconciliation/stock.py``):
a timing correction read as the part of ``ACS − Khaos`` it explains (``in_flight``), and
whether a StockID's net unexplained difference is within the variance tolerance — the same
test the push applies, so the pack's within-tolerance list is what the push books without
approval. Figures are worked out by hand."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.domain.reconciliation.stock import (
    in_flight_from_corrections,
    sku_within_tolerance,
)
from acs_khaos_dagster.domain.stock_push.timing import empty_corrections
from acs_khaos_dagster.domain.stock_push.variance import VarianceTolerance

TOLERANCE = VarianceTolerance(units=2, value=Decimal("50.00"))
SCALE = 10_000  # prices are compared in ten-thousandths of a pound


def corrections(*rows: tuple[int, int, int, str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"stock_id": s, "site_id": site, "units": u, "kind": k, "moment": "", "ref": r}
            for s, site, u, k, r in rows
        ]
    )


# --- timing corrections as in-flight rows --------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("despatched_not_issued", "despatched_not_issued"),
        ("restocked_not_processed", "restocked_not_processed"),
        ("adjustment_not_applied", "effect_pending"),
        ("issued_after_snapshot", "after_cutoff"),
        ("processed_after_snapshot", "after_cutoff"),
        ("applied_after_snapshot", "after_cutoff"),
    ],
)
def test_each_correction_kind_is_told_by_its_in_flight_reason(kind: str, reason: str) -> None:
    [row] = in_flight_from_corrections(corrections((40, 1, 2, kind, "SH1"))).to_dict("records")
    assert row["reason"] == reason


def test_an_in_flight_row_is_the_correction_with_the_opposite_sign() -> None:
    # ACS shipped 2 units Khaos has not invoiced: the push adds 2 to ACS's count, so the
    # reconciliation sees ACS 2 below Khaos explained by that shipment (−2 of ACS − Khaos).
    rows = in_flight_from_corrections(
        corrections(
            (40, 1, 2, "despatched_not_issued", "SH1"),
            (41, 4, -1, "restocked_not_processed", "R1-P1"),
        )
    )
    assert rows.to_dict("records") == [
        {
            "stock_id": 40,
            "site_id": 1,
            "units": -2,
            "reason": "despatched_not_issued",
            "ref": "SH1",
        },
        {
            "stock_id": 41,
            "site_id": 4,
            "units": 1,
            "reason": "restocked_not_processed",
            "ref": "R1-P1",
        },
    ]


def test_corrections_without_references_give_rows_with_empty_references() -> None:
    frame = corrections((40, 1, 2, "despatched_not_issued", "")).drop(columns=["ref"])
    assert in_flight_from_corrections(frame)["ref"].tolist() == [""]


def test_no_corrections_give_no_in_flight_rows() -> None:
    assert in_flight_from_corrections(empty_corrections()).empty


def test_corrections_without_their_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="units"):
        in_flight_from_corrections(pd.DataFrame({"stock_id": [1], "site_id": [1], "kind": ["x"]}))


@given(units=st.lists(st.integers(-50, 50).filter(bool), min_size=1, max_size=10))
def test_in_flight_units_always_undo_the_corrections(units: list[int]) -> None:
    frame = corrections(
        *((40, 1, u, "adjustment_not_applied", f"G{n}") for n, u in enumerate(units))
    )
    assert in_flight_from_corrections(frame)["units"].sum() == -sum(units)


# --- within tolerance ----------------------------------------------------------------------------


def rows(*r: tuple[int, int, int]) -> pd.DataFrame:
    """(stock_id, site_id, unexplained) rows."""
    return pd.DataFrame([{"stock_id": s, "site_id": site, "unexplained": u} for s, site, u in r])


def costs(frame: pd.DataFrame, prices: dict[int, str | None]) -> pd.Series:
    return (
        frame["stock_id"]
        .map(lambda s: None if prices.get(s) is None else int(Decimal(prices[s]) * SCALE))
        .astype("Float64")
    )


def within(frame: pd.DataFrame, prices: dict[int, str | None]) -> list[bool]:
    return sku_within_tolerance(frame, costs(frame, prices), TOLERANCE).tolist()


def test_a_small_cheap_difference_is_within_tolerance() -> None:
    assert within(rows((40, 1, 2)), {40: "25.00"}) == [True]  # 2 units, £50.00


def test_more_units_than_allowed_are_not_within_tolerance() -> None:
    assert within(rows((40, 1, -3)), {40: "1.00"}) == [False]


def test_a_difference_worth_more_than_allowed_is_not_within_tolerance() -> None:
    assert within(rows((40, 1, 2)), {40: "25.01"}) == [False]  # £50.02


def test_a_status_move_between_sites_nets_out_per_stock_id() -> None:
    # −5 on the selling site, +5 in quarantine: the StockID's total is right.
    assert within(rows((40, 1, -5), (40, 6, 5)), {40: "999.00"}) == [True, True]


def test_the_net_of_all_sites_decides_for_every_row_of_the_stock_id() -> None:
    assert within(rows((40, 1, -1), (40, 6, 4), (41, 1, 1)), {40: "1.00", 41: "1.00"}) == [
        False,
        False,
        True,
    ]


def test_without_a_cost_price_only_a_zero_net_is_within_tolerance() -> None:
    assert within(rows((40, 1, 1)), {40: None}) == [False]
    assert within(rows((40, 1, 1), (40, 6, -1)), {40: None}) == [True, True]


@given(
    unexplained=st.integers(-10, 10),
    price=st.decimals(min_value=0, max_value=100, places=4),
)
def test_within_tolerance_is_at_most_two_units_and_at_most_fifty_pounds(
    unexplained: int, price: Decimal
) -> None:
    frame = rows((40, 1, unexplained))
    expected = unexplained == 0 or (
        abs(unexplained) <= 2 and abs(unexplained) * price <= Decimal("50.00")
    )
    assert within(frame, {40: str(price)}) == [expected]
