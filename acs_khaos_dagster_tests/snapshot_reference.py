"""The snapshot path's functions as they were before issue 23's integer-key rewrite
(commit da72e11), kept verbatim as the reference the new ones must equal
(``test_snapshot_same_as_before.py``). Renamed helpers only: ``_ranks``, ``_dictionary``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from acs_khaos_dagster.connectors.acs.files.stock_units import StatusConflict
from acs_khaos_dagster.domain.layout import KhaosSites
from acs_khaos_dagster.domain.snapshot import _dictionary
from acs_khaos_dagster.domain.stock_push.common import _COST_SCALE, _require
from acs_khaos_dagster.domain.stock_push.site_units import (
    SITE_DETAIL_COLUMNS,
    SITE_UNITS_COLUMNS,
    SiteUnits,
)
from acs_khaos_dagster.domain.stock_status import (
    CONFLICT_STATUS,
    DEFAULT_STATUS_POLICY,
    StatusPolicy,
    StockBucket,
    site_id_for,
)


def old_future_lines(good: pa.Table) -> list[int]:
    from acs_khaos_dagster.connectors.acs.files.values import _FUTURE_TOLERANCE

    ahead = pc.greater(
        good["last_event_at"], pc.add(good["snapshot_at"], pa.scalar(_FUTURE_TOLERANCE))
    )
    return pc.filter(good["line_number"], ahead).to_pylist()


def status_counts(units: pa.Table, policy: StatusPolicy = DEFAULT_STATUS_POLICY) -> pd.DataFrame:
    """Units per (sku, normalised status), each with its stock bucket under ``policy``.

    ``units`` needs the columns ``sku`` and ``status`` (already normalised). A status
    the policy does not know lands in the ``unknown`` bucket, never ``sellable``.
    """
    sku = _dictionary(units["sku"])
    status = _dictionary(units["status"])
    # Counted on the dictionary codes with numpy: no hashing of every unit's strings again.
    width = max(len(status.dictionary), 1)
    codes = sku.indices.to_numpy(zero_copy_only=False).astype(np.int64) * width
    codes += status.indices.to_numpy(zero_copy_only=False)
    if len(sku.dictionary) * width <= 4 * len(codes) + 1024:
        per_code = np.bincount(codes, minlength=len(sku.dictionary) * width)
        seen = np.flatnonzero(per_code)
        units_seen = per_code[seen]
    else:  # many distinct spellings: a sparse count
        seen, units_seen = np.unique(codes, return_counts=True)
    # Sorted by (sku, status) on ranks of the small dictionaries, not on the strings.
    sku_codes, status_codes = seen // width, seen % width
    order = np.lexsort((_ranks(status.dictionary)[status_codes], _ranks(sku.dictionary)[sku_codes]))
    frame = pd.DataFrame(
        {
            "sku": sku.dictionary.take(pa.array(sku_codes[order])).to_pandas(),
            "status": status.dictionary.take(pa.array(status_codes[order])).to_pandas(),
            "units": units_seen[order],
        }
    )
    buckets = {value: str(policy.bucket_for(value)) for value in frame["status"].unique()}
    frame["bucket"] = frame["status"].map(buckets)
    frame["units"] = frame["units"].astype("int64")
    return frame[["sku", "status", "bucket", "units"]]


def _ranks(values: pa.Array) -> np.ndarray:
    """Each value's position in sorted order (values are distinct)."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(values.to_numpy(zero_copy_only=False), kind="stable")] = np.arange(len(values))
    return ranks


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
    frame["units"] = frame["units"].astype("int64")
    by_sku = sku_map.set_index(sku_map["sku"].astype(str))
    # One look-up of each row's SKU for both columns (a missing SKU: NaN, as a map gives).
    at = by_sku.index.get_indexer(frame["sku"])
    found = at >= 0
    safe = np.where(found, at, 0)
    stock_ids = by_sku["stock_id"].to_numpy()
    hire = by_sku["is_hire"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if found.all():
        frame["stock_id"] = stock_ids[at]
        _hire = hire[at]
    elif found.any():
        frame["stock_id"] = np.where(found, stock_ids[safe].astype("float64"), np.nan)
        _hire = found & hire[safe]
    else:
        frame["stock_id"] = np.full(len(frame), np.nan)
        _hire = found

    # Classify each distinct status once (its code), never per row: bucket and site per
    # (status, hire flag) as arrays indexed by the status's code.
    codes, statuses = pd.factorize(frame["status"].astype(str))
    buckets, site_ids = [], []
    for status in statuses:
        rule = policy.rule_for(status)
        buckets.append(str(rule.bucket))
        site_ids.append([-1 if (x := site_id_for(rule, h, sites)) is None else x for h in (0, 1)])
    frame["status"] = np.asarray(statuses, dtype=object)[codes]
    frame["_hire"] = _hire
    frame["bucket"] = np.asarray(buckets, dtype=object)[codes]
    site_table = np.asarray(site_ids, dtype="int64").reshape(-1, 2)
    frame["site_id"] = site_table[codes, _hire.astype("int64")]
    frame["_status_code"] = codes
    # (bucket, status) order of the codes: detail is sorted by those strings.
    rank = np.empty(len(statuses), dtype="int64")
    rank[sorted(range(len(statuses)), key=lambda i: (buckets[i], statuses[i]))] = np.arange(
        len(statuses)
    )

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
    # bucket follows from status, so grouping on the status's code groups the same rows.
    detail = placed.groupby(["stock_id", "site_id", "_status_code"], as_index=False, sort=False)[
        "units"
    ].sum()
    detail_codes = detail["_status_code"].to_numpy()
    detail = (
        detail.assign(
            bucket=np.asarray(buckets, dtype=object)[detail_codes],
            status=np.asarray(statuses, dtype=object)[detail_codes],
            _rank=rank[detail_codes],
        )
        .sort_values(["stock_id", "site_id", "_rank"], ignore_index=True)
        .drop(columns=["_rank", "_status_code"])
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


def _cost_table(cost_prices: Mapping[int, Decimal] | pd.Series) -> pd.DataFrame:
    series = cost_prices if isinstance(cost_prices, pd.Series) else pd.Series(dict(cost_prices))
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

    def number(value: object) -> float:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return np.nan

    return pd.Series([number(v) for v in values], index=values.index, dtype=float)


def cost_prices_from(sku_map: pd.DataFrame) -> dict[int, Decimal]:
    """``stock_id → CostPrice`` from a ``sku_map`` with a ``cost_price`` column."""
    frame = sku_map.dropna(subset=["stock_id", "cost_price"]).drop_duplicates("stock_id")
    pairs = zip(frame["stock_id"], frame["cost_price"], strict=True)
    return {int(s): Decimal(str(c)) for s, c in pairs}


def _strictly_increasing(values: pa.Array) -> bool:
    if len(values) < 2:
        return True
    ordered = pc.less(values.slice(0, len(values) - 1), values.slice(1))
    return bool(pc.all(ordered).as_py())


def _resolve_duplicates(table: pa.Table) -> tuple[pa.Table, int, list[StatusConflict]]:
    """Keep each unit's latest row; mark units whose latest rows disagree as conflicting."""
    unique_skus = table["unique_sku"].combine_chunks()
    if _strictly_increasing(unique_skus):
        return table, 0, []  # a file in unit order shows it lists no unit twice in one pass
    # Dictionary codes counted with numpy: cheaper than a hash group-by over every unit.
    encoded = pc.dictionary_encode(unique_skus)
    per_code = np.bincount(encoded.indices.to_numpy(zero_copy_only=False))
    repeated = encoded.dictionary.take(pa.array(np.flatnonzero(per_code > 1)))
    del encoded, per_code
    if len(repeated) == 0:
        return table, 0, []
    in_repeated = pc.is_in(table["unique_sku"], value_set=repeated)
    subset = (
        table.filter(in_repeated)
        .select(["line_number", "unique_sku", "sku", "status", "last_event_at"])
        .to_pandas()
    )
    subset["status"] = subset["status"].astype(str)
    latest = subset.groupby("unique_sku")["last_event_at"].transform("max")
    top = subset[subset["last_event_at"] == latest].sort_values("line_number")
    kept = top.drop_duplicates("unique_sku", keep="last")
    statuses = top.groupby("unique_sku")["status"].agg(lambda s: tuple(sorted(set(s))))
    conflicting = statuses[statuses.map(len) > 1]
    conflicts = []
    for unique_sku, values in conflicting.items():
        rows = top[top["unique_sku"] == unique_sku]
        conflicts.append(
            StatusConflict(
                unique_sku=str(unique_sku),
                sku=str(rows["sku"].iloc[-1]),
                last_event_at=rows["last_event_at"].iloc[-1].to_pydatetime(),
                statuses=values,
                line_numbers=tuple(int(n) for n in rows["line_number"]),
            )
        )
    keep = pc.or_(
        pc.invert(in_repeated),
        pc.is_in(table["line_number"], value_set=pa.array(kept["line_number"], pa.int64())),
    )
    removed = len(subset) - len(kept)
    table = table.filter(keep)
    if conflicts:
        marked = pc.is_in(
            table["unique_sku"], value_set=pa.array([c.unique_sku for c in conflicts])
        )
        status = pc.if_else(marked, CONFLICT_STATUS, pc.cast(table["status"], pa.string()))
        bucket = pc.if_else(
            marked, StockBucket.UNKNOWN.value, pc.cast(table["bucket"], pa.string())
        )
        table = table.set_column(
            table.schema.get_field_index("status"), "status", pc.dictionary_encode(status)
        )
        table = table.set_column(
            table.schema.get_field_index("bucket"), "bucket", pc.dictionary_encode(bucket)
        )
    return table, removed, sorted(conflicts, key=lambda c: c.unique_sku)


def _single_value(column: pa.ChunkedArray, name: str, problems: list[str], pick: str) -> Any:
    counts = pc.value_counts(column.combine_chunks()).to_pylist()
    values = [c["values"] for c in counts if c["values"] not in (None, "")]
    if not values:
        return None
    if len(values) > 1:
        problems.append(f"{len(values)} different {name} values in one file")
    if pick == "max":
        return max(values)
    best = max(counts, key=lambda c: (c["counts"], str(c["values"])))
    return best["values"]
