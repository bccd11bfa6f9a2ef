"""Stock placement flow: a snapshot's units on Khaos sites by the status policy — the
selling site's sellable and allocated units (kept for the push with every site's units),
the units not for sale, and the blocking re-derivation of the sellable table.

No Dagster here: ``defs/stock.py`` wires these in.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.domain.stock_guards import (
    no_non_sellable_counted_as_sellable,
    sellable_mismatches,
)
from acs_khaos_dagster.domain.stock_push import acs_site_units
from acs_khaos_dagster.domain.stock_status import StockBucket
from acs_khaos_dagster.flows.common import sync_exceptions, write_parquet_atomically
from acs_khaos_dagster.flows.figures import Figures, table
from acs_khaos_dagster.flows.stock_push import sellable_path, selling_sites, site_units_path
from acs_khaos_dagster.flows.stock_snapshot import (
    SnapshotError,
    _Problem,
    run_snapshot,
    sku_map_path,
)
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.exceptions import ExceptionType
from acs_khaos_dagster.store.stock import StockSnapshots

_SELLING_BUCKETS = (str(StockBucket.SELLABLE), str(StockBucket.ALLOCATED))


def site_detail(
    counts: pd.DataFrame, sku_map: pd.DataFrame, conf: Settings, run_id: str = ""
) -> tuple[pd.DataFrame, Any]:
    """The counts placed on Khaos sites (and the placement behind it). ``sellable_stock``
    and ``non_sellable_stock`` of one run both place the same snapshot: in one process
    the second takes the first's placement when the run, counts, SKU map, policy and
    sites are the same (~0.4 s of a brand's ingestion, BENCHMARKS.md §1b); another run
    places again. Callers never modify it."""
    key = f"{run_id}:{_placement_key(counts, sku_map, conf)}" if run_id else ""
    cached = _LAST_PLACEMENT.get(key) if key else None
    if cached is not None:
        return cached
    site = acs_site_units(counts, sku_map, conf.status_policy, conf.khaos.sites)
    codes = sku_map.set_index("stock_id")["stock_code"]
    detail = site.detail.assign(stock_code=site.detail["stock_id"].map(codes).fillna(""))
    if key:
        _LAST_PLACEMENT.clear()  # one placement kept: the run's snapshot
        _LAST_PLACEMENT[key] = (detail, site)
    return detail, site


_LAST_PLACEMENT: dict[str, tuple[pd.DataFrame, Any]] = {}


def _placement_key(counts: pd.DataFrame, sku_map: pd.DataFrame, conf: Settings) -> str:
    """A digest of everything the placement depends on: every value of both frames (with
    their columns and dtypes), the status policy and the sites."""
    digest = hashlib.sha256()
    for frame in (counts, sku_map):
        digest.update(repr((list(frame.columns), [str(t) for t in frame.dtypes])).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(conf.status_policy.model_dump_json().encode())
    digest.update(conf.khaos.sites.model_dump_json().encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class SellablePlacement:
    """Per StockID the selling site's units (``frame``), and the placement behind it."""

    frame: pd.DataFrame
    snapshot_id: str
    site: Any  # domain.stock_push's SiteUnits

    def counts(self) -> dict[str, int | str]:
        frame, site = self.frame, self.site
        return {
            "snapshot_id": self.snapshot_id,
            "stock_ids": len(frame),
            "sellable_units": int(frame["sellable_units"].sum()),
            "allocated_units": int(frame["allocated_units"].sum()),
            "unknown_status_units": site.unknown_units,
            "unmatched_sku_units": site.unmatched_units,
            "unmatched_sellable_units": int(site.unmatched_selling["units"].sum()),
        }

    def figures(self) -> Figures:
        return {**self.counts(), "sample": table(self.frame, 10)}


_PLACE_KEYS = ["stock_id", "stock_code", "site_id"]


def _statuses(selling: pd.DataFrame) -> pd.DataFrame:
    """Per StockID × site, its distinct statuses sorted and joined with ``|``. Each status
    (a handful) is one bit, so a place's set is the sum of its distinct rows' bits: a
    Python join per group over ~50k StockIDs took 1.6 s of a brand's ingestion
    (BENCHMARKS.md §1b)."""
    names = sorted(set(selling["status"]))
    if len(names) > 62:  # more statuses than bits: join per place (slow, never seen)
        joined_per_place = selling.groupby(_PLACE_KEYS)["status"].agg(
            lambda s: "|".join(sorted(set(s)))
        )
        return joined_per_place.rename("statuses").reset_index().drop(columns="stock_code")
    codes = pd.Categorical(selling["status"], categories=names).codes.astype("int64")
    masks = (
        pd.DataFrame(
            {"stock_id": selling["stock_id"].to_numpy(), "site_id": selling["site_id"].to_numpy()}
        )
        .assign(mask=np.left_shift(np.int64(1), codes))
        .drop_duplicates()
        .groupby(["stock_id", "site_id"], as_index=False)["mask"]
        .sum()
    )
    joined = {
        mask: "|".join(n for i, n in enumerate(names) if mask >> i & 1)
        for mask in masks["mask"].unique()
    }
    return masks.assign(statuses=masks.pop("mask").map(joined).astype("object"))


def place_sellable(
    db: Store, conf: Settings, counts: pd.DataFrame, sku_map: pd.DataFrame, run_id: str, day: str
) -> SellablePlacement:
    """Place the run's snapshot; keep every site's units, the sellable table and the SKU map
    for the push; the newest snapshot syncs which SKUs nobody can sell now."""
    detail, site = site_detail(counts, sku_map, conf, run_id)
    # The counts' own buckets must agree with the policy before anything is placed.
    problems = no_non_sellable_counted_as_sellable(counts, conf.status_policy)
    if problems:
        raise SnapshotError(
            f"{len(problems)} group(s) of non-sellable units counted as sellable", problems
        )
    selling = detail.loc[detail["bucket"].isin(_SELLING_BUCKETS)]
    frame = (
        selling.assign(
            sellable_units=selling["units"].where(selling["bucket"] == "sellable", 0),
            allocated_units=selling["units"].where(selling["bucket"] == "allocated", 0),
        )
        .groupby(_PLACE_KEYS, as_index=False)
        .agg(sellable_units=("sellable_units", "sum"), allocated_units=("allocated_units", "sum"))
        .merge(_statuses(selling), on=["stock_id", "site_id"], how="left")
        .sort_values("stock_id", ignore_index=True)
    )
    snapshot = run_snapshot(conf, db, run_id, day)
    if snapshot is None:
        raise SnapshotError(f"no snapshot taken in for {day}")
    sid = snapshot.snapshot_id
    # What the push takes: every site's units, and the sellable table its check guards.
    write_parquet_atomically(site.units, site_units_path(conf, sid))
    write_parquet_atomically(frame, sellable_path(conf, sid))
    write_parquet_atomically(sku_map, sku_map_path(conf, sid))
    unmatched = _unmatched_selling_problems(site, sid)
    newest = StockSnapshots(db.db).newest()
    if newest is not None and newest.snapshot_id == sid:
        # The newest snapshot says which SKUs nobody can sell now.
        sync_exceptions(
            db,
            unmatched,
            [ExceptionType.SKU_UNKNOWN_TO_KHAOS],
            owns=lambda ref: ref.startswith("stock:"),
        )
    return SellablePlacement(frame, sid, site)


def place_non_sellable(
    counts: pd.DataFrame, sku_map: pd.DataFrame, conf: Settings, run_id: str = ""
) -> tuple[pd.DataFrame, Any]:
    """(per StockID × bucket × site the units not for sale, the placement behind it);
    ``run_id``: the run's own placement of the same counts is taken when there is one."""
    detail, site = site_detail(counts, sku_map, conf, run_id)
    others = detail.loc[~detail["bucket"].isin(_SELLING_BUCKETS)]
    frame = (
        others.groupby(["stock_id", "stock_code", "bucket", "site_id"], as_index=False)["units"]
        .sum()
        .sort_values(["stock_id", "site_id"], ignore_index=True)
    )
    return frame, site


@dataclass(frozen=True)
class SellableCheck:
    snapshot_id: str
    mismatches: list[str]
    counted_units: int


def check_sellable(db: Store, conf: Settings, run_id: str, day: str) -> SellableCheck | None:
    """The run's sellable table against the snapshot's raw per-status counts (None: the
    run's snapshot or its sellable table is missing)."""
    snapshot = run_snapshot(conf, db, run_id, day)
    if snapshot is None or not sellable_path(conf, snapshot.snapshot_id).exists():
        return None
    sid = snapshot.snapshot_id
    sellable = pd.read_parquet(sellable_path(conf, sid))
    mismatches = sellable_mismatches(
        pd.read_parquet(snapshot.counts_path),
        pd.read_parquet(sku_map_path(conf, sid)),
        sellable,
        conf.status_policy,
        site_units=pd.read_parquet(site_units_path(conf, sid)),
        selling_sites=selling_sites(conf),
    )
    counted = int(sellable["sellable_units"].sum() + sellable["allocated_units"].sum())
    return SellableCheck(sid, mismatches, counted)


def _unmatched_selling_problems(site: Any, snapshot_id: str) -> list[_Problem]:
    """Sellable or allocated units under ACS SKUs Khaos does not know (or cannot use, such
    as a code with ``#``): they are in no Khaos Level, so the website cannot sell them."""
    problems = []
    for row in site.unmatched_selling.itertuples(index=False):
        problems.append(
            _Problem(
                type=str(ExceptionType.SKU_UNKNOWN_TO_KHAOS),
                entity_ref=f"stock:{row.sku}",
                message=(
                    f"ACS holds {row.units} sellable or allocated unit(s) of SKU {row.sku!r}, "
                    "which matches no usable Khaos stock item: they are in no Khaos Level "
                    "and cannot be sold. Create or fix the item in Khaos (codes: at most "
                    "50 characters, no '#'), or ask ACS to correct the SKU."
                ),
                details={"sku": row.sku, "units": int(row.units), "snapshot_id": snapshot_id},
            )
        )
    return problems
