"""Overdue data alerts its owner: ``freshness_alerts``.

The freshness policies (``definitions.py``) make a late snapshot or reconciliation show in
the UI; nobody is told. This sensor reads which day partitions exist against the same
``freshness.*`` deadlines and raises an exception in the queue for each day whose deadline
passed without its partition: ``snapshot_overdue`` for operations (the snapshot's owner),
``reconciliation_overdue`` for finance (the reconciliations'), ``exception_queue_overdue``
for integration (``integration_exceptions``, the night's queue table, is the integration's).
``exception_alerts`` sends them to the owner's channels like any other; each closes itself
once its day is made.

Which days are overdue, and the queue's syncing, are ``flows/freshness_alerts.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import dagster as dg
from dagster._utils.schedules import reverse_cron_string_iterator

from acs_khaos_dagster.config import UK_TIME_ZONE
from acs_khaos_dagster.dagster_kit.brand import brand_key
from acs_khaos_dagster.defs.automation import SENSOR_STATUS
from acs_khaos_dagster.defs.partitions import RECONCILIATION_DAYS, SNAPSHOT_DAYS
from acs_khaos_dagster.defs.resources import SettingsResource, StoreResource
from acs_khaos_dagster.flows import freshness_alerts as flow

WATCHED = flow.watched(
    SNAPSHOT_DAYS.start.date().isoformat(), RECONCILIATION_DAYS.start.date().isoformat()
)


def _cron_times(cron: str, now: datetime) -> Iterator[datetime]:
    """The cron's times (UK local) up to ``now``, newest first: Dagster's own cron reading."""
    return reverse_cron_string_iterator(now.timestamp(), cron, UK_TIME_ZONE)


@dg.sensor(
    name="freshness_alerts",
    description="An exception for the owner team when the snapshot, a reconciliation or the "
    "night's exception queue is past its freshness deadline (freshness.* settings); it closes "
    "once the day is made.",
    minimum_interval_seconds=300,
    default_status=SENSOR_STATUS,
)
def freshness_alerts(
    context: dg.SensorEvaluationContext, store: StoreResource, settings: SettingsResource
) -> dg.SkipReason:
    def made(asset: str) -> set[str]:
        # The brand's own key: in a brand's location another brand's days never count.
        return context.instance.get_materialized_partitions(brand_key(asset))

    with store.connect() as db:
        open_now = flow.sync_overdue(db, settings.load(), WATCHED, made, _cron_times)
    return dg.SkipReason(f"overdue: {open_now}")


defs = dg.Definitions(sensors=[freshness_alerts])
