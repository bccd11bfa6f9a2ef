"""Ex-hired units sold on: which SKU ACS holds them under, and what they are worth.

An ex-hire move to resale books −1 on the hire StockID and +1 on its resale StockID in
Khaos (``EXHIRE``), but ACS keeps the unit under its **hire SKU** (status ``Ex-Hired``,
a retired bucket, on no Khaos site). Read naively, the next snapshot has no unit on the
resale StockID while Khaos has one: the push would book −1 ``VARIANCE`` and silently undo
the move. So the push counts each unit the integration moved to resale, still held by
ACS under its hire SKU in a retired status, on its resale StockID at the selling site.

A unit ACS has put back to work under its hire SKU (ready, on hire...) is counted where
the status policy puts it, as before: that is a physical fact the push must follow.

The move's value is the used garment's, not the hire item's original cost: a share of
``CostPrice`` (``returns.ex_hire_value_share``) or a fixed value per hire StockID
(``returns.ex_hire_unit_values``), whichever the brand sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from acs_khaos_dagster.domain.stock_status import StatusPolicy, StockBucket

HELD_UNDER_HIRE_SKU_COLUMNS = ("stock_id", "site_id", "units", "ref")
"""Units to add to ACS's units per StockID × site: ``ref`` names the ex-hire group."""

_PENNY = Decimal("0.01")


def ex_hire_unit_value(
    hire_stock_id: int,
    cost_price: Decimal,
    *,
    share_of_cost: Decimal = Decimal("1"),
    unit_values: Mapping[int, Decimal] | None = None,
) -> Decimal:
    """The used-garment value both ``EXHIRE`` legs carry.

    >>> ex_hire_unit_value(10010, Decimal("8.96"), share_of_cost=Decimal("0.25"))
    Decimal('2.24')
    >>> ex_hire_unit_value(10010, Decimal("8.96"), unit_values={10010: Decimal("3.50")})
    Decimal('3.50')
    """
    if unit_values and hire_stock_id in unit_values:
        return Decimal(unit_values[hire_stock_id]).quantize(_PENNY)
    return (Decimal(cost_price) * Decimal(share_of_cost)).quantize(_PENNY, ROUND_HALF_UP)


def ex_hired_units_held_under_hire_sku(
    snapshot_units: pd.DataFrame,
    resale_legs: pd.DataFrame,
    policy: StatusPolicy,
) -> pd.DataFrame:
    """Ex-hired units to count on their resale StockID (``HELD_UNDER_HIRE_SKU_COLUMNS``).

    ``snapshot_units``: ``unique_sku, status`` — the snapshot's units (any SKU).
    ``resale_legs``: ``unique_sku, stock_id, site_id, group_ref`` — the ``+1`` legs of the
    integration's ex-hire moves (planned or applied: a pending leg is taken back out by the
    push's timing correction for adjustments not yet applied, so the two agree).

    A leg counts when its unit is in the snapshot in a retired status (ACS's
    ``Ex-Hired``): held in the warehouse under the hire SKU, waiting to be sold.
    """
    empty = pd.DataFrame(
        {c: pd.Series(dtype="int64" if c != "ref" else object) for c in HELD_UNDER_HIRE_SKU_COLUMNS}
    )
    if snapshot_units.empty or resale_legs.empty:
        return empty
    retired = snapshot_units.loc[
        snapshot_units["status"].astype(str).map(policy.bucket_for) == StockBucket.RETIRED,
        ["unique_sku"],
    ].drop_duplicates()
    held = resale_legs.merge(retired, on="unique_sku", how="inner")
    if held.empty:
        return empty
    return pd.DataFrame(
        {
            "stock_id": held["stock_id"].astype("int64"),
            "site_id": held["site_id"].astype("int64"),
            "units": 1,
            "ref": held["group_ref"].astype(str),
        }
    ).reset_index(drop=True)[list(HELD_UNDER_HIRE_SKU_COLUMNS)]


def add_to_site_units(site_units: pd.DataFrame, held: pd.DataFrame) -> pd.DataFrame:
    """``site_units`` (``stock_id, site_id, units``) with the held ex-hired units added."""
    if held.empty:
        return site_units
    extra = held.groupby(["stock_id", "site_id"], as_index=False)["units"].sum()
    merged = pd.concat([site_units[["stock_id", "site_id", "units"]], extra], ignore_index=True)
    out = merged.groupby(["stock_id", "site_id"], as_index=False)["units"].sum()
    return out.astype({"stock_id": "int64", "site_id": "int64", "units": "int64"})
