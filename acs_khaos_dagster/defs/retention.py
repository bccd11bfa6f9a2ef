"""Personal data retention: a daily job blanks customers' data the store no longer needs.

The rule lives in ``store.retention`` (which bodies, when) and the step in
``flows.personal_data``; this module only decides *when* (03:30 UK time, every day) and
attaches what was done as run metadata.
"""

import dagster as dg

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import UK_TIME_ZONE
from acs_khaos_dagster.dagster_kit.results import metadata
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS
from acs_khaos_dagster.defs.resources import SettingsResource, StoreResource
from acs_khaos_dagster.flows import personal_data


@dg.op(
    description="Blank customers' names, emails, phones, addresses and comments in the "
    "store's bodies older than retention.personal_data_days (effects done, orders finished).",
)
def purge_personal_data(
    context: dg.OpExecutionContext, settings: SettingsResource, store: StoreResource
) -> None:
    conf = settings.load()
    with store.connect() as db:
        done = personal_data.purge_personal_data(db, conf, integration_now(conf))
    context.add_output_metadata(metadata(done))


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
