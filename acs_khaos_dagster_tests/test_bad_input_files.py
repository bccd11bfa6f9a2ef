"""Bad-input catalogue, files: what a user sees when an ACS drop file is broken.

Each test is one catalogue entry of ``RELIABILITY.md``. The promise for every file:
a file whose header cannot be used raises ``FileLayoutError`` naming the file and the
reason; otherwise every data line is either a good row or a quarantined row with its
line number, its raw text and the field at fault, and the good rows are kept.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from acs_khaos_dagster.connectors.acs.files import (
    FileLayoutError,
    ReturnsFileRead,
    StockFileRead,
    read_returns,
    read_stock_units,
)
from acs_khaos_dagster.domain.models import OrderLine, SalesOrder
from acs_khaos_dagster.domain.returns import (
    ReturnProblemKind,
    apply_grade_policy,
    match_returns,
)
from acs_khaos_dagster.domain.sku_mapping import code_problems
from acs_khaos_dagster.domain.stock_status import CONFLICT_STATUS

STOCK_NAME = "stock_units_BRAND01_20260302070000.csv"
RETURNS_NAME = "returns_BRAND01_20260310090000.csv"
HEADER = (
    "account_code,snapshot_at,sku,unique_sku,rfid_epc,status,location_code,grade,"
    "last_event_at,order_number,expected_return_date"
)
RETURNS_HEADER = (
    "return_ref,order_number,line_item_id,sku,unique_sku,received_at,grade,"
    "action_taken,action_reason,defect_codes,repair_cost"
)
READY = "In Warehouse - Ready For Customer"


def unit(
    unique: str,
    status: str = READY,
    *,
    at: str = "2026-03-01T10:00:00Z",
    sku: str = "DRS-0001-NVY-10",
    location: str = "A01-01-A",
    snapshot: str = "2026-03-02T07:00:00Z",
    expected_return: str = "",
) -> str:
    return (
        f"BRAND01,{snapshot},{sku},{unique},30AABBCC0000000000000001,{status},"
        f"{location},A,{at},,{expected_return}"
    )


def a_return(
    ref: str,
    unique: str,
    *,
    order: str = "SO1",
    line: str = "7",
    grade: str = "B",
    action: str = "REPAIR",
    cost: str = "",
    received: str = "2026-03-05T10:00:00Z",
    sku: str = "DRS-1",
) -> str:
    return f"{ref},{order},{line},{sku},{unique},{received},{grade},{action},,,{cost}"


def write_bytes(tmp_path: Path, data: bytes, name: str = STOCK_NAME) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def stock_file(tmp_path: Path, *rows: str, header: str = HEADER, newline: str = "\n") -> Path:
    text = newline.join([header, *rows]) + newline
    return write_bytes(tmp_path, text.encode("utf-8"))


def returns_file(tmp_path: Path, *rows: str) -> Path:
    text = "\n".join([RETURNS_HEADER, *rows]) + "\n"
    return write_bytes(tmp_path, text.encode("utf-8"), RETURNS_NAME)


def units(read: StockFileRead, column: str = "unique_sku") -> list:  # type: ignore[type-arg]
    return read.units.column(column).to_pylist()


def returned(read: ReturnsFileRead, column: str = "unique_sku") -> list:  # type: ignore[type-arg]
    return read.returns.column(column).to_pylist()


def quarantine(read: StockFileRead | ReturnsFileRead) -> list[tuple[int, str]]:
    return [(q.line_number, q.reason) for q in read.quarantined]


# --- whole-file problems ---------------------------------------------------------------


def test_empty_file_is_reported_not_raised_and_holds_no_units(tmp_path: Path) -> None:
    read = read_stock_units(write_bytes(tmp_path, b""))
    assert read.empty and not read.usable and read.problems == ["file is empty"]
    returns = read_returns(write_bytes(tmp_path, b"", RETURNS_NAME))
    assert returns.empty and returns.returns.num_rows == 0


def test_header_only_file_is_reported_and_not_a_snapshot(tmp_path: Path) -> None:
    read = read_stock_units(stock_file(tmp_path))
    assert read.header_only and not read.empty and not read.usable
    assert read.problems == ["file holds a header and no rows"]


@pytest.mark.parametrize(("separator", "named"), [(";", "semicolons"), ("\t", "tabs")])
def test_wrong_delimiter_is_a_layout_error_naming_file_columns_and_separator(
    tmp_path: Path, separator: str, named: str
) -> None:
    path = stock_file(
        tmp_path, unit("U1").replace(",", separator), header=HEADER.replace(",", separator)
    )
    with pytest.raises(FileLayoutError) as caught:
        read_stock_units(path)
    message = str(caught.value)
    assert message.startswith(STOCK_NAME)
    assert "missing required columns account_code, snapshot_at, sku, unique_sku" in message
    assert f"separated by {named}" in message
    assert caught.value.path == path and "unique_sku" in caught.value.missing


def test_missing_required_columns_are_a_layout_error_naming_them(tmp_path: Path) -> None:
    header = HEADER.replace("unique_sku,", "").replace("last_event_at,", "")
    with pytest.raises(FileLayoutError) as caught:
        read_stock_units(stock_file(tmp_path, header=header))
    assert caught.value.missing == ("unique_sku", "last_event_at")
    assert str(caught.value).startswith(f"{STOCK_NAME}: not a stock units file")


def test_missing_optional_column_reads_as_empty(tmp_path: Path) -> None:
    header = HEADER.replace("rfid_epc,", "")
    row = unit("U1").replace("30AABBCC0000000000000001,", "")
    read = read_stock_units(stock_file(tmp_path, row, header=header))
    assert units(read) == ["U1"] and units(read, "rfid_epc") == [None]
    assert read.quarantined == []


def test_extra_columns_are_ignored_and_named(tmp_path: Path) -> None:
    read = read_stock_units(
        stock_file(tmp_path, unit("U1") + ",red,x", header=HEADER + ",colour,notes")
    )
    assert units(read) == ["U1"] and read.quarantined == []
    assert "ignored unknown columns: colour, notes" in read.problems


def test_a_repeated_column_is_a_layout_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileLayoutError, match=r"repeated columns in the header: sku"):
        read_stock_units(stock_file(tmp_path, header=HEADER + ",SKU"))


def test_byte_order_mark_and_crlf_are_read_as_plain_utf8(tmp_path: Path) -> None:
    text = "\r\n".join([HEADER, unit("U1"), unit("U2")]) + "\r\n"
    read = read_stock_units(write_bytes(tmp_path, b"\xef\xbb\xbf" + text.encode()))
    assert units(read, "account_code") == ["BRAND01", "BRAND01"]
    assert units(read, "line_number") == [2, 3] and read.problems == []
    assert not read.truncated


def test_bare_cr_line_ends_are_a_layout_error(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "\r".join([HEADER, unit("U1"), ""]).encode())
    with pytest.raises(FileLayoutError, match=r"stock_units_BRAND01.*bare CR"):
        read_stock_units(path)


def test_utf16_file_is_a_layout_error_saying_not_utf8(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "\n".join([HEADER, unit("U1"), ""]).encode("utf-16"))
    with pytest.raises(FileLayoutError, match=r"stock_units_BRAND01.*not UTF-8"):
        read_stock_units(path)


# --- rows that cannot be read ----------------------------------------------------------


def test_latin1_bytes_quarantine_only_their_row_with_line_and_raw_bytes(tmp_path: Path) -> None:
    bad = unit("U2", location="Caf\xe9 Bay").encode("latin-1")
    data = f"{HEADER}\n{unit('U1')}\n".encode() + bad + f"\n{unit('U3')}\n".encode()
    read = read_stock_units(write_bytes(tmp_path, data))
    assert units(read) == ["U1", "U3"] and units(read, "line_number") == [2, 4]
    (row,) = read.quarantined
    assert row.line_number == 3 and row.reason.startswith("not UTF-8: byte 0xE9")
    assert "Caf\\xe9 Bay" in row.raw_text  # the undecodable byte stays visible
    assert "1 row(s) quarantined" in read.problems


def test_latin1_bytes_in_a_returns_file_quarantine_only_their_row(tmp_path: Path) -> None:
    bad = a_return("R2", "U2", sku="R\xc9SUM\xc9").encode("cp1252")
    data = f"{RETURNS_HEADER}\n{a_return('R1', 'U1')}\n".encode() + bad + b"\n"
    read = read_returns(write_bytes(tmp_path, data, RETURNS_NAME))
    assert returned(read) == ["U1"]
    assert quarantine(read)[0][0] == 3 and "not UTF-8" in quarantine(read)[0][1]


def test_a_row_with_the_wrong_number_of_fields_is_quarantined_with_its_text(
    tmp_path: Path,
) -> None:
    read = read_stock_units(stock_file(tmp_path, unit("U1"), "BRAND01,oops", unit("U3")))
    assert units(read) == ["U1", "U3"]
    (row,) = read.quarantined
    assert (row.line_number, row.raw_text) == (3, "BRAND01,oops")
    assert row.reason == "expected 11 fields, found 2"


def test_a_cut_short_last_line_is_quarantined_and_flagged(tmp_path: Path) -> None:
    data = "\r\n".join([HEADER, unit("U1"), unit("U2")[:45]]).encode()
    read = read_stock_units(write_bytes(tmp_path, data))
    assert read.truncated and units(read) == ["U1"]
    (row,) = read.quarantined
    assert row.line_number == 3 and row.reason.startswith("file cut short")
    assert row.raw_text == unit("U2")[:45]
    assert "file cut short: no line end after the last line" in read.problems


def test_a_last_line_cut_inside_its_final_timestamp_is_quarantined(tmp_path: Path) -> None:
    cut = unit("U2", at="2026-03-0")  # every field there, the date cut short
    read = read_stock_units(write_bytes(tmp_path, f"{HEADER}\n{unit('U1')}\n{cut}".encode()))
    assert read.truncated and units(read) == ["U1"]
    assert quarantine(read) == [(3, "file cut short: last_event_at is not an ISO-8601 timestamp")]


def test_a_row_of_only_commas_is_a_blank_line_not_a_unit(tmp_path: Path) -> None:
    read = read_stock_units(stock_file(tmp_path, unit("U1"), "," * 10, unit("U3")))
    assert units(read) == ["U1", "U3"] and units(read, "line_number") == [2, 4]
    assert read.blank_lines == 1 and read.quarantined == []
    assert "1 blank line(s) skipped" in read.problems


def test_a_row_of_nul_bytes_is_quarantined(tmp_path: Path) -> None:
    data = f"{HEADER}\n{unit('U1')}\n".encode() + b"\x00\x00\x00\n"
    read = read_stock_units(write_bytes(tmp_path, data))
    assert units(read) == ["U1"] and quarantine(read)[0][0] == 3


@pytest.mark.parametrize("column", ["sku", "unique_sku", "status"])
def test_an_empty_key_field_quarantines_the_row_naming_the_field(
    tmp_path: Path, column: str
) -> None:
    fields = dict(zip(HEADER.split(","), unit("U2").split(","), strict=True))
    fields[column] = "  "
    read = read_stock_units(stock_file(tmp_path, unit("U1"), ",".join(fields.values())))
    assert units(read) == ["U1"] and quarantine(read) == [(3, f"empty {column}")]


# --- quoting ----------------------------------------------------------------------------


def test_quoted_fields_keep_embedded_commas_and_doubled_quotes(tmp_path: Path) -> None:
    row = unit("U1", location='"Bay ""4"", Shelf 2"', status='"Allocated, held"')
    read = read_stock_units(stock_file(tmp_path, row))
    assert units(read, "location_code") == ['Bay "4", Shelf 2']
    assert units(read, "status_raw") == ["Allocated, held"] and read.quarantined == []


def test_an_unclosed_quote_quarantines_its_line_and_not_the_rows_after_it(
    tmp_path: Path,
) -> None:
    broken = unit("U2", location='"Bay 4')
    read = read_stock_units(stock_file(tmp_path, unit("U1"), broken, unit("U3"), unit("U4")))
    assert units(read) == ["U1", "U3", "U4"] and units(read, "line_number") == [2, 4, 5]
    (row,) = read.quarantined
    assert row.line_number == 3 and row.raw_text == broken
    assert "quoted field is not closed on its line" in row.reason


def test_a_quoted_field_over_two_lines_quarantines_both_pieces_and_keeps_numbering(
    tmp_path: Path,
) -> None:
    spanning = unit("U2", location='"Bay\n4"')
    read = read_stock_units(stock_file(tmp_path, unit("U1"), spanning, unit("U3")))
    assert units(read) == ["U1", "U3"] and units(read, "line_number") == [2, 5]
    assert [q.line_number for q in read.quarantined] == [3, 4]


# --- duplicates and conflicts -----------------------------------------------------------


def test_duplicate_unit_rows_count_once(tmp_path: Path) -> None:
    read = read_stock_units(stock_file(tmp_path, unit("U1"), unit("U1"), unit("U2")))
    assert units(read) == ["U1", "U2"] and read.duplicates_removed == 1
    assert read.conflicts == []
    assert "1 duplicate unit row(s) superseded by a later row" in read.problems


def test_one_unit_with_conflicting_statuses_is_never_sellable_and_reported(
    tmp_path: Path,
) -> None:
    read = read_stock_units(stock_file(tmp_path, unit("U1"), unit("U1", "Quarantine")))
    assert units(read, "status") == [CONFLICT_STATUS] and units(read, "bucket") == ["unknown"]
    (conflict,) = read.conflicts
    assert conflict.line_numbers == (2, 3)
    assert "1 unit(s) with conflicting statuses made not sellable" in read.problems


# --- values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("last_event_at", "01/03/2026 10:00"),
        ("last_event_at", "yesterday"),
        ("snapshot_at", "2026-13-45T07:00:00Z"),
        ("expected_return_date", "next week"),
    ],
)
def test_a_date_in_the_wrong_format_quarantines_the_row_naming_the_field(
    tmp_path: Path, column: str, value: str
) -> None:
    fields = dict(zip(HEADER.split(","), unit("U2").split(","), strict=True))
    fields[column] = value
    bad = ",".join(fields.values())
    read = read_stock_units(stock_file(tmp_path, unit("U1"), bad))
    assert units(read) == ["U1"]
    (row,) = read.quarantined
    assert row.line_number == 3 and row.reason.startswith(column) and row.raw_text == bad


def test_a_last_event_after_the_snapshot_is_kept_and_reported_with_its_line(
    tmp_path: Path,
) -> None:
    read = read_stock_units(stock_file(tmp_path, unit("U1"), unit("U2", at="2030-01-01T00:00:00Z")))
    assert units(read) == ["U1", "U2"] and read.quarantined == []
    assert any(
        p.startswith("last_event_at later than snapshot_at on 1 row(s) (line 3)")
        for p in read.problems
    )


def test_a_return_received_after_the_file_stamp_is_kept_and_reported(tmp_path: Path) -> None:
    read = read_returns(
        returns_file(tmp_path, a_return("R1", "U1"), a_return("R2", "U2", received="2027-01-01"))
    )
    assert returned(read) == ["U1"]  # a date with no time is not a timestamp
    assert quarantine(read) == [(3, "received_at is not an ISO-8601 timestamp")]
    read = read_returns(
        returns_file(tmp_path, a_return("R2", "U2", received="2027-01-01T09:00:00Z"))
    )
    assert returned(read) == ["U2"]
    assert any(
        "received_at later than the file's time stamp" in p and "(line 2)" in p
        for p in read.problems
    )


def test_an_unknown_status_is_kept_and_never_sellable(tmp_path: Path) -> None:
    read = read_stock_units(stock_file(tmp_path, unit("U1", "Lost In Transit"), unit("U2")))
    assert units(read, "status_raw") == ["Lost In Transit", READY]
    assert units(read, "bucket") == ["unknown", "sellable"] and read.quarantined == []


def test_an_unknown_return_grade_is_kept_flagged_and_never_restocked(tmp_path: Path) -> None:
    read = read_returns(returns_file(tmp_path, a_return("R1", "U1", grade="Z", action="")))
    assert returned(read, "grade_known") == [False] and read.unknown_grades == 1
    matched = read.returns.to_pandas().assign(
        order_item_id=7, stock_id=1, stock_code="DRS-1", is_hire=False, unit_net=Decimal("10")
    )
    graded, problems = apply_grade_policy(matched)
    assert graded.empty
    (problem,) = problems
    assert problem.kind == ReturnProblemKind.UNKNOWN_GRADE and "not restocked" in problem.message


def test_an_unknown_return_action_is_kept_and_flagged(tmp_path: Path) -> None:
    read = read_returns(returns_file(tmp_path, a_return("R1", "U1", action="SHRED")))
    assert returned(read, "action_known") == [False] and read.unknown_actions == 1
    assert "1 row(s) with an unknown action_taken" in read.problems


def test_a_sku_with_a_hash_or_over_50_characters_is_kept_by_the_reader_and_named_by_the_rules(
    tmp_path: Path,
) -> None:
    long_sku = "DRS-" + "X" * 60
    read = read_stock_units(stock_file(tmp_path, unit("U1", sku="DRS#1"), unit("U2", sku=long_sku)))
    assert units(read, "sku") == ["DRS#1", long_sku] and read.quarantined == []
    assert code_problems("DRS#1") == ["contains '#': Khaos does not allow '#' in a stock code"]
    assert code_problems(long_sku) == ["is 64 characters long, more than 50"]


def test_whitespace_around_codes_is_trimmed_by_the_reader_and_flagged_by_the_rules(
    tmp_path: Path,
) -> None:
    read = read_stock_units(stock_file(tmp_path, unit(" U1 ", sku="\tDRS-1 ")))
    assert units(read, "sku") == ["DRS-1"] and units(read) == ["U1"]
    assert code_problems(" DRS-1") == ["has leading or trailing whitespace"]


def test_money_with_a_pound_sign_or_thousands_separators_is_read(tmp_path: Path) -> None:
    read = read_returns(
        returns_file(
            tmp_path,
            a_return("R1", "U1", cost="£12.50"),
            a_return("R2", "U2", cost='"1,250.00"'),
            a_return("R3", "U3", cost="7"),
        )
    )
    assert returned(read, "repair_cost") == [Decimal("12.50"), Decimal("1250.00"), Decimal("7.00")]
    assert read.quarantined == []


@pytest.mark.parametrize("cost", ['"12,50"', "abc", "-5.00", "12.505", "1e3", "NaN", "£-1"])
def test_money_that_is_not_an_amount_quarantines_the_row_naming_repair_cost(
    tmp_path: Path, cost: str
) -> None:
    read = read_returns(
        returns_file(tmp_path, a_return("R1", "U1", cost=cost), a_return("R2", "U2"))
    )
    assert returned(read) == ["U2"]
    (row,) = read.quarantined
    assert row.line_number == 2 and row.reason.startswith("repair_cost is not an amount of money")
    assert row.raw_text.endswith(cost)


# --- returns the domain cannot place -----------------------------------------------------


def _order(code: str = "SO1", quantity: int = 1) -> SalesOrder:
    return SalesOrder(
        order_id=1,
        order_code=code,
        order_date=datetime(2026, 3, 1, tzinfo=UTC),
        site_id=1,
        customer_urn="C1",
        lines=(
            OrderLine(
                order_item_id=7,
                stock_id=1,
                stock_code="DRS-1",
                quantity=quantity,
                unit_net=Decimal("10"),
            ),
        ),
    )


def test_a_return_without_an_order_is_kept_by_the_reader_and_unmatched_by_the_domain(
    tmp_path: Path,
) -> None:
    read = read_returns(returns_file(tmp_path, a_return("R1", "U1", order="", line="")))
    assert returned(read, "order_number") == [None]
    matched, problems = match_returns(read.returns.to_pandas(), {"SO1": _order()}, {})
    assert matched.empty and problems[0].kind == ReturnProblemKind.RETURN_UNMATCHED
    assert "names no order" in problems[0].message


def test_a_return_for_a_unit_never_despatched_is_a_problem_not_a_guess() -> None:
    frame = pd.DataFrame(
        [
            {
                "return_ref": "R1",
                "order_number": "SO1",
                "line_item_id": "7",
                "sku": "DRS-1",
                "unique_sku": "U1",
                "received_at": datetime(2026, 3, 5, tzinfo=UTC),
                "grade": "A",
                "action_taken": "RESTOCK",
            }
        ]
    )
    matched, problems = match_returns(frame, {"SO1": _order()}, {}, despatched={("SO1", 7): 0})
    assert matched.empty
    (problem,) = problems
    assert problem.kind == ReturnProblemKind.RETURN_UNMATCHED and problem.unique_sku == "U1"
    unknown, problems = match_returns(frame.assign(order_number="SO-NOPE"), {"SO1": _order()}, {})
    assert unknown.empty and "SO-NOPE is not known to Khaos" in problems[0].message


def test_the_same_returned_unit_twice_is_matched_once(tmp_path: Path) -> None:
    read = read_returns(returns_file(tmp_path, a_return("R1", "U1"), a_return("R1", "U1")))
    assert returned(read) == ["U1", "U1"]  # the reader keeps what ACS sent
    matched, problems = match_returns(
        read.returns.to_pandas(), {"SO1": _order(quantity=2)}, {}, despatched={("SO1", 7): 2}
    )
    assert len(matched) == 1 and problems == []
