"""Step 3 of the push: ``plan_push``, the target per StockID × site and what is pushed.

Differences explained by status moves are pushed as moves; an unexplained difference is
pushed as ``VARIANCE`` within tolerance and otherwise held for finance. ``should_push``
refuses a snapshot not newer than the last one pushed; cost prices are read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from acs_khaos_dagster.domain.layout import KhaosReasons, KhaosSites
from acs_khaos_dagster.domain.models import (
    StockAdjustmentGroup,
    StockMove,
)
from acs_khaos_dagster.domain.stock_push.common import (
    _COST_SCALE,
    REASON_REFURBISH,
    REASON_TRANSFER,
    REASON_VARIANCE,
    _require,
)
from acs_khaos_dagster.domain.stock_push.groups import (
    _groups,
    _moves,
    _reason_codes,
)
from acs_khaos_dagster.domain.stock_push.site_units import SITE_UNITS_COLUMNS, SiteUnits
from acs_khaos_dagster.domain.stock_push.variance import HeldVariance, VarianceTolerance, _held


@dataclass(frozen=True)
class PushPlan:
    """The outcome of ``plan_push``.

    ``groups``  adjustment groups of StockIDs that change on one site only (one outbox
                effect per ``group_ref``).
    ``moves``   StockIDs that change on several sites (status moves): each move's legs
                must land together (one outbox effect per move).
    ``held``    differences above tolerance (raise ``stock_variance_held``, owner finance).
    ``targets`` every StockID × site considered: stock_id, site_id, acs_units, correction,
                target, level, delta, sku_difference, within_tolerance, held_units,
                pushed_to, reason, clipped ("" reason when nothing is pushed).
    """

    snapshot_id: str
    groups: tuple[StockAdjustmentGroup, ...]
    held: tuple[HeldVariance, ...]
    targets: pd.DataFrame = field(repr=False)
    moves: tuple[StockMove, ...] = ()

    @property
    def lines(self) -> int:
        legs = [leg for move in self.moves for leg in move.legs]
        return sum(len(g.lines) for g in (*self.groups, *legs))

    def summary(self) -> dict[str, int | str]:
        t = self.targets
        pushed = t["pushed_to"] != t["level"]
        return {
            "snapshot_id": self.snapshot_id,
            "groups": len(self.groups),
            "lines": self.lines,
            "variance_lines": int((pushed & (t["reason"] == REASON_VARIANCE)).sum()),
            "transfer_lines": int(
                (pushed & t["reason"].isin([REASON_TRANSFER, REASON_REFURBISH])).sum()
            ),
            "move_effects": len(self.moves),
            "held_lines": len(self.held),
            "held_units": sum(abs(h.held_units) for h in self.held),
            "clipped_rows": int(t["clipped"].sum()),
        }


def should_push(snapshot_at: datetime, last_pushed_snapshot_at: datetime | None) -> bool:
    """Whether a snapshot may be pushed: only if newer than the newest one already pushed.

    A snapshot older than, or as old as, one already pushed is never pushed (it would
    set Levels back in time). ``None`` means nothing was pushed yet.

    >>> from datetime import datetime, UTC
    >>> should_push(datetime(2025, 3, 1, 9, tzinfo=UTC), datetime(2025, 3, 1, 10, tzinfo=UTC))
    False
    """
    if last_pushed_snapshot_at is None:
        return True
    return snapshot_at > last_pushed_snapshot_at


def _cost_table(cost_prices: Mapping[int, Decimal] | pd.Series) -> pd.DataFrame:
    series = cost_prices if isinstance(cost_prices, pd.Series) else price_series(cost_prices)
    # Through float is exact here: four decimal places of any real price survive x 10,000.
    scaled = (price_floats(series) * _COST_SCALE).round()
    scaled = scaled.dropna()
    return pd.DataFrame(
        {"stock_id": scaled.index.astype("int64"), "cost_scaled": scaled.to_numpy("int64")}
    )


def price_floats(values: pd.Series) -> pd.Series:
    """Prices (``Decimal``, numbers or numeric text) as floats, NaN where not a number.

    ``float()`` per value: ``pd.to_numeric`` on ``Decimal`` objects is several times slower
    for a brand's 50k prices, read at every push and reconciliation.
    """
    if values.dtype != object:
        return pd.to_numeric(values, errors="coerce").astype(float)
    try:
        # numpy calls ``float()`` on each object in C (None gives NaN, as below); only a
        # value ``float()`` refuses sends the column the per-value way.
        return pd.Series(values.to_numpy().astype(float), index=values.index, dtype=float)
    except (TypeError, ValueError):
        pass

    def number(value: object) -> float:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return np.nan

    return pd.Series([number(v) for v in values], index=values.index, dtype=float)


def cost_prices_from(sku_map: pd.DataFrame) -> dict[int, Decimal]:
    """``stock_id → CostPrice`` from a ``sku_map`` with a ``cost_price`` column."""
    frame = sku_map.dropna(subset=["stock_id", "cost_price"]).drop_duplicates("stock_id")
    pairs = zip(frame["stock_id"].tolist(), frame["cost_price"].tolist(), strict=True)
    # A Decimal is already what ``Decimal(str(c))`` makes of it (same digits and exponent).
    return {int(s): c if type(c) is Decimal else Decimal(str(c)) for s, c in pairs}


def price_series(cost_prices: Mapping[int, Any]) -> pd.Series:
    """``pd.Series(dict(cost_prices))``, built without hashing 50k keys again when every
    StockID is an ``int`` (what ``cost_prices_from`` gives)."""
    keys, values = list(cost_prices.keys()), list(cost_prices.values())
    if not keys or set(map(type, keys)) != {int}:
        return pd.Series(dict(cost_prices))
    return pd.Series(
        np.fromiter(values, dtype=object, count=len(values)),
        index=pd.Index(np.array(keys, dtype=np.int64)),
    )


def _hold_priority(sites: KhaosSites) -> tuple[dict[int, int], dict[int, int]]:
    # Where an unpushed (held) difference is left, chosen so the held part errs on the
    # safe side for sales: a surplus is held on the selling sites first (Khaos keeps
    # showing less), a shortfall on the non-sellable sites first (the selling site's
    # decrease, if any, is pushed as far as the status moves explain it).
    surplus_order = ["selling", "hire_stock", "inspection", "refurbishment", "quarantine"]
    surplus_order.append("on_hire")
    shortfall_order = list(reversed(surplus_order))
    ids = sites.model_dump()
    return (
        {ids[r]: i for i, r in enumerate(surplus_order)},
        {ids[r]: i for i, r in enumerate(shortfall_order)},
    )


def plan_push(
    acs_units: pd.DataFrame | SiteUnits,
    khaos_levels: pd.DataFrame,
    corrections: pd.DataFrame | None,
    *,
    snapshot_id: str,
    sites: KhaosSites | None = None,
    tolerance: VarianceTolerance | None = None,
    cost_prices: Mapping[int, Decimal] | pd.Series,
    max_lines_per_group: int = 500,
    reasons: KhaosReasons | None = None,
) -> PushPlan:
    """The "adjust to" lines that make every Khaos site's Level equal its target.

    Inputs: ``acs_units`` (stock_id, site_id, units — ``SiteUnits.units``),
    ``khaos_levels`` (stock_id, site_id, level — read at the push, for every ACS-managed
    StockID on every site in ``sites``; other site ids are ignored), ``corrections``
    (``TIMING_CORRECTION_COLUMNS``, from ``timing_corrections``).

    Rules:

    1. ``target = ACS units + corrections`` per StockID × site; a StockID × site with
       no ACS units has 0 (so pass ``khaos_levels`` only for StockIDs ACS manages).
       A negative target (corrections exceeding units) is clipped to 0 (``clipped``).
    2. ``delta = target − level``; only rows with ``delta ≠ 0`` become lines, each the
       planned change ``adjust_by`` with the Level it was planned against
       (``planned_level``): sent later than planned (a retry, an approval), it moves
       Level by the change and never resets it over invoices or returns booked since.
       Never a buffer.
    3. Per StockID, ``sku_difference = Σ delta`` over its sites. Zero → every line is a
       status move (paired, total unchanged): reason ``REFURBISH`` if one of its changed
       sites is the refurbishment site, else ``TRANSFER``.
    4. Non-zero and within ``tolerance`` → pushed; lines whose delta has the sign of the
       difference carry ``VARIANCE``, the others the transfer reason.
    5. Non-zero and above tolerance → the status-move part is pushed, the unexplained
       part is held: ``|sku_difference|`` units are taken off the lines on the surplus
       side (a surplus from the selling sites first, a shortfall from the non-sellable
       sites first) and returned in ``held``.
    6. ``value`` of a line = units it moves × CostPrice (Decimal, pence; 0 if unknown).
    7. A StockID with lines on one site goes in that site's groups, sorted by StockID,
       ≤ ``max_lines_per_group`` per group, refs ``group_ref(snapshot_id, site_id, n)``
       numbered from 1. A StockID with lines on several sites goes in a ``StockMove``
       (≤ ``max_lines_per_group`` StockIDs each, refs ``move_ref(snapshot_id, n)``), whose
       legs land together or not at all.

    Example (tolerance 2 units/£50, cost £20): Khaos selling 10, refurbishment 0.
    ACS selling 9, refurbishment 1 → a move: selling −1, refurbishment +1 (``REFURBISH``).
    ACS selling 11 → selling +1 ``VARIANCE`` (1 unit, £20). ACS selling 40 → nothing
    pushed; held +30 units on selling, £600, "likely goods received without a
    purchase-order receipt".
    """
    sites = sites or KhaosSites()
    tolerance = tolerance or VarianceTolerance()
    if max_lines_per_group < 1:
        raise ValueError("max_lines_per_group must be at least 1")
    units_frame = acs_units.units if isinstance(acs_units, SiteUnits) else acs_units
    _require(units_frame, SITE_UNITS_COLUMNS, "acs_units")
    _require(khaos_levels, ("stock_id", "site_id", "level"), "khaos_levels")
    known_sites = set(sites.model_dump().values())

    acs = units_frame.groupby(["stock_id", "site_id"], as_index=False)["units"].sum()
    acs = acs.rename(columns={"units": "acs_units"})
    if corrections is None or corrections.empty:
        corr = pd.DataFrame({"stock_id": [], "site_id": [], "correction": []}, dtype="int64")
    else:
        _require(corrections, ("stock_id", "site_id", "units"), "corrections")
        corr = corrections.groupby(["stock_id", "site_id"], as_index=False)["units"].sum()
        corr = corr.rename(columns={"units": "correction"})
    levels = khaos_levels[["stock_id", "site_id", "level"]].astype("int64")
    levels = levels.loc[levels["site_id"].isin(known_sites)]
    levels = levels.groupby(["stock_id", "site_id"], as_index=False)["level"].sum()
    for name, frame in (("acs_units", acs), ("corrections", corr)):
        stray = set(frame["site_id"].astype("int64")) - known_sites
        if stray:
            raise ValueError(f"{name} names site ids {sorted(stray)} that are not Khaos sites")

    t = acs.merge(corr, on=["stock_id", "site_id"], how="outer").merge(
        levels, on=["stock_id", "site_id"], how="outer"
    )
    for col in ("acs_units", "correction", "level"):
        t[col] = t[col].fillna(0).astype("int64")
    t["stock_id"] = t["stock_id"].astype("int64")
    t["site_id"] = t["site_id"].astype("int64")
    raw_target = t["acs_units"] + t["correction"]
    t["clipped"] = raw_target < 0
    t["target"] = raw_target.clip(lower=0)
    t["delta"] = t["target"] - t["level"]
    t["sku_difference"] = t.groupby("stock_id")["delta"].transform("sum")

    costs = _cost_table(cost_prices)
    t = t.merge(costs, on="stock_id", how="left")
    has_cost = t["cost_scaled"].notna()
    cost = t["cost_scaled"].fillna(0).astype("int64")
    diff_abs = t["sku_difference"].abs()
    within_value = diff_abs * cost <= int(tolerance.value * _COST_SCALE)
    t["within_tolerance"] = (t["sku_difference"] == 0) | (
        (diff_abs <= tolerance.units) & has_cost & within_value
    )

    # Split each above-tolerance StockID's surplus-side deltas into pushed and held parts.
    diff_sign = np.sign(t["sku_difference"])
    surplus_side = (np.sign(t["delta"]) == diff_sign) & (t["delta"] != 0)
    to_hold = ~t["within_tolerance"] & surplus_side
    surplus_rank, shortfall_rank = _hold_priority(sites)
    t["hold_rank"] = np.where(
        diff_sign > 0, t["site_id"].map(surplus_rank), t["site_id"].map(shortfall_rank)
    )
    t["held_units"] = 0
    if to_hold.any():
        h = t.loc[to_hold, ["stock_id", "hold_rank", "delta", "sku_difference"]].sort_values(
            ["stock_id", "hold_rank"]
        )
        size = h["delta"].abs()
        before = h.assign(_size=size).groupby("stock_id")["_size"].cumsum() - size
        held_abs = (h["sku_difference"].abs() - before).clip(lower=0)
        held_abs = np.minimum(held_abs, size)
        t.loc[h.index, "held_units"] = (np.sign(h["delta"]) * held_abs).astype("int64")
    t["held_units"] = t["held_units"].astype("int64")
    t["pushed_to"] = t["level"] + t["delta"] - t["held_units"]

    refurb_touched = t.loc[(t["delta"] != 0) & (t["site_id"] == sites.refurbishment), "stock_id"]
    transfer_reason = np.where(
        t["stock_id"].isin(set(refurb_touched)), REASON_REFURBISH, REASON_TRANSFER
    )
    variance = t["within_tolerance"] & (t["sku_difference"] != 0) & surplus_side
    pushed = t["pushed_to"] != t["level"]
    t["reason"] = np.where(
        ~pushed, "", np.where(variance, REASON_VARIANCE, transfer_reason)
    ).astype(object)

    t = t.sort_values(["site_id", "stock_id"], ignore_index=True)
    lines = t.loc[t["pushed_to"] != t["level"]]
    # The plan's reasons are labels; the install names its own codes for them.
    codes = _reason_codes(reasons or KhaosReasons())
    on_sites = lines.groupby("stock_id")["site_id"].transform("nunique")
    groups = _groups(lines.loc[on_sites == 1], snapshot_id, max_lines_per_group, codes)
    moves = _moves(lines.loc[on_sites > 1], snapshot_id, max_lines_per_group, codes)
    held = _held(t.loc[t["held_units"] != 0], snapshot_id)
    targets = t.drop(columns=["cost_scaled", "hold_rank"])[
        [
            "stock_id",
            "site_id",
            "acs_units",
            "correction",
            "target",
            "level",
            "delta",
            "sku_difference",
            "within_tolerance",
            "held_units",
            "pushed_to",
            "reason",
            "clipped",
        ]
    ].sort_values(["stock_id", "site_id"], ignore_index=True)
    return PushPlan(snapshot_id=snapshot_id, groups=groups, held=held, targets=targets, moves=moves)
