"""Stock: ACS units against Khaos Level per StockID × site, explained.

Part of ``domain.reconciliation`` (see its docstring); code moved verbatim."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from acs_khaos_dagster.domain.reconciliation.common import (
    _COST_SCALE,
    _cost_scaled,
    _pence,
    _pounds,
    _require,
)
from acs_khaos_dagster.domain.stock_push import CorrectionKind, VarianceTolerance

# =====================================================================================
# 1. stock
# =====================================================================================


class StockClass(StrEnum):
    IN_STEP = "in_step"  # ACS and Khaos agree, or timing/pushes explain all of it
    IN_FLIGHT = "in_flight"
    PUSH_MISSING = "push_missing"
    # Something is unexplained, but the StockID's net unexplained difference is within
    # the variance tolerance: the next push books it as VARIANCE without approval. Never
    # ``in_step`` (issue 16): finance sees it in the month-end pack's within-tolerance list.
    WITHIN_TOLERANCE = "within_tolerance"
    UNEXPLAINED = "unexplained"


class InFlightReason(StrEnum):
    """Why a difference is only timing (the ``reason`` of an ``in_flight`` row)."""

    DESPATCHED_NOT_ISSUED = "despatched_not_issued"  # ACS shipped it, invoice not issued
    RESTOCKED_NOT_PROCESSED = "restocked_not_processed"  # ACS restocked, return unprocessed
    EFFECT_PENDING = "effect_pending"  # a push/adjustment still waiting in the outbox
    AFTER_CUTOFF = "after_cutoff"  # booked in Khaos after the snapshot's cut-off


_FROM_CORRECTION = {
    CorrectionKind.DESPATCHED_NOT_ISSUED: InFlightReason.DESPATCHED_NOT_ISSUED,
    CorrectionKind.RESTOCKED_NOT_PROCESSED: InFlightReason.RESTOCKED_NOT_PROCESSED,
    CorrectionKind.ADJUSTMENT_NOT_APPLIED: InFlightReason.EFFECT_PENDING,
    CorrectionKind.ISSUED_AFTER_SNAPSHOT: InFlightReason.AFTER_CUTOFF,
    CorrectionKind.PROCESSED_AFTER_SNAPSHOT: InFlightReason.AFTER_CUTOFF,
    CorrectionKind.APPLIED_AFTER_SNAPSHOT: InFlightReason.AFTER_CUTOFF,
}

IN_FLIGHT_COLUMNS = ("stock_id", "site_id", "units", "reason", "ref")
PUSH_MISSING_COLUMNS = ("stock_id", "site_id", "units", "ref")
STOCK_RECONCILIATION_COLUMNS = (
    "stock_id",
    "site_id",
    "acs_units",
    "khaos_level",
    "difference",
    "value",
    "explained_in_flight",
    "explained_push_missing",
    "unexplained",
    "unexplained_value",
    "classification",
    "in_flight_items",
    "push_missing_refs",
)


def in_flight_from_corrections(corrections: pd.DataFrame) -> pd.DataFrame:
    """The snapshot push's timing corrections as ``in_flight`` rows.

    ``corrections`` is ``stock_push.timing_corrections`` output computed with
    ``push_at`` = the moment the Levels were read. A correction is what is *added to
    ACS's units* to reach the Level Khaos should hold; an ``in_flight`` row is the part of
    ``ACS − Khaos`` it explains — the same number with the opposite sign.
    """
    _require(corrections, ("stock_id", "site_id", "units", "kind"), "corrections")
    refs = corrections["ref"] if "ref" in corrections.columns else ""
    return pd.DataFrame(
        {
            "stock_id": corrections["stock_id"].astype("int64"),
            "site_id": corrections["site_id"].astype("int64"),
            "units": -corrections["units"].astype("int64"),
            "reason": corrections["kind"].map(lambda k: str(_FROM_CORRECTION[CorrectionKind(k)])),
            "ref": refs,
        }
    ).reset_index(drop=True)


def _per_site(frame: pd.DataFrame | None, value: str, columns: Sequence[str]) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame({"stock_id": [], "site_id": [], value: []}, dtype="int64")
    _require(frame, columns, value)
    out = frame.groupby(["stock_id", "site_id"], as_index=False)[columns[2]].sum()
    return out.rename(columns={columns[2]: value}).astype("int64")


def _listing(frame: pd.DataFrame | None, label: Any, name: str) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame({"stock_id": [], "site_id": [], name: []})
    text = label(frame)
    keyed = pd.DataFrame({"stock_id": frame["stock_id"], "site_id": frame["site_id"], "t": text})
    keyed = keyed.sort_values(["stock_id", "site_id", "t"])
    return (
        keyed.groupby(["stock_id", "site_id"], as_index=False)["t"]
        .agg("; ".join)
        .rename(columns={"t": name})
    )


def sku_within_tolerance(
    rows: pd.DataFrame, cost_scaled: pd.Series, tolerance: VarianceTolerance
) -> pd.Series:
    """Per row: is its StockID's net ``unexplained`` (Σ over sites) within tolerance?

    The push's rule (``plan_push``: ``sku_difference`` against ``VarianceTolerance``),
    so a difference the pack lists as within tolerance is exactly one the push books as
    ``VARIANCE`` without holding it. A StockID without a cost price is within tolerance
    only when its net is 0 (its value is unknown).
    """
    net = rows.groupby("stock_id")["unexplained"].transform("sum")
    left = net.abs()
    return (net == 0) | (
        (left <= tolerance.units)
        & cost_scaled.notna()
        & (left * cost_scaled.fillna(0) <= int(tolerance.value * _COST_SCALE))
    )


def stock_reconciliation(
    acs_units: pd.DataFrame,
    khaos_levels: pd.DataFrame,
    in_flight: pd.DataFrame | None = None,
    push_missing: pd.DataFrame | None = None,
    cost_prices: Mapping[int, Any] | pd.Series | None = None,
    tolerance: VarianceTolerance | None = None,
) -> pd.DataFrame:
    """ACS's units against Khaos's Level, per StockID × site, explained and classified.

    Inputs
      ``acs_units``    stock_id, site_id, units — ACS's units placed on Khaos sites by the
                       status policy (``stock_push.acs_site_units(...).units``, the same
                       table the push uses; the selling site includes allocated, picked
                       and packed units).
      ``khaos_levels`` stock_id, site_id, level — Khaos's **Level** (``ExportStockStatus``).
                       Never Available: units allocated to open orders are in both
                       Level and ACS's units, so they are not drift. Any other column
                       (``available``…) is ignored.
      ``in_flight``    stock_id, site_id, units, reason, ref — timing only, one row per
                       event (``InFlightReason``: despatched_not_issued,
                       restocked_not_processed, effect_pending, after_cutoff; the push's
                       ``CorrectionKind`` names are accepted too).
      ``push_missing`` stock_id, site_id, units, ref — a push computed but never
                       confirmed (parked or failed in the outbox): ``units`` is how far
                       its "adjust to" would have moved Level (adjust_to − Level at the
                       plan).
      ``cost_prices``  StockID → CostPrice.
      ``tolerance``    ``VarianceTolerance`` (units and £) on a StockID's net
                       unexplained part (see below). Default: 2 units and £50
                       (``Settings.stock``).

    Sign convention: every unit column is **ACS minus Khaos**. Positive = ACS holds more
    than Khaos's Level; an explanation's ``units`` is the part of that difference it
    explains, so ``difference = explained_in_flight + explained_push_missing +
    unexplained`` on every row. (Equivalently ``unexplained`` is the push's ``target −
    level``: the push's corrections are added to ACS, these are subtracted.)

    Worked example, one dress on the selling site (cost £20): ACS counts 7 ready + 2
    packed = 9; Khaos's Level is 11 (its Available, 9, is not used). One unit was
    despatched before the snapshot and its invoice is not issued (in_flight −1, ref the
    invoice); a push of "adjust to 10" (from 11: −1) parked in the outbox (push_missing
    −1). difference = 9 − 11 = −2 (value −£40), explained −1 and −1, unexplained 0 →
    ``push_missing``. Without the parked push: unexplained −1, within 2 units/£50 →
    ``within_tolerance``. With Level 20: unexplained −10 → ``unexplained`` (−£200).

    Tolerance is judged as the push judges it (``stock_push.plan_push``): on a StockID's
    **net** unexplained difference over all its sites (units and £ at cost), because a
    difference that only moves units between sites is a status move the push books as a
    transfer, and only the net is a variance. So every row of one StockID is within
    tolerance, or none is.

    Classification (first that applies):
      ``unexplained``      the row has an unexplained part and its StockID's net
                           unexplained difference is beyond tolerance (or not zero and
                           its value unknown for want of a cost price);
      ``within_tolerance`` the row has an unexplained part, within tolerance: the next
                           push books it as ``VARIANCE`` without approval (never
                           ``in_step``: the pack lists these);
      ``in_step``          ACS and Khaos agree (difference 0);
      ``push_missing``     an unconfirmed push explains (part of) the difference;
      ``in_flight``        timing explains the rest of it.

    Output (``STOCK_RECONCILIATION_COLUMNS``), sorted by stock_id, site_id; ``value``
    and ``unexplained_value`` in pounds (NaN without a cost price); ``in_flight_items``
    lists each timing event as "reason ref (±units)", ``push_missing_refs`` each push.
    """
    tolerance = tolerance or VarianceTolerance()
    _require(acs_units, ("stock_id", "site_id", "units"), "acs_units")
    _require(khaos_levels, ("stock_id", "site_id", "level"), "khaos_levels")
    if in_flight is not None and not in_flight.empty:
        _require(in_flight, IN_FLIGHT_COLUMNS[:4], "in_flight")
        known = {str(r) for r in InFlightReason} | {str(k) for k in CorrectionKind}
        bad = sorted(set(in_flight["reason"].astype(str)) - known)
        if bad:
            raise ValueError(f"in_flight has unknown reason(s) {bad}; expected {sorted(known)}")
    acs = _per_site(acs_units, "acs_units", ("stock_id", "site_id", "units"))
    level = _per_site(khaos_levels, "khaos_level", ("stock_id", "site_id", "level"))
    flight = _per_site(in_flight, "explained_in_flight", ("stock_id", "site_id", "units"))
    missing = _per_site(push_missing, "explained_push_missing", ("stock_id", "site_id", "units"))

    keys = ["stock_id", "site_id"]
    t = acs.merge(level, on=keys, how="outer")
    for frame in (flight, missing):
        t = t.merge(frame, on=keys, how="outer")
    value_columns = ["acs_units", "khaos_level", "explained_in_flight", "explained_push_missing"]
    t[keys + value_columns] = t[keys + value_columns].fillna(0).astype("int64")
    t["difference"] = t["acs_units"] - t["khaos_level"]
    t["unexplained"] = t["difference"] - t["explained_in_flight"] - t["explained_push_missing"]

    cost = _cost_scaled(t["stock_id"], cost_prices)
    t["value"] = _pounds(_pence(t["difference"], cost))
    t["unexplained_value"] = _pounds(_pence(t["unexplained"], cost))
    within = sku_within_tolerance(t, cost, tolerance)
    t["classification"] = np.select(
        [
            (t["unexplained"] != 0) & ~within,
            t["unexplained"] != 0,
            t["difference"] == 0,
            t["explained_push_missing"] != 0,
            t["explained_in_flight"] != 0,
        ],
        [
            StockClass.UNEXPLAINED,
            StockClass.WITHIN_TOLERANCE,
            StockClass.IN_STEP,
            StockClass.PUSH_MISSING,
            StockClass.IN_FLIGHT,
        ],
        default=StockClass.IN_STEP,
    ).astype(object)
    t["classification"] = t["classification"].map(str)

    flights = _listing(
        in_flight,
        lambda f: (
            f["reason"].astype(str)
            + " "
            + f.get("ref", pd.Series("", f.index)).fillna("").astype(str)
            + " ("
            + f["units"].map(lambda u: f"{int(u):+d}")
            + ")"
        ),
        "in_flight_items",
    )
    pushes = _listing(
        push_missing,
        lambda f: f.get("ref", pd.Series("", f.index)).fillna("").astype(str),
        "push_missing_refs",
    )
    for frame in (flights, pushes):
        if not frame.empty:
            frame[keys] = frame[keys].astype("int64")
        t = t.merge(frame, on=keys, how="left")
    t[["in_flight_items", "push_missing_refs"]] = t[
        ["in_flight_items", "push_missing_refs"]
    ].fillna("")
    return t.sort_values(keys, ignore_index=True)[list(STOCK_RECONCILIATION_COLUMNS)]
