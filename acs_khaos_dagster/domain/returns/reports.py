"""6. Finance reports and the demo summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pandas as pd

from acs_khaos_dagster.domain.models import CreditMode
from acs_khaos_dagster.domain.returns.matching import _empty, _money, _records, _text, _utc
from acs_khaos_dagster.domain.returns.policy import GRADES, UK_TIME_ZONE, ReturnProblem
from acs_khaos_dagster.domain.returns.postings import ReturnPosting
from acs_khaos_dagster.domain.returns.write_offs import StockMove, StockMoveKind

# --- 6. finance reports and the demo summary -----------------------------------------


def repair_costs(
    units: pd.DataFrame, by: Literal["return", "month"] = "return", time_zone: str = UK_TIME_ZONE
) -> pd.DataFrame:
    """ACS repair costs (3PL charges for finance; never part of stock value).

    ``by="return"``: columns ``return_ref, units, repaired_units, repair_cost``;
    ``by="month"``: ``month`` (``YYYY-MM`` of ``received_at``, UK time), ``units``,
    ``repaired_units``, ``repair_cost``. ``repair_cost`` is a ``Decimal`` sum.
    """
    key = "return_ref" if by == "return" else "month"
    totals: dict[str, list[Any]] = {}
    tz = ZoneInfo(time_zone)
    for row in _records(units):
        if by == "return":
            group = _text(row.get("return_ref"))
        else:
            received = _utc(row.get("received_at"))
            group = received.astimezone(tz).strftime("%Y-%m") if received else ""
        cost = _money(row.get("repair_cost"))
        entry = totals.setdefault(group, [0, 0, Decimal("0")])
        entry[0] += 1
        entry[1] += 1 if cost > 0 else 0
        entry[2] += cost
    rows = [
        {key: g, "units": n, "repaired_units": r, "repair_cost": c}
        for g, (n, r, c) in sorted(totals.items())
    ]
    if not rows:
        return _empty((key, "units", "repaired_units", "repair_cost"))
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ReturnsSummary:
    """What the demo prints and finance reads."""

    units_by_grade: dict[str, int]
    credits_raised: int
    credits_raised_value: Decimal
    credits_pending_review: int
    credits_pending_review_value: Decimal
    sale_units_written_off: int  # posted with a write-off reason, no adjustment
    units_written_off_by_adjustment: int
    write_off_value: Decimal  # adjustments at CostPrice
    ex_hired_to_resale: int
    repair_cost: Decimal
    problems_by_kind: dict[str, int]

    @property
    def units_written_off(self) -> int:
        return self.sale_units_written_off + self.units_written_off_by_adjustment

    def lines(self) -> list[str]:
        grades = ", ".join(f"{g} {n}" for g, n in self.units_by_grade.items()) or "none"
        return [
            f"returned units by grade: {grades}",
            f"credits raised: {self.credits_raised} (£{self.credits_raised_value})",
            f"credits pending review: {self.credits_pending_review} "
            f"(£{self.credits_pending_review_value})",
            f"units written off: {self.units_written_off}"
            f" ({self.sale_units_written_off} sale returns, "
            f"{self.units_written_off_by_adjustment} by adjustment worth £{self.write_off_value})",
            f"ex-hired to resale: {self.ex_hired_to_resale}",
            f"ACS repair charges: £{self.repair_cost}",
            "problems: "
            + (", ".join(f"{k} {n}" for k, n in self.problems_by_kind.items()) or "none"),
        ]


def returns_summary(
    units: pd.DataFrame,
    postings: Iterable[ReturnPosting] = (),
    moves: Iterable[StockMove] = (),
    problems: Iterable[ReturnProblem] = (),
    credit_status: Mapping[str, str] | None = None,
) -> ReturnsSummary:
    """Counts for the demo. ``units``: the returns table (any stage: raw, matched, graded)
    for grades and repair costs. A posting's credit counts as raised when Khaos says so
    (``credit_status``), else by its mode (``auto`` raised, ``review`` pending)."""
    statuses = credit_status or {}
    grades: dict[str, int] = {}
    records = _records(units)
    for row in records:
        grade = _text(row.get("grade")).upper() or "?"
        grades[grade] = grades.get(grade, 0) + 1
    order = {g: i for i, g in enumerate(GRADES)}
    grades = dict(sorted(grades.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))
    raised = review = 0
    raised_value = review_value = Decimal("0")
    sale_written_off = 0
    for p in postings:
        status = statuses.get(p.associated_ref) or {
            CreditMode.AUTO: "raised",
            CreditMode.REVIEW: "review",
        }.get(p.credit_mode, "none")
        if status == "raised":
            raised, raised_value = raised + 1, raised_value + p.credit_value
        elif status == "review":
            review, review_value = review + 1, review_value + p.credit_value
        if not p.is_hire:
            sale_written_off += p.written_off_units
    adjusted = ex_hired = 0
    value = Decimal("0")
    for m in moves:
        if m.kind == StockMoveKind.WRITE_OFF:
            adjusted, value = adjusted + 1, value + m.value
        else:
            ex_hired += 1
    kinds: dict[str, int] = {}
    for pr in problems:
        kinds[str(pr.kind)] = kinds.get(str(pr.kind), 0) + 1
    return ReturnsSummary(
        units_by_grade=grades,
        credits_raised=raised,
        credits_raised_value=raised_value,
        credits_pending_review=review,
        credits_pending_review_value=review_value,
        sale_units_written_off=sale_written_off,
        units_written_off_by_adjustment=adjusted,
        write_off_value=value,
        ex_hired_to_resale=ex_hired,
        repair_cost=sum((_money(r.get("repair_cost")) for r in records), Decimal("0")),
        problems_by_kind=dict(sorted(kinds.items())),
    )
