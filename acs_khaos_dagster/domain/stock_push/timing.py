"""Step 2 of the push: timing corrections between the snapshot and the push.

An event ACS counted before the snapshot that Khaos has not booked by the push (or the
other way round) is added to ACS's units, signed, so the target is what Khaos's Level
would be at the push (``CorrectionKind`` states the two-moment rule).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import pandas as pd

from acs_khaos_dagster.domain.stock_push.common import _require


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
        return frame.loc[~frame["is_hire"].astype("boolean").fillna(False).astype(bool)]
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
