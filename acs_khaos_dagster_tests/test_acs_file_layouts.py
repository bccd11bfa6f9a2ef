"""ACS's CSV layouts (``connectors/acs/file_layouts.py``): the file names ACS drops, the
columns a file cannot be used without, and header names matched whatever their case,
spacing or separators."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.connectors.acs.file_layouts import (
    RETURNS_LAYOUT,
    STOCK_UNITS_LAYOUT,
    canonical_header,
)


def test_a_stock_file_is_named_by_its_account_and_time_stamp() -> None:
    assert STOCK_UNITS_LAYOUT.file_name("BRAND01", "20260302070000") == (
        "stock_units_BRAND01_20260302070000.csv"
    )


def test_a_returns_file_is_named_by_its_account_and_time_stamp() -> None:
    assert RETURNS_LAYOUT.file_name("BRAND01", "20260310090000") == (
        "returns_BRAND01_20260310090000.csv"
    )


def test_a_stock_file_needs_its_identity_status_and_times_only() -> None:
    assert set(STOCK_UNITS_LAYOUT.required) == {
        "account_code",
        "snapshot_at",
        "sku",
        "unique_sku",
        "status",
        "last_event_at",
    }
    optional = set(STOCK_UNITS_LAYOUT.columns) - set(STOCK_UNITS_LAYOUT.required)
    assert optional == {
        "rfid_epc",
        "location_code",
        "grade",
        "order_number",
        "expected_return_date",
    }


def test_a_returns_file_may_lack_only_the_line_reason_defects_and_cost() -> None:
    optional = set(RETURNS_LAYOUT.columns) - set(RETURNS_LAYOUT.required)
    assert optional == {"line_item_id", "action_reason", "defect_codes", "repair_cost"}


@pytest.mark.parametrize("layout", [STOCK_UNITS_LAYOUT, RETURNS_LAYOUT])
def test_every_required_column_is_a_column_of_the_layout(layout: object) -> None:
    assert set(layout.required) <= set(layout.columns)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "header",
    [
        "unique_sku",
        "UNIQUE_SKU",
        " Unique SKU ",
        "Unique-Sku",
        "unique.sku",
        "Unique\u2013SKU",  # an en dash from a spreadsheet
        "\ufeffunique_sku",  # a byte-order mark on the first header
        "unique  -  sku",
        "_unique_sku_",
    ],
)
def test_a_header_is_matched_whatever_its_case_spacing_or_separators(header: str) -> None:
    assert canonical_header(header) == "unique_sku"


def test_a_header_keeps_its_letters_and_digits() -> None:
    assert canonical_header("Address Line 2") == "address_line_2"
    assert canonical_header("repair_cost (£)") == "repair_cost_(£)"


@given(
    words=st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6),
        min_size=1,
        max_size=4,
    ),
    separator=st.sampled_from([" ", "-", ".", "_", "  ", " - "]),
    upper=st.booleans(),
)
def test_words_joined_by_any_separator_read_as_snake_case(
    words: list[str], separator: str, upper: bool
) -> None:
    header = separator.join(w.upper() if upper else w for w in words)
    assert canonical_header(f"  {header} ") == "_".join(words)
