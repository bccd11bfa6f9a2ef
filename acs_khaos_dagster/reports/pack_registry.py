"""The month-end pack's sheets as a registry: one ``PackSheet`` per sheet.

A sheet is its table (``TableSpec``: key, title, columns with their descriptions), the
summary figures computed from it (each the plain sum of one of its columns, said in
words), how the HTML report shows it, and any cross-check against the other sheets.
``reports.month_end.SHEETS`` lists them in workbook order; adding a sheet is adding a
``PackSheet`` to that list (its frame comes in ``MonthEndInputs.sheets[key]``), nothing
else: the workbook, the CSVs, the Read me sheet, the summary and the HTML follow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from acs_khaos_dagster.reports._tables import TableSpec, int_sum, money_sum

Tables = Mapping[str, pd.DataFrame]


@dataclass(frozen=True)
class SummaryFigure:
    """One figure of the summary: ``key`` is stable (HTML id ``total-<key>``)."""

    key: str
    label: str
    kind: str  # "int" or "money"
    value: int | Decimal
    source: str  # how to recompute it from the sheets, in words


@dataclass(frozen=True)
class PackSheet:
    """One sheet of the pack.

    ``figures(tables)`` returns its summary figures from the prepared tables (by key).
    ``html``: (caption, rows to show in order) for the HTML report, or None.
    ``check(tables)`` raises ``ReportInputError`` when the sheet disagrees with another.
    """

    spec: TableSpec
    figures: Callable[[Tables], list[SummaryFigure]] = lambda tables: []
    html: tuple[str, Callable[[pd.DataFrame], pd.DataFrame]] | None = None
    check: Callable[[Tables], None] | None = None

    @property
    def key(self) -> str:
        return self.spec.key


def where(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    return frame.loc[frame[column] == value]


def count_figure(key: str, label: str, rows: pd.DataFrame, source: str) -> SummaryFigure:
    return SummaryFigure(key, label, "int", len(rows), source)


def int_figure(key: str, label: str, values: pd.Series, source: str) -> SummaryFigure:
    return SummaryFigure(key, label, "int", int_sum(values), source)


def money_figure(key: str, label: str, values: pd.Series, source: str) -> SummaryFigure:
    return SummaryFigure(key, label, "money", money_sum(values), source)


def summary_markdown(figures: Iterable[SummaryFigure]) -> str:
    """The pack's summary as finance reads it: money in £ with pence, the sheets' labels."""
    rows = ["| figure | value |", "| --- | ---: |"]
    for figure in figures:
        value = f"£{figure.value:,.2f}" if figure.kind == "money" else f"{figure.value:,}"
        rows.append(f"| {figure.label} | {value} |")
    return "\n".join(rows)


# The figures a pack's materialisation carries as numbers, besides the £ summary table
# (which has every figure and is what finance reads): the sign-off figures, which the
# Dagster UI plots month by month and the demo prints.
HEADLINE_FIGURES = (
    "stock-units",
    "stock-value",
    "non-sellable-value",
    "unexplained-drift-units",
    "unexplained-drift-value",
    "shipments-not-invoiced",
    "value-despatched-not-invoiced",
    "accrual-shipments",
    "accrual-net-value",
    "credits-review-count",
    "credits-review-value",
    "open-exceptions",
    "open-exceptions-over-target",
)
PENNY = Decimal("0.01")


def metadata_figures(
    figures: Iterable[SummaryFigure], keys: Iterable[str] = HEADLINE_FIGURES
) -> dict[str, int | float]:
    """``keys``' figures as metadata: snake_case labels, money in £ to the penny and named
    ``<label>_gbp``, counts as integers; a figure the pack does not have is left out."""
    by_key = {figure.key: figure for figure in figures}
    out: dict[str, int | float] = {}
    for key in keys:
        figure = by_key.get(key)
        if figure is None:
            continue
        label = key.replace("-", "_")
        if figure.kind == "money":
            out[f"{label}_gbp"] = float(Decimal(figure.value).quantize(PENNY, ROUND_HALF_UP))
        else:
            out[label] = int(figure.value)
    return out
