"""Step 1 of the push: ACS's units at the snapshot per StockID × Khaos site.

``acs_site_units`` places each status's units on a site through the status policy only;
unknown statuses, unmatched SKUs and deliberately off-site units are reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from acs_khaos_dagster.domain.layout import KhaosSites
from acs_khaos_dagster.domain.stock_push.common import _require
from acs_khaos_dagster.domain.stock_status import (
    DEFAULT_STATUS_POLICY,
    StatusPolicy,
    StockBucket,
    site_id_for,
)

SITE_UNITS_COLUMNS = ("stock_id", "site_id", "units")
SITE_DETAIL_COLUMNS = ("stock_id", "site_id", "bucket", "status", "units")


@dataclass(frozen=True)
class SiteUnits:
    """ACS's units at the snapshot, placed on Khaos sites by the status policy.

    ``units``      stock_id, site_id, units — one row per StockID × site with units > 0.
    ``detail``     stock_id, site_id, bucket, status, units — the same units by status
                   (feeds ``sellable_stock`` / ``non_sellable_stock``).
    ``unknown``    status, units — units whose status the policy does not know (matched or
                   not). They are on **no** site; raise ``unknown_stock_status``.
    ``unmatched``  sku, units — ACS SKUs with no Khaos StockID: never pushed.
    ``unmatched_selling`` sku, units — of those, the units in a sellable or allocated
                   status: stock ACS could ship that no website can sell (report them).
    ``off_site``   bucket, status, units — matched units deliberately on no site
                   (retired, ignore).
    """

    units: pd.DataFrame
    detail: pd.DataFrame
    unknown: pd.DataFrame
    unmatched: pd.DataFrame
    off_site: pd.DataFrame
    unmatched_selling: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"sku": [], "units": []})
    )

    @property
    def unknown_units(self) -> int:
        return int(self.unknown["units"].sum())

    @property
    def unmatched_units(self) -> int:
        return int(self.unmatched["units"].sum())


def acs_site_units(
    counts: pd.DataFrame,
    sku_map: pd.DataFrame,
    policy: StatusPolicy = DEFAULT_STATUS_POLICY,
    sites: KhaosSites | None = None,
) -> SiteUnits:
    """ACS's physical units per StockID × Khaos site at the snapshot.

    ``counts``: ``sku, status, units`` (``snapshot.status_counts``; ``status`` normalised).
    ``sku_map``: ``sku, stock_id, is_hire`` (ACS SKU → Khaos StockID; extra columns such
    as ``cost_price`` are ignored). A SKU may appear only once.

    Rules (the site comes **only** from ``policy`` via ``site_id_for``):

    * sellable (ready) **and** allocated/picking/packed → the selling site; both are in
      Khaos's Level until the invoice is issued, Khaos subtracts its own allocations
      to get Available. For a hire SKU the same units go to the hire stock site.
    * on_hire → the on-hire site; non_sellable → the status's own site
      (inspection, refurbishment, quarantine...).
    * retired, ignore → no site (reported in ``off_site``).
    * unknown status → no site, ever; counted in ``unknown`` (raise an exception).
    * SKU not in ``sku_map`` → no site; counted in ``unmatched``.

    Example: ``DRESS-S`` (StockID 101, sale) has 7 ready, 2 packed, 1 "In Repair" and
    3 in "Lost In Space"; ``HIRE-1`` (StockID 201, hire) has 4 ready and 2 "With Customer".
    Result ``units``: (101, selling, 9), (101, refurbishment, 1), (201, hire_stock, 4),
    (201, on_hire, 2); ``unknown``: ("lost in space", 3).
    """
    sites = sites or KhaosSites()
    _require(counts, ("sku", "status", "units"), "counts")
    _require(sku_map, ("sku", "stock_id", "is_hire"), "sku_map")
    if sku_map["sku"].duplicated().any():
        dupes = sorted(sku_map.loc[sku_map["sku"].duplicated(), "sku"].astype(str).unique())
        raise ValueError(f"sku_map lists these SKUs more than once: {dupes[:10]}")

    frame = counts[["sku", "status", "units"]].copy()
    frame["sku"] = frame["sku"].astype(str)
    frame["status"] = frame["status"].astype(str)
    frame["units"] = frame["units"].astype("int64")
    by_sku = sku_map.set_index(sku_map["sku"].astype(str))
    frame["stock_id"] = frame["sku"].map(by_sku["stock_id"])
    frame["is_hire"] = frame["sku"].map(by_sku["is_hire"])

    # Classify each distinct (status, hire flag) once, then join back: never per row.
    statuses = frame["status"].unique()
    rule_rows = []
    for status in statuses:
        rule = policy.rule_for(status)
        for is_hire in (False, True):
            site = site_id_for(rule, is_hire, sites)
            rule_rows.append((status, is_hire, str(rule.bucket), -1 if site is None else site))
    rules = pd.DataFrame(rule_rows, columns=["status", "_hire", "bucket", "site_id"])
    frame["_hire"] = frame["is_hire"].astype("boolean").fillna(False).astype(bool)
    frame = frame.merge(rules, on=["status", "_hire"], how="left")

    is_unknown = frame["bucket"] == str(StockBucket.UNKNOWN)
    unknown = (
        frame.loc[is_unknown]
        .groupby("status", as_index=False)["units"]
        .sum()
        .sort_values(["units", "status"], ascending=[False, True], ignore_index=True)
    )
    matched = frame["stock_id"].notna()
    unmatched = (
        frame.loc[~matched].groupby("sku", as_index=False)["units"].sum().sort_values("sku")
    ).reset_index(drop=True)
    selling_bucket = frame["bucket"].isin([str(StockBucket.SELLABLE), str(StockBucket.ALLOCATED)])
    unmatched_selling = (
        frame.loc[~matched & selling_bucket]
        .groupby("sku", as_index=False)["units"]
        .sum()
        .sort_values("sku")
        .reset_index(drop=True)
    )

    placed = frame.loc[matched & ~is_unknown].copy()
    placed["stock_id"] = placed["stock_id"].astype("int64")
    on_site = placed["site_id"] >= 0
    off_site = (
        placed.loc[~on_site]
        .groupby(["bucket", "status"], as_index=False)["units"]
        .sum()
        .reset_index(drop=True)
    )
    placed = placed.loc[on_site]
    placed["site_id"] = placed["site_id"].astype("int64")
    detail = (
        placed.groupby(["stock_id", "site_id", "bucket", "status"], as_index=False)["units"]
        .sum()
        .sort_values(["stock_id", "site_id", "bucket", "status"], ignore_index=True)
    )
    units = (
        detail.groupby(["stock_id", "site_id"], as_index=False)["units"]
        .sum()
        .sort_values(["stock_id", "site_id"], ignore_index=True)
    )
    units = units.loc[units["units"] > 0].reset_index(drop=True)
    return SiteUnits(
        units=units[list(SITE_UNITS_COLUMNS)],
        detail=detail[list(SITE_DETAIL_COLUMNS)],
        unknown=unknown[["status", "units"]],
        unmatched=unmatched[["sku", "units"]],
        off_site=off_site[["bucket", "status", "units"]],
        unmatched_selling=unmatched_selling[["sku", "units"]],
    )
