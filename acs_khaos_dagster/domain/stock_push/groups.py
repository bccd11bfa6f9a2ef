"""The outbox units of a push plan: adjustment groups per site and status moves.

Refs are deterministic (``group_ref``, ``move_ref``), so a rerun of the same plan finds
its effects already recorded and never adjusts twice.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
from pydantic import TypeAdapter

from acs_khaos_dagster.domain.layout import KhaosReasons
from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    StockAdjustmentGroup,
    StockMove,
    leg_ref,
)
from acs_khaos_dagster.domain.stock_push.common import (
    _COST_SCALE,
    REASON_REFURBISH,
    REASON_TRANSFER,
    REASON_VARIANCE,
)


def group_ref(snapshot_id: str, site_id: int, batch: int) -> str:
    """The outbox key and Khaos ``GroupRef`` of one batch: deterministic, so a rerun of
    the same plan finds its groups already recorded and never adjusts twice.

    >>> group_ref("20250301T0900", 1, 2)
    'SNAP-20250301T0900-S1-B002'
    """
    return f"SNAP-{snapshot_id}-S{site_id}-B{batch:03d}"


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
