"""Which days' data are overdue: a deadline passed and its day's partition was never made.

The deadlines come from the ``freshness.*`` cron settings (UK time); a deadline at 09:00 on
the 12th is for the 12th's snapshot (``days_before=0``), one at 06:00 on the 12th is for
the reconciliation of the 11th (``days_before=1``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Overdue:
    """One late partition of one asset, shaped for the exception queue."""

    type: str
    entity_ref: str
    message: str
    details: dict[str, str] = field(default_factory=dict)


def due_days(deadlines: Iterable[datetime], days_before: int) -> list[str]:
    """The partition keys (UK days, ISO) that ``deadlines`` (UK local times) are for."""
    days = {(d.date() - timedelta(days=days_before)).isoformat() for d in deadlines}
    return sorted(days)


def overdue(
    asset: str,
    exception_type: str,
    deadlines: Iterable[datetime],
    days_before: int,
    made: Collection[str],
    first_day: str,
) -> list[Overdue]:
    """Each day whose deadline has passed with no partition of ``asset`` made for it.

    Days before ``first_day`` (the first partition there is) are never due.
    """
    by_day: dict[str, datetime] = {}
    for deadline in deadlines:
        day = (deadline.date() - timedelta(days=days_before)).isoformat()
        by_day[day] = min(deadline, by_day.get(day, deadline))
    return [
        Overdue(
            type=exception_type,
            entity_ref=entity_ref(asset, day),
            message=f"{asset} for {day} was due by {deadline:%a %d %b %H:%M} (UK time) "
            "and has not been made",
            details={"asset": asset, "day": day, "due": deadline.isoformat()},
        )
        for day, deadline in sorted(by_day.items())
        if day >= first_day and day not in made
    ]


def entity_ref(asset: str, day: str) -> str:
    return f"{asset}:{day}"
