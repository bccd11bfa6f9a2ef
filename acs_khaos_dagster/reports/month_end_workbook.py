"""The month-end pack's workbook and summary CSV. Part of ``reports.month_end`` (see its
docstring); code moved verbatim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill

from acs_khaos_dagster.reports._tables import (
    EXCEL_FORMATS,
    atomic_path,
    csv_value,
    fit_widths,
    format_value,
    guard_text_cell,
    style_header,
    write_csv,
    write_table_sheet,
)
from acs_khaos_dagster.reports.month_end_inputs import (
    README_SHEET,
    SUMMARY_SHEET,
    TABLES,
    MonthEndInputs,
    _header_rows,
)
from acs_khaos_dagster.reports.pack_registry import SummaryFigure
from acs_khaos_dagster.reports.pack_sheets import SIGN


def _write_summary_csv(
    inputs: MonthEndInputs, summary: tuple[SummaryFigure, ...], path: Path
) -> Path:
    rows = [
        [csv_value(key, "text"), csv_value(label, "text"), csv_value(value, "text"), "text"]
        for key, label, value in _header_rows(inputs)
    ]
    rows += [[f.key, f.label, csv_value(f.value, f.kind), f.kind] for f in summary]
    return write_csv(path, ["key", "figure", "value", "kind"], rows)


PREVIEW_FILL = PatternFill("solid", fgColor="FFE699")


def _mark(sheet: Any, inputs: MonthEndInputs) -> None:
    """The pack's status on the sheet's printed pages, and a preview's tab in amber."""
    text = f"{inputs.account_name} — {inputs.month} — {inputs.status}"
    sheet.oddHeader.center.text = text.replace("&", "&&")
    sheet.evenHeader.center.text = sheet.oddHeader.center.text
    if inputs.preview:
        sheet.sheet_properties.tabColor = "C00000"


def _banner(sheet: Any, inputs: MonthEndInputs, title: str) -> None:
    cell = sheet.cell(row=1, column=1, value=f"{title} — {inputs.account_name} — {inputs.status}")
    cell.font = Font(bold=True, size=12, color="C00000" if inputs.preview else "000000")
    if inputs.preview:
        cell.fill = PREVIEW_FILL
    guard_text_cell(cell)
    _mark(sheet, inputs)


def _write_workbook(inputs: MonthEndInputs, summary: tuple[SummaryFigure, ...], path: Path) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = SUMMARY_SHEET
    _banner(sheet, inputs, f"Month-end pack {inputs.month}")
    # Row 3 is the header of a plain table (Figure, Value, How it is computed, Key) so
    # the sheet filters, sorts and reads back like the others.
    header_row = 3
    headers = ["Figure", "Value", "How it is computed", "Key"]
    for col, text in enumerate(headers, start=1):
        sheet.cell(row=header_row, column=col, value=text)
    style_header(sheet, header_row, len(headers))
    widths = [len(h) for h in headers]
    row = header_row
    for key, label, value in _header_rows(inputs):
        row += 1
        for col, text in enumerate((label, value, "", key), start=1):
            sheet.cell(row=row, column=col, value=text)
    for figure in summary:
        row += 1
        sheet.cell(row=row, column=1, value=figure.label)
        cell = sheet.cell(
            row=row,
            column=2,
            value=int(figure.value) if figure.kind == "int" else float(figure.value),
        )
        cell.number_format = EXCEL_FORMATS[figure.kind]
        sheet.cell(row=row, column=3, value=figure.source)
        sheet.cell(row=row, column=4, value=figure.key)
        for i, text in enumerate(
            (figure.label, format_value(figure.value, figure.kind), figure.source, figure.key)
        ):
            widths[i] = max(widths[i], len(text))
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1).coordinate
    fit_widths(sheet, widths)
    # The header rows carry the account name and other text from the settings and data.
    for cells in sheet.iter_rows(min_row=2):
        for summary_cell in cells:
            guard_text_cell(summary_cell)
    _write_readme(book.create_sheet(README_SHEET), inputs)
    for spec in TABLES:
        table = book.create_sheet(spec.title)
        write_table_sheet(table, inputs.prepared[spec.key], spec, first_row=2)
        _banner(table, inputs, spec.title)
        for index, column in enumerate(spec.columns, start=1):
            table.cell(row=2, column=index).comment = Comment(column.doc, "acs-khaos")
    with atomic_path(path) as tmp:
        book.save(tmp)
    return path


def _write_readme(sheet: Any, inputs: MonthEndInputs) -> None:
    """What every sheet and column means, and the sign convention."""
    _banner(sheet, inputs, "Read me")
    lines = [
        ("Sign convention", "", f"Every unit difference is {SIGN}; values are units × CostPrice."),
        (
            "As at",
            "",
            "Every figure is as at the moment on the banner: the month's cut-off "
            "(23:59:59 UK time on its last day) for the final pack, the preview's own moment "
            "for a preview. Ages and days left are measured at that moment.",
        ),
        (
            "Costs",
            "",
            "CostPrice as at the period (recorded per reconciled day), never today's: "
            "rebuilding a past month gives the same figures.",
        ),
        (
            "Summary",
            "",
            "Each figure is the sum of one column of one sheet; the Summary says which.",
        ),
    ]
    header = ("Sheet", "Column", "Meaning")
    for col, text in enumerate(header, start=1):
        sheet.cell(row=3, column=col, value=text)
    style_header(sheet, 3, len(header))
    rows = [*lines, *((s.title, c.label, c.doc) for s in TABLES for c in s.columns)]
    widths = [len(h) for h in header]
    for number, values in enumerate(rows, start=4):
        for col, text in enumerate(values, start=1):
            guard_text_cell(sheet.cell(row=number, column=col, value=text))
            widths[col - 1] = max(widths[col - 1], len(text))
    sheet.freeze_panes = "A4"
    fit_widths(sheet, widths)
