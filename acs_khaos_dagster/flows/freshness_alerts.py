"""Which watched days are overdue, raised in (and closed from) the exception queue, without
Dagster: ``defs/freshness.py``'s sensor hands in which partitions exist and the deadlines'
cron times, both of which Dagster knows.

Days are measured on the integration's clock (the sandbox's in the demo), and only the
deadlines of the last week are looked at: an older day still missing stays open until a
person resolves it, never closed for being old.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.domain.freshness import Overdue, due_days, overdue
from acs_khaos_dagster.flows.common import sync_exceptions
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.exceptions import ExceptionType

LOOKBACK = timedelta(days=7)
# Enough for a deadline every minute over the lookback; a bound, not a figure to tune.
MAX_DEADLINES = 20_000

# A cron's times (UK local) going back from a time, newest first.
CronTimes = Callable[[str, datetime], Iterable[datetime]]


@dataclass(frozen=True)
class Watched:
    asset: str
    setting: str  # the field of `freshness` settings holding its deadline cron
    days_before: int  # the deadline is for the partition of this many days before
    exception_type: ExceptionType
    first_day: str


def watched(snapshot_first_day: str, reconciliation_first_day: str) -> tuple[Watched, ...]:
    """The snapshot, the reconciliations and the exception queue, from their first days."""
    return (
        Watched(
            "acs_stock_snapshot",
            "snapshot_due",
            0,
            ExceptionType.SNAPSHOT_OVERDUE,
            snapshot_first_day,
        ),
        *(
            Watched(
                name,
                "reconciliation_due",
                1,
                ExceptionType.RECONCILIATION_OVERDUE,
                reconciliation_first_day,
            )
            for name in (
                "stock_reconciliation",
                "order_status_reconciliation",
                "order_to_cash_reconciliation",
                "returns_reconciliation",
            )
        ),
        # Made by the same nightly job after the reconciliations, so due by the same time.
        Watched(
            "integration_exceptions",
            "reconciliation_due",
            1,
            ExceptionType.EXCEPTION_QUEUE_OVERDUE,
            reconciliation_first_day,
        ),
    )


def deadlines_since(times: Iterable[datetime], since: datetime) -> list[datetime]:
    """``times`` (newest first) after ``since``, at most ``MAX_DEADLINES`` of them."""
    found = []
    for deadline in times:
        if deadline <= since or len(found) >= MAX_DEADLINES:
            break
        found.append(deadline)
    return found


def sync_overdue(
    db: Store,
    conf: Settings,
    watched: Iterable[Watched],
    made: Callable[[str], Collection[str]],
    cron_times: CronTimes,
) -> dict[str, int]:
    """Raise an exception per overdue day of each watched asset (``made``: its partitions)
    and close those of the days looked at that are made now; how many are open per type."""
    now = integration_now(conf)
    problems: dict[ExceptionType, list[Overdue]] = {}
    checked: dict[ExceptionType, set[str]] = {}
    for w in watched:
        cron = getattr(conf.freshness, w.setting)
        deadlines = deadlines_since(cron_times(cron, now), now - LOOKBACK)
        late = overdue(
            w.asset, str(w.exception_type), deadlines, w.days_before, made(w.asset), w.first_day
        )
        problems.setdefault(w.exception_type, []).extend(late)
        days = due_days(deadlines, w.days_before)
        checked.setdefault(w.exception_type, set()).update(f"{w.asset}:{day}" for day in days)
    return {
        str(type_): sync_exceptions(
            db, late, [type_], owns=lambda ref, refs=checked[type_]: ref in refs
        )[str(type_)]
        for type_, late in problems.items()
    }
