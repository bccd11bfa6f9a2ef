"""The snapshot push: what each Khaos site's Level should be, and the planned changes.

Pure and vectorised (pandas): no Dagster, no network, no database. The lead's
``khaos_stock_update`` asset reads the inputs, calls these functions, records the
groups in the outbox, and raises the held lines as ``stock_variance_held``.

The specification is "Stock arithmetic" in ARCHITECTURE.md. In one sentence:

    target Level (StockID × site) = ACS's physical units on that site at the snapshot
                                    + timing corrections taken at the push

and the target is **what Khaos's Level would be at the push if it agreed with ACS
at the snapshot**. Khaos computes ``Available = Level − allocated`` itself, so the
selling site's units include what ACS holds for orders (allocated, picking,
packed): those units are in Khaos's Level until their invoice is issued. No
safety buffer ever goes into Level.

Pipeline::

    counts (snapshot.status_counts) ──acs_site_units──▶ SiteUnits.units
    despatches / returns / adjustments ──timing_corrections──▶ corrections
    SiteUnits.units + corrections + Khaos levels ──plan_push──▶ PushPlan
        (groups of AdjustmentLine per site, held variances, the full target table)

Worked example (one dress, sites selling=1, refurbishment=5). ACS at the snapshot:
7 ready, 2 packed for an order, 1 in refurbishment; a unit despatched before the
snapshot whose invoice is not issued yet at the push. Khaos at the push: selling
Level 11, refurbishment 0.

* ACS units: selling 7 + 2 = 9, refurbishment 1.
* Correction: +1 on selling (Khaos still holds the despatched unit until its
  invoice is issued; the invoice, not the push, will remove it).
* Target: selling 10, refurbishment 1. Against Khaos: selling −1, refurbishment
  +1: the StockID's total is unchanged, so it is a status move, pushed as the
  pair ``adjust to 10`` / ``adjust to 1`` with reason ``REFURBISH``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

import numpy as np
import pandas as pd
from pydantic import TypeAdapter

from acs_khaos_dagster.domain.layout import KhaosReasons, KhaosSites
from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    StockAdjustmentGroup,
    StockMove,
    leg_ref,
)
from acs_khaos_dagster.domain.stock_status import (
    DEFAULT_STATUS_POLICY,
    StatusPolicy,
    StockBucket,
    site_id_for,
)

# --- reason codes ---------------------------------------------------------------

REASON_VARIANCE = "VARIANCE"
REASON_TRANSFER = "TRANSFER"
REASON_REFURBISH = "REFURBISH"

# Cost prices are carried as integer ten-thousandths of a pound so tolerance checks
# are exact and vectorised (Khaos costs can carry four decimal places).
_COST_SCALE = 10_000
_PENNY = Decimal("0.01")

# --- 1. ACS units per StockID × Khaos site ----------------------------------------

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


def _require(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it has {list(frame.columns)}")


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


# --- 2. timing corrections (the two moments) -------------------------------------------


class CorrectionKind(StrEnum):
    """Why a correction is added to ACS's units. Sign: units are *added* to the target.

    Each event has an ACS moment (when ACS's count changed) and a Khaos moment (when its
    own path moves Khaos's Level by ``change``). With the snapshot at S and the push at P:

    * ACS moment ≤ S and not booked in Khaos at P → correction = −change
      (ACS already counts the result, Khaos will book it later via its own path);
    * ACS moment > S and booked in Khaos at or before P → correction = +change
      (Khaos already booked it, ACS's snapshot does not show it yet).

    Otherwise (both before, or both after / neither) no correction.
    """

    # sale despatch (change = −units when the invoice is issued)
    DESPATCHED_NOT_ISSUED = "despatched_not_issued"  # +units
    ISSUED_AFTER_SNAPSHOT = "issued_after_snapshot"  # −units
    # sale return restocked (change = +units when processed "return to stock")
    RESTOCKED_NOT_PROCESSED = "restocked_not_processed"  # −units
    PROCESSED_AFTER_SNAPSHOT = "processed_after_snapshot"  # +units
    # adjustment by another path, e.g. write-off (change −units) or an EXHIRE leg (±1)
    ADJUSTMENT_NOT_APPLIED = "adjustment_not_applied"  # −change
    APPLIED_AFTER_SNAPSHOT = "applied_after_snapshot"  # +change


class Moment(StrEnum):
    BEFORE_SNAPSHOT = "before_snapshot"  # the ACS event is in the snapshot
    AFTER_SNAPSHOT = "after_snapshot"  # the ACS event happened after the snapshot


TIMING_CORRECTION_COLUMNS = ("stock_id", "site_id", "units", "kind", "moment", "ref")
"""The corrections table: ``units`` is signed and **added** to ACS's units.

``kind`` is a ``CorrectionKind`` value, ``moment`` a ``Moment`` value, ``ref`` the
source's reference (invoice, return, adjustment) for the audit trail, "" if none.
"""

DESPATCH_COLUMNS = ("stock_id", "site_id", "units", "despatched_at", "issued_at")
RETURN_COLUMNS = ("stock_id", "site_id", "units", "restocked_at", "processed_at")
ADJUSTMENT_COLUMNS = ("stock_id", "site_id", "change", "happened_at", "applied_at")


def empty_corrections() -> pd.DataFrame:
    """A corrections table with no rows (the right dtypes)."""
    return pd.DataFrame(
        {
            "stock_id": pd.Series(dtype="int64"),
            "site_id": pd.Series(dtype="int64"),
            "units": pd.Series(dtype="int64"),
            "kind": pd.Series(dtype="object"),
            "moment": pd.Series(dtype="object"),
            "ref": pd.Series(dtype="object"),
        }
    )


def _utc(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True)


def _two_moment(
    frame: pd.DataFrame,
    *,
    acs_at: str,
    booked_at: str,
    change: pd.Series,
    snapshot_at: pd.Timestamp,
    push_at: pd.Timestamp,
    before_kind: CorrectionKind,
    after_kind: CorrectionKind,
) -> pd.DataFrame:
    if frame.empty:
        return empty_corrections()
    acs_moment = _utc(frame[acs_at])
    if acs_moment.isna().any():
        raise ValueError(f"{acs_at} is required on every row")
    booked = _utc(frame[booked_at])
    booked_at_push = booked.notna() & (booked <= push_at)
    before = acs_moment <= snapshot_at
    add_back = before & ~booked_at_push
    booked_since = ~before & booked_at_push
    refs = frame["ref"].astype(str) if "ref" in frame.columns else pd.Series("", frame.index)
    parts = []
    for mask, sign, kind, moment in (
        (add_back, -1, before_kind, Moment.BEFORE_SNAPSHOT),
        (booked_since, 1, after_kind, Moment.AFTER_SNAPSHOT),
    ):
        if mask.any():
            parts.append(
                pd.DataFrame(
                    {
                        "stock_id": frame.loc[mask, "stock_id"].astype("int64"),
                        "site_id": frame.loc[mask, "site_id"].astype("int64"),
                        "units": (sign * change[mask]).astype("int64"),
                        "kind": str(kind),
                        "moment": str(moment),
                        "ref": refs[mask],
                    }
                )
            )
    if not parts:
        return empty_corrections()
    return pd.concat(parts, ignore_index=True)


def _sale_rows(frame: pd.DataFrame) -> pd.DataFrame:
    # A hire invoice never moves Level and a hire return raises no credit: hire units move
    # between sites through the snapshot itself, so they need no timing correction.
    if "is_hire" in frame.columns:
        return frame.loc[~frame["is_hire"].fillna(False).astype(bool)]
    return frame


def timing_corrections(
    *,
    snapshot_at: datetime,
    push_at: datetime,
    despatches: pd.DataFrame | None = None,
    returns: pd.DataFrame | None = None,
    adjustments: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Turn raw facts into the corrections table (``TIMING_CORRECTION_COLUMNS``).

    ``push_at`` is the moment Khaos's Levels were read (and, as nearly as possible,
    applied): "issued/processed/applied at the push" means at or before ``push_at``.
    An ACS moment equal to ``snapshot_at`` counts as in the snapshot. Timestamps are
    timezone-aware; missing Khaos moments are ``None``/``NaT`` (not booked yet).

    ``despatches`` — sale units ACS despatched, one row per invoice line:
    ``stock_id, site_id, units, despatched_at, issued_at`` (+ optional ``is_hire``, ``ref``).
    Issuing the invoice lowers Level by ``units``. Hire rows are ignored.

    * despatched ≤ snapshot, invoice not issued at push → **+units** (Khaos still holds
      them; ACS no longer counts them; the invoice will remove them).
    * despatched > snapshot, invoice issued at push → **−units** (ACS still counted them as
      allocated/packed, Khaos already removed them).

    ``returns`` — sale returns ACS restocked, to be processed "return to stock" in Khaos
    at ``site_id``: ``stock_id, site_id, units, restocked_at, processed_at`` (+ optional
    ``is_hire``, ``ref``). Processing raises Level by ``units``. Pass only returns whose
    Khaos processing raises Level (a write-off reason moves nothing: leave it out).

    * restocked ≤ snapshot, not processed at push → **−units** (ACS counts the unit,
      Khaos's Level does not have it yet and processing the return will add it).
    * restocked > snapshot, processed at push → **+units** (Khaos already added it, the
      snapshot did not yet show it).

    ``adjustments`` — Level changes booked by another path: a write-off of a unit still in
    Khaos's Level (``change`` −1 per unit), or each leg of an ``EXHIRE`` move (−1 on the
    hire StockID, +1 on its resale StockID): ``stock_id, site_id, change, happened_at,
    applied_at`` (+ optional ``ref``). ``happened_at`` is when ACS's count changed (the
    unit left or joined ``site_id``'s units in the file); ``applied_at`` is when the
    adjustment was applied in Khaos (None while it waits in the outbox).

    * happened ≤ snapshot, not applied at push → **−change** (a pending write-off of 1
      adds 1 back: the write-off path will move it, so the push must not).
    * happened > snapshot, applied at push → **+change** (a write-off applied since the
      snapshot: −1, or the push would restore it).

    Example (snapshot 10:00, push 10:30): a dress despatched 09:40 whose invoice is still
    at stage 16 → (dress, selling, +1, despatched_not_issued); one despatched 10:10 and
    issued 10:20 → (dress, selling, −1, issued_after_snapshot); one despatched 09:00 and
    issued 09:30 → nothing (both sides agree).
    """
    snap = pd.Timestamp(snapshot_at)
    push = pd.Timestamp(push_at)
    if snap.tzinfo is None or push.tzinfo is None:
        raise ValueError("snapshot_at and push_at must be timezone-aware")
    if push < snap:
        raise ValueError("the push cannot be before the snapshot it pushes")
    snap, push = snap.tz_convert("UTC"), push.tz_convert("UTC")
    parts = []
    if despatches is not None and not despatches.empty:
        _require(despatches, DESPATCH_COLUMNS, "despatches")
        rows = _sale_rows(despatches)
        parts.append(
            _two_moment(
                rows,
                acs_at="despatched_at",
                booked_at="issued_at",
                change=-rows["units"].astype("int64"),
                snapshot_at=snap,
                push_at=push,
                before_kind=CorrectionKind.DESPATCHED_NOT_ISSUED,
                after_kind=CorrectionKind.ISSUED_AFTER_SNAPSHOT,
            )
        )
    if returns is not None and not returns.empty:
        _require(returns, RETURN_COLUMNS, "returns")
        rows = _sale_rows(returns)
        parts.append(
            _two_moment(
                rows,
                acs_at="restocked_at",
                booked_at="processed_at",
                change=rows["units"].astype("int64"),
                snapshot_at=snap,
                push_at=push,
                before_kind=CorrectionKind.RESTOCKED_NOT_PROCESSED,
                after_kind=CorrectionKind.PROCESSED_AFTER_SNAPSHOT,
            )
        )
    if adjustments is not None and not adjustments.empty:
        _require(adjustments, ADJUSTMENT_COLUMNS, "adjustments")
        parts.append(
            _two_moment(
                adjustments,
                acs_at="happened_at",
                booked_at="applied_at",
                change=adjustments["change"].astype("int64"),
                snapshot_at=snap,
                push_at=push,
                before_kind=CorrectionKind.ADJUSTMENT_NOT_APPLIED,
                after_kind=CorrectionKind.APPLIED_AFTER_SNAPSHOT,
            )
        )
    parts = [p for p in parts if not p.empty]
    if not parts:
        return empty_corrections()
    out = pd.concat(parts, ignore_index=True)
    out = out.loc[out["units"] != 0]
    return out.sort_values(["stock_id", "site_id", "kind", "ref"], ignore_index=True)[
        list(TIMING_CORRECTION_COLUMNS)
    ]


# --- 3. the plan ----------------------------------------------------------------------------


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


def _money(units: int, cost_scaled: int) -> Decimal:
    """``units × cost`` in pounds to the penny, half up (costs are non-negative)."""
    pence = (abs(units) * cost_scaled + _COST_SCALE // 200) // (_COST_SCALE // 100)
    return Decimal(pence).scaleb(-2)


def group_ref(snapshot_id: str, site_id: int, batch: int) -> str:
    """The outbox key and Khaos ``GroupRef`` of one batch: deterministic, so a rerun of
    the same plan finds its groups already recorded and never adjusts twice.

    >>> group_ref("20250301T0900", 1, 2)
    'SNAP-20250301T0900-S1-B002'
    """
    return f"SNAP-{snapshot_id}-S{site_id}-B{batch:03d}"


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


_LINES = TypeAdapter(list[AdjustmentLine])


def _reason_codes(reasons: KhaosReasons) -> dict[str, str]:
    return {
        REASON_VARIANCE: reasons.variance,
        REASON_TRANSFER: reasons.transfer,
        REASON_REFURBISH: reasons.refurbish,
    }


def _lines(site_lines: pd.DataFrame, codes: dict[str, str]) -> list[AdjustmentLine]:
    """The planned changes of one site's rows (one validation call for them all)."""
    change = site_lines["pushed_to"] - site_lines["level"]
    cost = site_lines["cost_scaled"].fillna(0).astype("int64")
    pence = (change.abs() * cost + _COST_SCALE // 200) // (_COST_SCALE // 100)
    return _LINES.validate_python(
        [
            {
                "stock_id": stock_id,
                "adjust_by": by,
                "planned_level": level,
                "reason_code": codes[reason],
                "value": Decimal(p).scaleb(-2),
            }
            for stock_id, by, level, reason, p in zip(
                site_lines["stock_id"].tolist(),
                change.tolist(),
                site_lines["level"].tolist(),
                site_lines["reason"].tolist(),
                pence.tolist(),
                strict=True,
            )
        ]
    )


def move_ref(snapshot_id: str, batch: int) -> str:
    """The outbox key of one batch of status moves; its legs add ``-S{site}``.

    >>> move_ref("20250301T0900", 1)
    'SNAP-20250301T0900-M001'
    """
    return f"SNAP-{snapshot_id}-M{batch:03d}"


def _moves(
    lines: pd.DataFrame, snapshot_id: str, max_stock_ids: int, codes: dict[str, str]
) -> tuple[StockMove, ...]:
    if lines.empty:
        return ()
    stock_ids = sorted(set(lines["stock_id"].tolist()))
    out: list[StockMove] = []
    for batch, start in enumerate(range(0, len(stock_ids), max_stock_ids), start=1):
        chunk = lines.loc[lines["stock_id"].isin(stock_ids[start : start + max_stock_ids])]
        ref = move_ref(snapshot_id, batch)
        legs = tuple(
            StockAdjustmentGroup(
                site_id=int(site_id),
                group_ref=leg_ref(ref, int(site_id)),
                lines=tuple(_lines(rows, codes)),
            )
            for site_id, rows in chunk.groupby("site_id", sort=True)
        )
        out.append(StockMove(ref=ref, legs=legs))
    return tuple(out)


def _groups(
    lines: pd.DataFrame, snapshot_id: str, max_lines: int, codes: dict[str, str]
) -> tuple[StockAdjustmentGroup, ...]:
    if lines.empty:
        return ()
    out: list[StockAdjustmentGroup] = []
    for site_id, site_lines in lines.groupby("site_id", sort=True):
        validated = _lines(site_lines, codes)
        for batch, start in enumerate(range(0, len(validated), max_lines), start=1):
            out.append(
                StockAdjustmentGroup(
                    site_id=int(site_id),
                    group_ref=group_ref(snapshot_id, int(site_id), batch),
                    lines=tuple(validated[start : start + max_lines]),
                )
            )
    return tuple(out)


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
