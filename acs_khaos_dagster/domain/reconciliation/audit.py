"""Workflow audit: release → despatch → posting → invoice latencies.

Part of ``domain.reconciliation`` (see its docstring); code moved verbatim."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from acs_khaos_dagster.domain.reconciliation.common import (
    _require,
    _utc,
)

# =====================================================================================
# 7. workflow audit
# =====================================================================================

STEPS = ("released", "despatched", "posted", "invoiced")
LEGS: tuple[tuple[str, str], ...] = (
    ("released", "despatched"),
    ("despatched", "posted"),
    ("posted", "invoiced"),
    ("released", "invoiced"),
)


@dataclass(frozen=True)
class WorkflowAudit:
    """``latencies``: leg, count, p50_hours, p95_hours, max_hours, slowest (shipment).
    ``exception_rates``: type, owner, count, per_100_shipments.
    ``delays``: the largest sources of delay, in words, largest first."""

    latencies: pd.DataFrame
    exception_rates: pd.DataFrame
    delays: list[str]


def workflow_latencies(
    events: pd.DataFrame, exceptions: pd.DataFrame | None = None, *, top: int = 3
) -> WorkflowAudit:
    """Latencies of each leg of release → despatch → posting → invoice.

    ``events``: ``order_number, shipment_id, step, at`` with ``step`` in ``STEPS``;
    ``released`` is per order (its ``shipment_id`` is ignored), the others per shipment.
    A shipment's leg counts once both ends are known; the earliest time of a step wins.
    ``exceptions``: ``type, owner`` (one row per exception opened in the period).
    ``delays`` names the ``top`` legs by p95 (with their slowest shipment) and the
    ``top`` exception types by count.
    """
    _require(events, ("order_number", "shipment_id", "step", "at"), "events")
    bad = sorted(set(events["step"].astype(str)) - set(STEPS))
    if bad:
        raise ValueError(f"events has unknown step(s) {bad}; expected {list(STEPS)}")
    e = events.copy()
    e["at"] = _utc(e["at"])
    released = e.loc[e["step"] == "released"].groupby("order_number")["at"].min()
    later = e.loc[e["step"] != "released"]
    per = later[["shipment_id", "order_number"]].drop_duplicates("shipment_id")
    per = per.reset_index(drop=True)
    for step in STEPS[1:]:
        first = later.loc[later["step"] == step].groupby("shipment_id")["at"].min()
        per[step] = _utc(per["shipment_id"].map(first))
    per["released"] = per["order_number"].map(released)
    rows = []
    for start, end in LEGS:
        hours = (_utc(per[end]) - _utc(per[start])).dt.total_seconds() / 3600
        hours = hours.dropna()
        name = f"{start} → {end}"
        if hours.empty:
            rows.append(
                {
                    "leg": name,
                    "count": 0,
                    "p50_hours": np.nan,
                    "p95_hours": np.nan,
                    "max_hours": np.nan,
                    "slowest": "",
                }
            )
            continue
        rows.append(
            {
                "leg": name,
                "count": int(hours.size),
                "p50_hours": round(float(hours.quantile(0.5)), 2),
                "p95_hours": round(float(hours.quantile(0.95)), 2),
                "max_hours": round(float(hours.max()), 2),
                "slowest": str(per.loc[hours.idxmax(), "shipment_id"]),
            }
        )
    latencies = pd.DataFrame(rows)
    shipments = max(int(per["shipment_id"].nunique()), 0)
    if exceptions is not None and not exceptions.empty:
        rates = exceptions.groupby(["type", "owner"], as_index=False).size()
        rates = rates.rename(columns={"size": "count"})
        rates["per_100_shipments"] = (
            (rates["count"] * 100 / shipments).round(1) if shipments else np.nan
        )
        rates = rates.sort_values(["count", "type"], ascending=[False, True], ignore_index=True)
    else:
        rates = pd.DataFrame(columns=["type", "owner", "count", "per_100_shipments"])
    delays: list[str] = []
    steps = latencies.loc[(latencies["count"] > 0) & (latencies["leg"] != "released → invoiced")]
    for r in steps.sort_values("p95_hours", ascending=False).head(top).itertuples(index=False):
        delays.append(
            f"{r.leg}: p95 {r.p95_hours:g} h, p50 {r.p50_hours:g} h over {r.count} "
            f"shipment(s); slowest {r.slowest} ({r.max_hours:g} h)"
        )
    for r in rates.head(top).itertuples(index=False):
        delays.append(f"{r.type} exceptions ({r.owner}): {r.count}")
    return WorkflowAudit(latencies=latencies, exception_rates=rates, delays=delays)
