"""The brand overview in Dagster: what this brand needs attention for, at a glance.

Each brand's code location sees its own store only, so each has its own ``brand_overview``
asset (``[brand, brand_overview]``, tag ``brand``); side by side in the catalogue (group
``overview``, owner integration) they are the deployment's overview, the same rows
``acs-khaos overview`` prints for every brand at once: both call
``flows.overview.take_overview``. The asset's metadata is the brand's row as a table and as
figures (plotted across materialisations); the report files
``<data_dir>/overview/brand_overview.{csv,html}`` are written beside the brand's data.
``brand_overview_schedule`` refreshes it every quarter of an hour.
"""

import dagster as dg

from acs_khaos_dagster.config import UK_TIME_ZONE
from acs_khaos_dagster.dagster_kit.results import metadata
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS
from acs_khaos_dagster.defs.resources import SettingsResource
from acs_khaos_dagster.flows import overview as flow

OVERVIEW_JOB = "brand_overview_job"


@dg.asset(
    group_name="overview",
    kinds={"python"},
    owners=["team:integration"],
    description="What this brand needs attention for: open exceptions by owner and over "
    "target, the oldest due effect, the age of the last stock snapshot and of the last "
    "despatch posted, the newest day's unexplained drift (£ at cost), the month end. Also "
    "written to <data_dir>/overview/brand_overview.csv and .html.",
)
def brand_overview(settings: SettingsResource) -> dg.MaterializeResult:
    conf = settings.load()
    row = flow.take_overview(conf)
    files = flow.write_overview_report(conf, [row])
    return dg.MaterializeResult(metadata=metadata(flow.overview_figures(conf, row, files)))


brand_overview_job = dg.define_asset_job(
    OVERVIEW_JOB,
    selection=dg.AssetSelection.assets(brand_overview),
    description="Refresh the brand's overview (and its report files).",
)

brand_overview_schedule = dg.ScheduleDefinition(
    name="brand_overview_schedule",
    job=brand_overview_job,
    cron_schedule="*/15 * * * *",
    execution_timezone=UK_TIME_ZONE,
    default_status=SCHEDULE_STATUS,
    description="Every quarter of an hour: the brand's overview, fresh for the team.",
)

defs = dg.Definitions(
    assets=[brand_overview], jobs=[brand_overview_job], schedules=[brand_overview_schedule]
)
