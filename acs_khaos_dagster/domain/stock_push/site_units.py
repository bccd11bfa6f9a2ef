"""Step 1 of the push: ACS's units at the snapshot per StockID × Khaos site.

``acs_site_units`` places each status's units on a site through the status policy only;
unknown statuses, unmatched SKUs and deliberately off-site units are reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
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

    # Row arrays, not a frame: only the few rows of the side reports become frames; the
    # ~150k placed rows are grouped on integer keys (StockID, site, status code) in numpy.
    sku = counts["sku"].astype(str).to_numpy(dtype=object)
    units_in = counts["units"].astype("int64").to_numpy()
    by_sku = sku_map.set_index(sku_map["sku"].astype(str))
    # One look-up of each row's SKU for both columns (a missing SKU: NaN, as a map gives).
    at = by_sku.index.get_indexer(sku)
    found = at >= 0
    safe = np.where(found, at, 0)
    stock_ids = by_sku["stock_id"].to_numpy()
    hire = by_sku["is_hire"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if found.all():
        stock_col = stock_ids[at]
        _hire = hire[at]
    elif found.any():
        stock_col = np.where(found, stock_ids[safe].astype("float64"), np.nan)
        _hire = found & hire[safe]
    else:
        stock_col = np.full(len(sku), np.nan)
        _hire = found
    matched = pd.notna(stock_col)

    # Classify each distinct status once (its code), never per row: bucket and site per
    # (status, hire flag) as arrays indexed by the status's code.
    codes, statuses = pd.factorize(counts["status"].astype(str))
    buckets, site_ids = [], []
    for status in statuses:
        rule = policy.rule_for(status)
        buckets.append(str(rule.bucket))
        site_ids.append([-1 if (x := site_id_for(rule, h, sites)) is None else x for h in (0, 1)])
    status_names = np.asarray(statuses, dtype=object)
    bucket_names = np.asarray(buckets, dtype=object)
    site_table = np.asarray(site_ids, dtype="int64").reshape(-1, 2)
    site_id = site_table[codes, _hire.astype("int64")]
    # (bucket, status) order of the codes: detail is sorted by those strings.
    rank = np.empty(len(statuses), dtype="int64")
    rank[sorted(range(len(statuses)), key=lambda i: (buckets[i], statuses[i]))] = np.arange(
        len(statuses)
    )
    code_unknown = bucket_names == str(StockBucket.UNKNOWN)
    code_selling = np.isin(bucket_names, [str(StockBucket.SELLABLE), str(StockBucket.ALLOCATED)])
    is_unknown = code_unknown[codes] if len(codes) else np.zeros(0, dtype=bool)
    selling_bucket = code_selling[codes] if len(codes) else np.zeros(0, dtype=bool)

    def rows(mask: np.ndarray, *columns: str) -> pd.DataFrame:
        """The rows under ``mask`` as a frame (the side reports: few rows)."""
        picked = codes[mask]
        values = {
            "sku": sku[mask],
            "bucket": bucket_names[picked],
            "status": status_names[picked],
            "units": units_in[mask],
        }
        return pd.DataFrame({c: values[c] for c in columns})

    unknown = (
        rows(is_unknown, "status", "units")
        .groupby("status", as_index=False)["units"]
        .sum()
        .sort_values(["units", "status"], ascending=[False, True], ignore_index=True)
    )
    unmatched = (
        rows(~matched, "sku", "units")
        .groupby("sku", as_index=False)["units"]
        .sum()
        .sort_values("sku")
    ).reset_index(drop=True)
    unmatched_selling = (
        rows(~matched & selling_bucket, "sku", "units")
        .groupby("sku", as_index=False)["units"]
        .sum()
        .sort_values("sku")
        .reset_index(drop=True)
    )
    placed = matched & ~is_unknown
    off_site = (
        rows(placed & (site_id < 0), "bucket", "status", "units")
        .groupby(["bucket", "status"], as_index=False)["units"]
        .sum()
        .reset_index(drop=True)
    )
    placed &= site_id >= 0
    # bucket follows from status, so grouping on the status's code groups the same rows.
    detail = _sum_sorted(
        stock_col[placed].astype("int64"),
        site_id[placed],
        codes[placed].astype("int64"),
        rank,
        units_in[placed],
    )
    detail_codes = detail.pop("_status_code").to_numpy()
    detail["bucket"] = bucket_names[detail_codes]
    detail["status"] = status_names[detail_codes]
    # Detail is sorted by StockID and site: each place's rows are consecutive.
    place_stock, place_site = detail["stock_id"].to_numpy(), detail["site_id"].to_numpy()
    starts = _run_starts(place_stock, place_site)
    totals = np.add.reduceat(detail["units"].to_numpy(), starts) if len(starts) else starts
    units = pd.DataFrame(
        {"stock_id": place_stock[starts], "site_id": place_site[starts], "units": totals}
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


def _run_starts(*keys: np.ndarray) -> np.ndarray:
    """Where each run of equal key tuples starts in rows sorted by those keys."""
    if len(keys[0]) == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.zeros(len(keys[0]), dtype=bool)
    change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


def _sum_sorted(
    stock_id: np.ndarray,
    site_id: np.ndarray,
    code: np.ndarray,
    rank: np.ndarray,
    units: np.ndarray,
) -> pd.DataFrame:
    """Units summed per (StockID, site, status code), sorted by StockID, site and the
    code's rank: what a pandas group-by and sort on those columns gives, on integers."""
    order = np.lexsort((rank[code], site_id, stock_id)) if len(code) else code
    stock_id, site_id, code, units = stock_id[order], site_id[order], code[order], units[order]
    starts = _run_starts(stock_id, site_id, code)
    totals = np.add.reduceat(units, starts) if len(starts) else units[:0]
    return pd.DataFrame(
        {
            "stock_id": stock_id[starts],
            "site_id": site_id[starts],
            "_status_code": code[starts],
            "units": totals.astype("int64"),
        }
    )
