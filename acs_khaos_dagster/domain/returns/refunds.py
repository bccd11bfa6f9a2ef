"""5. The 14-day refund clock (owner finance)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

import pandas as pd

from acs_khaos_dagster.domain.models import Record
from acs_khaos_dagster.domain.returns.matching import _money, _records, _text, _utc
from acs_khaos_dagster.domain.returns.policy import UK_TIME_ZONE
from acs_khaos_dagster.domain.returns.postings import ReturnPosting

# --- 5. refund clock ------------------------------------------------------------------

CreditStatus = Literal["raised", "review", "none"]


class RefundWarning(Record):
    """A sale return part whose credit is not raised with the refund deadline near.

    ``deadline``: the end of the 14th day after the day of receipt, UK time (UK
    distance-selling rules: refund within 14 days after the day the goods are received
    back). ``days_left`` may be negative (``breached``).
    """

    associated_ref: str
    return_ref: str
    received_at: datetime
    deadline: datetime
    days_left: float
    breached: bool
    credit_status: str
    credit_value: Decimal = Decimal("0")

    @property
    def exception_type(self) -> str:
        return "refund_due"

    @property
    def owner(self) -> str:
        return "finance"

    @property
    def exception_ref(self) -> str:
        """Stable per return part: the warning re-raised each run updates one row."""
        return f"refund:{self.associated_ref}"

    @property
    def message(self) -> str:
        # Finance reads UK time: 23:00 UTC in summer is the end of the UK day.
        when = f"{self.deadline.astimezone(ZoneInfo(UK_TIME_ZONE)):%Y-%m-%d %H:%M %Z}"
        state = {"review": "a pre-credit is waiting for review", "none": "no credit exists"}
        why = state.get(self.credit_status, f"credit status is {self.credit_status!r}")
        if self.breached:
            return (
                f"Return {self.associated_ref}: the 14-day refund deadline passed at {when} "
                f"and {why}. Raise the credit of £{self.credit_value} now."
            )
        return (
            f"Return {self.associated_ref}: {self.days_left:.1f} day(s) left to refund "
            f"(deadline {when}) and {why}. Raise the credit of £{self.credit_value}."
        )


def refund_deadline(
    received_at: datetime, days: int = 14, time_zone: str = UK_TIME_ZONE
) -> datetime:
    """Midnight (UK) at the end of the ``days``-th day after the day of receipt, in UTC.

    >>> refund_deadline(datetime(2025, 6, 2, 15, 0, tzinfo=UTC)).isoformat()
    '2025-06-16T23:00:00+00:00'
    """
    tz = ZoneInfo(time_zone)
    day: date = received_at.astimezone(tz).date() + timedelta(days=days + 1)
    return datetime.combine(day, time(0, 0), tzinfo=tz).astimezone(UTC)


def refund_due(
    postings_or_units: Iterable[ReturnPosting] | pd.DataFrame,
    now: datetime,
    credit_status: Mapping[str, str] | None = None,
    days: int = 14,
    warn_days: float = 3,
    *,
    time_zone: str = UK_TIME_ZONE,
) -> list[RefundWarning]:
    """Sale return parts whose credit is not raised and whose deadline is ≤ ``warn_days`` off.

    Input: ``ReturnPosting``s, or a frame with ``associated_ref`` (or ``return_ref``),
    ``received_at`` and optionally ``is_hire``, ``credit_status``, ``credit_value``.
    ``credit_status`` (Khaos read-back by ``AssociatedRef``: ``raised`` / ``review`` /
    ``none``) overrides a frame's column; a part with no status is not raised. Hire parts
    never owe a refund and are skipped; a sale part in mode ``none`` is *not* skipped
    (the customer is owed the refund whatever the grade). Sorted by deadline.
    """
    statuses = credit_status or {}
    now = now.astimezone(UTC)
    parts: list[tuple[str, str, datetime, str, Decimal]] = []
    if isinstance(postings_or_units, pd.DataFrame):
        grouped: dict[str, tuple[str, datetime, str, Decimal]] = {}
        for row in _records(postings_or_units):
            if bool(row.get("is_hire")):
                continue
            ref = _text(row.get("return_ref"))
            assoc = _text(row.get("associated_ref")) or ref
            received = _utc(row.get("received_at"))
            if received is None:
                continue
            status = statuses.get(assoc, _text(row.get("credit_status")) or "none")
            value = _money(row.get("credit_value", row.get("unit_net")))
            if assoc in grouped:
                _, first, _, total = grouped[assoc]
                received, value = min(first, received), total + value
            grouped[assoc] = (ref, received, status, value)
        parts = [(a, r, rec, s, v) for a, (r, rec, s, v) in grouped.items()]
    else:
        for p in postings_or_units:
            if p.is_hire or p.received_at is None:
                continue
            parts.append(
                (
                    p.associated_ref,
                    p.return_ref,
                    p.received_at,
                    statuses.get(p.associated_ref, "none"),
                    p.goods_value,
                )
            )
    warnings: list[RefundWarning] = []
    for assoc, ref, received, status, value in parts:
        if status == "raised":
            continue
        deadline = refund_deadline(received, days, time_zone)
        left = (deadline - now).total_seconds() / 86400
        if left > warn_days:
            continue
        warnings.append(
            RefundWarning(
                associated_ref=assoc,
                return_ref=ref,
                received_at=received,
                deadline=deadline,
                days_left=round(left, 2),
                breached=left <= 0,
                credit_status=status,
                credit_value=value,
            )
        )
    return sorted(warnings, key=lambda w: (w.deadline, w.associated_ref))
