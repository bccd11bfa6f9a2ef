"""Small rules of the stock push (``domain/stock_push/plan.py`` and ``groups.py``): which
snapshot may be pushed, the deterministic keys of its groups and moves, and how cost
prices are read from the SKU map."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.domain.stock_push.groups import group_ref, move_ref
from acs_khaos_dagster.domain.stock_push.plan import cost_prices_from, price_floats, should_push

T0 = datetime(2026, 3, 2, 7, tzinfo=UTC)

# --- which snapshot may be pushed ----------------------------------------------------------------


def test_the_first_snapshot_may_always_be_pushed() -> None:
    assert should_push(T0, None)


def test_a_snapshot_as_old_as_the_last_pushed_is_never_pushed_again() -> None:
    assert not should_push(T0, T0)


@given(offset=st.integers(min_value=-10_000_000, max_value=10_000_000))
def test_only_a_snapshot_newer_than_the_last_pushed_may_be_pushed(offset: int) -> None:
    last = T0 + timedelta(seconds=offset)
    assert should_push(T0, last) == (offset < 0)


def test_the_same_moment_in_another_zone_is_not_newer() -> None:
    from zoneinfo import ZoneInfo

    same = T0.astimezone(ZoneInfo("Europe/London"))
    assert not should_push(same, T0)


# --- keys ----------------------------------------------------------------------------------------


def test_a_groups_key_names_the_snapshot_site_and_zero_padded_batch() -> None:
    assert group_ref("20260302T0700", 4, 7) == "SNAP-20260302T0700-S4-B007"
    assert group_ref("X", 12, 1234) == "SNAP-X-S12-B1234"


def test_a_moves_key_names_the_snapshot_and_zero_padded_batch() -> None:
    assert move_ref("20260302T0700", 3) == "SNAP-20260302T0700-M003"


@given(
    a=st.tuples(st.integers(1, 99), st.integers(1, 999)),
    b=st.tuples(st.integers(1, 99), st.integers(1, 999)),
)
def test_different_sites_or_batches_never_share_a_key(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    assert (group_ref("S", *a) == group_ref("S", *b)) == (a == b)
    assert move_ref("S", a[1]) != group_ref("S", *b)


# --- cost prices ---------------------------------------------------------------------------------


def test_prices_of_any_spelling_are_read_as_floats_and_anything_else_as_nan() -> None:
    values = pd.Series([Decimal("12.3456"), "8.50", 3, None, "n/a"], dtype=object)
    read = price_floats(values)
    assert read.iloc[:3].tolist() == [12.3456, 8.5, 3.0]
    assert np.isnan(read.iloc[3]) and np.isnan(read.iloc[4])


def test_numeric_prices_are_read_as_they_are_and_text_in_them_as_nan() -> None:
    assert price_floats(pd.Series([1, 2], dtype="int64")).tolist() == [1.0, 2.0]
    read = price_floats(pd.Series(["1.5", "x"], dtype="string"))
    assert read.iloc[0] == 1.5 and np.isnan(read.iloc[1])


def test_cost_prices_are_read_per_stock_id_keeping_their_decimals() -> None:
    sku_map = pd.DataFrame(
        {"stock_id": [101, 102, 103], "cost_price": [12.5, "8.9999", Decimal("0.0001")]}
    )
    assert cost_prices_from(sku_map) == {
        101: Decimal("12.5"),
        102: Decimal("8.9999"),
        103: Decimal("0.0001"),
    }


def test_a_stock_id_without_a_cost_price_has_none() -> None:
    sku_map = pd.DataFrame({"stock_id": [101, 102, None], "cost_price": [None, 3.0, 4.0]})
    assert cost_prices_from(sku_map) == {102: Decimal("3.0")}


def test_a_stock_id_listed_twice_takes_its_first_cost_price() -> None:
    sku_map = pd.DataFrame({"stock_id": [101, 101], "cost_price": [5.0, 7.0]})
    assert cost_prices_from(sku_map) == {101: Decimal("5.0")}
