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

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)

from acs_khaos_dagster.config import UK_TIME_ZONE, OwnerTargets
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS
from acs_khaos_dagster.defs.common import markdown_table, report_link
from acs_khaos_dagster.defs.resources import SettingsResource
from acs_khaos_dagster.flows.overview import (
    BrandOverview,
    overview_frame,
    take_overview,
    write_overview_report,
)

OVERVIEW_JOB = "brand_overview_job"
OWNERS = tuple(OwnerTargets.model_fields)


def overview_metadata(row: BrandOverview) -> dict[str, object]:
    """The brand's row as a markdown table, and each figure on its own (none yet: null)."""
    figures: dict[str, object] = {
        "open_exceptions": row.open_exceptions,
        "over_target": row.over_target,
    }
    for owner in OWNERS:
        figures[f"open_{owner}"] = row.open_by_owner.get(owner, 0)
        figures[f"over_target_{owner}"] = row.over_target_by_owner.get(owner, 0)
    for name in ("oldest_due_age", "snapshot_age", "despatch_posted_age"):
        age = getattr(row, name)
        figures[f"{name}_h"] = (
            MetadataValue.null()
            if age is None
            else MetadataValue.float(round(age.total_seconds() / 3600, 2))
        )
    figures["unexplained_drift_value"] = (
        MetadataValue.null() if row.drift_value is None else MetadataValue.float(row.drift_value)
    )
    figures["month_end"] = MetadataValue.text(row.month_end)
    return {"overview": markdown_table(overview_frame([row])), **figures}


@asset(
    group_name="overview",
    kinds={"python"},
    owners=["team:integration"],
    description="What this brand needs attention for: open exceptions by owner and over "
    "target, the oldest due effect, the age of the last stock snapshot and of the last "
    "despatch posted, the newest day's unexplained drift (£ at cost), the month end. Also "
    "written to <data_dir>/overview/brand_overview.csv and .html.",
)
def brand_overview(settings: SettingsResource) -> MaterializeResult:
    conf = settings.load()
    row = take_overview(conf)
    files = write_overview_report(conf, [row])
    return MaterializeResult(
        metadata={
            **overview_metadata(row),
            "csv": report_link(conf, files.csv),
            "html": report_link(conf, files.html),
        }
    )


brand_overview_job = define_asset_job(
    OVERVIEW_JOB,
    selection=AssetSelection.assets(brand_overview),
    description="Refresh the brand's overview (and its report files).",
)

brand_overview_schedule = ScheduleDefinition(
    name="brand_overview_schedule",
    job=brand_overview_job,
    cron_schedule="*/15 * * * *",
    execution_timezone=UK_TIME_ZONE,
    default_status=SCHEDULE_STATUS,
    description="Every quarter of an hour: the brand's overview, fresh for the team.",
)

defs = Definitions(
    assets=[brand_overview], jobs=[brand_overview_job], schedules=[brand_overview_schedule]
)
