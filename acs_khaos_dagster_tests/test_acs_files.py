"""Reading ACS's stock-units and returns CSV drops."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from acs_khaos_dagster.connectors.acs.files import (
    FileLayoutError,
    read_returns,
    read_stock_units,
)
from acs_khaos_dagster.connectors.acs.files import stock_units as stock_units_reader
from acs_khaos_dagster.domain.stock_status import CONFLICT_STATUS

HEADER = (
    "account_code,snapshot_at,sku,unique_sku,rfid_epc,status,location_code,grade,"
    "last_event_at,order_number,expected_return_date"
)
RETURNS_HEADER = (
    "return_ref,order_number,line_item_id,sku,unique_sku,received_at,grade,"
    "action_taken,action_reason,defect_codes,repair_cost"
)


def unit(
    unique: str,
    status: str = "In Warehouse - Ready For Customer",
    at: str = "2026-03-01T10:00:00Z",
    sku: str = "DRS-0001-NVY-10",
) -> str:
    return (
        f"BRAND01,2026-03-02T07:00:00Z,{sku},{unique},30AABBCC0000000000000001,{status},"
        f"A01-01-A,A,{at},,"
    )


def write(
    tmp_path: Path,
    text: str,
    *,
    name: str = "stock_units_BRAND01_20260302070000.csv",
    newline: str = "\n",
    bom: bool = False,
) -> Path:
    path = tmp_path / name
    data = text.replace("\n", newline).encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def stock(tmp_path: Path, *rows: str, **kwargs: object) -> Path:
    return write(tmp_path, "\n".join([HEADER, *rows]) + "\n", **kwargs)  # type: ignore[arg-type]


def column(read, name: str) -> list:  # type: ignore[no-untyped-def]
    return read.units.column(name).to_pylist()


def test_reads_units_with_typed_columns(tmp_path: Path) -> None:
    read = read_stock_units(stock(tmp_path, unit("U1"), unit("U2", "Allocated")))
    assert read.rows_read == 2 and read.quarantined == [] and read.problems == []
    assert column(read, "unique_sku") == ["U1", "U2"]
    assert column(read, "bucket") == ["sellable", "allocated"]
    assert read.snapshot_at == datetime(2026, 3, 2, 7, tzinfo=UTC)
    assert read.account_code == "BRAND01"
    assert column(read, "last_event_at")[0] == datetime(2026, 3, 1, 10, tzinfo=UTC)


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    read = read_stock_units(stock(tmp_path, unit("U1"), bom=True))
    assert column(read, "account_code") == ["BRAND01"] and read.quarantined == []


def test_crlf_line_ends_are_read(tmp_path: Path) -> None:
    read = read_stock_units(stock(tmp_path, unit("U1"), unit("U2"), newline="\r\n"))
    assert column(read, "expected_return_date") == [None, None]
    assert column(read, "unique_sku") == ["U1", "U2"] and not read.truncated


def test_header_names_match_whatever_their_case_and_spacing(tmp_path: Path) -> None:
    header = HEADER.replace("sku,unique_sku", "SKU, Unique_Sku ").replace("status", "Status")
    read = read_stock_units(write(tmp_path, f"{header}\n{unit('U1')}\n"))
    assert column(read, "sku") == ["DRS-0001-NVY-10"] and column(read, "unique_sku") == ["U1"]


def test_columns_in_another_order_are_read_by_name(tmp_path: Path) -> None:
    names = HEADER.split(",")
    values = unit("U1").split(",")
    text = ",".join(reversed(names)) + "\n" + ",".join(reversed(values)) + "\n"
    read = read_stock_units(write(tmp_path, text))
    assert column(read, "unique_sku") == ["U1"] and column(read, "bucket") == ["sellable"]


def test_quoted_fields_may_hold_commas(tmp_path: Path) -> None:
    row = unit("U1").replace("A01-01-A", '"Bay 4, Shelf 2"')
    read = read_stock_units(stock(tmp_path, row))
    assert column(read, "location_code") == ["Bay 4, Shelf 2"]


def test_a_row_with_the_wrong_field_count_is_quarantined_and_the_rest_kept(
    tmp_path: Path,
) -> None:
    read = read_stock_units(stock(tmp_path, unit("U1"), "BRAND01,oops,DRS-1", unit("U3")))
    assert column(read, "unique_sku") == ["U1", "U3"]
    (bad,) = read.quarantined
    assert bad.line_number == 3 and bad.raw_text == "BRAND01,oops,DRS-1"
    assert "expected 11 fields, found 3" in bad.reason


def test_an_unparseable_timestamp_is_quarantined_with_its_raw_text(tmp_path: Path) -> None:
    bad_row = unit("U2", at="yesterday")
    read = read_stock_units(stock(tmp_path, unit("U1"), bad_row))
    assert column(read, "unique_sku") == ["U1"]
    (bad,) = read.quarantined
    assert (bad.line_number, bad.raw_text) == (3, bad_row) and "last_event_at" in bad.reason


def test_an_empty_unique_sku_is_quarantined(tmp_path: Path) -> None:
    read = read_stock_units(stock(tmp_path, unit(""), unit("U2")))
    assert [q.reason for q in read.quarantined] == ["empty unique_sku"]
    assert column(read, "unique_sku") == ["U2"]


def test_an_empty_file_is_reported(tmp_path: Path) -> None:
    read = read_stock_units(write(tmp_path, ""))
    assert read.empty and read.units.num_rows == 0 and read.problems == ["file is empty"]


def test_a_header_only_file_is_reported(tmp_path: Path) -> None:
    read = read_stock_units(write(tmp_path, HEADER + "\r\n"))
    assert read.header_only and not read.empty and read.units.num_rows == 0


def test_a_file_cut_short_is_flagged_and_its_partial_line_quarantined(tmp_path: Path) -> None:
    text = "\n".join([HEADER, unit("U1"), unit("U2")[:40]])
    read = read_stock_units(write(tmp_path, text))
    assert read.truncated and column(read, "unique_sku") == ["U1"]
    (bad,) = read.quarantined
    assert bad.line_number == 3 and bad.reason.startswith("file cut short")


def test_a_last_value_cut_mid_timestamp_does_not_pass(tmp_path: Path) -> None:
    cut = unit("U2")[: -len("Z,,")].rsplit(",", 1)[0] + ",2026-03-0,,"
    read = read_stock_units(write(tmp_path, "\n".join([HEADER, unit("U1"), cut])))
    assert read.truncated and [q.line_number for q in read.quarantined] == [3]


def test_missing_required_columns_raise_naming_file_and_columns(tmp_path: Path) -> None:
    header = HEADER.replace("unique_sku,", "").replace("status,", "")
    path = write(tmp_path, header + "\n")
    with pytest.raises(FileLayoutError, match=r"stock_units_BRAND01.*unique_sku, status") as err:
        read_stock_units(path)
    assert err.value.missing == ("unique_sku", "status")


def test_a_unit_listed_twice_keeps_its_latest_row(tmp_path: Path) -> None:
    read = read_stock_units(
        stock(
            tmp_path,
            unit("U1", "Quarantine", at="2026-03-01T12:00:00Z"),
            unit("U1", "Cleaning", at="2026-03-01T09:00:00Z"),
            unit("U2"),
        )
    )
    assert column(read, "unique_sku") == ["U1", "U2"]
    assert column(read, "status")[0] == "quarantine"
    assert read.duplicates_removed == 1 and read.conflicts == []


def test_tied_rows_with_different_statuses_are_not_sellable_and_reported(
    tmp_path: Path,
) -> None:
    read = read_stock_units(stock(tmp_path, unit("U1"), unit("U1", "Quarantine"), unit("U2")))
    assert column(read, "unique_sku") == ["U1", "U2"]
    assert column(read, "status")[0] == CONFLICT_STATUS
    assert column(read, "bucket") == ["unknown", "sellable"]
    (conflict,) = read.conflicts
    assert conflict.unique_sku == "U1" and conflict.line_numbers == (2, 3)
    assert conflict.statuses == ("in warehouse - ready for customer", "quarantine")


def test_tied_rows_with_the_same_status_in_another_spelling_are_no_conflict(
    tmp_path: Path,
) -> None:
    shouted = unit("U1", "IN WAREHOUSE–READY FOR CUSTOMER")
    read = read_stock_units(stock(tmp_path, unit("U1"), shouted))
    assert read.conflicts == [] and read.duplicates_removed == 1
    assert column(read, "bucket") == ["sellable"]


def test_status_spellings_share_one_key(tmp_path: Path) -> None:
    spellings = [
        "In Warehouse - Ready For Customer",
        "in warehouse – ready for customer",
        "IN WAREHOUSE-READY FOR CUSTOMER",
    ]
    read = read_stock_units(stock(tmp_path, *(unit(f"U{i}", s) for i, s in enumerate(spellings))))
    assert set(column(read, "status")) == {"in warehouse - ready for customer"}
    assert column(read, "status_raw") == spellings


def test_an_unknown_status_stays_unknown(tmp_path: Path) -> None:
    read = read_stock_units(stock(tmp_path, unit("U1", "Lost In Transit")))
    assert column(read, "status") == ["lost in transit"]
    assert column(read, "bucket") == ["unknown"]


def test_blank_lines_are_skipped_not_quarantined(tmp_path: Path) -> None:
    read = read_stock_units(stock(tmp_path, unit("U1"), "", unit("U2")))
    assert column(read, "unique_sku") == ["U1", "U2"] and read.quarantined == []
    assert read.blank_lines == 1 and column(read, "line_number") == [2, 4]


# --- returns -----------------------------------------------------------------------------


def returns_file(tmp_path: Path, *rows: str) -> Path:
    return write(
        tmp_path,
        "\n".join([RETURNS_HEADER, *rows]) + "\n",
        name="returns_BRAND01_20260310090000.csv",
    )


def test_returns_are_typed(tmp_path: Path) -> None:
    read = read_returns(
        returns_file(
            tmp_path,
            "R1,SO1,700001,DRS-1,U1,2026-03-05T10:00:00Z,b,repair,Loose seam,"
            " SEAM_SPLIT | STAIN ,12.50",
            "R2,,,DRS-1,U9,2026-03-05T11:00:00Z,A,RESTOCK,,,",
        )
    )
    rows = read.returns.to_pylist()
    assert read.quarantined == [] and read.unknown_grades == 0
    assert rows[0]["grade"] == "B" and rows[0]["action_taken"] == "REPAIR"
    assert rows[0]["defect_codes"] == ["SEAM_SPLIT", "STAIN"]
    assert rows[0]["repair_cost"] == Decimal("12.50")
    assert rows[0]["received_at"] == datetime(2026, 3, 5, 10, tzinfo=UTC)
    assert rows[1]["order_number"] is None and rows[1]["defect_codes"] == []
    assert rows[1]["repair_cost"] is None


@pytest.mark.parametrize("grade", ["A", "b", " c ", "ber", "BER"])
def test_known_grades_are_accepted_in_any_case(tmp_path: Path, grade: str) -> None:
    read = read_returns(
        returns_file(tmp_path, f"R1,SO1,7,DRS-1,U1,2026-03-05T10:00:00Z,{grade},RESTOCK,,,")
    )
    assert read.returns.column("grade_known").to_pylist() == [True]


def test_an_unknown_grade_is_kept_and_flagged(tmp_path: Path) -> None:
    read = read_returns(
        returns_file(tmp_path, "R1,SO1,7,DRS-1,U1,2026-03-05T10:00:00Z,D,RESTOCK,,,")
    )
    assert read.returns.column("grade").to_pylist() == ["D"]
    assert read.returns.column("grade_known").to_pylist() == [False]
    assert read.unknown_grades == 1 and read.quarantined == []


def test_an_unknown_action_is_kept_and_flagged(tmp_path: Path) -> None:
    read = read_returns(returns_file(tmp_path, "R1,SO1,7,DRS-1,U1,2026-03-05T10:00:00Z,A,SHRED,,,"))
    assert read.returns.column("action_known").to_pylist() == [False]
    assert read.unknown_actions == 1


def test_a_bad_repair_cost_is_quarantined(tmp_path: Path) -> None:
    read = read_returns(
        returns_file(
            tmp_path,
            "R1,SO1,7,DRS-1,U1,2026-03-05T10:00:00Z,B,REPAIR,,,twelve",
            "R2,SO1,8,DRS-1,U2,2026-03-05T10:00:00Z,B,REPAIR,,,£7.00",
        )
    )
    assert [q.line_number for q in read.quarantined] == [2]
    assert read.returns.column("repair_cost").to_pylist() == [Decimal("7.00")]


# --- a clean file and the careful read -----------------------------------------------------
# A clean file is read in one typed pass; a file with any row to quarantine is read the
# careful way. Appending one bad row at the end sends the same rows down the careful way,
# so the two reads must agree on every unit.

BAD_ROW = "BRAND01,2026-03-02T07:00:00Z,DRS-0001-NVY-10,U999,,Cleaning,,,yesterday,,"


def both_ways(tmp_path: Path, *rows: str) -> tuple[object, object]:
    def not_careful(*_args: object) -> None:
        raise AssertionError("a clean file was read the careful way")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stock_units_reader, "_read_raw", not_careful)
        clean = read_stock_units(stock(tmp_path / "clean", *rows))
    careful = read_stock_units(stock(tmp_path / "careful", *rows, BAD_ROW))
    assert clean.quarantined == [] and [q.line_number for q in careful.quarantined] == [
        len(rows) + 2
    ]
    return clean, careful


@pytest.fixture
def two_folders(tmp_path: Path) -> Path:
    (tmp_path / "clean").mkdir()
    (tmp_path / "careful").mkdir()
    return tmp_path


def test_a_clean_file_reads_the_same_units_as_the_careful_read(two_folders: Path) -> None:
    rows = (
        unit("U3", at="2026-03-01T10:00:00Z"),
        unit("U1", "Allocated"),
        unit("U2", '"Allocated, held"', sku="TOP-0001-BLK-S"),
        "BRAND01,2026-03-02T07:00:00Z,HIRE-1-S,U7,,With Customer,,B,2026-02-20T09:00:00+01:00,"
        "SO-42,2026-03-09",
        unit("U3", "Cleaning", at="2026-03-01T11:00:00Z"),  # the same unit, later
        unit("U4", "Lost In Transit"),
    )
    clean, careful = both_ways(two_folders, *rows)
    assert clean.units.to_pylist() == careful.units.to_pylist()  # type: ignore[attr-defined]
    assert clean.units.schema == careful.units.schema  # type: ignore[attr-defined]
    assert clean.duplicates_removed == careful.duplicates_removed == 1  # type: ignore[attr-defined]
    assert clean.problems == careful.problems[:-1]  # type: ignore[attr-defined]
    returns = dict(
        zip(column(clean, "unique_sku"), column(clean, "expected_return_date"), strict=True)
    )
    assert returns["U7"] == datetime(2026, 3, 9, tzinfo=UTC)


def test_an_hour_with_its_zone_is_read_as_a_whole_hour_either_way(two_folders: Path) -> None:
    clean, careful = both_ways(two_folders, unit("U1", at="2026-03-01T10Z"))
    assert column(clean, "last_event_at") == [datetime(2026, 3, 1, 10, tzinfo=UTC)]
    assert column(careful, "last_event_at") == column(clean, "last_event_at")


def test_an_hour_without_a_zone_is_quarantined(tmp_path: Path) -> None:
    read = read_stock_units(stock(tmp_path, unit("U1"), unit("U2", at="2026-03-01T10")))
    assert column(read, "unique_sku") == ["U1"]
    assert read.quarantined[0].reason == "last_event_at is not an ISO-8601 timestamp"


def test_a_fraction_finer_than_a_microsecond_is_cut_to_the_microsecond(tmp_path: Path) -> None:
    read = read_stock_units(stock(tmp_path, unit("U1", at="2026-03-01T10:00:00.123456789Z")))
    assert read.quarantined == []
    assert column(read, "last_event_at") == [datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)]


def test_units_out_of_unit_order_are_still_de_duplicated(tmp_path: Path) -> None:
    read = read_stock_units(
        stock(tmp_path, unit("U2"), unit("U1"), unit("U2", "Packed", at="2026-03-01T12:00:00Z"))
    )
    assert sorted(column(read, "unique_sku")) == ["U1", "U2"] and read.duplicates_removed == 1
    assert dict(zip(column(read, "unique_sku"), column(read, "status"), strict=True))["U2"] == (
        "packed"
    )


def test_bytes_that_are_not_utf8_in_an_unknown_column_quarantine_their_row(
    tmp_path: Path,
) -> None:
    text = (HEADER + ",note\n" + unit("U1") + ",ok\n" + unit("U2") + ",caf").encode()
    path = tmp_path / "stock_units_BRAND01_20260302070000.csv"
    path.write_bytes(text + b"\xe9\n")
    read = read_stock_units(path)
    assert column(read, "unique_sku") == ["U1"]
    assert [q.line_number for q in read.quarantined] == [3]
    assert "not UTF-8" in read.quarantined[0].reason


def test_a_value_with_spaces_around_it_sends_the_file_the_careful_way(tmp_path: Path) -> None:
    read = read_stock_units(stock(tmp_path, unit("U1"), unit(" U2 ")))
    assert column(read, "unique_sku") == ["U1", "U2"] and read.quarantined == []
