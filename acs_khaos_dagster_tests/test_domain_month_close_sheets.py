"""The month-end pack's extra sheets and its moment (``domain/month_close.py``): the end of
a UK day in UTC, the stock rows booked without approval, Khaos stock by site at cost as at
the period, and the month's confirmed adjustments inside its window.

Every figure below is worked out by hand from the rows given."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.domain.layout import KhaosReasons
from acs_khaos_dagster.domain.month_close import (
    end_of_day,
    month_adjustments,
    stock_by_site,
    within_tolerance_rows,
)

# --- the end of a UK day -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "utc"),
    [
        (date(2026, 1, 31), datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)),  # GMT
        (date(2026, 6, 30), datetime(2026, 6, 30, 22, 59, 59, tzinfo=UTC)),  # BST
        (date(2026, 3, 28), datetime(2026, 3, 28, 23, 59, 59, tzinfo=UTC)),  # eve of BST
        (date(2026, 3, 29), datetime(2026, 3, 29, 22, 59, 59, tzinfo=UTC)),  # BST starts
        (date(2026, 10, 24), datetime(2026, 10, 24, 22, 59, 59, tzinfo=UTC)),
        (date(2026, 10, 25), datetime(2026, 10, 25, 23, 59, 59, tzinfo=UTC)),  # BST ends
        (date(2026, 12, 31), datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_a_day_ends_at_235959_uk_time_given_in_utc(day: date, utc: datetime) -> None:
    assert end_of_day(day) == utc


@given(day=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)))
def test_a_day_ends_one_second_before_the_next_uk_day_begins(day: date) -> None:
    ends = end_of_day(day)
    assert ends.tzinfo is not None and ends.utcoffset().total_seconds() == 0
    # UK midnight is 00:00 or 23:00 UTC (GMT or BST): the second before is :59:59.
    assert (ends.minute, ends.second) == (59, 59)
    assert ends.hour in (22, 23)
    assert ends.date() == day


# --- rows booked without approval ----------------------------------------------------------------


def stock_rows(*rows: dict) -> pd.DataFrame:
    base = {
        "stock_id": 40,
        "stock_code": "DRS-1",
        "site_id": 4,
        "site_name": "ACS Sellable",
        "khaos_level": 10,
        "difference": 0,
        "value": 0.0,
        "classification": "match",
        "unexplained": 0,
        "unexplained_value": 0.0,
    }
    return pd.DataFrame([{**base, **r} for r in rows])


def test_only_rows_within_tolerance_are_listed_as_booked_without_approval() -> None:
    stock = stock_rows(
        {"stock_id": 40, "classification": "within_tolerance", "unexplained": 1},
        {"stock_id": 41, "classification": "needs_approval", "unexplained": 9},
        {"stock_id": 42, "classification": "match"},
        {"stock_id": 43, "classification": "within_tolerance", "unexplained": -2},
    )
    rows = within_tolerance_rows(stock)
    assert list(rows.columns) == [
        "stock_id",
        "stock_code",
        "site_name",
        "unexplained",
        "unexplained_value",
    ]
    assert list(rows["stock_id"]) == [40, 43]
    assert list(rows.index) == [0, 1]


def test_with_nothing_within_tolerance_the_sheet_is_empty() -> None:
    assert within_tolerance_rows(stock_rows({"classification": "match"})).empty


# --- Khaos stock by site at cost -----------------------------------------------------------------


def test_each_sites_units_are_valued_at_the_periods_cost_price() -> None:
    stock = stock_rows(
        {"stock_id": 40, "site_id": 4, "site_name": "ACS Sellable", "khaos_level": 3},
        {"stock_id": 41, "site_id": 4, "site_name": "ACS Sellable", "khaos_level": 2},
        {"stock_id": 40, "site_id": 5, "site_name": "ACS Quarantine", "khaos_level": 1},
    )
    table = stock_by_site(stock, [4], {40: "12.50", 41: "0.99"})
    assert table.to_dict("records") == [
        # 3 × 12.50 + 2 × 0.99
        {
            "site_id": 4,
            "site_name": "ACS Sellable",
            "selling": "yes",
            "units": 5,
            "value_at_cost": 39.48,
        },
        {
            "site_id": 5,
            "site_name": "ACS Quarantine",
            "selling": "no",
            "units": 1,
            "value_at_cost": 12.5,
        },
    ]


def test_without_a_cost_price_the_days_own_difference_value_per_unit_is_used() -> None:
    # The reconciliation valued a difference of -2 at -30.00: 15.00 a unit.
    stock = stock_rows({"stock_id": 40, "khaos_level": 4, "difference": -2, "value": -30.0})
    [row] = stock_by_site(stock, [4], {}).to_dict("records")
    assert row["value_at_cost"] == 60.0


def test_without_a_cost_price_or_a_difference_a_unit_is_valued_at_nothing() -> None:
    stock = stock_rows({"stock_id": 40, "khaos_level": 4, "difference": 0, "value": 0.0})
    [row] = stock_by_site(stock, [4], None).to_dict("records")
    assert (row["units"], row["value_at_cost"]) == (4, 0.0)


def test_a_site_without_a_name_is_named_by_its_id() -> None:
    stock = stock_rows({"site_id": 9, "site_name": None, "khaos_level": 1})
    [row] = stock_by_site(stock, [4], {40: 1}).to_dict("records")
    assert (row["site_name"], row["selling"]) == ("9", "no")


def test_sites_are_listed_in_site_id_order() -> None:
    stock = stock_rows({"site_id": 7}, {"site_id": 2}, {"site_id": 5})
    assert list(stock_by_site(stock, [], {40: 1})["site_id"]) == [2, 5, 7]


def test_each_rows_value_is_rounded_to_the_penny_before_the_site_is_totalled() -> None:
    # Three StockIDs, one unit each at 0.4p: each row is £0.00, so the site is £0.00
    # (totalled first, 1.2p would have made it £0.01).
    stock = stock_rows(*({"stock_id": 40 + n, "khaos_level": 1} for n in range(3)))
    costs = {40: "0.004", 41: "0.004", 42: "0.004"}
    [row] = stock_by_site(stock, [4], costs).to_dict("records")
    assert row["value_at_cost"] == 0.0


def test_fractions_of_a_penny_in_one_row_round_to_the_nearest_penny() -> None:
    stock = stock_rows({"stock_id": 40, "khaos_level": 3})
    [row] = stock_by_site(stock, [4], {40: "0.3333"}).to_dict("records")
    assert row["value_at_cost"] == 1.0  # 99.99p


def test_no_stock_gives_an_empty_sheet_with_its_columns() -> None:
    empty = stock_by_site(stock_rows().iloc[0:0], [4], {})
    assert list(empty.columns) == ["site_id", "site_name", "selling", "units", "value_at_cost"]
    assert empty.empty


# --- the month's adjustments ---------------------------------------------------------------------

START = datetime(2026, 5, 31, 23, 0, tzinfo=UTC)  # June starts at midnight BST
AS_AT = datetime(2026, 6, 30, 22, 59, 59, tzinfo=UTC)


def adjustments(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["applied_at", "ref", "reason_code", "stock_id", "site_id", "units", "value"]
    )


def test_adjustments_are_taken_from_the_months_first_moment_to_its_as_at_inclusive() -> None:
    rows = adjustments(
        (START, "A-FIRST", "WRITEOFF", 40, 4, -1, -10.0),
        (AS_AT, "A-LAST", "WRITEOFF", 40, 4, -1, -10.0),
        (datetime(2026, 5, 31, 22, 59, 59, tzinfo=UTC), "A-MAY", "WRITEOFF", 40, 4, -1, -1.0),
        (datetime(2026, 6, 30, 23, 0, tzinfo=UTC), "A-JULY", "WRITEOFF", 40, 4, -1, -1.0),
    )
    table = month_adjustments(rows, START, AS_AT, reasons=KhaosReasons())
    assert list(table["ref"]) == ["A-FIRST", "A-LAST"]


def test_a_reason_the_integration_does_not_name_is_a_status_move() -> None:
    rows = adjustments((START, "M-1", "refurbish", 40, 4, 1, 5.0))
    [row] = month_adjustments(rows, START, AS_AT, reasons=KhaosReasons()).to_dict("records")
    assert (row["kind"], row["origin"]) == ("status_move", "")


def test_reason_codes_are_matched_whatever_their_case() -> None:
    rows = adjustments((START, "WO-1", "writeoff", 40, 4, -1, -5.0))
    [row] = month_adjustments(rows, START, AS_AT, reasons=KhaosReasons()).to_dict("records")
    assert row["kind"] == "write_off"


def test_the_installs_own_reason_codes_decide_the_kind() -> None:
    reasons = KhaosReasons(write_off="BIN", variance="STOCKTAKE", ex_hire="RETIRED")
    rows = adjustments(
        (START, "X-1", "BIN", 40, 4, -1, -5.0),
        (START, "X-2", "STOCKTAKE", 40, 4, 2, 10.0),
        (START, "X-3", "RETIRED", 40, 4, -1, -5.0),
        (START, "X-4", "WRITEOFF", 40, 4, -1, -5.0),
    )
    table = month_adjustments(rows, START, AS_AT, reasons=reasons)
    assert list(table["kind"]) == ["write_off", "variance", "ex_hire", "status_move"]


def test_a_site_without_a_known_name_is_named_by_its_id() -> None:
    rows = adjustments((START, "WO-1", "WRITEOFF", 40, 9, -1, -5.0))
    table = month_adjustments(rows, START, AS_AT, reasons=KhaosReasons(), site_names={4: "S"})
    assert list(table["site_name"]) == ["9"]


def test_adjustments_are_listed_by_time_then_reference() -> None:
    later = datetime(2026, 6, 10, tzinfo=UTC)
    rows = adjustments(
        (later, "B", "WRITEOFF", 40, 4, -1, -5.0),
        (START, "Z", "WRITEOFF", 40, 4, -1, -5.0),
        (later, "A", "WRITEOFF", 40, 4, -1, -5.0),
    )
    table = month_adjustments(rows, START, AS_AT, reasons=KhaosReasons())
    assert list(table["ref"]) == ["Z", "A", "B"]


@pytest.mark.parametrize("rows", [None, adjustments()])
def test_no_adjustments_give_an_empty_sheet_with_its_columns(rows: pd.DataFrame | None) -> None:
    table = month_adjustments(rows, START, AS_AT, reasons=KhaosReasons())
    assert table.empty
    assert list(table.columns) == [
        "applied_at",
        "ref",
        "reason_code",
        "kind",
        "origin",
        "stock_id",
        "site_name",
        "units",
        "value",
    ]
