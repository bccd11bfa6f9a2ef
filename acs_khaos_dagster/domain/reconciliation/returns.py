"""Returns (per graded unit: credit, write-off, refund clock) and the exception queue table.

Part of ``domain.reconciliation`` (see its docstring); code moved verbatim."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from acs_khaos_dagster.domain.reconciliation.common import (
    UK_TIME_ZONE,
    _pounds,
    _require,
    _ts,
    _utc,
)

# =====================================================================================
# 4. returns
# =====================================================================================

RETURNS_RECONCILIATION_COLUMNS = (
    "return_ref",
    "unique_sku",
    "associated_ref",
    "stock_id",
    "is_hire",
    "grade",
    "received_at",
    "credit_mode",
    "credit_status",
    "credit_value",
    "credit_pending_value",
    "refund_deadline",
    "days_left",
    "refund_state",
    "written_off",
    "write_off_status",
    "duplicate_return_ids",
    "order_number",
    "order_date",
)


def returns_reconciliation(
    graded_units: pd.DataFrame,
    khaos_returns: pd.DataFrame,
    write_offs: pd.DataFrame,
    now: datetime,
    *,
    refund_days: int = 14,
    warn_days: float = 3,
    tz: str = UK_TIME_ZONE,
) -> pd.DataFrame:
    """Each graded returned unit against Khaos: its credit, its write-off, its refund clock.

    ``graded_units`` (``returns.apply_grade_policy`` output plus where it was posted):
    ``return_ref, unique_sku, associated_ref`` (the Khaos return part it was posted in;
    empty if not posted yet), ``stock_id, is_hire, grade, received_at, unit_net,
    credit_mode`` (auto/review/none), ``written_off`` (the grade's verdict: BER or
    disposed).
    ``khaos_returns`` (``ExportCustomerReturns`` read back): ``associated_ref,
    credit_status`` (raised / review / none) + optional ``write_off_units`` (units on the
    return posted with a write-off reason) and ``return_id``. Where Khaos holds several
    returns under one AssociatedRef the first (lowest ``return_id``) decides the unit's
    status and the others are listed in ``duplicate_return_ids``, never dropped
    (``domain.duplicates`` raises them).
    Optional ``order_number`` and ``order_date`` (UTC) are carried through for the pack.
    ``write_offs`` (write-off adjustments for units still in Level, from the outbox):
    ``unique_sku`` + ``applied_at`` (NaT while still waiting).

    ``credit_status``: Khaos's status of the unit's part, ``missing`` when Khaos has no
    such return, ``not_owed`` for hire units (a hire return raises no credit).
    ``credit_pending_value``: ``unit_net`` of a sale unit whose credit is not raised.
    ``refund_state``: ``credited``, ``not_owed``, ``open`` (more than ``warn_days``
    left), ``due_soon``, ``overdue`` — against the end of the 14th day after the day of
    receipt, UK time (``returns.refund_deadline``).
    ``write_off_status``: ``not_needed``; for a hire unit (still in Level) ``written_off``
    / ``pending`` (in the outbox) / ``missing``; for a sale unit (left Level when
    invoiced) ``written_off`` when its Khaos return carries a write-off reason for it,
    else ``missing_reason`` (per part, the first units by unique_sku are counted as
    covered).
    """
    _require(
        graded_units,
        (
            "return_ref",
            "unique_sku",
            "associated_ref",
            "is_hire",
            "received_at",
            "unit_net",
            "credit_mode",
            "written_off",
        ),
        "graded_units",
    )
    _require(khaos_returns, ("associated_ref", "credit_status"), "khaos_returns")
    _require(write_offs, ("unique_sku",), "write_offs")
    now_ts = _ts(now)
    u = graded_units.copy()
    for column in ("stock_id", "grade", "order_number", "order_date"):
        if column not in u.columns:
            u[column] = None
    u["order_date"] = _utc(u["order_date"])
    u["associated_ref"] = u["associated_ref"].fillna("").astype(str)
    u["is_hire"] = u["is_hire"].astype("boolean").fillna(False).astype(bool)
    u["written_off"] = u["written_off"].astype("boolean").fillna(False).astype(bool)
    u["received_at"] = _utc(u["received_at"])

    kr = khaos_returns.copy()
    kr["associated_ref"] = kr["associated_ref"].astype(str)
    if "write_off_units" not in kr.columns:
        kr["write_off_units"] = 0
    if "return_id" not in kr.columns:
        kr["return_id"] = range(len(kr))
    kr = kr.sort_values("return_id", kind="stable")
    others = (
        kr.groupby("associated_ref")["return_id"]
        .agg(lambda ids: ",".join(str(i) for i in list(ids)[1:]))
        .rename("duplicate_return_ids")
    )
    kr = kr.drop_duplicates("associated_ref", keep="first").join(others, on="associated_ref")
    kr = kr[["associated_ref", "credit_status", "write_off_units", "duplicate_return_ids"]].rename(
        columns={"credit_status": "_khaos_credit"}
    )
    u = u.merge(kr, on="associated_ref", how="left")
    u["duplicate_return_ids"] = u["duplicate_return_ids"].fillna("").astype(str)
    u["credit_status"] = u["_khaos_credit"].fillna("missing").astype(str)
    u.loc[u["is_hire"], "credit_status"] = "not_owed"
    sale = ~u["is_hire"]
    pence = (pd.to_numeric(u["unit_net"].map(str), errors="coerce") * 100).round()
    u["credit_value"] = _pounds(pence.where(sale, 0))
    u["credit_pending_value"] = _pounds(pence.where(sale & (u["credit_status"] != "raised"), 0))

    local_day = u["received_at"].dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    deadline = (local_day + pd.Timedelta(days=refund_days + 1)).dt.tz_localize(
        tz, nonexistent="shift_forward", ambiguous=False
    )
    u["refund_deadline"] = deadline.dt.tz_convert("UTC")
    u["days_left"] = ((u["refund_deadline"] - now_ts).dt.total_seconds() / 86400).round(2)
    u["refund_state"] = np.select(
        [
            u["is_hire"],
            u["credit_status"] == "raised",
            u["days_left"] <= 0,
            u["days_left"] <= warn_days,
        ],
        ["not_owed", "credited", "overdue", "due_soon"],
        default="open",
    )

    wo = write_offs.copy()
    if "applied_at" not in wo.columns:
        wo["applied_at"] = pd.NaT
    wo["applied_at"] = _utc(wo["applied_at"])
    wo = wo.groupby(wo["unique_sku"].astype(str))["applied_at"].max()
    has_row = u["unique_sku"].astype(str).isin(wo.index)
    applied = u["unique_sku"].astype(str).map(wo).notna()
    # Sale units: the first ``write_off_units`` of a part (by unique_sku) are covered.
    rank = (
        u.loc[sale & u["written_off"]]
        .sort_values("unique_sku")
        .groupby("associated_ref")
        .cumcount()
        .reindex(u.index)
    )
    covered = rank < pd.to_numeric(u["write_off_units"], errors="coerce").fillna(0)
    u["write_off_status"] = np.select(
        [
            ~u["written_off"],
            u["is_hire"] & applied,
            u["is_hire"] & has_row,
            u["is_hire"],
            covered,
        ],
        ["not_needed", "written_off", "pending", "missing", "written_off"],
        default="missing_reason",
    )
    return u.sort_values(["return_ref", "unique_sku"], ignore_index=True)[
        list(RETURNS_RECONCILIATION_COLUMNS)
    ]


# =====================================================================================
# 5. the exception queue as a table
# =====================================================================================

EXCEPTIONS_TABLE_COLUMNS = (
    "type",
    "owner",
    "count",
    "oldest_age_hours",
    "target_hours",
    "over_target",
)


def exceptions_table(rows: pd.DataFrame, now: datetime, targets: Any) -> pd.DataFrame:
    """The open exception queue by type and owner team.

    ``rows``: one per exception (``ExceptionRow`` fields): ``type, owner, opened_at`` +
    optional ``status`` (only ``open`` rows count when present). ``targets``: an object
    with ``for_owner(owner) -> hours`` (the settings' ``OwnerTargets``) or a mapping
    owner → hours; the domain reads no settings itself. ``over_target`` counts the type's
    exceptions open longer than the owner's target. Sorted by owner, then type.
    """
    _require(rows, ("type", "owner", "opened_at"), "rows")
    frame = rows if "status" not in rows.columns else rows.loc[rows["status"] == "open"]
    now_ts = _ts(now)
    hours = (now_ts - _utc(frame["opened_at"])).dt.total_seconds() / 3600
    if isinstance(targets, Mapping):
        target = frame["owner"].map(lambda o: float(targets[o]))
    else:
        target = frame["owner"].map(lambda o: float(targets.for_owner(str(o))))
    t = pd.DataFrame(
        {
            "type": frame["type"].astype(str),
            "owner": frame["owner"].astype(str),
            "age": hours,
            "target_hours": target,
            "over": hours > target,
        }
    )
    out = t.groupby(["owner", "type"], as_index=False).agg(
        count=("age", "size"),
        oldest_age_hours=("age", "max"),
        target_hours=("target_hours", "first"),
        over_target=("over", "sum"),
    )
    out["oldest_age_hours"] = out["oldest_age_hours"].round(1)
    out["count"] = out["count"].astype("int64")
    out["over_target"] = out["over_target"].astype("int64")
    return out[list(EXCEPTIONS_TABLE_COLUMNS)].reset_index(drop=True)
