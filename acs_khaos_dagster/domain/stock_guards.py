"""Guards that stand between an ACS snapshot and the push: pure, no I/O.

* ``plausibility`` refuses a snapshot that looks broken against the last accepted one
  (a truncated file must never zero the website).
* ``no_non_sellable_counted_as_sellable`` checks, on the data, that no unit in a
  non-sellable or unknown status landed where sellable units go.
* ``UnknownStatusReport`` names each unknown status and its units for the
  ``unknown_stock_status`` exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from acs_khaos_dagster.domain.layout import KhaosSites
from acs_khaos_dagster.domain.stock_status import (
    DEFAULT_STATUS_POLICY,
    StatusPolicy,
    StockBucket,
    normalise_status,
)

# Units in these buckets are what the selling (and hire stock) site's Level is made of.
_SELLING_BUCKETS = (str(StockBucket.SELLABLE), str(StockBucket.ALLOCATED))


# --- plausibility ---------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotTotals:
    """The three figures the plausibility guard compares.

    ``total``    every unit in the snapshot, whatever its status (unmatched SKUs too).
    ``sellable`` units in the sellable **or allocated** buckets — what becomes Level on
                 the selling and hire stock sites. Allocated units count because a busy
                 trading day turns ready units into allocated ones without losing any.
    ``unknown``  units whose status the policy does not know.
    """

    total: int
    sellable: int
    unknown: int

    @classmethod
    def from_counts(
        cls, counts: pd.DataFrame, policy: StatusPolicy = DEFAULT_STATUS_POLICY
    ) -> SnapshotTotals:
        """Totals of a ``status_counts`` frame (buckets taken from ``policy``)."""
        if counts.empty:
            return cls(total=0, sellable=0, unknown=0)
        per_status = counts.groupby("status")["units"].sum()
        buckets = pd.Series(
            {s: str(policy.bucket_for(str(s))) for s in per_status.index}, dtype=object
        )
        return cls(
            total=int(per_status.sum()),
            sellable=int(per_status[buckets.isin(_SELLING_BUCKETS)].sum()),
            unknown=int(per_status[buckets == str(StockBucket.UNKNOWN)].sum()),
        )


@dataclass(frozen=True)
class PlausibilityThresholds:
    """Defaults: refuse when, against the last accepted snapshot, total units fall by
    more than 10%, sellable units by more than 20%, or unknown-status units exceed 2%
    of the snapshot's units. Limits are inclusive: exactly 10% down is accepted."""

    max_total_drop: float = 0.10
    max_sellable_drop: float = 0.20
    max_unknown_share: float = 0.02


@dataclass(frozen=True)
class GuardResult:
    """``accepted`` or not, with one human sentence per broken rule in ``reasons``."""

    accepted: bool
    reasons: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)


def _drop(now: int, before: int) -> float:
    return 0.0 if before <= 0 else (before - now) / before


def plausibility(
    current_totals: SnapshotTotals,
    last_accepted_totals: SnapshotTotals | None,
    thresholds: PlausibilityThresholds | None = None,
) -> GuardResult:
    """Whether a snapshot is plausible enough to push.

    Rules (``thresholds`` defaults in brackets):

    * a snapshot with no units at all is always refused (it would zero every site);
    * unknown units > ``max_unknown_share`` of the snapshot's units [2%] → refused;
    * against the last accepted snapshot only (the first snapshot skips these):
      total units down by more than ``max_total_drop`` [10%], or sellable (+allocated)
      units down by more than ``max_sellable_drop`` [20%] → refused.

    Example: last accepted 10,000 units (8,000 sellable). A file cut at 60% has 6,000
    (4,800 sellable): total down 40% → refused. A 5% dip (9,500 / 7,600) → accepted.
    """
    limits = thresholds or PlausibilityThresholds()
    reasons: list[str] = []
    now = current_totals
    share = 0.0 if now.total == 0 else now.unknown / now.total
    metrics: dict[str, float] = {
        "total_units": float(now.total),
        "sellable_units": float(now.sellable),
        "unknown_units": float(now.unknown),
        "unknown_share": share,
    }
    if now.total <= 0:
        reasons.append("the snapshot has no units: refusing to zero Khaos's stock")
    if share > limits.max_unknown_share:
        reasons.append(
            f"{now.unknown} of {now.total} units ({share:.1%}) have an unknown status, "
            f"above the {limits.max_unknown_share:.0%} limit"
        )
    if last_accepted_totals is not None:
        last = last_accepted_totals
        total_drop = _drop(now.total, last.total)
        sellable_drop = _drop(now.sellable, last.sellable)
        metrics.update(
            {
                "last_total_units": float(last.total),
                "last_sellable_units": float(last.sellable),
                "total_drop": total_drop,
                "sellable_drop": sellable_drop,
            }
        )
        if total_drop > limits.max_total_drop:
            reasons.append(
                f"total units fell {total_drop:.1%} ({last.total} → {now.total}), above the "
                f"{limits.max_total_drop:.0%} limit: is the file truncated?"
            )
        if sellable_drop > limits.max_sellable_drop:
            reasons.append(
                f"sellable units fell {sellable_drop:.1%} ({last.sellable} → {now.sellable}), "
                f"above the {limits.max_sellable_drop:.0%} limit"
            )
    return GuardResult(accepted=not reasons, reasons=tuple(reasons), metrics=metrics)


# --- nothing non-sellable counted as sellable --------------------------------------------


@dataclass(frozen=True)
class SellableProblem:
    """One group of units counted where sellable units go although their status is not."""

    where: str  # "counts" or "site_units"
    key: str  # the sku (counts) or stock_id (site units)
    status: str
    bucket: str  # the bucket the data claims
    policy_bucket: str  # the bucket the policy gives the status
    units: int

    def __str__(self) -> str:
        return (
            f"{self.where}: {self.units} unit(s) of {self.key} in status {self.status!r} "
            f"counted as {self.bucket} but the policy says {self.policy_bucket}"
        )


def no_non_sellable_counted_as_sellable(
    counts: pd.DataFrame,
    policy: StatusPolicy = DEFAULT_STATUS_POLICY,
    *,
    site_detail: pd.DataFrame | None = None,
    sites: KhaosSites | None = None,
) -> list[SellableProblem]:
    """Every place a unit that is not sellable/allocated under ``policy`` counts as such.

    Checked on the data, not assumed: ``counts`` (sku, status, bucket, units) rows whose
    ``bucket`` is sellable or allocated must have a status the policy puts in that bucket
    (an unknown or non-sellable status there is a problem). With ``site_detail``
    (``SiteUnits.detail``: stock_id, site_id, bucket, status, units) and ``sites``, also
    every unit on the selling or hire stock site must have a sellable/allocated status.
    An empty list means the check passed; any entry must block the push.

    Example: a row ("DRESS-S", "in refurbishment", bucket "sellable", 3) → one problem,
    policy bucket "non_sellable".
    """
    problems: list[SellableProblem] = []
    policy_bucket = {}

    def bucket_of(status: str) -> str:
        if status not in policy_bucket:
            policy_bucket[status] = str(policy.bucket_for(status))
        return policy_bucket[status]

    if not counts.empty:
        claimed = counts.loc[counts["bucket"].astype(str).isin(_SELLING_BUCKETS)]
        for status, rows in claimed.groupby("status", sort=True):
            actual = bucket_of(str(status))
            bad = rows.loc[rows["bucket"].astype(str) != actual]
            for r in bad.itertuples(index=False):
                problems.append(
                    SellableProblem(
                        "counts", str(r.sku), str(status), str(r.bucket), actual, int(r.units)
                    )
                )
    if site_detail is not None and not site_detail.empty:
        sites = sites or KhaosSites()
        on_selling = site_detail.loc[site_detail["site_id"].isin([sites.selling, sites.hire_stock])]
        # Each distinct status looked up once; only the offending rows are walked.
        status = on_selling["status"].astype(str)
        actual_bucket = status.map({v: bucket_of(v) for v in status.unique()})
        offending = ~actual_bucket.isin(_SELLING_BUCKETS) | ~on_selling["bucket"].astype(str).isin(
            _SELLING_BUCKETS
        )
        for r in on_selling.loc[offending].itertuples(index=False):
            actual = bucket_of(str(r.status))
            if actual not in _SELLING_BUCKETS or str(r.bucket) not in _SELLING_BUCKETS:
                problems.append(
                    SellableProblem(
                        "site_units",
                        str(r.stock_id),
                        str(r.status),
                        str(r.bucket),
                        actual,
                        int(r.units),
                    )
                )
    return problems


# --- unknown statuses ---------------------------------------------------------------------


@dataclass(frozen=True)
class UnknownStatusReport:
    """Units per unknown status value, for the ``unknown_stock_status`` exception.

    ``units_by_value`` maps the status value (raw spelling when built ``from_units``,
    the normalised key when built ``from_counts``) to its units, largest first. Owner:
    ``operations`` (they fix the status at ACS, or ask for the policy to name it).
    """

    units_by_value: dict[str, int]
    owner: str = "operations"

    @property
    def total_units(self) -> int:
        return sum(self.units_by_value.values())

    def __bool__(self) -> bool:
        return bool(self.units_by_value)

    def message(self) -> str:
        parts = ", ".join(f"{v!r}: {n}" for v, n in self.units_by_value.items())
        return (
            f"{self.total_units} unit(s) carry a status the stock policy does not know and "
            f"are on no Khaos site: {parts}"
        )

    @classmethod
    def from_counts(
        cls, counts: pd.DataFrame, policy: StatusPolicy = DEFAULT_STATUS_POLICY
    ) -> UnknownStatusReport:
        """From ``status_counts`` output (normalised statuses)."""
        if counts.empty:
            return cls({})
        per_status = counts.groupby("status")["units"].sum()
        unknown = {
            str(s): int(n)
            for s, n in per_status.items()
            if policy.bucket_for(str(s)) == StockBucket.UNKNOWN and n > 0
        }
        return cls(_largest_first(unknown))

    @classmethod
    def from_units(
        cls, units: pa.Table, policy: StatusPolicy = DEFAULT_STATUS_POLICY
    ) -> UnknownStatusReport:
        """From the unit table of the stock file (``status_raw`` column): raw spellings."""
        column = "status_raw" if "status_raw" in units.column_names else "status"
        grouped = units.select([column]).group_by([column]).aggregate([([], "count_all")])
        unknown = {}
        for raw, n in zip(
            grouped[column].to_pylist(), grouped["count_all"].to_pylist(), strict=True
        ):
            value = "" if raw is None else str(raw)
            if policy.bucket_for(normalise_status(value)) == StockBucket.UNKNOWN:
                unknown[value] = unknown.get(value, 0) + int(n)
        return cls(_largest_first(unknown))


def _largest_first(values: dict[str, int]) -> dict[str, int]:
    return dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))


# --- sellable_stock re-derived by another path ----------------------------------------------


@dataclass(frozen=True)
class SellableMismatch:
    """A StockID whose sellable + allocated units in ``sellable_stock`` differ from the
    units the raw per-status counts give it."""

    stock_id: int
    expected: int
    counted: int

    def __str__(self) -> str:
        return (
            f"StockID {self.stock_id}: sellable_stock counts {self.counted} sellable or "
            f"allocated unit(s), the snapshot's per-status counts give {self.expected}"
        )


def sellable_mismatches(
    counts: pd.DataFrame,
    sku_map: pd.DataFrame,
    sellable: pd.DataFrame,
    policy: StatusPolicy = DEFAULT_STATUS_POLICY,
    *,
    site_units: pd.DataFrame | None = None,
    selling_sites: set[int] | None = None,
) -> list[SellableMismatch]:
    """``sellable_stock`` checked against an independent re-derivation.

    ``counts`` (sku, status, units) are the snapshot's raw per-status counts; the units
    that may sit on the selling or hire stock site are those whose status is one of the
    policy's sellable or allocated names, summed per StockID through ``sku_map`` (sku,
    stock_id). This path shares nothing with the placement that built ``sellable``
    (``stock_id``, ``sellable_units``, ``allocated_units``) but the policy's own list of
    names: a unit in refurbishment or quarantine that ended up on the selling site, a
    unit counted twice or one lost, shows as a mismatch. With ``site_units`` (stock_id,
    site_id, units: what the push will set) the units on ``selling_sites`` must match
    too. An empty list passes.
    """
    names = {
        key
        for key, rule in policy.rules.items()
        if rule.bucket in (StockBucket.SELLABLE, StockBucket.ALLOCATED)
    }
    statuses = counts["status"].astype(str)
    keys = statuses.map({s: normalise_status(s) for s in statuses.unique()})
    selling = counts.loc[keys.isin(names), ["sku", "units"]]
    ids = dict(zip(sku_map["sku"].astype(str), sku_map["stock_id"].astype(int), strict=True))
    stock_id = selling["sku"].astype(str).map(ids)
    expected = selling.loc[stock_id.notna(), "units"].groupby(stock_id.dropna().astype(int)).sum()
    counted = (
        (sellable["sellable_units"] + sellable["allocated_units"])
        .groupby(sellable["stock_id"].astype(int))
        .sum()
    )
    both = pd.concat({"expected": expected, "counted": counted}, axis=1).fillna(0).astype(int)
    wrong = both.loc[both["expected"] != both["counted"]]
    if site_units is not None:
        on_selling = site_units.loc[site_units["site_id"].isin(selling_sites or set())]
        placed = on_selling["units"].groupby(on_selling["stock_id"].astype(int)).sum()
        pair = pd.concat({"expected": expected, "counted": placed}, axis=1).fillna(0).astype(int)
        wrong = pd.concat([wrong, pair.loc[pair["expected"] != pair["counted"]]])
        wrong = wrong.loc[~wrong.index.duplicated()]
    return [
        SellableMismatch(stock_id=int(i), expected=int(r.expected), counted=int(r.counted))
        for i, r in wrong.sort_index().iterrows()
    ]
