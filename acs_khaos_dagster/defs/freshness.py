"""Overdue data alerts its owner: ``freshness_alerts``.

The freshness policies (``definitions.py``) make a late snapshot or reconciliation show in
the UI; nobody is told. This sensor reads which day partitions exist against the same
``freshness.*`` deadlines and raises an exception in the queue for each day whose deadline
passed without its partition: ``snapshot_overdue`` for operations (the snapshot's owner),
``reconciliation_overdue`` for finance (the reconciliations'), ``exception_queue_overdue``
for integration (``integration_exceptions``, the night's queue table, is the integration's).
``exception_alerts`` sends them to the owner's channels like any other; each closes itself
once its day is made.

Days are measured on the integration's clock (the sandbox's in the demo), and only the
deadlines of the last week are looked at: an older day still missing stays open until a
person resolves it, never closed for being old.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dagster import Definitions, SensorEvaluationContext, SkipReason, sensor
from dagster._utils.schedules import reverse_cron_string_iterator

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import UK_TIME_ZONE
from acs_khaos_dagster.defs.automation import SENSOR_STATUS
from acs_khaos_dagster.defs.brand import brand_key
from acs_khaos_dagster.defs.common import sync_exceptions
from acs_khaos_dagster.defs.reconciliation import RECONCILIATION_DAYS
from acs_khaos_dagster.defs.resources import SettingsResource, StoreResource
from acs_khaos_dagster.defs.stock import SNAPSHOT_DAYS
from acs_khaos_dagster.domain.freshness import Overdue, due_days, overdue
from acs_khaos_dagster.store.exceptions import ExceptionType

LOOKBACK = timedelta(days=7)
# Enough for a deadline every minute over the lookback; a bound, not a figure to tune.
MAX_DEADLINES = 20_000


@dataclass(frozen=True)
class Watched:
    asset: str
    setting: str  # the field of `freshness` settings holding its deadline cron
    days_before: int  # the deadline is for the partition of this many days before
    exception_type: ExceptionType
    first_day: str


WATCHED = (
    Watched(
        "acs_stock_snapshot",
        "snapshot_due",
        0,
        ExceptionType.SNAPSHOT_OVERDUE,
        SNAPSHOT_DAYS.start.date().isoformat(),
    ),
    *(
        Watched(
            name,
            "reconciliation_due",
            1,
            ExceptionType.RECONCILIATION_OVERDUE,
            RECONCILIATION_DAYS.start.date().isoformat(),
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
        RECONCILIATION_DAYS.start.date().isoformat(),
    ),
)


def deadlines_since(cron: str, now: datetime, since: datetime) -> list[datetime]:
    """The cron's times (UK local) in ``(since, now]``, newest first."""
    found = []
    for deadline in reverse_cron_string_iterator(now.timestamp(), cron, UK_TIME_ZONE):
        if deadline <= since or len(found) >= MAX_DEADLINES:
            break
        found.append(deadline)
    return found


@sensor(
    name="freshness_alerts",
    description="An exception for the owner team when the snapshot, a reconciliation or the "
    "night's exception queue is past its freshness deadline (freshness.* settings); it closes "
    "once the day is made.",
    minimum_interval_seconds=300,
    default_status=SENSOR_STATUS,
)
def freshness_alerts(
    context: SensorEvaluationContext, store: StoreResource, settings: SettingsResource
) -> SkipReason:
    config = settings.load()
    now = integration_now(config)
    problems: dict[ExceptionType, list[Overdue]] = {}
    checked: dict[ExceptionType, set[str]] = {}
    for watched in WATCHED:
        cron = getattr(config.freshness, watched.setting)
        deadlines = deadlines_since(cron, now, now - LOOKBACK)
        # The brand's own key: in a brand's location another brand's days never count.
        made = context.instance.get_materialized_partitions(brand_key(watched.asset))
        late = overdue(
            watched.asset,
            str(watched.exception_type),
            deadlines,
            watched.days_before,
            made,
            watched.first_day,
        )
        problems.setdefault(watched.exception_type, []).extend(late)
        days = due_days(deadlines, watched.days_before)
        checked.setdefault(watched.exception_type, set()).update(
            f"{watched.asset}:{day}" for day in days
        )
    with store.connect() as db:
        open_now = {
            str(type_): sync_exceptions(
                db, late, [type_], owns=lambda ref, refs=checked[type_]: ref in refs
            )[str(type_)]
            for type_, late in problems.items()
        }
    return SkipReason(f"overdue: {open_now}")


defs = Definitions(sensors=[freshness_alerts])
