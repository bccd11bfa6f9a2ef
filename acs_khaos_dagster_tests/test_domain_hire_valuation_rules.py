"""The rental fleet's rules (``domain/hire_valuation.py``): a hire unit's value after its
rentals, the "Hire fleet" sheet, overdue hires and the split of order to cash by kind.

Values are worked out by hand; the properties hold for any cost and rental count."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from acs_khaos_dagster.domain.hire_valuation import (
    HireOverdue,
    HireValuation,
    hire_fleet,
    order_kinds,
    overdue_hires,
)

DEPRECIATED = HireValuation(
    basis="depreciated", depreciation_per_rental=Decimal("0.10"), floor=Decimal("0.20")
)

DESCRIBED = r"cost less 10(\.0+)?% of cost per rental, floor 20(\.0+)?% of cost"

# --- a unit's value ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rentals", "value"),
    [(0, "80.00"), (1, "72.00"), (2.5, "60.00"), (8, "16.00"), (9, "16.00"), (50, "16.00")],
)
def test_a_unit_loses_a_tenth_of_cost_per_rental_down_to_a_fifth(
    rentals: float, value: str
) -> None:
    assert DEPRECIATED.unit_value(Decimal("80.00"), rentals) == Decimal(value)


def test_a_value_is_rounded_half_up_to_the_penny() -> None:
    # 0.9 × 10.05 = 9.045 → 9.05
    assert DEPRECIATED.unit_value(Decimal("10.05"), 1) == Decimal("9.05")
    assert HireValuation().unit_value(Decimal("10.005"), 3) == Decimal("10.01")


def test_a_depreciated_basis_without_depreciation_is_refused() -> None:
    with pytest.raises(ValidationError, match="depreciation_per_rental above 0"):
        HireValuation(basis="depreciated", depreciation_per_rental=Decimal("0"))


@pytest.mark.parametrize("field", ["depreciation_per_rental", "floor"])
def test_a_share_of_cost_above_one_is_refused(field: str) -> None:
    with pytest.raises(ValidationError):
        HireValuation(**{field: Decimal("1.5")})


def test_the_basis_is_described_in_words_for_the_pack() -> None:
    assert HireValuation().describe() == "cost"
    # Trailing zeros are allowed: Decimal("0.10") × 100 formats as 10.00 (see the report).
    assert re.fullmatch(DESCRIBED, DEPRECIATED.describe())


@given(
    cost=st.decimals(min_value=0, max_value=10000, places=2),
    rentals=st.floats(min_value=0, max_value=100),
    more=st.floats(min_value=0, max_value=10),
)
def test_a_units_value_stays_between_its_floor_and_its_cost_and_never_rises_with_rentals(
    cost: Decimal, rentals: float, more: float
) -> None:
    value = DEPRECIATED.unit_value(cost, rentals)
    floor = (cost * Decimal("0.20")).quantize(Decimal("0.01"))
    assert floor - Decimal("0.01") <= value <= cost
    assert DEPRECIATED.unit_value(cost, rentals + more) <= value


# --- the hire fleet sheet ------------------------------------------------------------------------


def stock(*rows: tuple[int, int, int, str]) -> pd.DataFrame:
    """(stock_id, site_id, khaos_level, site_name) rows of the stock reconciliation."""
    return pd.DataFrame(
        [
            {
                "stock_id": s,
                "stock_code": f"HIRE-{s}",
                "site_id": site,
                "khaos_level": lv,
                "site_name": name,
            }
            for s, site, lv, name in rows
        ]
    )


def test_only_hire_stock_ids_with_units_are_in_the_fleet() -> None:
    sheet = hire_fleet(
        stock((1, 4, 2, "Sellable"), (2, 4, 5, "Sellable"), (3, 4, 0, "Sellable")),
        hire_stock_ids=[1, 3],
        cost_prices={1: "100", 2: "100", 3: "100"},
        rentals={},
        valuation=HireValuation(),
        on_hire_site=6,
    )
    assert list(sheet["stock_id"]) == [1]


def test_a_stock_ids_rentals_are_spread_over_all_its_units_on_every_site() -> None:
    # 4 units (3 at ACS, 1 with a customer) rented 6 times: 1.5 rentals each, 85% of cost.
    sheet = hire_fleet(
        stock((1, 4, 3, "Sellable"), (1, 6, 1, "On hire")),
        hire_stock_ids=[1],
        cost_prices={1: Decimal("100.00")},
        rentals={1: 6},
        valuation=DEPRECIATED,
        on_hire_site=6,
    )
    assert sheet[
        ["site_name", "on_hire", "units", "rentals_per_unit", "value_at_cost", "book_value"]
    ].to_dict("records") == [
        {
            "site_name": "On hire",
            "on_hire": "yes",
            "units": 1,
            "rentals_per_unit": 1.5,
            "value_at_cost": 100.0,
            "book_value": 85.0,
        },
        {
            "site_name": "Sellable",
            "on_hire": "no",
            "units": 3,
            "rentals_per_unit": 1.5,
            "value_at_cost": 300.0,
            "book_value": 255.0,
        },
    ]
    [basis] = set(sheet["basis"])
    assert re.fullmatch(DESCRIBED, basis)


def test_a_hire_stock_id_without_a_cost_price_is_valued_at_nothing() -> None:
    [row] = hire_fleet(
        stock((1, 4, 2, "Sellable")), [1], {}, {1: 3}, DEPRECIATED, on_hire_site=6
    ).to_dict("records")
    assert (row["value_at_cost"], row["book_value"]) == (0.0, 0.0)


def test_a_site_without_a_name_is_named_by_its_id() -> None:
    [row] = hire_fleet(
        stock((1, 9, 1, "")), [1], {1: 10}, {}, HireValuation(), on_hire_site=6
    ).to_dict("records")
    assert row["site_name"] == "9"


def test_no_hire_units_give_an_empty_sheet_with_its_columns() -> None:
    sheet = hire_fleet(stock((2, 4, 1, "S")), [1], {}, {}, HireValuation(), on_hire_site=6)
    assert sheet.empty
    assert list(sheet.columns) == [
        "stock_id",
        "stock_code",
        "site_name",
        "on_hire",
        "units",
        "rentals_per_unit",
        "value_at_cost",
        "book_value",
        "basis",
    ]


# --- overdue hires -------------------------------------------------------------------------------

NOW = datetime(2026, 6, 10, 12, tzinfo=UTC)  # 13:00 BST on 10 June


def out(*rows: tuple[str, object]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"unique_sku": u, "sku": "DRESS", "expected_return_date": d} for u, d in rows]
    )


def test_a_unit_due_back_today_is_not_overdue_and_one_due_yesterday_is() -> None:
    found = overdue_hires(out(("U1", date(2026, 6, 10)), ("U2", date(2026, 6, 9))), NOW)
    assert [(o.unique_sku, o.days_overdue) for o in found] == [("U2", 1)]


def test_grace_days_delay_when_a_unit_counts_as_overdue() -> None:
    units = out(("U1", date(2026, 6, 8)), ("U2", date(2026, 6, 7)))
    assert [o.unique_sku for o in overdue_hires(units, NOW, grace_days=2)] == ["U2"]


def test_a_unit_without_an_agreed_return_date_is_never_overdue() -> None:
    assert overdue_hires(out(("U1", None), ("U2", pd.NaT)), NOW) == []


def test_a_return_time_given_in_utc_is_dated_by_its_uk_day() -> None:
    # 23:30 UTC on 8 June is 00:30 BST on 9 June: due the 9th, one day overdue on the 10th.
    [found] = overdue_hires(out(("U1", pd.Timestamp("2026-06-08T23:30:00Z"))), NOW)
    assert (found.expected_return, found.days_overdue) == (date(2026, 6, 9), 1)


def test_today_is_the_uk_day_of_now() -> None:
    late_evening = datetime(2026, 6, 9, 23, 30, tzinfo=UTC)  # already the 10th in the UK
    [found] = overdue_hires(out(("U1", date(2026, 6, 9))), late_evening)
    assert found.days_overdue == 1


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        overdue_hires(out(), datetime(2026, 6, 10, 12))


def test_overdue_hires_are_listed_by_due_date_then_unit() -> None:
    units = out(("U3", date(2026, 6, 1)), ("U1", date(2026, 6, 5)), ("U2", date(2026, 6, 1)))
    assert [o.unique_sku for o in overdue_hires(units, NOW)] == ["U2", "U3", "U1"]


def test_an_overdue_hire_is_keyed_by_its_unit_and_due_date_and_says_so() -> None:
    overdue = HireOverdue("U1", "DRESS", date(2026, 6, 7), 3)
    assert (overdue.type, overdue.entity_ref) == ("hire_overdue", "hire:U1:2026-06-07")
    assert overdue.message == (
        "hire unit U1 (DRESS) was due back on 2026-06-07 and is still with the customer "
        "(3 day(s) overdue)"
    )
    assert overdue.details == {
        "unique_sku": "U1",
        "sku": "DRESS",
        "expected_return_date": "2026-06-07",
        "days_overdue": 3,
    }


# --- order to cash by kind -----------------------------------------------------------------------


def test_a_shipment_is_hire_when_its_order_is_a_hire_order_else_sale() -> None:
    cash = pd.DataFrame(
        [
            {
                "shipment_id": "SH1",
                "order_number": "SO1",
                "status": "invoiced",
                "value_waiting": 0.0,
                "value": 10.0,
            },
            {
                "shipment_id": "SH2",
                "order_number": "SO2",
                "status": "not posted",
                "value_waiting": 25.0,
                "value": 25.0,
            },
        ]
    )
    assert order_kinds(cash, {"SO2"}).to_dict("records") == [
        {
            "shipment_id": "SH1",
            "order_number": "SO1",
            "kind": "sale",
            "status": "invoiced",
            "value_waiting": 0.0,
        },
        {
            "shipment_id": "SH2",
            "order_number": "SO2",
            "kind": "hire",
            "status": "not posted",
            "value_waiting": 25.0,
        },
    ]
