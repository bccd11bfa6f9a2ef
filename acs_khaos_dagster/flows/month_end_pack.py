"""Month-end pack flow: read the month's stored reconciliation, build and write the pack.

Application layer (no Dagster): the ``month_end_pack`` asset calls ``build_month_end_pack``
with the settings, the store and the clock's now.

- The daily tables come from ``<data_dir>/reconciliation/<table>/<YYYY-MM-DD>.parquet``.
- Costs are those recorded for the pack's day (``flows.period_costs``): a rebuild of a
  past month after a price change gives the same figures.
- The month's stock adjustments are read from the outbox: every adjustment and status
  move Khaos confirmed, line by line, for the pack's VARIANCE / WRITEOFF / EXHIRE totals.
- A final pack goes to ``<data_dir>/month_end/<YYYY-MM>/``; a preview to
  ``<data_dir>/month_end/<YYYY-MM>/preview/`` under names ending in ``_preview``, so a
  preview can never replace a final pack.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.domain.models import StockAdjustmentGroup, StockMove
from acs_khaos_dagster.domain.month_close import (
    ADJUSTMENT_INPUT_COLUMNS,
    MonthTables,
    month_tables,
)
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.flows.figures import Figures, FileLink, Markdown, file_link
from acs_khaos_dagster.flows.month_end_extras import extra_pack_sheets, hire_stock_ids, without_hire
from acs_khaos_dagster.flows.period_costs import period_cost_prices
from acs_khaos_dagster.reports import MonthEndInputs, PackFiles, render_month_end_pack
from acs_khaos_dagster.reports.pack_registry import metadata_figures, summary_markdown
from acs_khaos_dagster.store import Store

RECONCILIATION_DIR = "reconciliation"
PREVIEW_DIR = "preview"


def reconciliation_dir(settings: Settings) -> Path:
    return settings.data_dir / RECONCILIATION_DIR


def stored_days(folder: Path, table: str, month: str) -> dict[date, Path]:
    """``<folder>/<table>/<YYYY-MM-DD>.parquet`` files of the month, by day."""
    found: dict[date, Path] = {}
    for path in sorted((folder / table).glob(f"{month}-??.parquet")):
        try:
            found[date.fromisoformat(path.stem)] = path
        except ValueError:
            continue
    return found


def read_month(settings: Settings, month: str) -> dict[str, dict[date, pd.DataFrame]]:
    """Every stored daily table of the month, ``[table][day] -> frame``."""
    folder = reconciliation_dir(settings)
    return {
        table: {
            day: pd.read_parquet(path) for day, path in stored_days(folder, table, month).items()
        }
        for table in me.DAILY_TABLES
    }


def read_optional(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


def confirmed_adjustments(db: Store) -> pd.DataFrame:
    """Every stock adjustment line Khaos confirmed (``ADJUSTMENT_INPUT_COLUMNS``): the
    outbox's done adjustment groups and status moves, each line with its change."""
    rows: list[dict[str, Any]] = []
    kinds = (EffectKind.KHAOS_STOCK_ADJUSTMENT, EffectKind.KHAOS_STOCK_MOVE)
    for effect in (e for kind in kinds for e in db.outbox.find(kind=kind, state="done")):
        if effect.kind == str(EffectKind.KHAOS_STOCK_MOVE):
            groups = list(StockMove.model_validate(effect.payload).legs)
        else:
            groups = [StockAdjustmentGroup.model_validate(effect.payload)]
        for group in groups:
            for line in group.lines:
                if line.adjust_by is not None:
                    units = line.adjust_by
                elif line.adjust_to is not None and line.planned_level is not None:
                    units = line.adjust_to - line.planned_level
                else:
                    continue  # an absolute target with no known starting Level
                value = abs(Decimal(line.value)) * (1 if units >= 0 else -1)
                rows.append(
                    {
                        "applied_at": effect.updated_at,
                        "ref": group.group_ref,
                        "reason_code": line.reason_code,
                        "stock_id": line.stock_id,
                        "site_id": group.site_id,
                        "units": units,
                        "value": float(value),
                    }
                )
    return pd.DataFrame(rows, columns=list(ADJUSTMENT_INPUT_COLUMNS))


@dataclass(frozen=True)
class PackResult:
    tables: MonthTables
    files: PackFiles
    days_not_reconciled: int

    def figures(self, conf: Settings, month: str, preview: bool) -> Figures:
        """The pack's metadata: which kind of pack first (the first thing read on the asset's
        page), the £ summary finance reads, its files, then the headline figures plotted."""
        files, tables = self.files, self.tables
        as_at = tables.as_at.astimezone(conf.tz).strftime("%d %b %Y %H:%M") if tables.as_at else ""
        return {
            "pack": f"PREVIEW as at {as_at} (UK time) — not for posting"
            if preview
            else f"FINAL, as at the cut-off {as_at} (UK time)",
            # What finance reads: every figure, in £ with pence.
            "summary": Markdown(summary_markdown(files.summary)),
            "workbook": file_link(conf, files.workbook),
            "html": file_link(conf, files.html),
            "csv_folder": file_link(conf, files.workbook.parent),
            "folder": FileLink(files.workbook.parent, url=None),  # the path, beside the link
            "month": month,
            "as_at": tables.as_at.isoformat() if tables.as_at else "",
            "days_not_reconciled": self.days_not_reconciled,
            **metadata_figures(files.summary),
            "stock_rows": len(tables.stock_reconciliation),
            "shipments": len(tables.order_to_cash),
            "returned_units": len(tables.returns),
        }


def missing_figures(refused: me.MonthIncomplete) -> Figures:
    """Why a final pack was refused: each day not reconciled with its missing tables."""
    missing = {d.isoformat(): tables for d, tables in sorted(refused.missing.items())}
    return {"missing_days": missing, "missing_day_count": len(missing)}


def pack_day(month: str, daily: dict[str, dict[date, pd.DataFrame]], preview: bool) -> date:
    """The day the pack's figures are taken from: the month's last, or for a preview the
    newest day every table has (the month's first if none)."""
    if not preview:
        return me.month_days(month)[-1]
    complete = set.intersection(*(set(daily.get(t, {})) for t in me.DAILY_TABLES))
    return max(complete) if complete else me.month_days(month)[0]


def build_month_end_pack(
    conf: Settings,
    db: Store,
    month: str,
    *,
    preview: bool,
    now: datetime,
    khaos: KhaosClient | None = None,
) -> PackResult:
    """Build and write the pack (raises ``me.MonthIncomplete`` for a final pack of a month
    with days not reconciled). With ``khaos``, the sheets read from Khaos at build time
    (refund liability, write-offs, hire fleet, order to cash by kind) are filled; without,
    they are empty."""
    daily = read_month(conf, month)
    missing = me.missing_days(
        month, {table: daily.get(table, {}).keys() for table in me.DAILY_TABLES}
    )
    if missing and (not preview or len(missing) == len(me.month_days(month))):
        # Refused before anything is read or recorded (no day's costs frozen by a refusal).
        raise me.MonthIncomplete(month, missing)
    day = pack_day(month, daily, preview)
    tables = month_tables(
        month,
        daily,
        read_optional(reconciliation_dir(conf) / "drift_by_day.parquet"),
        selling_site_ids=[conf.khaos.sites.selling],
        cost_prices=period_cost_prices(conf, day.isoformat()),
        adjustments=confirmed_adjustments(db),
        reasons=conf.khaos.reasons,
        site_names={v: k for k, v in conf.khaos.sites.model_dump().items()},
        now=now,
        preview=preview,
    )
    label = conf.acs.account_code
    if preview:
        label += f" (PREVIEW: {len(missing)} day(s) of the month not reconciled yet)"
    sheets: dict[str, pd.DataFrame] = dict(tables.sheets)
    if khaos is not None:
        costs = period_cost_prices(conf, day.isoformat())
        hire_ids = hire_stock_ids(read_optional(conf.data_dir / "products" / "sku_master.parquet"))
        stock = tables.stock_reconciliation
        # The hire fleet has its own sheet: it leaves "Non-sellable stock".
        tables = replace(
            tables,
            non_sellable_value=me.non_sellable_value(
                without_hire(stock, hire_ids), [conf.khaos.sites.selling], costs
            ),
        )
        sheets |= extra_pack_sheets(
            conf,
            db,
            khaos,
            month,
            stock=stock,
            order_to_cash=tables.order_to_cash,
            month_returns=me.month_returns(daily["returns"], month),
            cost_prices=costs,
            hire_ids=hire_ids,
            as_at=tables.as_at or me.month_bounds(month)[1],
        )
    kwargs = {**tables.as_kwargs(), "sheets": sheets}
    inputs = MonthEndInputs(month=month, generated_at=now, account_name=label, **kwargs)
    folder = conf.data_dir / "month_end" / month
    files = render_month_end_pack(inputs, folder / PREVIEW_DIR if preview else folder)
    return PackResult(tables=tables, files=files, days_not_reconciled=len(missing))
