"""Hire units: where each one is in its lifecycle, since when, and how it got there.

Pure: no Dagster, no I/O. A hire unit goes out to a customer, comes back, is inspected,
cleaned (or repaired), made ready and goes out again, until it is retired (ex-hired:
written off or moved to resale, see ``domain.returns.plan_write_offs``). While it is out
it sits on Khaos's on-hire site: neither sellable nor lost.

Input
-----
``snapshots``: ``(snapshot_at, units)`` pairs, one per ACS stock snapshot, where ``units``
has ``unique_sku``, ``sku``, ``status`` (raw or normalised: it is normalised here) and
optionally ``last_event_at`` (when ACS last moved the unit). Pass only hire units, or give
``hire_skus`` to filter. ``events`` (optional): despatch and return events with
``unique_sku``, ``stage`` (a ``HireStage`` value, e.g. ``out`` for a despatch, ``back`` for
a return receipt), ``at`` and optionally ``sku``.

Stages
------
Each status maps to a stage through the stock status policy (``StatusPolicy.rule_for``):

| status (default policy) | bucket / site role | stage |
| --- | --- | --- |
| With Customer | on_hire | out |
| Receipted - No Location | (override) | back |
| Awaiting Inspection, Post-Rental Inspection, In Warehouse Processing | inspection | inspected |
| Cleaning, In Refurbishment, In Repair | refurbishment | cleaned |
| Quarantine | quarantine | quarantined |
| Ready For Customer, Allocated, Picking, Packed | sellable / allocated | ready |
| Ex-Hired | retired | retired |
| anything else | unknown | unknown |

``stage_overrides`` (normalised status → stage) win over the table. A unit seen ``out``
and next seen anywhere else came back: a ``back`` entry is added at the time of that
next observation when no ``back`` was seen in between.

An observation's time is the unit's ``last_event_at`` when present and not after the
snapshot (ACS moved it then), else the snapshot time. Repeated observations of the same
stage collapse into one entry (the first time it was seen).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from acs_khaos_dagster.domain.stock_status import (
    DEFAULT_STATUS_POLICY,
    StatusPolicy,
    StockBucket,
    normalise_status,
)


class HireStage(StrEnum):
    OUT = "out"
    BACK = "back"
    INSPECTED = "inspected"
    CLEANED = "cleaned"
    QUARANTINED = "quarantined"
    READY = "ready"
    RETIRED = "retired"
    UNKNOWN = "unknown"


DEFAULT_STAGE_OVERRIDES: dict[str, HireStage] = {
    normalise_status("Receipted - No Location"): HireStage.BACK,
}

_ROLE_STAGE = {
    "inspection": HireStage.INSPECTED,
    "refurbishment": HireStage.CLEANED,
    "quarantine": HireStage.QUARANTINED,
}
_BUCKET_STAGE = {
    StockBucket.ON_HIRE: HireStage.OUT,
    StockBucket.SELLABLE: HireStage.READY,
    StockBucket.ALLOCATED: HireStage.READY,
    StockBucket.RETIRED: HireStage.RETIRED,
}

HISTORY_COLUMNS: tuple[str, ...] = ("unique_sku", "sku", "stage", "at", "status", "source")
"""``hire_unit_history``: one row per stage the unit entered, in time order. ``source`` is
``snapshot``, ``event`` or ``inferred`` (a ``back`` implied by leaving ``out``)."""

ENTRY_COLUMNS: tuple[str, ...] = (*HISTORY_COLUMNS, "snapshot_at")
"""A history entry as the incremental fold keeps it (``domain.hire_fold``): with the
snapshot time of the observation that opened it, which orders ties on ``at``."""

LIFECYCLE_COLUMNS: tuple[str, ...] = (
    "unique_sku",
    "sku",
    "stage",
    "status",
    "since",
    "last_seen_at",
    "in_latest_snapshot",
    "times_out",
    "history",
)
"""``hire_unit_lifecycle``: one row per unit. ``stage``/``status`` where it is now,
``since`` when it entered that stage, ``last_seen_at`` the newest snapshot that listed it,
``in_latest_snapshot`` False when the newest snapshot no longer lists it (gone missing or
left the fleet), ``times_out`` how many times it went out, ``history`` the stages as
``"out 2025-06-02T10:00Z > back 2025-06-09T09:00Z > ..."``."""


def stage_for_status(
    status: str,
    policy: StatusPolicy = DEFAULT_STATUS_POLICY,
    stage_overrides: Mapping[str, HireStage] | None = None,
) -> HireStage:
    """The lifecycle stage of a hire unit in ``status`` (raw or normalised)."""
    key = normalise_status(status)
    overrides = DEFAULT_STAGE_OVERRIDES if stage_overrides is None else stage_overrides
    overrides = {normalise_status(k): HireStage(v) for k, v in overrides.items()}
    if key in overrides:
        return overrides[key]
    rule = policy.rule_for(key)
    if rule.bucket in _BUCKET_STAGE:
        return _BUCKET_STAGE[rule.bucket]
    if rule.bucket == StockBucket.NON_SELLABLE:
        role = rule.hire_site_role or rule.site_role
        return _ROLE_STAGE.get(role or "", HireStage.UNKNOWN)
    return HireStage.UNKNOWN


_OBSERVATION_COLUMNS = ("unique_sku", "sku", "stage", "at", "status", "source", "snapshot_at")
_SOURCE_RANK = {"event": 0, "snapshot": 1}  # within one instant a snapshot row wins


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    if ts.tzinfo is None:
        raise ValueError("hire lifecycle times must be timezone-aware")
    return ts.tz_convert("UTC")


def _utc_column(values: pd.Series) -> pd.Series:
    """A column of times as UTC timestamps (NaT where missing); naive times are refused."""
    if values.empty or values.isna().all():
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(values.dtype) or any(
        getattr(v, "tzinfo", True) is None for v in values.dropna().head(1000)
    ):
        raise ValueError("hire lifecycle times must be timezone-aware")
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series("", index=frame.index, dtype=object)
    return frame[column].astype(object).where(frame[column].notna(), "").astype(str)


def _observations(
    snapshots: Iterable[tuple[datetime, pd.DataFrame]],
    events: pd.DataFrame | None,
    hire_skus: Collection[str] | None,
    policy: StatusPolicy,
    stage_overrides: Mapping[str, HireStage] | None,
) -> tuple[pd.DataFrame, pd.Series, pd.Timestamp | None]:
    """(every observation, newest snapshot time per unit, newest snapshot time), vectorised:
    a brand's snapshot lists hundreds of thousands of hire units."""
    parts: list[pd.DataFrame] = []
    latest: pd.Timestamp | None = None
    stages: dict[str, str] = {}
    skus = set(hire_skus) if hire_skus is not None else None
    for snapshot_at, units in snapshots:
        taken = _utc(snapshot_at)
        if taken is None:
            raise ValueError("snapshot_at is required")
        latest = taken if latest is None else max(latest, taken)
        if units.empty:
            continue
        sku = _text(units, "sku")
        if skus is not None:
            units, sku = units[sku.isin(skus)], sku[sku.isin(skus)]
        # Each distinct spelling normalised and staged once.
        raw = _text(units, "status")
        spellings = {v: normalise_status(v) for v in raw.unique()}
        status = raw.map(spellings)
        for value in status.unique():
            if value not in stages:
                stages[value] = str(stage_for_status(value, policy, stage_overrides))
        moved = (
            _utc_column(units["last_event_at"])
            if "last_event_at" in units.columns
            else pd.Series(pd.NaT, index=units.index, dtype="datetime64[ns, UTC]")
        )
        parts.append(
            pd.DataFrame(
                {
                    "unique_sku": units["unique_sku"].astype(str),
                    "sku": sku,
                    "stage": status.map(stages),
                    "at": moved.where(moved.notna() & (moved <= taken), taken),
                    "status": status,
                    "source": "snapshot",
                    "snapshot_at": taken,
                }
            )
        )
    snapshot_obs = [p for p in parts if not p.empty]
    last_seen = (
        pd.concat(snapshot_obs).groupby("unique_sku")["snapshot_at"].max()
        if snapshot_obs
        else pd.Series(dtype="datetime64[ns, UTC]")
    )
    if events is not None and not events.empty:
        sku = _text(events, "sku")
        keep = pd.Series(True, index=events.index) if skus is None else (sku == "") | sku.isin(skus)
        at = _utc_column(events["at"])
        keep &= at.notna()
        parts.append(
            pd.DataFrame(
                {
                    "unique_sku": events["unique_sku"].astype(str),
                    "sku": sku,
                    "stage": events["stage"].astype(str).map(lambda v: str(HireStage(v))),
                    "at": at,
                    "status": "",
                    "source": "event",
                    "snapshot_at": at,
                }
            )[keep]
        )
    parts = [p for p in parts if not p.empty]
    if not parts:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in _OBSERVATION_COLUMNS})
        return empty, last_seen, latest
    return pd.concat(parts, ignore_index=True), last_seen, latest


def _history_rows(obs: pd.DataFrame) -> pd.DataFrame:
    """Each stage each unit entered (``ENTRY_COLUMNS``: ``HISTORY_COLUMNS`` and the
    ``snapshot_at`` of the observation that opened it), in time order per unit.

    Consecutive observations of one stage are one entry (its first time, its first status
    seen); leaving ``out`` for anything but ``back`` or ``unknown`` adds an inferred ``back``
    at that moment.
    """
    if obs.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ENTRY_COLUMNS})
    obs = obs.assign(_rank=obs["source"].map(_SOURCE_RANK)).sort_values(
        ["unique_sku", "at", "snapshot_at", "_rank"], kind="stable", ignore_index=True
    )
    unit, stage = obs["unique_sku"], obs["stage"]
    starts = (unit != unit.shift()) | (stage != stage.shift())
    run = starts.cumsum()
    with_status = obs["status"] != ""
    first_status = obs.loc[with_status].groupby(run[with_status])["status"].first()
    kept = obs.loc[starts, ["unique_sku", "stage", "at", "source", "snapshot_at"]].copy()
    kept["status"] = run[starts].map(first_status).fillna("").to_numpy()
    left_out = (
        (kept["unique_sku"] == kept["unique_sku"].shift())
        & (kept["stage"].shift() == str(HireStage.OUT))
        & ~kept["stage"].isin([str(HireStage.BACK), str(HireStage.UNKNOWN)])
    )
    inferred = kept.loc[left_out].assign(stage=str(HireStage.BACK), status="", source="inferred")
    # An inferred ``back`` goes right before the observation that implied it.
    kept["_order"] = range(0, 2 * len(kept), 2)
    inferred["_order"] = kept.loc[left_out, "_order"] - 1
    rows = pd.concat([kept, inferred]).sort_values("_order", ignore_index=True)
    with_sku = obs["sku"] != ""
    sku_of = obs.loc[with_sku].groupby("unique_sku")["sku"].last()
    rows["sku"] = rows["unique_sku"].map(sku_of).fillna("")
    return rows[list(ENTRY_COLUMNS)]


def hire_unit_history(
    snapshots: Iterable[tuple[datetime, pd.DataFrame]],
    events: pd.DataFrame | None = None,
    *,
    hire_skus: Collection[str] | None = None,
    policy: StatusPolicy = DEFAULT_STATUS_POLICY,
    stage_overrides: Mapping[str, HireStage] | None = None,
) -> pd.DataFrame:
    """Each stage each hire unit entered, in time order (``HISTORY_COLUMNS``)."""
    obs, _, _ = _observations(snapshots, events, hire_skus, policy, stage_overrides)
    return _history_rows(obs)[list(HISTORY_COLUMNS)]


def hire_unit_lifecycle(
    snapshots: Iterable[tuple[datetime, pd.DataFrame]],
    events: pd.DataFrame | None = None,
    *,
    hire_skus: Collection[str] | None = None,
    policy: StatusPolicy = DEFAULT_STATUS_POLICY,
    stage_overrides: Mapping[str, HireStage] | None = None,
) -> pd.DataFrame:
    """Per hire unit: where it is now, since when, and its history (``LIFECYCLE_COLUMNS``).

    Sorted by ``unique_sku``. The current stage is the last history entry (an event newer
    than the newest snapshot counts: a despatch after the snapshot puts the unit out).
    """
    obs, last_seen, latest = _observations(snapshots, events, hire_skus, policy, stage_overrides)
    return lifecycle_from_entries(_history_rows(obs), last_seen, latest)


def lifecycle_from_entries(
    rows: pd.DataFrame, last_seen: pd.Series, latest: pd.Timestamp | None
) -> pd.DataFrame:
    """``LIFECYCLE_COLUMNS`` from each unit's history entries (in order), the newest
    snapshot time that listed each unit and the newest snapshot time of all."""
    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LIFECYCLE_COLUMNS})
    per_unit = rows.groupby("unique_sku", sort=True)
    current = per_unit[["sku", "stage", "at"]].last()
    with_status = rows["status"] != ""
    status = rows.loc[with_status].groupby("unique_sku")["status"].last()
    stamps = np.datetime_as_string(
        rows["at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(), unit="m"
    )
    entries = (rows["stage"] + " " + stamps + "Z").tolist()
    # Joined in one pass over the rows (sorted by unit): a groupby with a Python join per
    # unit costs far more for a fleet of hundreds of thousands of units.
    history: dict[str, list[str]] = {}
    for unit, entry in zip(rows["unique_sku"].tolist(), entries, strict=True):
        history.setdefault(unit, []).append(entry)
    # One unit of time whatever the times came from (a snapshot in µs, the store in ns).
    seen = current.index.to_series().map(last_seen).astype("datetime64[ns, UTC]")
    out = pd.DataFrame(
        {
            "unique_sku": current.index.astype(str),
            "sku": current["sku"].to_numpy(),
            "stage": current["stage"].to_numpy(),
            "status": current.index.to_series().map(status).fillna("").to_numpy(),
            "since": current["at"].array,
            "last_seen_at": seen.array,
            "in_latest_snapshot": (seen.notna() & (seen == latest)).to_numpy()
            if latest is not None
            else False,
            "times_out": (rows["stage"] == str(HireStage.OUT))
            .groupby(rows["unique_sku"])
            .sum()
            .reindex(current.index)
            .astype(int)
            .to_numpy(),
            "history": [" > ".join(history[unit]) for unit in current.index],
        }
    )
    return out.reset_index(drop=True)[list(LIFECYCLE_COLUMNS)]
