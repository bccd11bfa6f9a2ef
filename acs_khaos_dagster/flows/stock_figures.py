"""What the stock group's steps and checks show in the UI, without Dagster.

``defs/stock.py`` hands each step's result here and attaches the figures; the checks' rules
answer with a ``Verdict``.
"""

from typing import Any

import pandas as pd

from acs_khaos_dagster.config import StockSettings
from acs_khaos_dagster.domain.snapshot import units_per_status
from acs_khaos_dagster.flows.figures import Figures, Verdict, bullets, dispatch_figures, table
from acs_khaos_dagster.flows.stock_placement import SellableCheck
from acs_khaos_dagster.flows.stock_push import PushResult
from acs_khaos_dagster.flows.stock_snapshot import SnapshotTakeIn
from acs_khaos_dagster.store import DispatchReport


def snapshot_figures(took: SnapshotTakeIn) -> Figures:
    """The file taken in: its units and what was quarantined, removed or unknown in it."""
    figures: Figures = {"file": took.name}
    if took.read is None:
        figures |= {"taken_in_before": True, "same_content_as": took.same_content_as}
        return figures | {"snapshot_id": took.snapshot_id, "units": took.units}
    read, totals = took.read, took.totals
    assert totals is not None and took.snapshot_at is not None
    reasons = pd.Series([row.reason for row in read.quarantined], dtype="object")
    return {
        **figures,
        "snapshot_id": took.snapshot_id,
        "snapshot_at": took.snapshot_at.isoformat(),
        "units": took.units,
        "sellable_or_allocated_units": totals.sellable,
        "unknown_status_units": totals.unknown,
        "rows_quarantined": len(read.quarantined),
        "duplicate_rows_removed": int(read.duplicates_removed),
        "conflicting_units": len(read.conflicts),
        "file_truncated": int(read.truncated),
        **took.pruned.counts(),
        "units_per_status": table(units_per_status(took.counts), 40),
        "quarantine_reasons": table(
            reasons.value_counts().rename_axis("reason").reset_index(name="rows")
        ),
    }


def non_sellable_figures(frame: pd.DataFrame, site: Any) -> Figures:
    """Units not for sale per bucket and site, and those off every site."""
    per_bucket = frame.groupby(["bucket", "site_id"], as_index=False)["units"].sum()
    return {
        "rows": len(frame),
        **{
            f"units_{r.bucket}_site_{r.site_id}": int(r.units)
            for r in per_bucket.itertuples(index=False)
        },
        "off_site_units": int(site.off_site["units"].sum()),
        "sample": table(frame, 10),
    }


def sellable_verdict(checked: SellableCheck | None, day: str) -> Verdict:
    """Passes when the re-derived sellable units match sellable_stock's for every StockID."""
    if checked is None:
        return Verdict(False, {"missing": f"snapshot of {day}"})
    mismatches = checked.mismatches
    return Verdict(
        not mismatches,
        {
            "snapshot_id": checked.snapshot_id,
            "mismatched_stock_ids": len(mismatches),
            "counted_units": checked.counted_units,
            "sample": bullets(mismatches),
        },
    )


def push_figures(result: PushResult, pushed: pd.DataFrame, report: DispatchReport) -> Figures:
    """The push attempt, the run's dispatch, and the lines whose Level changes when a plan
    was made."""
    figures = {**result.figures(), **dispatch_figures(report)}
    if result.plan is not None:
        figures["plan"] = table(pushed.loc[pushed["pushed_to"] != pushed["level"]], 20)
    return figures


def snapshot_quality_findings(
    metadata: dict[str, float], max_quarantine_share: float, max_unknown_share: float
) -> list[str]:
    """What is wrong with a snapshot, from its materialisation's figures (empty: nothing)."""
    units = metadata.get("units", 0)
    quarantined = metadata.get("rows_quarantined", 0)
    unknown = metadata.get("unknown_status_units", 0)
    findings = []
    if metadata.get("file_truncated", 0):
        findings.append("the file was cut short (refused: stock_file_truncated)")
    rows = units + quarantined
    if rows and quarantined / rows > max_quarantine_share:
        findings.append(f"{quarantined} of {rows:g} rows quarantined")
    if units and unknown / units > max_unknown_share:
        findings.append(f"{unknown:g} of {units:g} units in unknown statuses")
    return findings


def snapshot_quality(figures: dict[str, float], file: str, stock: StockSettings) -> Verdict:
    """A warning, saying why, when the snapshot was cut, much quarantined or unknown."""
    findings = snapshot_quality_findings(
        figures, stock.max_quarantine_share, stock.max_unknown_share
    )
    shown = {
        "file": file,
        "units": int(figures.get("units", 0)),
        "rows_quarantined": int(figures.get("rows_quarantined", 0)),
        "unknown_status_units": int(figures.get("unknown_status_units", 0)),
        "file_truncated": bool(figures.get("file_truncated", 0)),
    }
    description = "; ".join(findings) or "whole, nothing unusual"
    return Verdict(not findings, shown, warn=True, description=description)
