"""Unexplained differences: the tolerance, held variances and their approval.

A difference above ``VarianceTolerance`` is held (``HeldVariance``, owner finance);
``approved_variance_groups`` pushes the ones finance approved as ``adjust_by`` lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from acs_khaos_dagster.domain.layout import KhaosReasons
from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    StockAdjustmentGroup,
)
from acs_khaos_dagster.domain.stock_push.common import _COST_SCALE, _PENNY


@dataclass(frozen=True)
class VarianceTolerance:
    """How big an unexplained difference may be pushed as ``VARIANCE`` without finance.

    Per StockID, on the difference of its total across all sites (status moves cancel
    out): within tolerance iff ``|difference| ≤ units`` **and** ``|difference| × CostPrice
    ≤ value``. A StockID without a cost price is never within tolerance (its value is
    unknown). Defaults match ``Settings.stock.variance_tolerance_units/_value`` (2 units, £50).
    """

    units: int = 2
    value: Decimal = Decimal("50.00")

    @classmethod
    def from_settings(cls, stock_settings: object) -> VarianceTolerance:
        """From ``Settings.stock`` (any object with the two tolerance fields)."""
        return cls(
            units=int(stock_settings.variance_tolerance_units),  # type: ignore[attr-defined]
            value=Decimal(stock_settings.variance_tolerance_value),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class HeldVariance:
    """An unexplained difference above tolerance, kept out of Khaos until finance approves.

    ``held_units`` is signed (what would still have to be added to the site's Level after
    the pushed part): ``pushed_to + held_units == target``. ``sku_difference`` is the
    StockID's whole unexplained difference across sites. ``value`` is
    ``|held_units| × CostPrice`` (None when the cost price is unknown).
    """

    snapshot_id: str
    stock_id: int
    site_id: int
    level: int
    target: int
    pushed_to: int
    held_units: int
    sku_difference: int
    value: Decimal | None
    reason: str


def _money(units: int, cost_scaled: int) -> Decimal:
    """``units × cost`` in pounds to the penny, half up (costs are non-negative)."""
    pence = (abs(units) * cost_scaled + _COST_SCALE // 200) // (_COST_SCALE // 100)
    return Decimal(pence).scaleb(-2)


_SURPLUS_REASON = (
    "ACS counts more units than Khaos holds: likely goods received without a "
    "purchase-order receipt, or a count error"
)
_SHORTFALL_REASON = "ACS counts fewer units than Khaos holds: likely a count error or loss"
_NO_COST_REASON = "no cost price for this StockID, so the difference cannot be valued"


def _held(rows: pd.DataFrame, snapshot_id: str) -> tuple[HeldVariance, ...]:
    rows = rows.sort_values(["stock_id", "site_id"])
    costs = rows["cost_scaled"].tolist()
    columns = [
        rows[c].astype("int64").tolist()
        for c in ("stock_id", "site_id", "level", "target", "pushed_to", "held_units")
    ]
    diffs = rows["sku_difference"].astype("int64").tolist()
    out = []
    for (stock_id, site_id, level, target, pushed_to, held), diff, cost in zip(
        zip(*columns, strict=True), diffs, costs, strict=True
    ):
        known = not pd.isna(cost)
        if not known:
            reason = _NO_COST_REASON
        else:
            reason = _SURPLUS_REASON if diff > 0 else _SHORTFALL_REASON
        out.append(
            HeldVariance(
                snapshot_id=snapshot_id,
                stock_id=stock_id,
                site_id=site_id,
                level=level,
                target=target,
                pushed_to=pushed_to,
                held_units=held,
                sku_difference=diff,
                value=_money(held, int(cost)) if known else None,
                reason=reason,
            )
        )
    return tuple(out)


def approved_variance_groups(
    held: list[HeldVariance] | tuple[HeldVariance, ...],
    *,
    approval_ref: str,
    cost_prices: Mapping[int, Decimal] | pd.Series,
    max_lines_per_group: int = 500,
    reasons: KhaosReasons | None = None,
) -> tuple[StockAdjustmentGroup, ...]:
    """Groups that push held variances finance approved, as ``adjust_by`` ``VARIANCE`` lines
    (the install's variance code, ``reasons.variance``).

    ``adjust_by`` (not ``adjust_to``): the pushed part already moved Level, and invoices
    or returns booked since the plan must not be undone; the held part is a pure
    difference. Refs ``SNAP-<snapshot>-S<site>-A<approval_ref>-B<n>``: one outbox key per
    approval, never the plan's own keys. Approve only held lines of the newest pushed
    snapshot (a newer snapshot re-holds the same difference; resolve the older one).
    """
    costs = {int(k): v for k, v in cost_prices.items()}
    by_site: dict[tuple[str, int], list[HeldVariance]] = {}
    for item in sorted(held, key=lambda h: (h.snapshot_id, h.site_id, h.stock_id)):
        by_site.setdefault((item.snapshot_id, item.site_id), []).append(item)
    out = []
    for (snapshot_id, site_id), items in by_site.items():
        for batch, start in enumerate(range(0, len(items), max_lines_per_group), start=1):
            chunk = items[start : start + max_lines_per_group]
            lines = []
            for h in chunk:
                cost = costs.get(h.stock_id)
                value = (
                    Decimal(0)
                    if cost is None
                    else (abs(h.held_units) * Decimal(str(cost))).quantize(_PENNY, ROUND_HALF_UP)
                )
                lines.append(
                    AdjustmentLine(
                        stock_id=h.stock_id,
                        adjust_by=h.held_units,
                        planned_level=h.pushed_to,
                        reason_code=(reasons or KhaosReasons()).variance,
                        value=value,
                    )
                )
            out.append(
                StockAdjustmentGroup(
                    site_id=site_id,
                    group_ref=f"SNAP-{snapshot_id}-S{site_id}-A{approval_ref}-B{batch:03d}",
                    lines=tuple(lines),
                )
            )
    return tuple(out)
