"""Cost prices as at a day (``flows/period_costs.py``): a closed month is valued the same
however often it is rebuilt, whatever Khaos's CostPrice became since.

The flow reads the products flow's SKU master from the data folder and keeps one record
per UK day; these tests write that master by hand, change prices, move the clock, and
check which prices each day is valued with.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.flows.period_costs import (
    current_cost_prices,
    day_costs_path,
    period_cost_prices,
    record_day_costs,
)


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    return load_settings()


def khaos_prices(conf: Settings, prices: dict[int, str | None]) -> None:
    """The SKU master the products flow writes, with these CostPrices (None: none known)."""
    path = conf.data_dir / "products" / "sku_master.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {
            "stock_id": pd.Series(list(prices), dtype="int64"),
            "cost_price": pd.Series([None if p is None else float(p) for p in prices.values()]),
        }
    )
    frame.to_parquet(path)


def uk(day: int, hour: int, month: int = 6) -> datetime:
    """A moment in June 2026 (BST, UTC+1) given in UTC."""
    return datetime(2026, month, day, hour, tzinfo=UTC)


# --- today's prices ------------------------------------------------------------------------------


def test_todays_prices_are_read_from_the_khaos_sku_master(conf: Settings) -> None:
    khaos_prices(conf, {101: "12.50", 102: "8.9999", 103: None})
    assert current_cost_prices(conf) == {101: Decimal("12.5"), 102: Decimal("8.9999")}


def test_without_a_sku_master_nothing_is_priced(conf: Settings) -> None:
    assert current_cost_prices(conf) == {}


# --- a day's record ------------------------------------------------------------------------------


def test_a_past_day_is_valued_at_the_prices_first_used_for_it_after_prices_change(
    conf: Settings,
) -> None:
    khaos_prices(conf, {101: "12.50"})
    assert period_cost_prices(conf, "2026-05-31") == {101: Decimal("12.5")}
    khaos_prices(conf, {101: "15.00", 102: "3.00"})
    assert period_cost_prices(conf, "2026-05-31") == {101: Decimal("12.5")}
    assert period_cost_prices(conf, "2026-06-01") == {101: Decimal("15.0"), 102: Decimal("3.0")}


def test_a_running_day_takes_the_latest_prices_recorded_for_it(conf: Settings) -> None:
    record_day_costs(conf, "2026-06-10", {101: Decimal("10.00")}, now=uk(10, 8))
    record_day_costs(conf, "2026-06-10", {101: Decimal("11.00")}, now=uk(10, 20))
    assert period_cost_prices(conf, "2026-06-10") == {101: Decimal("11.00")}


def test_once_a_day_has_ended_its_record_never_changes(conf: Settings) -> None:
    record_day_costs(conf, "2026-06-10", {101: Decimal("10.00")}, now=uk(10, 8))
    record_day_costs(conf, "2026-06-10", {101: Decimal("99.00")}, now=uk(12, 8))
    assert period_cost_prices(conf, "2026-06-10") == {101: Decimal("10.00")}


def test_a_day_ends_at_uk_midnight_not_utc_midnight(conf: Settings) -> None:
    record_day_costs(conf, "2026-06-10", {101: Decimal("10.00")}, now=uk(10, 8))
    # 23:00 UTC on the 10th is midnight BST, the 11th: the UK day is over.
    record_day_costs(conf, "2026-06-10", {101: Decimal("99.00")}, now=uk(10, 23))
    assert period_cost_prices(conf, "2026-06-10") == {101: Decimal("10.00")}
    # 22:00 UTC on the 11th is still 23:00 BST on the 11th: that day is running.
    record_day_costs(conf, "2026-06-11", {101: Decimal("1.00")}, now=uk(11, 8))
    record_day_costs(conf, "2026-06-11", {101: Decimal("2.00")}, now=uk(11, 22))
    assert period_cost_prices(conf, "2026-06-11") == {101: Decimal("2.00")}


def test_a_winter_day_ends_at_midnight_utc(conf: Settings) -> None:
    record_day_costs(conf, "2026-01-10", {7: Decimal("4.00")}, now=uk(10, 12, month=1))
    record_day_costs(conf, "2026-01-10", {7: Decimal("5.00")}, now=uk(10, 23, month=1))
    record_day_costs(conf, "2026-01-10", {7: Decimal("6.00")}, now=uk(11, 0, month=1))
    assert period_cost_prices(conf, "2026-01-10") == {7: Decimal("5.00")}


def test_a_day_reconciled_after_it_ended_records_the_prices_known_then(conf: Settings) -> None:
    record_day_costs(conf, "2026-06-01", {101: Decimal("14.25")}, now=uk(20, 9))
    record_day_costs(conf, "2026-06-01", {101: Decimal("99.00")}, now=uk(21, 9))
    assert period_cost_prices(conf, "2026-06-01") == {101: Decimal("14.25")}


def test_a_price_keeps_all_four_decimal_places_khaos_gives_it(conf: Settings) -> None:
    costs = {1: Decimal("0.0001"), 2: Decimal("1234.5678"), 3: Decimal("19.99")}
    record_day_costs(conf, "2026-06-10", costs, now=uk(10, 8))
    assert period_cost_prices(conf, "2026-06-10") == costs


def test_each_day_has_its_own_record_under_the_reconciliation_folder(conf: Settings) -> None:
    record_day_costs(conf, "2026-06-10", {1: Decimal("1")}, now=uk(10, 8))
    record_day_costs(conf, "2026-06-11", {1: Decimal("2")}, now=uk(11, 8))
    assert day_costs_path(conf, "2026-06-10") == (
        conf.data_dir / "reconciliation" / "costs" / "2026-06-10.parquet"
    )
    assert period_cost_prices(conf, "2026-06-10") == {1: Decimal("1")}
    assert period_cost_prices(conf, "2026-06-11") == {1: Decimal("2")}


def test_a_days_record_is_private_to_the_service(conf: Settings) -> None:
    record_day_costs(conf, "2026-06-10", {1: Decimal("1")}, now=uk(10, 8))
    path = day_costs_path(conf, "2026-06-10")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["2026-06-10.parquet"]  # no partial left


# --- a day valued before any prices were known (first night) -----------------------------------
# An empty price list is missing evidence, not a valuation of £0: it is never a day's record.


def test_a_day_valued_before_any_prices_were_known_is_valued_once_they_are(
    conf: Settings,
) -> None:
    assert period_cost_prices(conf, "2026-06-10") == {}  # e.g. order to cash, first night
    khaos_prices(conf, {101: "12.50"})
    record_day_costs(conf, "2026-06-10", {101: Decimal("12.50")}, now=uk(11, 6))
    assert period_cost_prices(conf, "2026-06-10") == {101: Decimal("12.50")}


def test_a_day_valued_without_prices_leaves_no_record(conf: Settings) -> None:
    assert period_cost_prices(conf, "2026-06-10") == {}
    assert not day_costs_path(conf, "2026-06-10").exists()


def test_a_day_valued_without_prices_takes_the_first_prices_known_and_keeps_them(
    conf: Settings,
) -> None:
    assert period_cost_prices(conf, "2026-06-10") == {}
    khaos_prices(conf, {101: "12.50"})
    assert period_cost_prices(conf, "2026-06-10") == {101: Decimal("12.5")}
    khaos_prices(conf, {101: "20.00"})
    assert period_cost_prices(conf, "2026-06-10") == {101: Decimal("12.5")}


def test_recording_an_empty_price_list_records_nothing(conf: Settings) -> None:
    record_day_costs(conf, "2026-06-10", {}, now=uk(10, 8))
    assert not day_costs_path(conf, "2026-06-10").exists()


def test_an_empty_price_list_never_wipes_a_running_days_prices(conf: Settings) -> None:
    record_day_costs(conf, "2026-06-10", {101: Decimal("10.00")}, now=uk(10, 8))
    record_day_costs(conf, "2026-06-10", {}, now=uk(10, 9))
    assert period_cost_prices(conf, "2026-06-10") == {101: Decimal("10.00")}


def test_an_empty_record_already_on_disk_is_replaced_once_prices_exist(conf: Settings) -> None:
    # What the version before this rule wrote on a first night: a record with no rows.
    path = day_costs_path(conf, "2026-06-10")
    path.parent.mkdir(parents=True)
    pd.DataFrame(
        {"stock_id": pd.Series([], dtype="int64"), "cost_price": pd.Series([], dtype=object)}
    ).to_parquet(path)
    record_day_costs(conf, "2026-06-10", {101: Decimal("12.50")}, now=uk(12, 6))
    assert period_cost_prices(conf, "2026-06-10") == {101: Decimal("12.50")}


def test_an_empty_record_already_on_disk_gives_way_to_todays_prices_when_read(
    conf: Settings,
) -> None:
    path = day_costs_path(conf, "2026-06-10")
    path.parent.mkdir(parents=True)
    pd.DataFrame(
        {"stock_id": pd.Series([], dtype="int64"), "cost_price": pd.Series([], dtype=object)}
    ).to_parquet(path)
    khaos_prices(conf, {101: "12.50"})
    assert period_cost_prices(conf, "2026-06-10") == {101: Decimal("12.5")}
    khaos_prices(conf, {101: "20.00"})
    assert period_cost_prices(conf, "2026-06-10") == {101: Decimal("12.5")}
