"""The finance month-end pack: reconciliation tables in, workbook + CSVs + HTML out.

Pure rendering: no store, no Dagster, no clock. The monthly asset builds
``MonthEndInputs`` from the reconciliation assets (as at 23:59:59 UK time on the last
day of the month) and calls ``render_month_end_pack``.

Every figure on the summary is computed once from the (prepared) tables, written as a
value to the workbook's Summary sheet, to ``summary.csv`` and to the HTML report (each
figure in an element ``id="total-<key>"`` with ``data-value``), and is the plain sum of
the rows on the matching sheet, so finance can tick it back.

Only the declared columns are ever written (see ``_tables.prepare``): customer names,
addresses or e-mails in an input frame never reach the pack, only references.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Font

from acs_khaos_dagster.private_files import private_dir
from acs_khaos_dagster.reports._tables import (
    EXCEL_FORMATS,
    REPORT_DIR,
    UK,
    Column,
    ReportInputError,
    TableSpec,
    atomic_path,
    csv_value,
    fit_widths,
    format_value,
    guard_text_cell,
    html_rows,
    int_sum,
    money_sum,
    prepare,
    slug,
    style_header,
    template_environment,
    write_csv,
    write_table_csv,
    write_table_sheet,
    write_text,
)
from acs_khaos_dagster.reports.charts import Series, bar_chart, hbar_chart, line_chart
from acs_khaos_dagster.reports.pack_extra_sheets import EXTRA_SHEETS
from acs_khaos_dagster.reports.pack_registry import SummaryFigure

STOCK_CLASSIFICATIONS = ("in_step", "in_flight", "push_missing", "unexplained")
ORDER_TO_CASH_STATUSES = ("despatched_not_posted", "posted_not_invoiced", "invoiced")
CREDIT_STATUSES = ("raised", "review", "none")
# How many rows of each table the HTML shows; the workbook and CSVs have them all.
HTML_TOP_ROWS = 15

STOCK_RECONCILIATION = TableSpec(
    "stock_reconciliation",
    "Stock reconciliation",
    (
        Column("stock_id", "int", "Stock ID", "Khaos StockID."),
        Column("stock_code", "text", "Stock code", "Khaos StockCode (the SKU)."),
        Column("site_id", "int", "Site ID", "Khaos site id."),
        Column("site_name", "text", "Site", "Khaos site name."),
        Column("acs_units", "int", "ACS units", "ACS units for this site under the status policy."),
        Column("khaos_level", "int", "Khaos Level", "Khaos Level (ExportStockStatus)."),
        Column("difference", "int", "Difference (units)", "acs_units - khaos_level (checked)."),
        Column("value", "money", "Difference value (£ at cost)", "difference × CostPrice, signed."),
        Column(
            "classification",
            "text",
            "Classification",
            "One of " + ", ".join(STOCK_CLASSIFICATIONS) + ".",
            allowed=STOCK_CLASSIFICATIONS,
        ),
    ),
)
ORDER_TO_CASH = TableSpec(
    "order_to_cash",
    "Order to cash",
    (
        Column("shipment_id", "text", "Shipment", "ACS shipment reference."),
        Column("order_number", "text", "Order", "Khaos order number."),
        Column("despatched_at", "datetime", "Despatched (UK)", "Despatch time; naive = UK time."),
        Column(
            "status",
            "text",
            "Status",
            "One of " + ", ".join(ORDER_TO_CASH_STATUSES) + ".",
            allowed=ORDER_TO_CASH_STATUSES,
        ),
        Column("age_days", "int", "Age (days)", "Days since despatch at the month-end cut-off."),
        Column(
            "value_waiting",
            "money",
            "Value waiting (£)",
            "Goods value not yet invoiced (0 once invoiced).",
        ),
        Column("ageing_bucket", "text", "Ageing bucket", "Label such as '0-2 days'."),
    ),
)
RETURNS = TableSpec(
    "returns",
    "Returns",
    (
        Column("return_ref", "text", "Return", "ACS return reference."),
        Column("part", "text", "Part", "Line/part of the return (e.g. the StockCode)."),
        Column("grade", "text", "Grade", "ACS grade (A, B, C, BER, ...)."),
        Column(
            "credit_status",
            "text",
            "Credit",
            "raised (credit note raised), review (pending review) or none.",
            allowed=CREDIT_STATUSES,
        ),
        Column("credit_value", "money", "Credit value (£)", "Value of the credit (raised/review)."),
        Column("written_off_units", "int", "Units written off", "Units written off for this part."),
        Column("write_off_value", "money", "Write-off value (£ at cost)", "At CostPrice."),
        Column(
            "refund_days_left",
            "int",
            "Refund days left",
            "Days left of the 14-day refund window; negative = overdue; empty = refunded/n/a.",
            nullable=True,
        ),
    ),
)
EXCEPTIONS = TableSpec(
    "exceptions",
    "Exceptions",
    (
        Column("type", "text", "Exception type", "Exception type code."),
        Column("owner", "text", "Owner team", "operations, finance, ecommerce, integration..."),
        Column("count", "int", "Open", "Open exceptions of this type and owner."),
        Column("oldest_age_hours", "number", "Oldest (hours)", "Age of the oldest open one."),
        Column(
            "over_target",
            "int",
            "Over target",
            "How many of them are older than the owner team's target age (0..count).",
        ),
    ),
)
DRIFT_BY_DAY = TableSpec(
    "drift_by_day",
    "Drift by day",
    (
        Column("day", "date", "Day", "A day of the month (UK)."),
        Column("unexplained_units", "int", "Unexplained units", "Sum of |difference| that day."),
        Column("unexplained_value", "money", "Unexplained value (£ at cost)", "Sum of |value|."),
    ),
)
NON_SELLABLE_VALUE = TableSpec(
    "non_sellable_value",
    "Non-sellable stock",
    (
        Column("site_name", "text", "Site", "Khaos non-sellable site name."),
        Column("units", "int", "Units", "Units (Level) in the site."),
        Column("value_at_cost", "money", "Value (£ at cost)", "units × CostPrice."),
    ),
)
CORE_TABLES: tuple[TableSpec, ...] = (
    STOCK_RECONCILIATION,
    ORDER_TO_CASH,
    RETURNS,
    EXCEPTIONS,
    DRIFT_BY_DAY,
    NON_SELLABLE_VALUE,
)
# Every sheet after the Summary, in workbook order: the core frames, then EXTRA_SHEETS.
TABLES: tuple[TableSpec, ...] = (*CORE_TABLES, *(sheet.spec for sheet in EXTRA_SHEETS))
SUMMARY_SHEET = "Summary"


@dataclass(frozen=True, eq=False)  # frames do not compare as booleans
class MonthEndInputs:
    """Everything the pack shows, for one month.

    ``month`` is ``YYYY-MM``; ``generated_at`` is when the pack was built (shown in UK
    time; pass the integration's clock, not the wall clock); ``account_name`` is the
    brand/account the pack is for. The six frames must have at least these columns
    (others are ignored and never written):

    ``stock_reconciliation`` (per StockID × site, as at the month-end cut-off):
    stock_id (int), stock_code (text), site_id (int), site_name (text), acs_units (int),
    khaos_level (int), difference (int, = acs_units - khaos_level), value (money,
    difference × CostPrice, signed), classification (in_step | in_flight | push_missing |
    unexplained).

    ``order_to_cash`` (one row per ACS shipment): shipment_id (text), order_number
    (text), despatched_at (date-time; tz-aware or naive UK time), status
    (despatched_not_posted | posted_not_invoiced | invoiced), age_days (int),
    value_waiting (money; 0 once invoiced), ageing_bucket (text label).

    ``returns`` (one row per graded part): return_ref (text), part (text), grade (text),
    credit_status (raised | review | none), credit_value (money), written_off_units
    (int), write_off_value (money), refund_days_left (int, may be empty).

    ``exceptions`` (open queue by type × owner): type (text), owner (text), count (int),
    oldest_age_hours (number), over_target (int, how many are past the owner's target).

    ``drift_by_day`` (each day of the month): day (date in the month),
    unexplained_units (int, gross), unexplained_value (money, gross).

    ``non_sellable_value`` (per non-sellable site): site_name (text), units (int),
    value_at_cost (money).

    Money may be float, int or Decimal; it is rounded to pence. Construction validates
    and raises ``ReportInputError`` naming the table and the column.
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
    # The frames of ``EXTRA_SHEETS`` by key; one not given is an empty sheet.
    sheets: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    prepared: Mapping[str, pd.DataFrame] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", self.month):
            raise ReportInputError(f"month: {self.month!r} is not YYYY-MM")
        if not isinstance(self.generated_at, datetime):
            raise ReportInputError("generated_at: expected a datetime")
        prepared = {spec.key: prepare(getattr(self, spec.key), spec) for spec in CORE_TABLES}
        unknown = sorted(set(self.sheets) - {sheet.key for sheet in EXTRA_SHEETS})
        if unknown:
            raise ReportInputError(f"sheets: unknown table(s) {', '.join(unknown)}")
        for sheet in EXTRA_SHEETS:
            frame = self.sheets.get(sheet.key, pd.DataFrame(columns=sheet.spec.names))
            prepared[sheet.key] = prepare(frame, sheet.spec)
        _check_consistency(prepared, self.month)
        for sheet in EXTRA_SHEETS:
            if sheet.check is not None:
                sheet.check(prepared)
        object.__setattr__(self, "prepared", prepared)

    @property
    def first_day(self) -> date:
        year, month = (int(part) for part in self.month.split("-"))
        return date(year, month, 1)


def _check_consistency(tables: Mapping[str, pd.DataFrame], month: str) -> None:
    stock = tables["stock_reconciliation"]
    wrong = stock["difference"] != stock["acs_units"] - stock["khaos_level"]
    if wrong.any():
        row = int(wrong.idxmax())
        raise ReportInputError(
            f"stock_reconciliation.difference: row {row} is not acs_units - khaos_level"
        )
    exceptions = tables["exceptions"]
    over = (exceptions["over_target"] < 0) | (exceptions["over_target"] > exceptions["count"])
    if over.any():
        raise ReportInputError(
            f"exceptions.over_target: row {int(over.idxmax())} is not between 0 and count"
        )
    days = tables["drift_by_day"]["day"]
    outside = days.map(lambda d: d.strftime("%Y-%m") != month)
    if outside.any():
        row = int(outside.idxmax())
        raise ReportInputError(f"drift_by_day.day: {days[row]} in row {row} is not in {month}")


@dataclass(frozen=True)
class PackFiles:
    workbook: Path
    html: Path
    csvs: Mapping[str, Path]  # "summary" and each table key -> path
    summary: tuple[SummaryFigure, ...]

    def totals(self) -> dict[str, int | Decimal]:
        return {figure.key: figure.value for figure in self.summary}


def summarise(inputs: MonthEndInputs) -> tuple[SummaryFigure, ...]:
    """The summary figures, each a plain sum over rows of one sheet."""
    t = inputs.prepared
    stock, o2c, returns = t["stock_reconciliation"], t["order_to_cash"], t["returns"]
    exceptions, non_sellable = t["exceptions"], t["non_sellable_value"]
    unexplained = stock[stock["classification"] == "unexplained"]
    waiting = o2c[o2c["status"] != "invoiced"]
    raised = returns[returns["credit_status"] == "raised"]
    review = returns[returns["credit_status"] == "review"]
    sr, oc, rt = STOCK_RECONCILIATION.title, ORDER_TO_CASH.title, RETURNS.title
    ex, ns = EXCEPTIONS.title, NON_SELLABLE_VALUE.title
    figures = [
        SummaryFigure(
            "unexplained-drift-units",
            "Unexplained stock drift (units, gross)",
            "int",
            int(unexplained["difference"].abs().sum()),
            f"'{sr}': sum of |Difference (units)| where Classification = unexplained",
        ),
        SummaryFigure(
            "unexplained-drift-value",
            "Unexplained stock drift (£ at cost, gross)",
            "money",
            money_sum(unexplained["value"].abs()),
            f"'{sr}': sum of |Difference value| where Classification = unexplained",
        ),
        SummaryFigure(
            "unexplained-drift-net-value",
            "Unexplained stock drift (£ at cost, net)",
            "money",
            money_sum(unexplained["value"]),
            f"'{sr}': sum of Difference value where Classification = unexplained",
        ),
        SummaryFigure(
            "shipments-not-invoiced",
            "Shipments despatched, not invoiced",
            "int",
            len(waiting),
            f"'{oc}': rows where Status is not invoiced",
        ),
        SummaryFigure(
            "value-despatched-not-posted",
            "Value waiting: despatched, not posted",
            "money",
            money_sum(o2c.loc[o2c["status"] == "despatched_not_posted", "value_waiting"]),
            f"'{oc}': sum of Value waiting where Status = despatched_not_posted",
        ),
        SummaryFigure(
            "value-posted-not-invoiced",
            "Value waiting: posted, not invoiced",
            "money",
            money_sum(o2c.loc[o2c["status"] == "posted_not_invoiced", "value_waiting"]),
            f"'{oc}': sum of Value waiting where Status = posted_not_invoiced",
        ),
        SummaryFigure(
            "value-despatched-not-invoiced",
            "Value waiting: despatched, not invoiced (total)",
            "money",
            money_sum(waiting["value_waiting"]),
            f"'{oc}': sum of Value waiting where Status is not invoiced",
        ),
        SummaryFigure(
            "credits-raised-count",
            "Credits raised",
            "int",
            len(raised),
            f"'{rt}': rows where Credit = raised",
        ),
        SummaryFigure(
            "credits-raised-value",
            "Credits raised (£)",
            "money",
            money_sum(raised["credit_value"]),
            f"'{rt}': sum of Credit value where Credit = raised",
        ),
        SummaryFigure(
            "credits-review-count",
            "Credits pending review",
            "int",
            len(review),
            f"'{rt}': rows where Credit = review",
        ),
        SummaryFigure(
            "credits-review-value",
            "Credits pending review (£)",
            "money",
            money_sum(review["credit_value"]),
            f"'{rt}': sum of Credit value where Credit = review",
        ),
        SummaryFigure(
            "non-sellable-units",
            "Units in non-sellable sites",
            "int",
            int_sum(non_sellable["units"]),
            f"'{ns}': sum of Units",
        ),
        SummaryFigure(
            "non-sellable-value",
            "Stock in non-sellable sites (£ at cost)",
            "money",
            money_sum(non_sellable["value_at_cost"]),
            f"'{ns}': sum of Value",
        ),
        SummaryFigure(
            "open-exceptions",
            "Open exceptions",
            "int",
            int_sum(exceptions["count"]),
            f"'{ex}': sum of Open",
        ),
        SummaryFigure(
            "open-exceptions-over-target",
            "Open exceptions over target age",
            "int",
            int_sum(exceptions["over_target"]),
            f"'{ex}': sum of Over target",
        ),
    ]
    # Write-offs are on their own sheet, split by route (a Khaos adjustment or a BER sale
    # return): one total of both would not tie to Khaos's adjustment report.
    for sheet in EXTRA_SHEETS:
        figures.extend(sheet.figures(t))
    used: set[str] = set()
    for owner in sorted(exceptions["owner"].unique()):
        key = f"open-exceptions-{slug(owner)}"
        while key in used:  # two owners that differ only in punctuation or case
            key += "-x"
        used.add(key)
        figures.append(
            SummaryFigure(
                key,
                f"Open exceptions: {owner}",
                "int",
                int_sum(exceptions.loc[exceptions["owner"] == owner, "count"]),
                f"'{ex}': sum of Open where Owner team = {owner}",
            )
        )
    return tuple(figures)


def _header_rows(inputs: MonthEndInputs) -> list[tuple[str, str, str]]:
    generated = inputs.generated_at
    if generated.tzinfo is not None:
        generated = generated.astimezone(UK)
    return [
        ("month", "Month", inputs.month),
        ("account", "Account", inputs.account_name),
        ("generated-at", "Generated (UK time)", generated.strftime("%Y-%m-%d %H:%M")),
    ]


def render_month_end_pack(inputs: MonthEndInputs, out_dir: Path | str) -> PackFiles:
    """Write the workbook, one CSV per sheet (plus summary.csv) and the HTML report.

    Files (re-running replaces them atomically): ``month_end_<YYYY-MM>.xlsx``,
    ``month_end_<YYYY-MM>.html``, ``summary.csv`` and ``<table key>.csv``.
    """
    out = Path(out_dir)
    private_dir(out, REPORT_DIR)
    summary = summarise(inputs)
    workbook = _write_workbook(inputs, summary, out / f"month_end_{inputs.month}.xlsx")
    csvs = {"summary": _write_summary_csv(inputs, summary, out / "summary.csv")}
    for spec in TABLES:
        csvs[spec.key] = write_table_csv(out / f"{spec.key}.csv", inputs.prepared[spec.key], spec)
    html = write_text(out / f"month_end_{inputs.month}.html", render_html(inputs, summary))
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


def _write_workbook(inputs: MonthEndInputs, summary: tuple[SummaryFigure, ...], path: Path) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = SUMMARY_SHEET
    sheet["A1"] = f"Month-end pack — {inputs.account_name} — {inputs.month}"
    sheet["A1"].font = Font(bold=True, size=14)
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
    for cells in sheet.iter_rows():
        for summary_cell in cells:
            guard_text_cell(summary_cell)
    for spec in TABLES:
        write_table_sheet(book.create_sheet(spec.title), inputs.prepared[spec.key], spec)
    with atomic_path(path) as tmp:
        book.save(tmp)
    return path


# --- HTML -----------------------------------------------------------------------------------


def _by_abs_value(frame: pd.DataFrame) -> pd.DataFrame:
    drifting = frame[frame["classification"] != "in_step"]
    return drifting.assign(_k=drifting["value"].abs()).sort_values("_k", ascending=False)


def _oldest_waiting(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] != "invoiced"].sort_values("age_days", ascending=False)


def _credits_first(frame: pd.DataFrame) -> pd.DataFrame:
    interesting = frame[(frame["credit_status"] != "none") | (frame["written_off_units"] > 0)]
    return interesting.sort_values(["credit_value", "write_off_value"], ascending=False)


def _oldest_exceptions(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("oldest_age_hours", ascending=False)


def _by_value_at_cost(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("value_at_cost", ascending=False)


HTML_TABLES = (
    (STOCK_RECONCILIATION, "Largest stock differences (not in step)", _by_abs_value),
    (ORDER_TO_CASH, "Oldest shipments not yet invoiced", _oldest_waiting),
    (RETURNS, "Credits and write-offs", _credits_first),
    (EXCEPTIONS, "Open exceptions, oldest first", _oldest_exceptions),
    (NON_SELLABLE_VALUE, "Stock in non-sellable sites", _by_value_at_cost),
    *((s.spec, s.html[0], s.html[1]) for s in EXTRA_SHEETS if s.html is not None),
)


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
    for spec, caption, order in HTML_TABLES:
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
        workbook_name=f"month_end_{inputs.month}.xlsx",
    )
