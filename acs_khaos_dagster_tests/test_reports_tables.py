"""The report writers every pack shares (``reports/_tables.py``): what reaches a file.

A report writes only its declared columns, money in exact pence, UK wall-clock times,
text no spreadsheet will evaluate, and files that appear whole or not at all. Expected
values are written out by hand (pence, labels, file bytes), never produced by the module.
"""

from __future__ import annotations

import csv
import os
import stat
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from acs_khaos_dagster.reports._tables import (
    Column,
    ReportInputError,
    TableSpec,
    atomic_path,
    csv_value,
    excel_value,
    format_value,
    html_rows,
    int_sum,
    money_sum,
    neutralise_text,
    prepare,
    slug,
    template_environment,
    to_pence,
    write_table_csv,
    write_table_sheet,
)

SPEC = TableSpec(
    key="stock_lines",
    title="Stock lines",
    columns=(
        Column("stock_code", "text", "Stock code", "Khaos stock code"),
        Column("units", "int", "Units", "units counted"),
        Column("value", "money", "Value", "units x cost, pounds"),
        Column("status", "text", "Status", "match", allowed=("match", "drift")),
        Column("note", "text", "Note", "free text", nullable=True),
    ),
)


def rows(**overrides: list[object]) -> pd.DataFrame:
    data: dict[str, list[object]] = {
        "stock_code": ["DRESS-10", "COAT-12"],
        "units": [3, 4],
        "value": [10.5, 2.675],
        "status": ["match", "drift"],
        "note": [None, "recount"],
    }
    data.update(overrides)
    return pd.DataFrame(data)


# --- prepare: only declared columns, typed, validated ---------------------------------------


def test_a_column_not_declared_for_the_table_never_reaches_the_report() -> None:
    frame = rows(customer_email=["ann@example.com", "bob@example.com"])
    prepared = prepare(frame, SPEC)
    assert list(prepared.columns) == ["stock_code", "units", "value", "status", "note"]


def test_a_missing_column_is_refused_naming_the_table_and_the_column() -> None:
    with pytest.raises(ReportInputError, match=r"stock_lines: missing column\(s\) units"):
        prepare(rows().drop(columns=["units"]), SPEC)


def test_an_empty_value_in_a_required_column_names_its_row() -> None:
    with pytest.raises(ReportInputError, match=r"stock_lines\.units: empty value in row 1"):
        prepare(rows(units=[3, None]), SPEC)


def test_an_empty_value_is_allowed_in_a_nullable_column() -> None:
    assert prepare(rows(), SPEC)["note"].tolist() == [None, "recount"]


def test_text_that_is_not_a_number_is_refused_in_a_number_column() -> None:
    with pytest.raises(ReportInputError, match=r"stock_lines\.value: 'ten' in row 1"):
        prepare(rows(value=[1.0, "ten"]), SPEC)


def test_a_fraction_is_refused_in_a_whole_number_column() -> None:
    with pytest.raises(
        ReportInputError, match=r"stock_lines\.units: .*2\.5\)? in row 0 is not whole"
    ):
        prepare(rows(units=[2.5, 4]), SPEC)


def test_a_value_outside_the_allowed_list_is_refused() -> None:
    with pytest.raises(ReportInputError, match=r"'lost' in row 0 is not one of match, drift"):
        prepare(rows(status=["lost", "match"]), SPEC)


def test_money_is_rounded_half_up_to_the_penny() -> None:
    prepared = prepare(rows(value=[10.005, 2.675]), SPEC)
    assert prepared["value"].tolist() == [10.01, 2.68]


def test_numeric_text_and_decimals_are_read_as_numbers() -> None:
    prepared = prepare(rows(units=["3", 4], value=[Decimal("1.10"), "2.2"]), SPEC)
    assert prepared["units"].tolist() == [3, 4]
    assert prepared["value"].tolist() == [1.1, 2.2]


def test_a_non_frame_input_is_refused() -> None:
    with pytest.raises(ReportInputError, match="expected a pandas DataFrame"):
        prepare([{"stock_code": "X"}], SPEC)  # type: ignore[arg-type]


TIMES = TableSpec(
    key="times",
    title="Times",
    columns=(
        Column("at", "datetime", "At", "when"),
        Column("day", "date", "Day", "which day"),
    ),
)


def test_an_aware_time_is_written_as_uk_wall_clock_time_without_a_zone() -> None:
    summer = datetime(2025, 7, 1, 8, 30, 15, 999, tzinfo=UTC)  # 09:30:15 BST
    winter = datetime(2025, 1, 15, 8, 30, tzinfo=UTC)  # 08:30 GMT
    prepared = prepare(pd.DataFrame({"at": [summer, winter], "day": ["2025-07-01"] * 2}), TIMES)
    assert prepared["at"].tolist() == [
        datetime(2025, 7, 1, 9, 30, 15),
        datetime(2025, 1, 15, 8, 30),
    ]
    assert prepared["day"].tolist() == [date(2025, 7, 1)] * 2


def test_a_naive_time_is_taken_as_uk_time_already() -> None:
    prepared = prepare(
        pd.DataFrame({"at": [datetime(2025, 7, 1, 9)], "day": [date(2025, 7, 1)]}), TIMES
    )
    assert prepared["at"].tolist() == [datetime(2025, 7, 1, 9)]


def test_text_that_is_not_a_time_is_refused_naming_the_column() -> None:
    with pytest.raises(ReportInputError, match=r"times\.at: 'soon' is not a date-time"):
        prepare(pd.DataFrame({"at": ["soon"], "day": [date(2025, 7, 1)]}), TIMES)


# --- money in pence -------------------------------------------------------------------------


def test_to_pence_rounds_half_up_from_the_decimal_text_not_the_binary_float() -> None:
    # 2.675 is 2.67499999... as a binary float; the pack shows what finance typed.
    assert to_pence(2.675) == Decimal("2.68")
    assert to_pence(-2.675) == Decimal("-2.68")
    assert to_pence(Decimal("0.005")) == Decimal("0.01")
    assert to_pence(7) == Decimal("7.00")


def test_a_money_column_sums_exactly_where_floats_would_drift() -> None:
    assert money_sum(pd.Series([0.1] * 10)) == Decimal("1.00")
    assert money_sum(pd.Series([0.1, 0.2, None])) == Decimal("0.30")
    assert money_sum(pd.Series([], dtype=float)) == Decimal("0.00")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=-10_000_000, max_value=10_000_000), max_size=60))
def test_a_money_sum_of_pence_values_is_the_exact_sum_of_the_pence(pence: list[int]) -> None:
    values = pd.Series([p / 100 for p in pence], dtype=float)
    assert money_sum(values) == Decimal(sum(pence)) / 100


def test_a_whole_number_sum_leaves_empty_cells_out() -> None:
    assert int_sum(pd.Series([1, None, 4], dtype="Int64")) == 5


# --- text cells no spreadsheet evaluates -----------------------------------------------------


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r"])
def test_text_starting_with_a_formula_trigger_gets_a_leading_quote(trigger: str) -> None:
    assert neutralise_text(f"{trigger}1+1") == f"'{trigger}1+1"


def test_text_with_a_trigger_inside_it_is_left_as_it_is() -> None:
    assert neutralise_text("DRESS-10=A") == "DRESS-10=A"
    assert neutralise_text("") == ""


def test_a_negative_number_in_a_csv_stays_a_number() -> None:
    assert csv_value(-4, "int") == "-4"
    assert csv_value(-2.5, "money") == "-2.50"
    assert csv_value("-4", "text") == "'-4"


def test_csv_cells_read_as_plain_values_per_kind() -> None:
    assert csv_value(1234.5, "money") == "1234.50"
    assert csv_value(3.0, "int") == "3"
    assert csv_value(0.25, "number") == "0.25"
    assert csv_value(datetime(2025, 7, 1, 9, 30), "datetime") == "2025-07-01 09:30:00"
    assert csv_value(date(2025, 7, 1), "date") == "2025-07-01"
    assert csv_value(None, "money") == ""
    assert csv_value(float("nan"), "int") == ""


def test_html_cells_show_pounds_with_thousands_and_the_sign_before_the_pound() -> None:
    assert format_value(1234.5, "money") == "£1,234.50"
    assert format_value(-1234.5, "money") == "-£1,234.50"
    assert format_value(1234567, "int") == "1,234,567"
    assert format_value(2.26, "number") == "2.3"
    assert format_value(datetime(2025, 7, 1, 9, 30, 59), "datetime") == "2025-07-01 09:30"
    assert format_value(None, "money") == ""
    assert format_value(pd.NA, "int") == ""


def test_excel_cells_are_typed_numbers_and_empty_cells_are_empty() -> None:
    assert excel_value(3.0, "int") == 3 and isinstance(excel_value(3.0, "int"), int)
    assert excel_value(Decimal("2.50"), "money") == 2.5
    assert excel_value(float("nan"), "money") is None
    assert excel_value("=1+1", "text") == "=1+1"  # guarded by the sheet writer, not here


def test_a_slug_is_lower_case_letters_digits_and_single_dashes() -> None:
    assert slug("  Stock: Sellable / Non-sellable!  ") == "stock-sellable-non-sellable"
    assert slug("***") == "x"


# --- files appear whole, private to the service's group --------------------------------------


def test_a_report_file_replaces_the_old_one_only_when_written_completely(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "pack.csv"
    target.parent.mkdir()
    target.write_text("old pack\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a pa")
        raise RuntimeError("disk full")
    assert target.read_text() == "old pack\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["pack.csv"]


def test_a_written_report_is_readable_by_the_group_only_in_a_group_folder(tmp_path: Path) -> None:
    target = tmp_path / "finance" / "2025-06" / "pack.csv"
    with atomic_path(target) as tmp:
        tmp.write_text("new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(target.parent).st_mode) == 0o750


def test_a_table_csv_has_the_declared_columns_in_order_and_quoted_triggers(
    tmp_path: Path,
) -> None:
    frame = prepare(rows(stock_code=["=HYPERLINK(1)", "COAT-12"], extra=["x", "y"]), SPEC)
    path = write_table_csv(tmp_path / "lines.csv", frame, SPEC)
    with path.open(newline="", encoding="utf-8") as handle:
        written = list(csv.reader(handle))
    assert written == [
        ["stock_code", "units", "value", "status", "note"],
        ["'=HYPERLINK(1)", "3", "10.50", "match", ""],
        ["COAT-12", "4", "2.68", "drift", "recount"],
    ]


def test_a_table_sheet_has_typed_cells_formats_and_no_live_formula() -> None:
    sheet = Workbook().active
    frame = prepare(rows(stock_code=["=SUM(A1:A9)", "COAT-12"]), SPEC)
    write_table_sheet(sheet, frame, SPEC, first_row=3)
    assert [c.value for c in sheet[3]] == ["Stock code", "Units", "Value", "Status", "Note"]
    poisoned = sheet["A4"]
    assert poisoned.value == "=SUM(A1:A9)"
    assert poisoned.data_type == "s"
    assert poisoned.quotePrefix
    assert not sheet["A5"].quotePrefix
    assert sheet["B4"].value == 3 and sheet["B4"].number_format == "#,##0"
    assert sheet["C5"].value == 2.68
    assert sheet["C5"].number_format == '"£"#,##0.00;[Red]-"£"#,##0.00'
    assert sheet.freeze_panes == "A4"
    assert sheet.auto_filter.ref == "A3:E5"


def test_an_empty_table_sheet_has_its_header_but_no_filter() -> None:
    sheet = Workbook().active
    write_table_sheet(sheet, prepare(rows().iloc[0:0], SPEC), SPEC)
    assert [c.value for c in sheet[1]] == ["Stock code", "Units", "Value", "Status", "Note"]
    assert all(cell.value is None for cell in sheet[2])
    assert not sheet.auto_filter.ref


def test_html_rows_are_the_top_rows_in_the_reports_order_as_formatted_text() -> None:
    frame = prepare(rows(units=[3, 4], value=[10.5, 2000]), SPEC)
    top = html_rows(frame, SPEC, lambda f: f.sort_values("value", ascending=False), limit=1)
    assert top == [
        [
            ("COAT-12", "text"),
            ("4", "int"),
            ("£2,000.00", "money"),
            ("drift", "text"),
            ("recount", "text"),
        ]
    ]


def test_templates_escape_every_value_from_data() -> None:
    template = template_environment().from_string(
        "<td>{{ name }}</td><td>{{ v | fmt('money') }}</td>"
    )
    html = template.render(name="<script>alert(1)</script>", v=-3.5)
    assert html == "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td><td>-£3.50</td>"


def test_a_template_naming_an_unknown_value_fails_rather_than_printing_nothing() -> None:
    template = template_environment().from_string("{{ missing }}")
    with pytest.raises(Exception, match="missing"):
        template.render()
