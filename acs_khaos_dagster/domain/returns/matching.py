"""1. Matching: each returned unit linked to its source Khaos order line, or a
``return_unmatched`` problem — never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from acs_khaos_dagster.domain.models import SalesOrder
from acs_khaos_dagster.domain.returns.policy import (
    LineKey,
    ReturnProblem,
    ReturnProblemKind,
    UnitKey,
)
from acs_khaos_dagster.domain.shipments import posted_quantities_from_invoices

# --- 1. matching ----------------------------------------------------------------------

MATCHED_COLUMNS: tuple[str, ...] = (
    "return_ref",
    "unique_sku",
    "batch_id",
    "line_number",
    "order_number",
    "line_item_id",
    "order_item_id",
    "stock_id",
    "stock_code",
    "sku",
    "customer_urn",
    "unit_net",
    "is_hire",
    "received_at",
    "grade",
    "action_taken",
    "action_reason",
    "defect_codes",
    "repair_cost",
)
"""``match_returns`` output: one row per matched unit. ``order_item_id``/``stock_id``/
``stock_code``/``unit_net``/``is_hire``/``customer_urn`` come from the Khaos order line."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value).strip()


def _utc(value: Any) -> datetime | None:
    if value is None or (not isinstance(value, datetime) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    if ts.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return ts.tz_convert("UTC").to_pydatetime()


def _money(value: Any) -> Decimal:
    text = _text(value)
    return Decimal(text) if text else Decimal("0")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records") if not frame.empty else []


def _empty(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def match_returns(
    returns: pd.DataFrame,
    orders: Mapping[str, SalesOrder],
    acs_sku_for_stock_id: Mapping[int, str],
    despatched: Mapping[LineKey, int] | None = None,
    *,
    matched_before: Mapping[UnitKey, LineKey] | None = None,
    batch_id: str = "",
) -> tuple[pd.DataFrame, list[ReturnProblem]]:
    """Link each returned unit to its source Khaos order line (``MATCHED_COLUMNS``).

    - A unit is keyed by (``return_ref``, ``unique_sku``); the same key twice in
      ``returns`` is one unit (the first row in input order is kept: pass files in
      arrival order). ``batch_id`` comes from a ``batch_id`` column if present (the file
      name or ledger id), else from the ``batch_id`` argument.
    - The order is ``orders[order_number]`` (Khaos ``order_code`` = ACS order number).
      The line is the one whose ``order_item_id`` is ``line_item_id``; a blank
      ``line_item_id`` is accepted only when exactly one line of the order carries the
      SKU. The returned SKU must be the line's: its ACS SKU from ``acs_sku_for_stock_id``
      (the identity map), or its stock code when the map has no entry for the StockID.
    - ``return_unmatched`` (owner operations), never a guess, when: no order number; an
      unknown order; an unknown or non-numeric line; a SKU not on that line (or not on
      the order); more units returned on a line than were despatched on it.
    - ``despatched``: units despatched per line, keyed by (``order_number``,
      ``order_item_id``) (default: read from the orders' invoices that carry a despatch
      reference). ``matched_before``: units matched in earlier runs that are not in
      ``returns`` → their (``order_number``, ``order_item_id``); they count against the
      despatched quantity. Lines are always counted per order: an install may number its
      line ids per order (1, 2, … in each), so a line id alone names no line. Over the
      limit, the earliest received units (then ``return_ref``, ``unique_sku``) are
      accepted and the rest rejected.
    """
    problems: list[ReturnProblem] = []
    rows: list[dict[str, Any]] = []
    seen: set[UnitKey] = set()
    for raw in _records(returns):
        key = (_text(raw.get("return_ref")), _text(raw.get("unique_sku")))
        if key in seen:
            continue
        seen.add(key)
        row = dict(raw)
        row["return_ref"], row["unique_sku"] = key
        row["batch_id"] = _text(raw.get("batch_id")) or batch_id
        row["received_at"] = _utc(raw.get("received_at"))
        linked = _link(row, orders, acs_sku_for_stock_id)
        if isinstance(linked, ReturnProblem):
            problems.append(linked)
        else:
            rows.append(linked)

    accepted, excess = _within_despatched(rows, orders, despatched, matched_before or {})
    problems.extend(excess)
    if not accepted:
        return _empty(MATCHED_COLUMNS), problems
    frame = pd.DataFrame(accepted)
    for column in MATCHED_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame[list(MATCHED_COLUMNS)].reset_index(drop=True), problems


def _unmatched(row: Mapping[str, Any], message: str) -> ReturnProblem:
    return ReturnProblem(
        kind=ReturnProblemKind.RETURN_UNMATCHED,
        return_ref=row["return_ref"],
        unique_sku=row["unique_sku"],
        order_number=_text(row.get("order_number")),
        sku=_text(row.get("sku")),
        message=message,
    )


def _line_sku(stock_id: int, stock_code: str, identity: Mapping[int, str]) -> str:
    return identity.get(stock_id, stock_code)


def _link(
    row: dict[str, Any], orders: Mapping[str, SalesOrder], identity: Mapping[int, str]
) -> dict[str, Any] | ReturnProblem:
    ref, unit, sku = row["return_ref"], row["unique_sku"], _text(row.get("sku"))
    order_number = _text(row.get("order_number"))
    what = f"Return {ref} unit {unit} ({sku})"
    if not order_number:
        return _unmatched(
            row,
            f"{what} names no order (an unexpected return): find the customer's order and "
            "raise the return in Khaos by hand, or ask ACS for the order number.",
        )
    order = orders.get(order_number)
    if order is None:
        return _unmatched(row, f"{what}: order {order_number} is not known to Khaos.")
    line_item_id = _text(row.get("line_item_id"))
    if line_item_id:
        line = next(
            (
                li
                for li in order.lines
                if line_item_id.isdigit() and li.order_item_id == int(line_item_id)
            ),
            None,
        )
        if line is None:
            return _unmatched(row, f"{what}: order {order_number} has no line {line_item_id}.")
        if _line_sku(line.stock_id, line.stock_code, identity) != sku:
            return _unmatched(
                row,
                f"{what}: SKU {sku} is not on line {line_item_id} of order {order_number} "
                f"(that line is {_line_sku(line.stock_id, line.stock_code, identity)}).",
            )
    else:
        candidates = [
            li for li in order.lines if _line_sku(li.stock_id, li.stock_code, identity) == sku
        ]
        if len(candidates) != 1:
            why = "is not on" if not candidates else "is on several lines of"
            return _unmatched(row, f"{what}: SKU {sku} {why} order {order_number}.")
        line = candidates[0]
    row.update(
        order_number=order_number,
        line_item_id=line_item_id or str(line.order_item_id),
        order_item_id=line.order_item_id,
        stock_id=line.stock_id,
        stock_code=line.stock_code,
        sku=sku,
        customer_urn=order.customer_urn,
        unit_net=line.unit_net,
        is_hire=line.is_hire,
    )
    return row


def _within_despatched(
    rows: list[dict[str, Any]],
    orders: Mapping[str, SalesOrder],
    despatched: Mapping[LineKey, int] | None,
    matched_before: Mapping[UnitKey, LineKey],
) -> tuple[list[dict[str, Any]], list[ReturnProblem]]:
    limits: dict[LineKey, int] = dict(despatched) if despatched is not None else {}
    if despatched is None:
        for number in {r["order_number"] for r in rows}:
            posted = posted_quantities_from_invoices(orders[number])
            limits.update({(number, oid): qty for oid, qty in posted.items()})
    current = {(r["return_ref"], r["unique_sku"]) for r in rows}
    used: dict[LineKey, int] = {}
    for key, line in matched_before.items():
        if key not in current:
            used[line] = used.get(line, 0) + 1
    far_future = datetime.max.replace(tzinfo=UTC)
    accepted: list[dict[str, Any]] = []
    problems: list[ReturnProblem] = []
    for row in sorted(
        rows, key=lambda r: (r["received_at"] or far_future, r["return_ref"], r["unique_sku"])
    ):
        oid = (row["order_number"], row["order_item_id"])
        limit = limits.get(oid, 0)
        if used.get(oid, 0) >= limit:
            problems.append(
                _unmatched(
                    row,
                    f"Return {row['return_ref']} unit {row['unique_sku']} ({row['sku']}): line "
                    f"{row['line_item_id']} of order {row['order_number']} has {limit} unit(s) "
                    f"despatched and {used.get(oid, 0)} already returned: this unit was never "
                    "despatched on it.",
                )
            )
            continue
        used[oid] = used.get(oid, 0) + 1
        accepted.append(row)
    order = {(r["return_ref"], r["unique_sku"]): i for i, r in enumerate(rows)}
    accepted.sort(key=lambda r: order[(r["return_ref"], r["unique_sku"])])
    return accepted, problems
