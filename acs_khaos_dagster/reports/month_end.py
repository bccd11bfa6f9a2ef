"""The finance month-end pack: reconciliation tables in, workbook + CSVs + HTML out.

Pure rendering: no store, no Dagster, no clock. The monthly asset builds
``MonthEndInputs`` from the reconciliation assets — as at the cut-off (23:59:59 UK time
on the last day of the month), or as at a preview's own moment — and calls
``render_month_end_pack``. The sheets are a registry (``SHEETS``, see
``reports.pack_registry``).

Every figure on the summary is computed once from the (prepared) tables, written as a
value to the workbook's Summary sheet, to ``summary.csv`` and to the HTML report (each
figure in an element ``id="total-<key>"`` with ``data-value``), and is the plain sum of
one column of the rows on the matching sheet, so finance can tick it back. The Read me
sheet describes every column and the sign convention (ACS − Khaos); each header cell
carries its description as a comment.

A **preview** is marked as such on every sheet (a banner row and the printed page
header), in every file name (``..._preview``) and on the HTML page, and is written to its
own names, so it can never overwrite a final pack.

Only the declared columns are ever written (see ``_tables.prepare``): customer names,
addresses or e-mails in an input frame never reach the pack, only references.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill

from acs_khaos_dagster.private_files import private_dir
from acs_khaos_dagster.reports._tables import (
    EXCEL_FORMATS,
    REPORT_DIR,
    UK,
    ReportInputError,
    TableSpec,
    atomic_path,
    csv_value,
    fit_widths,
    format_value,
    guard_text_cell,
    html_rows,
    prepare,
    style_header,
    template_environment,
    write_csv,
    write_table_csv,
    write_table_sheet,
    write_text,
)
from acs_khaos_dagster.reports.charts import Series, bar_chart, hbar_chart, line_chart
from acs_khaos_dagster.reports.pack_close_sheets import CLOSE_SHEETS
from acs_khaos_dagster.reports.pack_extra_sheets import EXTRA_SHEETS
from acs_khaos_dagster.reports.pack_registry import PackSheet, SummaryFigure
from acs_khaos_dagster.reports.pack_sheets import CORE_SHEETS, SIGN

# How many rows of each table the HTML shows; the workbook and CSVs have them all.
HTML_TOP_ROWS = 15
# Every sheet of the pack, in workbook order (after the Summary and the Read me). A new
# sheet is one more ``PackSheet`` here; its frame comes in ``MonthEndInputs.sheets``.
SHEETS: tuple[PackSheet, ...] = (*CORE_SHEETS, *CLOSE_SHEETS, *EXTRA_SHEETS)
# Sheets whose frame may be left out (an empty sheet): those read from Khaos at build time.
_OPTIONAL = frozenset(sheet.key for sheet in EXTRA_SHEETS)
TABLES: tuple[TableSpec, ...] = tuple(sheet.spec for sheet in SHEETS)
SUMMARY_SHEET = "Summary"
README_SHEET = "Read me"
_NAMED = tuple(sheet.key for sheet in CORE_SHEETS)


@dataclass(frozen=True, eq=False)  # frames do not compare as booleans
class MonthEndInputs:
    """Everything the pack shows, for one month.

    ``month`` is ``YYYY-MM``; ``generated_at`` is when the pack was built (shown in UK
    time; pass the integration's clock, not the wall clock); ``account_name`` is the
    brand/account the pack is for. ``as_at`` is the moment the figures are as at: the
    month's cut-off (the default) for the final pack, the preview's own moment for a
    preview (``preview=True``; it must not be later than the cut-off).

    The six core frames are named fields; every other sheet of ``SHEETS`` comes in
    ``sheets[key]``. Each must have at least its sheet's declared columns (others are
    ignored and never written); ``describe_columns()`` lists them with their meaning.
    Money may be float, int or Decimal; it is rounded to pence. Construction validates
    and raises ``ReportInputError`` naming the table and the column.

    Ties checked here: a stock row's difference = acs_units − khaos_level = in transit +
    unconfirmed pushes + unexplained; the Drift by day row of the as-at day equals the
    Stock sheet's unexplained drift (units and £).
    """

    month: str
    generated_at: datetime
    account_name: str
    stock_reconciliation: pd.DataFrame
    order_to_cash: pd.DataFrame
    returns: pd.DataFrame
    exceptions: pd.DataFrame
    drift_by_day: pd.DataFrame
    non_sellable_value: pd.DataFrame
    sheets: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    as_at: datetime | None = None
    preview: bool = False
    prepared: Mapping[str, pd.DataFrame] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", self.month):
            raise ReportInputError(f"month: {self.month!r} is not YYYY-MM")
        if not isinstance(self.generated_at, datetime):
            raise ReportInputError("generated_at: expected a datetime")
        cutoff = _cutoff(self.month)
        if self.as_at is None:
            if self.preview:
                raise ReportInputError("as_at: a preview needs its own as-at moment")
            object.__setattr__(self, "as_at", cutoff)
        elif self.as_at.tzinfo is None:
            raise ReportInputError("as_at: must be timezone-aware")
        elif self.as_at > cutoff or (not self.preview and self.as_at != cutoff):
            raise ReportInputError(
                f"as_at: {self.as_at.isoformat()} is not the cut-off of {self.month} "
                "(a pack before the cut-off is a preview)"
            )
        unknown = sorted(set(self.sheets) - {s.key for s in SHEETS})
        if unknown:
            raise ReportInputError(f"sheets: unknown table(s) {', '.join(unknown)}")
        prepared = {}
        for sheet in SHEETS:
            frame = getattr(self, sheet.key) if sheet.key in _NAMED else self.sheets.get(sheet.key)
            if frame is None and sheet.key in _OPTIONAL:
                frame = pd.DataFrame(columns=sheet.spec.names)
            if frame is None:
                raise ReportInputError(
                    f"{sheet.key}: missing table; expected columns: {', '.join(sheet.spec.names)}"
                )
            prepared[sheet.key] = prepare(frame, sheet.spec)
        for sheet in SHEETS:
            if sheet.check is not None:
                sheet.check(prepared)
        _check_drift(prepared, self.month, self.as_day)
        object.__setattr__(self, "prepared", prepared)

    @property
    def first_day(self) -> date:
        year, month = (int(part) for part in self.month.split("-"))
        return date(year, month, 1)

    @property
    def as_day(self) -> date:
        assert self.as_at is not None
        return self.as_at.astimezone(UK).date()

    @property
    def status(self) -> str:
        """What the pack is, in words, for every banner, page and file."""
        assert self.as_at is not None
        at = self.as_at.astimezone(UK).strftime("%d %b %Y %H:%M:%S")
        if self.preview:
            return (
                f"PREVIEW as at {at} UK time — {self.month} is not closed; these are not the "
                "month's final figures"
            )
        return f"FINAL as at the cut-off, {at} UK time"


def _cutoff(month: str) -> datetime:
    """23:59:59 UK time on the month's last day (``reconciliation.month_end_cutoff``)."""
    year, number = (int(p) for p in month.split("-"))
    first_next = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UK)
    return first_next.astimezone(UTC) - timedelta(seconds=1)


def _check_drift(tables: Mapping[str, pd.DataFrame], month: str, as_day: date) -> None:
    days = tables["drift_by_day"]["day"]
    outside = days.map(lambda d: d.strftime("%Y-%m") != month)
    if outside.any():
        row = int(outside.idxmax())
        raise ReportInputError(f"drift_by_day.day: {days[row]} in row {row} is not in {month}")
    # The summary's drift and the drift sheet's as-at day are the same figure.
    same_day = tables["drift_by_day"].loc[days == as_day]
    stock = tables["stock_reconciliation"]
    drift = stock.loc[stock["classification"] == "unexplained"]
    units = int(drift["unexplained"].abs().sum())
    value = round(float(drift["unexplained_value"].abs().fillna(0).sum()), 2)
    for row in same_day.itertuples(index=False):
        if int(row.unexplained_units) != units or round(float(row.unexplained_value), 2) != value:
            raise ReportInputError(
                f"drift_by_day: {as_day} shows {row.unexplained_units} unit(s), "
                f"£{row.unexplained_value:,.2f}; the stock sheet's unexplained drift is "
                f"{units} unit(s), £{value:,.2f}"
            )


@dataclass(frozen=True)
class PackFiles:
    workbook: Path
    html: Path
    csvs: Mapping[str, Path]  # "summary" and each table key -> path
    summary: tuple[SummaryFigure, ...]

    def totals(self) -> dict[str, int | Decimal]:
        return {figure.key: figure.value for figure in self.summary}


def summarise(inputs: MonthEndInputs) -> tuple[SummaryFigure, ...]:
    """The summary figures, sheet by sheet, each a plain sum over rows of one sheet."""
    return tuple(figure for sheet in SHEETS for figure in sheet.figures(inputs.prepared))


def describe_columns() -> str:
    """Every sheet's columns and their meaning, as text (for docs and docstrings)."""
    return "\n\n".join(f"{spec.title} (``{spec.key}``):\n{spec.describe()}" for spec in TABLES)


def _header_rows(inputs: MonthEndInputs) -> list[tuple[str, str, str]]:
    generated = inputs.generated_at
    if generated.tzinfo is not None:
        generated = generated.astimezone(UK)
    assert inputs.as_at is not None
    return [
        ("month", "Month", inputs.month),
        ("account", "Account", inputs.account_name),
        ("generated-at", "Generated (UK time)", generated.strftime("%Y-%m-%d %H:%M")),
        ("as-at", "As at (UK time)", inputs.as_at.astimezone(UK).strftime("%Y-%m-%d %H:%M:%S")),
        ("pack", "Pack", "PREVIEW" if inputs.preview else "FINAL"),
    ]


def pack_names(month: str, preview: bool) -> dict[str, str]:
    """File names: a preview's all end in ``_preview``, so it never replaces a final pack."""
    tail = "_preview" if preview else ""
    names = {"workbook": f"month_end_{month}{tail}.xlsx", "html": f"month_end_{month}{tail}.html"}
    names["summary"] = f"summary{tail}.csv"
    names.update({spec.key: f"{spec.key}{tail}.csv" for spec in TABLES})
    return names


def render_month_end_pack(inputs: MonthEndInputs, out_dir: Path | str) -> PackFiles:
    """Write the workbook, one CSV per sheet (plus the summary) and the HTML report.

    Files (``pack_names``; re-running replaces them atomically): final
    ``month_end_<YYYY-MM>.xlsx``, ``month_end_<YYYY-MM>.html``, ``summary.csv`` and
    ``<table key>.csv``; a preview the same names ending in ``_preview``.
    """
    out = Path(out_dir)
    private_dir(out, REPORT_DIR)
    names = pack_names(inputs.month, inputs.preview)
    summary = summarise(inputs)
    workbook = _write_workbook(inputs, summary, out / names["workbook"])
    csvs = {"summary": _write_summary_csv(inputs, summary, out / names["summary"])}
    for spec in TABLES:
        csvs[spec.key] = write_table_csv(out / names[spec.key], inputs.prepared[spec.key], spec)
    html = write_text(out / names["html"], render_html(inputs, summary))
    return PackFiles(workbook=workbook, html=html, csvs=csvs, summary=summary)


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


# --- HTML -----------------------------------------------------------------------------------


def _charts(inputs: MonthEndInputs, summary: tuple[SummaryFigure, ...]) -> list[object]:
    t = inputs.prepared
    drift = t["drift_by_day"].sort_values("day")
    days = [d.strftime("%d %b") for d in drift["day"]]
    o2c = t["order_to_cash"]
    waiting = o2c[o2c["status"] != "invoiced"]
    # Buckets in age order, whatever their labels are.
    buckets = list(waiting.groupby("ageing_bucket")["age_days"].min().sort_values().index)
    per_status = [
        Series(
            label,
            [
                waiting.loc[
                    (waiting["ageing_bucket"] == b) & (waiting["status"] == status),
                    "value_waiting",
                ].sum()
                for b in buckets
            ],
        )
        for status, label in (
            ("despatched_not_posted", "Despatched, not posted"),
            ("posted_not_invoiced", "Posted, not invoiced"),
        )
    ]
    totals = {f.key: f.value for f in summary}
    sites = t["non_sellable_value"].sort_values("value_at_cost", ascending=False)
    return [
        line_chart(
            "chart-drift",
            "Unexplained drift by day (£ at cost)",
            days,
            [Series("Unexplained value", list(drift["unexplained_value"]))],
        ),
        bar_chart(
            "chart-drift-units",
            "Unexplained drift by day (units)",
            days,
            [Series("Unexplained units", list(drift["unexplained_units"]))],
            kind="int",
        ),
        bar_chart("chart-order-to-cash", "Value waiting by age (£)", buckets, per_status),
        bar_chart(
            "chart-credits",
            "Credits and write-offs (£)",
            ["Credits raised", "Pending review", "Written off (adjustments)", "BER sale returns"],
            [
                Series(
                    "Value",
                    [
                        totals["credits-raised-value"],
                        totals["credits-review-value"],
                        totals["written-off-adjustment-value"],
                        totals["written-off-ber-returns-value"],
                    ],
                )
            ],
        ),
        hbar_chart(
            "chart-non-sellable",
            "Stock in non-sellable sites (£ at cost)",
            list(sites["site_name"]),
            list(sites["value_at_cost"]),
        ),
    ]


def render_html(inputs: MonthEndInputs, summary: tuple[SummaryFigure, ...]) -> str:
    """The self-contained HTML report (inline CSS and SVG, no script, no URL)."""
    tables = []
    for sheet in SHEETS:
        if sheet.html is None:
            continue
        spec, (caption, order) = sheet.spec, sheet.html
        frame = inputs.prepared[spec.key]
        rows = html_rows(frame, spec, order, HTML_TOP_ROWS)
        tables.append(
            {
                "id": f"table-{spec.key.replace('_', '-')}",
                "caption": caption,
                "where": f"the sheet “{spec.title}”",
                "headers": [c.label for c in spec.columns],
                "kinds": [c.kind for c in spec.columns],
                "rows": rows,
                "shown": len(rows),
                "total": len(frame),
                "matching": len(order(frame)),
            }
        )
    template = template_environment().get_template("month_end.html.j2")
    return template.render(
        header=_header_rows(inputs),
        account=inputs.account_name,
        month=inputs.month,
        month_name=inputs.first_day.strftime("%B %Y"),
        summary=summary,
        charts=_charts(inputs, summary),
        tables=tables,
        workbook_name=pack_names(inputs.month, inputs.preview)["workbook"],
        status=inputs.status,
        preview=inputs.preview,
    )
