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

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from acs_khaos_dagster.private_files import private_dir
from acs_khaos_dagster.reports._tables import (
    REPORT_DIR,
    write_table_csv,
    write_text,
)
from acs_khaos_dagster.reports.month_end_html import render_html
from acs_khaos_dagster.reports.month_end_inputs import (
    HTML_TOP_ROWS,
    README_SHEET,
    SHEETS,
    SUMMARY_SHEET,
    TABLES,
    MonthEndInputs,
    pack_names,
)
from acs_khaos_dagster.reports.month_end_workbook import (
    PREVIEW_FILL,
    _write_summary_csv,
    _write_workbook,
)
from acs_khaos_dagster.reports.pack_registry import SummaryFigure

# Re-exported: the pack's parts live in ``month_end_inputs``, ``_workbook`` and ``_html``.
__all__ = [
    "HTML_TOP_ROWS",
    "PREVIEW_FILL",
    "README_SHEET",
    "SHEETS",
    "SUMMARY_SHEET",
    "TABLES",
    "MonthEndInputs",
    "PackFiles",
    "SummaryFigure",
    "describe_columns",
    "pack_names",
    "render_html",
    "render_month_end_pack",
    "summarise",
]


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
