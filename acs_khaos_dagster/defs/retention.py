"""Personal data retention: a daily job blanks customers' data the store no longer needs.

The rule lives in ``store.retention`` (which bodies, when); this module only decides
*when* (03:30 UK time, every day) and reports what was done as run metadata.
"""

import dagster as dg

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import UK_TIME_ZONE
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS
from acs_khaos_dagster.defs.resources import SettingsResource, StoreResource


@dg.op(
    description="Blank customers' names, emails, phones, addresses and comments in the "
    "store's bodies older than retention.personal_data_days (effects done, orders finished).",
)
def purge_personal_data(
    context: dg.OpExecutionContext, settings: SettingsResource, store: StoreResource
) -> None:
    conf = settings.load()
    with store.connect() as db:
        report = db.purge_personal_data(conf.retention.personal_data_days, integration_now(conf))
    context.add_output_metadata(
        {
            "cutoff": report.cutoff.isoformat(),
            "effects_purged": report.effects_purged,
            "releases_purged": report.releases_purged,
            "releases_kept_unfinished": report.releases_kept_unfinished,
        }
    )


@dg.job(description="Blank personal data the store no longer needs (see store/retention.py).")
def personal_data_retention() -> None:
    purge_personal_data()


personal_data_retention_schedule = dg.ScheduleDefinition(
    job=personal_data_retention,
    cron_schedule="30 3 * * *",
    execution_timezone=UK_TIME_ZONE,
    # On by default: a privacy rule that has to be switched on is not a rule.
    default_status=SCHEDULE_STATUS,
    description="Every night at 03:30 UK time.",
)

defs = dg.Definitions(jobs=[personal_data_retention], schedules=[personal_data_retention_schedule])
