"""Two-person approval of held stock variances (finance's approval limits).

A held difference at or above ``stock.second_approval_units`` units or
``stock.second_approval_value`` (£ at cost) is booked only when a second person, not the
first approver, approves it too. Pure: the store records who approved, this decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class ApprovalLimits:
    units: int
    value: Decimal


def needs_second_approval(details: Mapping[str, Any], limits: ApprovalLimits) -> bool:
    """Whether a held variance (its exception's details) is at or above either limit. An
    unknown value counts as above: nobody can say it is small."""
    units = abs(int(details.get("held_units") or 0))
    raw = details.get("value")
    try:
        value = abs(Decimal(str(raw))) if raw is not None else None
    except InvalidOperation:
        value = None
    return units >= limits.units or value is None or value >= limits.value
