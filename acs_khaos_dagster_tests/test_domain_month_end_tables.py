"""The month-end pack's tables (``domain/month_end/pack.py``) from hand-built daily tables.

Which days belong to a month (UK time), what is missing before a pack can be built, how
shipments are aged at the cut-off, how drift, non-sellable stock and returns read in the
pack. Expected values are worked out by hand in each test (dates, pence, days).
"""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.domain.month_end.pack import (
    DAILY_TABLES,
    MonthIncomplete,
    describe_missing,
    drift_of_stock,
    missing_days,
    month_bounds,
    month_days,
    month_drift,
    month_returns,
    non_sellable_value,
    pack_order_to_cash,
    pack_returns,
    parse_month,
)

# --- months and their days --------------------------------------------------------------------


def test_a_month_is_written_yyyy_mm() -> None:
    assert parse_month("2026-03") == (2026, 3)
    for bad in ("2026-3", "2026-13", "2026-00", "March", "2026-03-01", "26-03", ""):
        with pytest.raises(ValueError, match="is not YYYY-MM"):
            parse_month(bad)


@given(st.integers(min_value=2000, max_value=2099), st.integers(min_value=1, max_value=12))
def test_a_month_has_every_calendar_day_once_in_order(year: int, number: int) -> None:
    days = month_days(f"{year}-{number:02d}")
    assert days[0] == date(year, number, 1)
    assert len(days) == calendar.monthrange(year, number)[1]
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(days))
    assert (days[-1] + timedelta(days=1)).day == 1


def test_february_has_29_days_in_a_leap_year_only() -> None:
    assert len(month_days("2028-02")) == 29
    assert len(month_days("2026-02")) == 28
    assert len(month_days("2100-02")) == 28


def test_a_summer_month_starts_at_uk_midnight_which_is_2300_utc_the_day_before() -> None:
    start, cutoff = month_bounds("2026-07")
    assert start == datetime(2026, 6, 30, 23, 0, tzinfo=UTC)
    assert cutoff == datetime(2026, 7, 31, 22, 59, 59, tzinfo=UTC)


def test_a_winter_month_starts_at_midnight_utc() -> None:
    start, cutoff = month_bounds("2026-01")
    assert start == datetime(2026, 1, 1, tzinfo=UTC)
    assert cutoff == datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)


# --- what is missing before a pack ------------------------------------------------------------


def test_a_day_lacking_some_tables_names_them_and_a_day_lacking_all_is_named_alone() -> None:
    days = month_days("2026-02")
    available = {table: list(days) for table in DAILY_TABLES}
    available["returns"] = [d for d in days if d != date(2026, 2, 10)]
    for table in DAILY_TABLES:
        available[table] = [d for d in available[table] if d != date(2026, 2, 3)]
    missing = missing_days("2026-02", available)
    assert missing == {date(2026, 2, 3): list(DAILY_TABLES), date(2026, 2, 10): ["returns"]}
    assert describe_missing("2026-02", missing) == (
        "The daily reconciliation of 2026-02 is missing 2 day(s): 2026-02-03, "
        "2026-02-10 (returns). Materialise those days of the reconciliation assets "
        "(partitions in the Dagster UI), then rebuild the month-end pack."
    )


def test_a_table_never_stored_makes_every_day_missing_it() -> None:
    available = {t: month_days("2026-04") for t in DAILY_TABLES if t != "exceptions"}
    missing = missing_days("2026-04", available)
    assert len(missing) == 30 and set(map(tuple, missing.values())) == {("exceptions",)}


def test_a_fully_reconciled_month_says_so_and_an_incomplete_one_is_an_error() -> None:
    everything = {t: month_days("2026-04") for t in DAILY_TABLES}
    assert missing_days("2026-04", everything) == {}
    assert describe_missing("2026-04", {}) == "2026-04: every day is reconciled"
    error = MonthIncomplete("2026-04", {date(2026, 4, 1): ["stock"]})
    assert isinstance(error, ValueError) and error.missing == {date(2026, 4, 1): ["stock"]}
    assert "2026-04-01 (stock)" in str(error)


# --- order to cash at the cut-off -------------------------------------------------------------

CUTOFF = datetime(2026, 3, 31, 22, 59, 59, tzinfo=UTC)  # 23:59:59 BST on 31 March


def cash(*rows: tuple[str, datetime, object, object]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["shipment_id", "despatched_at", "value_waiting", "invoice_id"]
    )


def test_shipments_after_the_cut_off_are_left_to_next_month() -> None:
    frame = cash(
        ("IN", CUTOFF, 10.0, None),
        ("OUT", CUTOFF + timedelta(seconds=1), 10.0, None),
    )
    assert pack_order_to_cash(frame, "2026-03")["shipment_id"].tolist() == ["IN"]


def test_a_shipment_is_aged_in_whole_days_and_bucketed_at_the_cut_off() -> None:
    frame = cash(
        ("A", CUTOFF - timedelta(hours=23, minutes=59), 1.0, None),
        ("B", CUTOFF - timedelta(days=1), 1.0, None),
        ("C", CUTOFF - timedelta(days=6, hours=23), 1.0, None),
        ("D", CUTOFF - timedelta(days=7), 1.0, None),
        ("E", CUTOFF - timedelta(days=40), 1.0, None),
    )
    sheet = pack_order_to_cash(frame, "2026-03").set_index("shipment_id")
    assert sheet["age_days"].to_dict() == {"A": 0, "B": 1, "C": 6, "D": 7, "E": 40}
    assert sheet["ageing_bucket"].to_dict() == {
        "A": "0-1 d",
        "B": "1-3 d",
        "C": "3-7 d",
        "D": ">7 d",
        "E": ">7 d",
    }


def test_a_preview_ages_shipments_at_its_own_moment() -> None:
    frame = cash(("A", datetime(2026, 3, 10, 12, tzinfo=UTC), 1.0, None))
    preview = pack_order_to_cash(frame, "2026-03", as_at=datetime(2026, 3, 14, 13, tzinfo=UTC))
    assert preview["age_days"].tolist() == [4]


def test_an_unknown_value_waiting_is_zero_and_an_invoice_id_reads_as_text() -> None:
    frame = cash(("A", CUTOFF, None, 70012.0), ("B", CUTOFF, "12.50", None))
    sheet = pack_order_to_cash(frame, "2026-03")
    assert sheet["value_waiting"].tolist() == [0.0, 12.5]
    assert sheet["invoice_id"].tolist() == ["70012", None]


# --- drift ------------------------------------------------------------------------------------


def stock(*rows: tuple[str, int, float | None]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["classification", "unexplained", "unexplained_value"])


def test_drift_counts_only_the_unexplained_part_of_unexplained_rows_both_ways() -> None:
    day = stock(
        ("unexplained", 4, 80.0),
        ("unexplained", -3, -15.5),
        ("in_flight", 9, 90.0),
        ("within_tolerance", 1, 5.0),
        ("unexplained", 2, None),  # no CostPrice: units count, value unknown
    )
    assert drift_of_stock(day) == (9, 95.5)


def test_the_stored_drift_series_wins_and_missing_days_come_from_the_stock_table() -> None:
    stored = pd.DataFrame(
        {"day": [date(2026, 2, 1)], "unexplained_units": [7], "unexplained_value": [70.0]}
    )
    daily = {
        date(2026, 2, 1): stock(("unexplained", 1, 1.0)),  # ignored: the series has this day
        date(2026, 2, 2): stock(("unexplained", -2, -4.0)),
    }
    drift = month_drift(stored, daily, "2026-02")
    assert drift.to_dict("records") == [
        {"day": date(2026, 2, 1), "unexplained_units": 7, "unexplained_value": 70.0},
        {"day": date(2026, 2, 2), "unexplained_units": 2, "unexplained_value": 4.0},
    ]


def test_days_outside_the_month_never_enter_its_drift() -> None:
    daily = {date(2026, 3, 1): stock(("unexplained", 5, 5.0))}
    assert month_drift(None, daily, "2026-02").empty


# --- non-sellable stock -------------------------------------------------------------------------


def test_non_sellable_stock_is_valued_per_site_at_cost_leaving_the_selling_sites_out() -> None:
    rows = pd.DataFrame(
        {
            "stock_id": [1, 1, 2, 3, 4],
            "site_id": [1, 5, 5, 6, 6],
            "site_name": ["Selling", "Refurbishment", "Refurbishment", "Quarantine", "Quarantine"],
            "khaos_level": [100, 3, 2, 4, 1],
            "difference": [0, 0, 2, 0, 0],
            "value": [0.0, 0.0, 9.0, None, None],
        }
    )
    # StockID 1 costs £10.10 (price list); 2 has none, implied £4.50 from value 9 / diff 2;
    # 3 costs £0.333: 4 units are 133.2p, kept as 133p; 4 has neither: £0.
    sheet = non_sellable_value(rows, [1], {1: "10.10", 3: 0.333})
    assert sheet.to_dict("records") == [
        {"site_name": "Quarantine", "units": 5, "value_at_cost": 1.33},
        {"site_name": "Refurbishment", "units": 5, "value_at_cost": 39.30},
    ]


def test_only_selling_stock_leaves_an_empty_non_sellable_table() -> None:
    rows = pd.DataFrame(
        {"stock_id": [1], "site_id": [1], "khaos_level": [5], "difference": [0], "value": [0.0]}
    )
    assert non_sellable_value(rows, [1]).empty


# --- returns ------------------------------------------------------------------------------------

RECEIVED = datetime(2026, 3, 20, 10, tzinfo=UTC)


def unit(ref: str, sku: str, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "return_ref": ref,
        "unique_sku": sku,
        "grade": "A",
        "credit_status": "none",
        "credit_value": 0.0,
        "write_off_status": "",
        "stock_id": 11,
        "refund_deadline": RECEIVED + timedelta(days=15),
        "refund_state": "open",
        "received_at": RECEIVED,
        "is_hire": False,
        "order_number": "SO1",
        "order_date": datetime(2026, 3, 1, 23, 30, tzinfo=UTC),
    }
    row.update(overrides)
    return row


def test_the_latest_daily_version_of_a_returned_unit_is_the_one_in_the_pack() -> None:
    daily = {
        date(2026, 3, 20): pd.DataFrame([unit("R1", "U1", grade="A")]),
        date(2026, 3, 21): pd.DataFrame([unit("R1", "U1", grade="D")]),
    }
    assert month_returns(daily, "2026-03")["grade"].tolist() == ["D"]


def test_a_unit_received_outside_the_month_is_not_in_its_returns() -> None:
    late = unit("R2", "U2", received_at=datetime(2026, 3, 31, 23, 30, tzinfo=UTC))  # 1 Apr BST
    daily = {date(2026, 3, 31): pd.DataFrame([unit("R1", "U1"), late])}
    assert month_returns(daily, "2026-03")["return_ref"].tolist() == ["R1"]


def test_a_month_with_no_returns_has_an_empty_table() -> None:
    assert month_returns({}, "2026-03").empty
    assert pack_returns(pd.DataFrame(), "2026-03").empty


def test_a_credit_shows_its_value_only_when_khaos_has_raised_or_holds_it_for_review() -> None:
    units = pd.DataFrame(
        [
            unit("R1", "U1", credit_status="raised", credit_value=40.0, refund_state="credited"),
            unit("R1", "U2", credit_status="review", credit_value=25.0),
            unit("R1", "U3", credit_status="pending_unknown", credit_value=99.0),
        ]
    )
    sheet = pack_returns(units, "2026-03")
    assert sheet["credit_status"].tolist() == ["raised", "review", "none"]
    assert sheet["credit_value"].tolist() == [40.0, 25.0, 0.0]


def test_refund_days_left_are_whole_days_at_the_cut_off_and_empty_once_credited() -> None:
    units = pd.DataFrame(
        [
            unit("R1", "U1", refund_deadline=CUTOFF + timedelta(days=3, hours=5)),
            unit("R1", "U2", refund_deadline=CUTOFF - timedelta(hours=1), refund_state="overdue"),
            unit("R1", "U3", refund_state="credited"),
        ]
    )
    assert pack_returns(units, "2026-03")["refund_days_left"].tolist() == [3, -1, None]


def test_a_written_off_unit_is_valued_at_its_cost_price_or_nothing() -> None:
    units = pd.DataFrame(
        [
            unit("R1", "U1", write_off_status="written_off", stock_id=11),
            unit("R1", "U2", write_off_status="written_off", stock_id=12),
            unit("R1", "U3", write_off_status="pending", stock_id=11),
        ]
    )
    sheet = pack_returns(units, "2026-03", cost_prices={11: "18.45"})
    assert sheet["written_off_units"].tolist() == [1, 1, 0]
    assert sheet["write_off_value"].tolist() == [18.45, 0.0, 0.0]


def test_a_returned_unit_says_where_it_came_from_in_uk_dates() -> None:
    units = pd.DataFrame([unit("R1", "U1", is_hire=True)])
    [row] = pack_returns(units, "2026-03").to_dict("records")
    assert row["hire"] == "hire" and row["part"] == "U1"
    assert row["order_date"] == date(2026, 3, 1)  # 23:30 UTC on 1 March is still GMT
    assert row["received_date"] == date(2026, 3, 20)
