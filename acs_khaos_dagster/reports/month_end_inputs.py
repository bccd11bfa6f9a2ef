"""The month-end pack's inputs (``MonthEndInputs``), its sheet registry and the checks on
them. Part of ``reports.month_end`` (see its docstring); code moved verbatim."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from acs_khaos_dagster.reports._tables import (
    UK,
    ReportInputError,
    TableSpec,
    prepare,
)
from acs_khaos_dagster.reports.pack_close_sheets import CLOSE_SHEETS
from acs_khaos_dagster.reports.pack_extra_sheets import EXTRA_SHEETS
from acs_khaos_dagster.reports.pack_registry import PackSheet
from acs_khaos_dagster.reports.pack_sheets import CORE_SHEETS

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
