"""Column specifications, input validation and the writers every report shares.

A report only ever writes the columns declared for its tables: any other column of an
input frame is dropped before anything is written, so a frame that happens to carry
customer data (names, addresses, e-mails) cannot leak it into a pack.

Text cells come from outside (Khaos stock codes, site names, ACS shipment and return
references): a spreadsheet would run one starting with ``= + - @``, a tab or a carriage
return as a formula (``=HYPERLINK("http://…"&B3)`` sends the row elsewhere). In a CSV
such a cell is written with a leading ``'``; in the workbook it is a string cell with
Excel's quote prefix, so it shows as typed and is never evaluated, even after an edit.
Numbers stay numbers: only cells of kind ``text`` are touched.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from acs_khaos_dagster.private_files import SHARED_FILE, private_dir

UK = ZoneInfo("Europe/London")
TEMPLATES = Path(__file__).parent / "templates"

Kind = Literal["text", "int", "number", "money", "datetime", "date"]

# Excel formats per kind; money is pounds sterling with two decimals, negatives in red.
EXCEL_FORMATS: dict[str, str] = {
    "int": "#,##0",
    "number": "#,##0.0",
    "money": '"£"#,##0.00;[Red]-"£"#,##0.00',
    "datetime": "yyyy-mm-dd hh:mm",
    "date": "yyyy-mm-dd",
}
HEADER_FILL = PatternFill("solid", fgColor="1F3A5F")
HEADER_FONT = Font(bold=True, color="FFFFFF")
MAX_COLUMN_WIDTH = 60
REPORT_DIR = 0o750
CENT = Decimal("0.01")


class ReportInputError(ValueError):
    """An input table does not match its declared columns or values."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    label: str
    doc: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TableSpec:
    """One input table: its key (CSV name), its sheet title and its columns in order."""

    key: str
    title: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)

    def describe(self) -> str:
        """The column list as text, for docstrings and error messages."""
        return "\n".join(f"- ``{c.name}`` ({c.kind}): {c.doc}" for c in self.columns)


def prepare(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """The frame reduced to the declared columns, typed, money rounded to pence.

    Raises ``ReportInputError`` naming the table and the column (and the first bad row)
    when a column is missing or a value cannot be read as its kind.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ReportInputError(f"{spec.key}: expected a pandas DataFrame, got {type(frame)!r}")
    missing = [name for name in spec.names if name not in frame.columns]
    if missing:
        raise ReportInputError(
            f"{spec.key}: missing column(s) {', '.join(missing)}; "
            f"expected columns: {', '.join(spec.names)}"
        )
    out = pd.DataFrame(index=range(len(frame)))
    source = frame.reset_index(drop=True)
    for column in spec.columns:
        out[column.name] = _coerce(source[column.name], column, spec.key)
    return out


def _coerce(series: pd.Series, column: Column, table: str) -> pd.Series:
    where = f"{table}.{column.name}"
    if not column.nullable:
        empty = series.isna()
        if empty.any():
            raise ReportInputError(f"{where}: empty value in row {int(empty.idxmax())}")
    if column.kind == "text":
        text = series.map(lambda v: None if _is_missing(v) else str(v)).astype("object")
        if column.allowed is not None:
            bad = ~text.isin(column.allowed) & text.notna()
            if bad.any():
                row = int(bad.idxmax())
                raise ReportInputError(
                    f"{where}: {text[row]!r} in row {row} is not one of {', '.join(column.allowed)}"
                )
        return text
    if column.kind in ("int", "number", "money"):
        numbers = pd.to_numeric(series.map(_to_float), errors="coerce")
        bad = numbers.isna() & series.notna()
        if bad.any():
            row = int(bad.idxmax())
            raise ReportInputError(f"{where}: {series[row]!r} in row {row} is not a number")
        if column.kind == "int":
            fraction = numbers.notna() & (numbers != numbers.round())
            if fraction.any():
                row = int(fraction.idxmax())
                raise ReportInputError(f"{where}: {series[row]!r} in row {row} is not whole")
            return numbers.round().astype("Int64")
        if column.kind == "money":
            return numbers.map(lambda v: v if pd.isna(v) else float(to_pence(v)))
        return numbers.astype("float64")
    if column.kind == "datetime":
        return series.map(lambda v: _uk_wall_time(v, where))
    if column.kind == "date":
        return series.map(lambda v: _as_date(v, where))
    raise AssertionError(column.kind)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


def _to_float(value: object) -> object:
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def _uk_wall_time(value: object, where: str) -> datetime | None:
    """UK wall-clock time without a zone (Excel cannot hold one); naive input is UK time."""
    if _is_missing(value):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ReportInputError(f"{where}: {value!r} is not a date-time") from exc
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(UK).tz_localize(None)
    return stamp.to_pydatetime().replace(microsecond=0)


def _as_date(value: object, where: str) -> date | None:
    if _is_missing(value):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return pd.Timestamp(value).date()
    except (TypeError, ValueError) as exc:
        raise ReportInputError(f"{where}: {value!r} is not a date") from exc


def to_pence(value: float | Decimal | int) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def money_sum(values: pd.Series) -> Decimal:
    """Exact sum of pence values (the floats in a prepared frame are already whole pence)."""
    return sum((to_pence(v) for v in values.dropna()), Decimal("0.00"))


def int_sum(values: pd.Series) -> int:
    return int(values.dropna().sum())


# --- formula injection ----------------------------------------------------------------------

# What makes Excel, LibreOffice or Google Sheets read a cell as a formula (OWASP's list).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_text(text: str) -> str:
    """A text cell for a CSV that no spreadsheet will evaluate.

    >>> print(neutralise_text("=SUM(A1:A9)"))
    '=SUM(A1:A9)
    >>> neutralise_text("DRESS-10")
    'DRESS-10'
    """
    return f"'{text}" if text.startswith(FORMULA_TRIGGERS) else text


def guard_text_cell(cell: Cell) -> None:
    """Make a workbook cell holding text a plain string that is never evaluated.

    openpyxl stores any string starting with ``=`` as a formula; the cell is turned back
    into a string, and cells starting with a trigger get Excel's quote prefix (what typing
    a leading ``'`` does), so even editing the cell later does not turn it into a formula.
    """
    if not isinstance(cell.value, str):
        return
    cell.data_type = "s"
    if cell.value.startswith(FORMULA_TRIGGERS):
        cell.quotePrefix = True


# --- text formatting (HTML and CSV) ---------------------------------------------------------


def format_value(value: object, kind: str) -> str:
    """How a value reads in the HTML report."""
    if _is_missing(value) or (value is not None and pd.isna(value)):
        return ""
    if kind == "money":
        amount = to_pence(value)  # type: ignore[arg-type]
        sign = "-" if amount < 0 else ""
        return f"{sign}£{abs(amount):,.2f}"
    if kind == "int":
        return f"{int(value):,}"  # type: ignore[call-overload]
    if kind == "number":
        return f"{float(value):,.1f}"  # type: ignore[arg-type]
    if kind == "datetime":
        return value.strftime("%Y-%m-%d %H:%M")  # type: ignore[attr-defined]
    if kind == "date":
        return value.isoformat()  # type: ignore[attr-defined]
    return str(value)


def csv_value(value: object, kind: str) -> str:
    """How a value reads in a CSV: plain numbers (pence for money), ISO dates, UK time."""
    if _is_missing(value) or (value is not None and pd.isna(value)):
        return ""
    if kind == "money":
        return f"{to_pence(value):.2f}"  # type: ignore[arg-type]
    if kind == "int":
        return str(int(value))  # type: ignore[call-overload]
    if kind == "number":
        return repr(float(value))  # type: ignore[arg-type]
    if kind == "datetime":
        return value.isoformat(sep=" ")  # type: ignore[attr-defined]
    if kind == "date":
        return value.isoformat()  # type: ignore[attr-defined]
    return neutralise_text(str(value))


def excel_value(value: object, kind: str) -> object:
    if _is_missing(value) or (value is not None and pd.isna(value)):
        return None
    if kind == "int":
        return int(value)  # type: ignore[call-overload]
    if kind in ("number", "money"):
        return float(value)  # type: ignore[arg-type]
    return value


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# --- writers -------------------------------------------------------------------------------


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` renamed over it on success, so a re-run never
    leaves a half-written file where a reader could find it.

    Reports are ``0640`` in ``0750`` folders: readable by the service's group (give a
    finance share that group), never by every user of the machine.
    """
    private_dir(path.parent, REPORT_DIR)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, SHARED_FILE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_table_csv(path: Path, frame: pd.DataFrame, spec: TableSpec) -> Path:
    kinds = [column.kind for column in spec.columns]
    rows = [
        [csv_value(value, kind) for value, kind in zip(row, kinds, strict=True)]
        for row in frame[spec.names].itertuples(index=False, name=None)
    ]
    return write_csv(path, spec.names, rows)


def style_header(sheet: Worksheet, row: int, count: int) -> None:
    for col in range(1, count + 1):
        cell = sheet.cell(row=row, column=col)
        cell.fill = HEADER_FILL
        cell.font = HEADER_FONT
        cell.alignment = Alignment(vertical="center", wrap_text=True)


def fit_widths(sheet: Worksheet, widths: Sequence[int]) -> None:
    for index, width in enumerate(widths, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = min(max(width, 8) + 2, MAX_COLUMN_WIDTH)


def write_table_sheet(
    sheet: Worksheet, frame: pd.DataFrame, spec: TableSpec, first_row: int = 1
) -> None:
    """Header at ``first_row`` (styled, frozen, filterable), one row per frame row below it,
    typed cells. Rows above the header are left for a banner."""
    header = first_row
    for index, column in enumerate(spec.columns, start=1):
        sheet.cell(row=header, column=index, value=column.label)
    style_header(sheet, header, len(spec.columns))
    widths = [len(column.label) for column in spec.columns]
    for offset, row in enumerate(frame[spec.names].itertuples(index=False, name=None), start=1):
        for index, (value, column) in enumerate(zip(row, spec.columns, strict=True), start=1):
            sheet.cell(row=header + offset, column=index, value=excel_value(value, column.kind))
            widths[index - 1] = max(widths[index - 1], len(format_value(value, column.kind)))
    last = header + len(frame)
    for index, column in enumerate(spec.columns, start=1):
        number_format = EXCEL_FORMATS.get(column.kind)
        for (cell,) in sheet.iter_rows(
            min_row=header + 1, max_row=last, min_col=index, max_col=index
        ):
            if number_format:
                cell.number_format = number_format
            elif column.kind == "text":
                guard_text_cell(cell)
    sheet.freeze_panes = sheet.cell(row=header + 1, column=1).coordinate
    if len(frame):
        end = sheet.cell(row=last, column=len(spec.columns)).coordinate
        sheet.auto_filter.ref = f"A{header}:{end}"
    fit_widths(sheet, widths)


def template_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every value is escaped unless a chart marks itself safe
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = format_value
    return env


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def html_rows(
    frame: pd.DataFrame, spec: TableSpec, order: Callable[[pd.DataFrame], pd.DataFrame], limit: int
) -> list[list[tuple[str, str]]]:
    """The top ``limit`` rows after ``order``, as (text, kind) cells for a template."""
    top = order(frame).head(limit)
    return [
        [(format_value(v, c.kind), c.kind) for v, c in zip(row, spec.columns, strict=True)]
        for row in top[spec.names].itertuples(index=False, name=None)
    ]
