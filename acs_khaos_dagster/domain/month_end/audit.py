"""The workflow audit's tables: events, latencies, exception rates, sources of delay.
Part of ``domain.month_end`` (see its docstring); code moved verbatim."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from acs_khaos_dagster.domain.month_end.pack import month_bounds

# --- the workflow audit ---------------------------------------------------------------------

EVENT_COLUMNS = ("order_number", "shipment_id", "step", "at")
# How long each step should take before its excess counts as delay (a named source).
LEG_TARGET_HOURS: dict[str, float] = {
    "release_to_despatch": 24.0,
    "despatch_to_posting": 1.0,
    "posting_to_invoice": 24.0,
}
_LEG_SOURCE = {
    "release_to_despatch": ("ACS warehouse", "released_at", "despatched_at"),
    "despatch_to_posting": ("Despatch posting to Khaos", "despatched_at", "posted_at"),
    "posting_to_invoice": ("Invoice issue in Khaos", "posted_at", "invoiced_at"),
}


def store_events(
    releases: Iterable[tuple[str, datetime]],
    despatches: Iterable[tuple[str, str, datetime]],
    postings: Iterable[tuple[str, str, datetime]],
) -> pd.DataFrame:
    """Workflow events from the store: releases ``(order, at)``, despatch events and
    confirmed postings ``(order, shipment, at)``."""
    rows = [(order, "", "released", at) for order, at in releases]
    rows += [(order, sid, "despatched", at) for order, sid, at in despatches]
    rows += [(order, sid, "posted", at) for order, sid, at in postings]
    return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))


def latencies(events: pd.DataFrame, month: str) -> pd.DataFrame:
    """One row per shipment (or per released order with no shipment yet) touched in the
    month: ``ref, order_number, released_at, despatched_at, posted_at, invoiced_at`` (UTC;
    the earliest time of each step wins)."""
    columns = ["ref", "order_number", "released_at", "despatched_at", "posted_at", "invoiced_at"]
    if events.empty:
        return pd.DataFrame(columns=columns)
    e = events.copy()
    e["at"] = pd.to_datetime(e["at"], utc=True)
    e["order_number"] = e["order_number"].astype(str)
    e["shipment_id"] = e["shipment_id"].fillna("").astype(str)
    released = e.loc[e["step"] == "released"].groupby("order_number")["at"].min()
    later = e.loc[(e["step"] != "released") & (e["shipment_id"] != "")]
    per = later.drop_duplicates("shipment_id")[["shipment_id", "order_number"]]
    per = per.rename(columns={"shipment_id": "ref"}).reset_index(drop=True)
    for step, column in (("despatched", "despatched_at"), ("posted", "posted_at")):
        first = later.loc[later["step"] == step].groupby("shipment_id")["at"].min()
        per[column] = per["ref"].map(first)
    first = later.loc[later["step"] == "invoiced"].groupby("shipment_id")["at"].min()
    per["invoiced_at"] = per["ref"].map(first)
    per["released_at"] = per["order_number"].map(released)
    waiting = sorted(set(released.index) - set(per["order_number"]))
    alone = pd.DataFrame(
        {"ref": waiting, "order_number": waiting, "released_at": released.reindex(waiting).values}
    )
    out = pd.concat([per, alone], ignore_index=True)
    for column in columns[2:]:
        out[column] = pd.to_datetime(out[column], utc=True)
    start, cutoff = month_bounds(month)
    stamps = out[columns[2:]]
    inside = ((stamps >= pd.Timestamp(start)) & (stamps <= pd.Timestamp(cutoff))).any(axis=1)
    return out.loc[inside, columns].sort_values("ref", ignore_index=True)


def exception_rates(exceptions: pd.DataFrame, month: str, base_count: int) -> pd.DataFrame:
    """``type, owner, opened, closed, base_count`` for the month from the exception queue
    (``type, owner, opened_at, status, acted_at`` per exception, any status)."""
    columns = ["type", "owner", "opened", "closed", "base_count"]
    if exceptions.empty:
        return pd.DataFrame(columns=columns)
    start, cutoff = month_bounds(month)
    x = exceptions.copy()

    def inside(column: str) -> pd.Series:
        at = pd.to_datetime(x[column], utc=True)
        return (at >= pd.Timestamp(start)) & (at <= pd.Timestamp(cutoff))

    x["opened"] = inside("opened_at").astype("int64")
    closed = x["status"].astype(str).isin(["resolved", "ignored"])
    x["closed"] = (closed & inside("acted_at")).astype("int64")
    out = x.groupby(["type", "owner"], as_index=False)[["opened", "closed"]].sum()
    out = out.loc[(out["opened"] > 0) | (out["closed"] > 0)]
    out["base_count"] = int(base_count)
    return out[columns].reset_index(drop=True)


def delay_sources(
    lat: pd.DataFrame,
    open_exceptions: pd.DataFrame | None = None,
    *,
    targets: Mapping[str, float] = LEG_TARGET_HOURS,
) -> pd.DataFrame:
    """Where the month's time went: ``source, stage, items, delay_hours``.

    Each step's hours beyond its target (``LEG_TARGET_HOURS``) are charged to the party
    that does it (ACS, the posting, Khaos invoicing); each open exception type's hours
    beyond its owner's target (``open_exceptions``: ``type, owner, age_hours,
    target_hours``) to that type and team.
    """
    rows: list[dict[str, Any]] = []
    for leg, (source, start, end) in _LEG_SOURCE.items():
        if lat.empty:
            break
        hours = (
            pd.to_datetime(lat[end], utc=True) - pd.to_datetime(lat[start], utc=True)
        ).dt.total_seconds() / 3600
        late = hours[hours > targets[leg]] - targets[leg]
        if len(late):
            rows.append(
                {
                    "source": source,
                    "stage": leg,
                    "items": len(late),
                    "delay_hours": round(float(late.sum()), 1),
                }
            )
    if open_exceptions is not None and not open_exceptions.empty:
        x = open_exceptions.copy()
        x["over"] = (x["age_hours"] - x["target_hours"]).clip(lower=0)
        x = x.loc[x["over"] > 0]
        for (type_, owner), group in x.groupby(["type", "owner"], sort=True):
            rows.append(
                {
                    "source": f"{type_} exceptions ({owner})",
                    "stage": "exception",
                    "items": len(group),
                    "delay_hours": round(float(group["over"].sum()), 1),
                }
            )
    return pd.DataFrame(rows, columns=["source", "stage", "items", "delay_hours"])
