"""4. Write-offs and ex-hire: stock adjustments for units still in Khaos's Level."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pandas as pd

from acs_khaos_dagster.domain.layout import (
    KhaosReasons,
    KhaosSites,
)
from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    Record,
    StockAdjustmentGroup,
    StockItem,
)
from acs_khaos_dagster.domain.returns.matching import _records, _text, _utc
from acs_khaos_dagster.domain.returns.policy import (
    DEFAULT_GRADE_POLICY,
    GradePolicy,
    ReturnProblem,
    ReturnProblemKind,
)

# --- 4. write-offs and ex-hire --------------------------------------------------------


class StockMoveKind(StrEnum):
    WRITE_OFF = "write_off"
    EX_HIRE = "ex_hire"


class StockMove(Record):
    """Adjustments for one unit still in Khaos's Level: one outbox effect per group.

    ``groups`` hold one ``WRITEOFF`` line (adjust_by −1) for a write-off, or two groups for
    an ex-hire (−1 on the hire StockID at the hire stock site, +1 on the resale StockID at
    the selling site; a Khaos group has one site). Each ``group_ref`` is the group's
    idempotency key. ``value`` is CostPrice × 1 (the hire StockID's cost for an ex-hire).
    ``happened_at`` is when ACS handled the unit (for the snapshot push's two-sided
    correction of write-offs still in flight).
    """

    kind: StockMoveKind
    unique_sku: str
    return_ref: str
    stock_id: int
    groups: tuple[StockAdjustmentGroup, ...]
    value: Decimal
    happened_at: datetime | None = None
    resale_stock_id: int | None = None

    @property
    def idempotency_keys(self) -> tuple[str, ...]:
        return tuple(g.group_ref for g in self.groups)


def write_off_group_ref(unique_sku: str) -> str:
    """``GroupRef`` of a unit's write-off: a unit is written off once in its life.

    >>> write_off_group_ref("U000000123")
    'WO-U000000123'
    """
    return f"WO-{unique_sku}"


def ex_hire_group_refs(unique_sku: str) -> tuple[str, str]:
    """``GroupRef`` of the two halves of a unit's ex-hire (out of hire, into resale)."""
    return f"EXH-{unique_sku}-OUT", f"EXH-{unique_sku}-IN"


def plan_write_offs(
    units: pd.DataFrame,
    items: Mapping[int, StockItem],
    identity: Mapping[str, int],
    sites: KhaosSites,
    policy: GradePolicy = DEFAULT_GRADE_POLICY,
    resale_stock_id_for: Mapping[int, int] | None = None,
    *,
    already_planned: Collection[str] = frozenset(),
    reasons: KhaosReasons | None = None,
    ex_hire_value: Callable[[int, Decimal], Decimal] | None = None,
    hire_write_off_value: Callable[[str, Decimal], Decimal] | None = None,
) -> tuple[list[StockMove], list[ReturnProblem]]:
    """Write-off and ex-hire adjustments for units still in Khaos's Level.

    ``ex_hire_value(hire StockID, CostPrice)``: the used-garment value both ex-hire legs
    carry (``domain/ex_hire.py``); CostPrice when not given.
    ``hire_write_off_value(unique SKU, CostPrice)``: a hire unit's write-off value at the
    hire valuation basis (``domain/hire_valuation.py``); CostPrice when not given.

    Reason codes are the install's (``reasons``: ``write_off``, ``ex_hire``; by default
    ``WRITEOFF`` and ``EXHIRE``).

    ``units``: ``apply_grade_policy`` output, or any frame with ``unique_sku``, ``sku``,
    ``grade``, ``action_taken``, ``is_hire`` and optionally ``stock_id`` (else resolved by
    ``identity``: ACS SKU → StockID), ``return_ref``, ``received_at``, ``in_level`` (default:
    the unit is a hire unit — a sale unit left Level when invoiced; pass ``True`` for
    damage found in the warehouse) and ``site_id`` (the site the unit is on in Khaos;
    default hire stock site for hire units, selling site for sale units).

    - Written off by the policy (BER, DISPOSE) and in Level → one ``WRITEOFF`` line,
      adjust_by −1, value at CostPrice. Written off but not in Level (a sale return) →
      nothing: its customer return with a write-off reason is the only mover.
    - A hire unit not written off whose action is in
      ``policy.ex_hire_to_resale_actions`` → paired ``EXHIRE`` lines; its resale StockID
      comes from ``resale_stock_id_for`` (hire StockID → resale StockID). Missing →
      ``resale_unmapped`` problem, no adjustment.
    - Anything else → nothing (the snapshot push moves units between sites).
    - Moves whose group refs are in ``already_planned`` are left out (re-delivered files).
    A unit with an unknown grade is an ``unknown_grade`` problem (never adjusted); one whose
    StockID or StockItem is unknown a ``stock_item_unknown`` problem.
    """
    resale = resale_stock_id_for or {}
    codes = reasons or KhaosReasons()
    done = set(already_planned)
    moves: list[StockMove] = []
    problems: list[ReturnProblem] = []
    seen: set[str] = set()
    for row in _records(units):
        unit = _text(row.get("unique_sku"))
        if unit in seen:
            continue
        seen.add(unit)
        ref, sku = _text(row.get("return_ref")), _text(row.get("sku"))
        grade, action = _text(row.get("grade")).upper(), _text(row.get("action_taken")).upper()
        hire = bool(row.get("is_hire"))
        in_level = row.get("in_level")
        in_level = hire if in_level is None or pd.isna(in_level) else bool(in_level)
        rule = policy.rule_for(grade, action)

        def problem(
            kind: ReturnProblemKind,
            message: str,
            *,
            _ref: str = ref,
            _unit: str = unit,
            _sku: str = sku,
        ) -> ReturnProblem:
            return ReturnProblem(
                kind=kind, return_ref=_ref, unique_sku=_unit, sku=_sku, message=message
            )

        if rule is None:
            problems.append(
                problem(
                    ReturnProblemKind.UNKNOWN_GRADE,
                    f"Unit {unit} ({sku}) has grade {grade!r}, unknown to the grade policy: "
                    "not written off or moved.",
                )
            )
            continue
        write_off = policy.writes_off(rule) and in_level
        ex_hire = (
            hire and not policy.writes_off(rule) and action in policy.ex_hire_to_resale_actions
        )
        if not (write_off or ex_hire):
            continue
        stock_id = _stock_id(row, identity)
        item = items.get(stock_id) if stock_id is not None else None
        if item is None:
            problems.append(
                problem(
                    ReturnProblemKind.STOCK_ITEM_UNKNOWN,
                    f"Unit {unit} ({sku}) is to be {'written off' if write_off else 'ex-hired'}"
                    " but its Khaos StockItem is not known: map the SKU, then re-run.",
                )
            )
            continue
        cost = item.cost_price
        happened = _utc(row.get("received_at"))
        if write_off:
            ref_wo = write_off_group_ref(unit)
            if ref_wo in done:
                continue
            site = _site(row, sites.hire_stock if hire else sites.selling)
            if hire and hire_write_off_value is not None:
                cost = hire_write_off_value(unit, cost)
            moves.append(
                StockMove(
                    kind=StockMoveKind.WRITE_OFF,
                    unique_sku=unit,
                    return_ref=ref,
                    stock_id=item.stock_id,
                    value=cost,
                    happened_at=happened,
                    groups=(
                        StockAdjustmentGroup(
                            site_id=site,
                            group_ref=ref_wo,
                            lines=(
                                AdjustmentLine(
                                    stock_id=item.stock_id,
                                    adjust_by=-1,
                                    reason_code=codes.write_off,
                                    value=cost,
                                ),
                            ),
                        ),
                    ),
                )
            )
            continue
        target = resale.get(item.stock_id)
        if target is None:
            problems.append(
                problem(
                    ReturnProblemKind.RESALE_UNMAPPED,
                    f"Ex-hired unit {unit} ({sku}, StockID {item.stock_id}) goes to resale but "
                    "no resale StockID is mapped for it: add the mapping, then re-run.",
                )
            )
            continue
        out_ref, in_ref = ex_hire_group_refs(unit)
        if out_ref in done and in_ref in done:
            continue
        used = ex_hire_value(item.stock_id, cost) if ex_hire_value else cost
        moves.append(
            StockMove(
                kind=StockMoveKind.EX_HIRE,
                unique_sku=unit,
                return_ref=ref,
                stock_id=item.stock_id,
                resale_stock_id=target,
                value=used,
                happened_at=happened,
                groups=(
                    StockAdjustmentGroup(
                        site_id=_site(row, sites.hire_stock),
                        group_ref=out_ref,
                        lines=(
                            AdjustmentLine(
                                stock_id=item.stock_id,
                                adjust_by=-1,
                                reason_code=codes.ex_hire,
                                value=used,
                            ),
                        ),
                    ),
                    StockAdjustmentGroup(
                        site_id=sites.selling,
                        group_ref=in_ref,
                        lines=(
                            AdjustmentLine(
                                stock_id=target,
                                adjust_by=1,
                                reason_code=codes.ex_hire,
                                value=used,
                            ),
                        ),
                    ),
                ),
            )
        )
    return moves, problems


def _stock_id(row: Mapping[str, Any], identity: Mapping[str, int]) -> int | None:
    value = row.get("stock_id")
    if value is not None and not pd.isna(value):
        return int(value)
    return identity.get(_text(row.get("sku")))


def _site(row: Mapping[str, Any], default: int) -> int:
    value = row.get("site_id")
    return default if value is None or pd.isna(value) else int(value)
