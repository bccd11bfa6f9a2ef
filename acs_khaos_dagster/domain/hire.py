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


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    if ts.tzinfo is None:
        raise ValueError("hire lifecycle times must be timezone-aware")
    return ts.tz_convert("UTC")


def _observations(
    snapshots: Iterable[tuple[datetime, pd.DataFrame]],
    events: pd.DataFrame | None,
    hire_skus: Collection[str] | None,
    policy: StatusPolicy,
    stage_overrides: Mapping[str, HireStage] | None,
) -> tuple[list[dict[str, Any]], dict[str, pd.Timestamp], pd.Timestamp | None]:
    obs: list[dict[str, Any]] = []
    last_seen: dict[str, pd.Timestamp] = {}
    latest: pd.Timestamp | None = None
    stage_cache: dict[str, HireStage] = {}
    skus = set(hire_skus) if hire_skus is not None else None
    for snapshot_at, units in snapshots:
        taken = _utc(snapshot_at)
        if taken is None:
            raise ValueError("snapshot_at is required")
        latest = taken if latest is None else max(latest, taken)
        if units.empty:
            continue
        for row in units.to_dict("records"):
            sku = str(row.get("sku") or "")
            if skus is not None and sku not in skus:
                continue
            unit = str(row["unique_sku"])
            status = normalise_status(str(row.get("status") or ""))
            if status not in stage_cache:
                stage_cache[status] = stage_for_status(status, policy, stage_overrides)
            moved = _utc(row.get("last_event_at"))
            at = moved if moved is not None and moved <= taken else taken
            obs.append(
                {
                    "unique_sku": unit,
                    "sku": sku,
                    "stage": stage_cache[status],
                    "at": at,
                    "status": status,
                    "source": "snapshot",
                    "snapshot_at": taken,
                }
            )
            last_seen[unit] = max(last_seen.get(unit, taken), taken)
    if events is not None and not events.empty:
        for row in events.to_dict("records"):
            sku = str(row.get("sku") or "")
            if skus is not None and sku and sku not in skus:
                continue
            at = _utc(row.get("at"))
            if at is None:
                continue
            obs.append(
                {
                    "unique_sku": str(row["unique_sku"]),
                    "sku": sku,
                    "stage": HireStage(str(row["stage"])),
                    "at": at,
                    "status": "",
                    "source": "event",
                    "snapshot_at": at,
                }
            )
    return obs, last_seen, latest


def _history_rows(obs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Within one instant a snapshot row wins over an event (it is what ACS saw last).
    rank = {"event": 0, "snapshot": 1}
    ordered = sorted(
        obs, key=lambda o: (o["unique_sku"], o["at"], o["snapshot_at"], rank[o["source"]])
    )
    rows: list[dict[str, Any]] = []
    sku_of: dict[str, str] = {}
    for o in ordered:
        unit = o["unique_sku"]
        if o["sku"]:
            sku_of[unit] = o["sku"]
        previous = rows[-1] if rows and rows[-1]["unique_sku"] == unit else None
        if previous is not None and previous["stage"] == o["stage"]:
            if not previous["status"] and o["status"]:
                previous["status"] = o["status"]
            continue
        if (
            previous is not None
            and previous["stage"] == HireStage.OUT
            and o["stage"] not in (HireStage.BACK, HireStage.UNKNOWN)
        ):
            rows.append(
                {
                    "unique_sku": unit,
                    "sku": "",
                    "stage": HireStage.BACK,
                    "at": o["at"],
                    "status": "",
                    "source": "inferred",
                }
            )
        rows.append(
            {
                "unique_sku": unit,
                "sku": "",
                "stage": o["stage"],
                "at": o["at"],
                "status": o["status"],
                "source": o["source"],
            }
        )
    for row in rows:
        row["sku"] = sku_of.get(row["unique_sku"], "")
        row["stage"] = str(row["stage"])
    return rows


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
    rows = _history_rows(obs)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in HISTORY_COLUMNS})
    return pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))


def _stamp(at: pd.Timestamp) -> str:
    return at.strftime("%Y-%m-%dT%H:%MZ")


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
    snapshots = list(snapshots)
    obs, last_seen, latest = _observations(snapshots, events, hire_skus, policy, stage_overrides)
    rows = _history_rows(obs)
    per_unit: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        per_unit.setdefault(row["unique_sku"], []).append(row)
    out = []
    for unit in sorted(per_unit):
        history = per_unit[unit]
        current = history[-1]
        status = next((h["status"] for h in reversed(history) if h["status"]), "")
        seen = last_seen.get(unit)
        out.append(
            {
                "unique_sku": unit,
                "sku": current["sku"],
                "stage": current["stage"],
                "status": status,
                "since": current["at"],
                "last_seen_at": seen,
                "in_latest_snapshot": seen is not None and latest is not None and seen == latest,
                "times_out": sum(1 for h in history if h["stage"] == HireStage.OUT),
                "history": " > ".join(f"{h['stage']} {_stamp(h['at'])}" for h in history),
            }
        )
    if not out:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LIFECYCLE_COLUMNS})
    return pd.DataFrame(out, columns=list(LIFECYCLE_COLUMNS))
